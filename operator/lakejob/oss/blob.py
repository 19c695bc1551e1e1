"""The Azure Blob edge of lakejob-oss: reads the `blob://CONTAINER@ACCOUNT/KEY` paths that
render.packages makes of HDInsight's `wasb(s)://` and ADLS Gen2's `abfs(s)://` (an ADLS Gen2
account serves its files through the Blob API too), with errors turned into one line naming the
object and the service's reason (BlobNotFound, ContainerNotFound, AuthenticationFailed…).

Called by lakejob.oss.cli (one Reader per store) for lakejob.oss.fetch. Environment, as
render.packages sets it in a pod:

| variable | meaning |
|---|---|
| `BLOB_ENDPOINT` | optional: the Blob service URL, `{account}` standing for the account (Azurite: `http://10.0.0.5:10000/{account}`); default `https://{account}.blob.core.windows.net` |
| `BLOB_ACCOUNT_KEY` | the account's shared key, from a Secret |
| `BLOB_SAS_TOKEN` | or a SAS token (`sv=…&sig=…`), from a Secret; neither: anonymous reads (public containers) |

The keys go to the Azure SDK only: nothing here prints or formats them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakejob.oss.client import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, ConfigError, TransferError, replace_atomically

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

SCHEME = "blob"
DEFAULT_ENDPOINT = "https://{account}.blob.core.windows.net"


@dataclass(frozen=True)
class Config:
    endpoint: str = DEFAULT_ENDPOINT  # `{account}` in it stands for the path's account
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)


def config_from_env(env: Mapping[str, str]) -> Config:
    """The Config from the variables of the module docstring (ConfigError when unusable)."""
    endpoint = env.get("BLOB_ENDPOINT", "").strip().rstrip("/") or DEFAULT_ENDPOINT
    if "://" not in endpoint:
        raise ConfigError(f"BLOB_ENDPOINT={endpoint!r}: expected a URL such as https://{{account}}.blob.core.windows.net "
                          "(operator setting LAKEJOB_BLOB_ENDPOINT)")
    key, sas = env.get("BLOB_ACCOUNT_KEY") or None, env.get("BLOB_SAS_TOKEN") or None
    if key and sas:
        raise ConfigError("BLOB_ACCOUNT_KEY and BLOB_SAS_TOKEN: give one, not both")
    return Config(endpoint=endpoint, account_key=key, sas_token=sas.lstrip("?") if sas else None)


def split(bucket: str) -> tuple[str, str]:
    """`CONTAINER@ACCOUNT` (a blob:// path's bucket) → (container, account)."""
    container, _, account = bucket.partition("@")
    return container, account


def reason(error: BaseException) -> str:
    """The service's reason for a failed call (`BlobNotFound (The specified blob does not exist.)`),
    or the exception's own text."""
    code = getattr(error, "error_code", None)
    code = getattr(code, "value", code)  # the SDK gives a StorageErrorCode or the header's text
    text = str(error).splitlines()[0] if str(error) else ""
    if code:
        return f"{code} ({text})" if text and text != code else str(code)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Reader:
    """What lakejob.oss.fetch reads blob:// paths with: list a folder, download an object."""

    scheme = SCHEME

    def __init__(self, config: Config) -> None:
        self.config = config
        self._containers: dict[str, ContainerClient] = {}

    def _container(self, bucket: str) -> ContainerClient:
        if bucket not in self._containers:
            from azure.storage.blob import ContainerClient

            container, account = split(bucket)
            credential: Any = ({"account_name": account, "account_key": self.config.account_key}
                               if self.config.account_key else self.config.sas_token)
            self._containers[bucket] = ContainerClient(
                self.config.endpoint.replace("{account}", account), container, credential=credential,
                connection_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)
        return self._containers[bucket]

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        try:
            return [b.name for b in self._container(bucket).list_blobs(name_starts_with=prefix or None)]
        except Exception as e:
            raise TransferError(f"{SCHEME}://{bucket}/{prefix}: {reason(e)}") from e

    def download(self, bucket: str, key: str, path: str) -> None:
        def write(out: Any) -> None:
            for chunk in self._container(bucket).download_blob(key, max_concurrency=1).chunks():
                out.write(chunk)

        try:
            replace_atomically(path, write)
        except Exception as e:
            raise TransferError(f"{SCHEME}://{bucket}/{key}: {reason(e)}") from e


def reader_from_env() -> Reader:
    return Reader(config_from_env(os.environ))
