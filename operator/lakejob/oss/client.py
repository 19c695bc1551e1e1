"""The S3 API edge of lakejob-oss: its configuration from the environment, the boto3 client, and
the calls fetch and upload make (a Reader: list a folder, download an object; upload a file), with
errors turned into one line naming the object and the service's reason (NoSuchKey, AccessDenied…).

Called by lakejob.oss.fetch and lakejob.oss.upload (through lakejob.oss.cli, which builds a
client per store once). Environment, as render.dag (OSS) and render.packages (S3) set it in a pod;
each store has the same variables under its prefix, `OSS_` for oss:// paths, `S3_` for s3://:

| variable | meaning |
|---|---|
| `OSS_ENDPOINT` | required: `https://oss-cn-hangzhou.aliyuncs.com`, or a bare host (https is assumed) |
| `OSS_ADDRESSING_STYLE` | `virtual` (default: what Alibaba OSS requires), `path` or `auto` |
| `OSS_REGION` | optional: the region requests are signed for |
| `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET`, `OSS_SESSION_TOKEN` | the keys, from a Secret; none: unsigned requests (public buckets) |

The keys go to boto3 only: nothing here prints or formats them, and Config's repr hides them.
Retries are botocore's standard mode (bounded attempts with backoff on throttling, 5xx and
connection errors).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Literal, get_args

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AddressingStyle = Literal["virtual", "path", "auto"]
ADDRESSING_STYLES: tuple[AddressingStyle, ...] = get_args(AddressingStyle)
MAX_ATTEMPTS = 5  # per request, botocore's standard retry mode
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
CHUNK = 1 << 20


class ConfigError(ValueError):
    """The environment does not say how to reach OSS; the message is one line naming the variable."""


class TransferError(Exception):
    """A download or upload that failed; the message is one line naming the object and the reason."""


@dataclass(frozen=True)
class Config:
    endpoint: str
    addressing_style: AddressingStyle = "virtual"
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    access_key_secret: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)


def endpoint_url(value: str) -> str:
    """An endpoint as boto3 wants it: with a scheme (https unless one is given)."""
    value = value.strip().rstrip("/")
    return value if "://" in value else f"https://{value}"


# A path's scheme → (its variables' prefix, the operator setting that gives its endpoint).
STORES = {"oss": ("OSS", "LAKEJOB_OSS_ENDPOINT, e.g. https://oss-cn-hangzhou.aliyuncs.com"),
          "s3": ("S3", "LAKEJOB_S3_ENDPOINT, e.g. https://obs.cn-north-4.myhuaweicloud.com")}


def config_from_env(env: Mapping[str, str], scheme: str = "oss") -> Config:
    """The Config of the store of `scheme` paths, from the variables of the module docstring
    (ConfigError when unusable)."""
    p, setting = STORES[scheme]
    endpoint = env.get(f"{p}_ENDPOINT", "").strip()
    if not endpoint:
        raise ConfigError(f"{p}_ENDPOINT is not set: the endpoint of the store of {scheme}:// paths "
                          f"(operator setting {setting})")
    style = env.get(f"{p}_ADDRESSING_STYLE", "").strip() or "virtual"
    if style not in ADDRESSING_STYLES:
        raise ConfigError(f"{p}_ADDRESSING_STYLE={style!r}: must be one of {', '.join(ADDRESSING_STYLES)}")
    key_id, secret = env.get(f"{p}_ACCESS_KEY_ID") or None, env.get(f"{p}_ACCESS_KEY_SECRET") or None
    if bool(key_id) != bool(secret):
        raise ConfigError(f"{p}_ACCESS_KEY_ID and {p}_ACCESS_KEY_SECRET: give both or neither")
    return Config(endpoint=endpoint_url(endpoint), addressing_style=style, region=env.get(f"{p}_REGION") or None,
                  access_key_id=key_id, access_key_secret=secret,
                  session_token=env.get(f"{p}_SESSION_TOKEN") or None)


def make_client(config: Config) -> S3Client:
    """A boto3 S3 client for `config`. Credentials are passed explicitly (or requests go unsigned)
    so boto3's own lookup chain (AWS_* variables, ~/.aws, the instance metadata service) is never
    consulted. No network I/O happens here."""
    import boto3
    import botocore
    from botocore.config import Config as BotoConfig

    options = BotoConfig(
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
        s3={"addressing_style": config.addressing_style},
        # Since botocore 1.36 uploads carry CRC checksums (aws-chunked) by default, which
        # S3-compatible stores do not all accept: only when an operation requires one.
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
        signature_version=None if config.access_key_id else botocore.UNSIGNED,
    )
    session = boto3.session.Session(
        aws_access_key_id=config.access_key_id, aws_secret_access_key=config.access_key_secret,
        aws_session_token=config.session_token, region_name=config.region)
    return session.client("s3", endpoint_url=config.endpoint, config=options)


def client_from_env(scheme: str = "oss") -> S3Client:
    return make_client(config_from_env(os.environ, scheme))


def reason(error: BaseException) -> str:
    """The service's reason for a failed call (`NoSuchKey`, `AccessDenied (Access Denied)`), or
    the exception's own text. boto3's transfer layer wraps the service error, so look inside."""
    from botocore.exceptions import ClientError

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ClientError):
            err = seen.response.get("Error", {})
            code, message = err.get("Code", "Error"), err.get("Message", "")
            # HEAD requests have no body: S3 answers a missing object with a bare 404.
            code = {"404": "NoSuchKey", "403": "AccessDenied"}.get(code, code)
            return f"{code} ({message})" if message and message != code else code
        seen = seen.__cause__ or seen.__context__
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def replace_atomically(path: str, write: Callable[[BinaryIO], None]) -> None:
    """`write` into a temporary name next to `path` (its directories made), then renamed to it, so
    that a failed download leaves no partial file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    partial = f"{path}.lakejob-partial"
    try:
        with open(partial, "wb") as out:
            write(out)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


class Reader:
    """What lakejob.oss.fetch reads an S3-API store's paths (oss://, s3://) with: list a folder,
    download an object (lakejob.oss.blob has the same two calls for Azure Blob)."""

    def __init__(self, client: S3Client, scheme: str) -> None:
        self.client, self.scheme = client, scheme

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        """Every object key under `prefix` (all pages)."""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        except Exception as e:
            raise TransferError(f"{self.scheme}://{bucket}/{prefix}: {reason(e)}") from e

    def download(self, bucket: str, key: str, path: str) -> None:
        """The object into `path`. GetObject (not HEAD + ranged GETs) so a missing object is
        reported as the service names it (NoSuchKey)."""
        def write(out: BinaryIO) -> None:
            for chunk in self.client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(CHUNK):
                out.write(chunk)

        try:
            replace_atomically(path, write)
        except Exception as e:
            raise TransferError(f"{self.scheme}://{bucket}/{key}: {reason(e)}") from e


def reader_from_env(scheme: str) -> Reader:
    return Reader(client_from_env(scheme), scheme)


def upload(client: S3Client, path: str, bucket: str, key: str) -> None:
    """The file at `path` to the object (multipart when large: boto3's managed transfer)."""
    try:
        client.upload_file(path, bucket, key)
    except Exception as e:
        raise TransferError(f"{path} -> oss://{bucket}/{key}: {reason(e)}") from e
