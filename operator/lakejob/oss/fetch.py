"""`lakejob-oss fetch`: what the init container `fetch` does before a command task's command runs.

1. The package (PackagePath, a .tar.gz as BatchCompute packages are) is downloaded into the
   working directory and unpacked there, after every member has been checked (paths.archive_problem):
   one member that would land outside refuses the whole package, before anything is written.
2. Each mapping (InputMapping, Mounts entries: `oss://…=/local`; for the Spark and Flink kinds'
   packages, render.packages's `s3://…=/local`) is copied: a folder recursively into a local
   directory, a file to a local file (or into a local directory).

The first failure stops the fetch (FetchError, one line naming the path and the reason), so the
init container fails and Kubernetes retries the instance as its MaxRetryCount allows.
Called by lakejob.oss.cli with a client from lakejob.oss.client.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tarfile
import tempfile
from collections.abc import Callable
from typing import Protocol, TextIO

from lakejob.oss import client as oss
from lakejob.oss import paths


class Reader(Protocol):
    """A store's two calls a fetch makes: lakejob.oss.client.Reader (oss://, s3://) and
    lakejob.oss.blob.Reader (blob://). Both raise client.TransferError naming the object."""

    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...

    def download(self, bucket: str, key: str, path: str) -> None: ...


class FetchError(Exception):
    """A fetch that failed; the message is one line naming the path and the reason."""


def unpack(archive: str, into: str, label: str) -> int:
    """Unpack the tar archive (any compression tarfile reads) into `into`; the number of members.
    `label` names the package in errors."""
    if not tarfile.is_tarfile(archive):
        raise FetchError(f"{label}: not a tar archive (BatchCompute packages are .tar.gz)")
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            problem = paths.archive_problem(paths.member(m) for m in members)
            if problem:
                raise FetchError(f"{label}: refused, a member would be written outside {into}: {problem}")
            if hasattr(tarfile, "data_filter"):
                # Python's own "data" filter as a second line: it also drops set-uid bits and owners.
                tar.extractall(into, members=members, filter="data")
            else:  # Python < 3.11.4 has no filters: the check above is the only one
                tar.extractall(into, members=members)
    except (tarfile.TarError, OSError) as e:
        raise FetchError(f"{label}: cannot unpack into {into}: {oss.reason(e)}") from e
    return len(members)


def fetch_package(reader: Reader, package: str, into: str) -> int:
    src = paths.parse(package)
    if src.is_folder:
        raise FetchError(f"{package}: a package is a file, not a folder")
    os.makedirs(into, exist_ok=True)
    # Downloaded next to where it is unpacked: the working directory is an emptyDir with room for
    # it, the container's root file system may be read-only.
    fd, archive = tempfile.mkstemp(prefix=".lakejob-package-", dir=into)
    os.close(fd)
    try:
        reader.download(src.bucket, src.key, archive)
        return unpack(archive, into, package)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(archive)


def fetch_mapping(reader: Reader, src: paths.OSSPath, local: str, log: TextIO) -> int:
    """Copy one mapping; the number of objects copied."""
    try:
        if not src.is_folder:
            reader.download(src.bucket, src.key, paths.file_target(src, local, os.path.isdir(local)))
            return 1
        plan = paths.folder_plan(src, local, reader.list_keys(src.bucket, src.key))
    except paths.PathError as e:  # an object key that would land outside `local`
        raise FetchError(f"{src}: refused: {e}") from e
    os.makedirs(local, exist_ok=True)
    if not plan:
        # An empty folder is a legitimate input, but a mistyped one looks the same: say so.
        print(f"lakejob-oss: {src}: no objects under this folder; {local} stays empty", file=log)
    for key, target in plan:
        reader.download(src.bucket, key, target)
    return len(plan)


def run(reader: Callable[[str], Reader], package: str | None, into: str | None, mappings: list[str],
        log: TextIO = sys.stderr) -> None:
    """The whole fetch (FetchError or paths.PathError on the first failure); `reader(scheme)` is
    the Reader of a store (an oss:// package and mappings from any of paths.FETCH_SCHEMES)."""
    parsed = [paths.fetch_mapping(m) for m in mappings]  # every argument checked before any transfer
    if package and not into:
        raise paths.PathError("--package needs --into, the directory it is unpacked into")
    try:
        if package and into:
            count = fetch_package(reader("oss"), package, into)
            print(f"lakejob-oss: {package}: {count} member(s) unpacked into {into}", file=log)
        for src, local in parsed:
            count = fetch_mapping(reader(src.scheme), src, local, log)
            print(f"lakejob-oss: {src}: {count} object(s) copied to {local}", file=log)
    except oss.TransferError as e:
        raise FetchError(str(e)) from e
