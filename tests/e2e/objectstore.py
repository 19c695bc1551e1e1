"""The object stores of the real tier, on an address of this machine that the real node's pods
reach (the bridge's 10.244.0.1; 127.0.0.1 without a real node). Nothing leaves the machine.
- moto's S3 server (a real HTTP server speaking the S3 API, as OBS and OSS do), in this test process;
- Azurite's Blob service (hack/azurite.py: Microsoft's emulator, from npm), for wasb:// and abfs://.

The in-cluster operator (conftest.incluster_operator) is installed pointing at them: the package
store (`stores.packagesUrl`) is PACKAGES, the S3 and the OSS endpoints are moto (path-style
addressing), the Blob endpoint is Azurite, and the stores' keys are the Secret SECRET in the real
tier's namespace (moto takes any keys, Azurite its development account's; the tests check that
they never show in a status, an Event or a log).
"""
from __future__ import annotations

import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
import azurite  # noqa: E402  (hack/azurite.py)

BUCKET = "lakejob-packages"
PREFIX = "dli/"
PACKAGES = f"s3://{BUCKET}/{PREFIX}"  # where DLI package names live
SECRET = "lakejob-store"
KEY_ID, KEY_SECRET = "LAKEJOBTESTKEYDONOTPRINT", "lakejob-test-secret-do-not-print"
BRIDGE = "10.244.0.1"  # hack/node/node.py's bridge address: this machine's own on the pods' network


@dataclass
class ObjectStore:
    endpoint: str  # moto's S3 API
    blob_endpoint: str  # Azurite's Blob service, `{account}` standing for the account

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=KEY_ID, aws_secret_access_key=KEY_SECRET)

    def put_package(self, name: str, body: bytes) -> str:
        """A DLI package `name` (group/name or name) into the package store; its s3:// path."""
        self.client().put_object(Bucket=BUCKET, Key=PREFIX + name, Body=body)
        return f"s3://{BUCKET}/{PREFIX}{name}"

    def chart_values(self) -> dict[str, Any]:
        """`stores:` of the chart: this one server is both the S3 store (obs://, s3a://, s3://) and the
        OSS store (oss://, DagJob's paths)."""
        endpoint = {"endpoint": self.endpoint, "addressingStyle": "path", "region": "us-east-1"}
        return {"packagesUrl": PACKAGES, "secretName": SECRET, "s3": endpoint, "oss": endpoint,
                "blob": {"endpoint": self.blob_endpoint}}

    def container(self, name: str) -> Any:
        """An Azure Blob container of the emulator's account (made when missing), to put objects in."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContainerClient

        c = ContainerClient(self.blob_endpoint.replace("{account}", azurite.ACCOUNT), name,
                            credential={"account_name": azurite.ACCOUNT, "account_key": azurite.ACCOUNT_KEY})
        try:
            c.create_container()
        except ResourceExistsError:
            pass
        return c

    def wasb(self, container: str, name: str) -> str:
        """HDInsight's path of a blob in the emulator's account."""
        return f"wasb://{container}@{azurite.ACCOUNT}.blob.core.windows.net/{name}"

    def secret(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET}, "type": "Opaque",
                "stringData": {"S3_ACCESS_KEY_ID": KEY_ID, "S3_ACCESS_KEY_SECRET": KEY_SECRET,
                               "OSS_ACCESS_KEY_ID": KEY_ID, "OSS_ACCESS_KEY_SECRET": KEY_SECRET,
                               "BLOB_ACCOUNT_KEY": azurite.ACCOUNT_KEY}}


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve(real_node: bool) -> Iterator[ObjectStore]:
    address = BRIDGE if real_node else "127.0.0.1"
    server = ThreadedMotoServer(ip_address=address, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    log = Path(tempfile.gettempdir()) / f"lakejob-azurite-{port}.log"
    try:
        blob, blob_endpoint = azurite.start(address, _free_port(address), log)
    except BaseException:
        server.stop()
        raise
    store = ObjectStore(f"http://{host}:{port}", blob_endpoint)
    try:
        store.client().create_bucket(Bucket=BUCKET)
        yield store
    finally:
        azurite.stop(blob)
        server.stop()
