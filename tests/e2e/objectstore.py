"""The object store of the real tier: moto's S3 server (a real HTTP server speaking the S3 API, as
OBS and OSS do), in this test process, on an address of this machine that the real node's pods
reach (the bridge's 10.244.0.1; 127.0.0.1 without a real node). Nothing leaves the machine.

The in-cluster operator (conftest.incluster_operator) is installed pointing at it: the package
store (`stores.packagesUrl`) is PACKAGES, the S3 and the OSS endpoints are this server (path-style
addressing), and the store's keys are the Secret SECRET in the real tier's namespace (moto takes
any keys; the tests check that they never show in a status, an Event or a log).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

BUCKET = "lakejob-packages"
PREFIX = "dli/"
PACKAGES = f"s3://{BUCKET}/{PREFIX}"  # where DLI package names live
SECRET = "lakejob-store"
KEY_ID, KEY_SECRET = "LAKEJOBTESTKEYDONOTPRINT", "lakejob-test-secret-do-not-print"
BRIDGE = "10.244.0.1"  # hack/node/node.py's bridge address: this machine's own on the pods' network


@dataclass
class ObjectStore:
    endpoint: str

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
        return {"packagesUrl": PACKAGES, "secretName": SECRET, "s3": endpoint, "oss": endpoint}

    def secret(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET}, "type": "Opaque",
                "stringData": {"S3_ACCESS_KEY_ID": KEY_ID, "S3_ACCESS_KEY_SECRET": KEY_SECRET,
                               "OSS_ACCESS_KEY_ID": KEY_ID, "OSS_ACCESS_KEY_SECRET": KEY_SECRET}}


def serve(real_node: bool) -> Iterator[ObjectStore]:
    server = ThreadedMotoServer(ip_address=BRIDGE if real_node else "127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    store = ObjectStore(f"http://{host}:{port}")
    store.client().create_bucket(Bucket=BUCKET)
    try:
        yield store
    finally:
        server.stop()
