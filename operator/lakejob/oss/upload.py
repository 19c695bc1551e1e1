"""`lakejob-oss upload`: the native sidecar `upload` of a command task's pod (an init container
with restartPolicy Always, started after `fetch`, before the command).

While the command runs, its stdout and stderr go to files in the shared out directory
(render.dag wraps the command in `/bin/sh -c '… "$0" "$@" >>…/stdout 2>>…/stderr & …'`); this
program copies what is appended to them to its own stdout and stderr, so `kubectl logs -c upload`
shows the command's output as it comes. Kubernetes sends the sidecar SIGTERM once the command's
container has exited (or the pod is deleted, or its deadline passes); then it uploads, under
BatchCompute's names (lakejob.oss.paths): stdout and stderr to StdoutRedirectPath /
StderrRedirectPath, each OutputMapping, each LogMapping file. A failed upload is one line on
stderr naming the path; the others are still tried, and the exit status is non-zero only then.
The pod's terminationGracePeriodSeconds (LAKEJOB_DAG_UPLOAD_GRACE_SECONDS) bounds the uploads.

Called by lakejob.oss.cli, which installs the signal handlers and sets `stop`.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, TextIO

from lakejob.oss import client as oss
from lakejob.oss import paths

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

POLL_S = 0.2
# Written into the out directory once SIGTERM is handled; the sidecar's startupProbe waits for it,
# so the kubelet starts the command only then. Without it a command that ends within the
# sidecar's start-up time gets it SIGTERMed before the handler exists: killed, nothing uploaded.
READY_FILE = ".upload-ready"


def mark_ready(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, READY_FILE), "w"):
        pass


@dataclass(frozen=True)
class Request:
    job_id: str
    task: str
    instance: str
    out_dir: str
    stdout_to: paths.OSSPath | None = None
    stderr_to: paths.OSSPath | None = None
    outputs: list[tuple[str, paths.OSSPath]] = field(default_factory=list)
    logs: list[tuple[str, paths.OSSPath]] = field(default_factory=list)


class Tail:
    """Copies what is appended to a file to a stream; the file may not exist yet (the command
    has not started) and is opened once it does."""

    def __init__(self, path: str, sink: IO[bytes]) -> None:
        self.path, self.sink = path, sink
        self._file: IO[bytes] | None = None

    def pump(self) -> None:
        if self._file is None:
            try:
                self._file = open(self.path, "rb")
            except FileNotFoundError:
                return
        while data := self._file.read(1 << 16):
            self.sink.write(data)
        self.sink.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _files(directory: str) -> list[str]:
    """The files under a directory, relative to it (links to directories are not followed)."""
    found = []
    for root, _dirs, names in os.walk(directory):
        for name in names:
            full = os.path.join(root, name)
            if os.path.isfile(full):
                found.append(os.path.relpath(full, directory))
    return found


def _plan(local: str, dest: paths.OSSPath, suffix: str) -> list[tuple[str, str]]:
    if os.path.isdir(local):
        return paths.upload_plan(local, dest, _files(local), suffix)
    if os.path.isfile(local):
        return paths.upload_plan(local, dest, None, suffix)
    raise oss.TransferError(f"{local} -> {dest}: no such file or directory")


Transfer = tuple[str, paths.OSSPath, oss.TransferError | None]


def transfers(request: Request, log: TextIO) -> Iterator[Transfer]:
    """What to upload, in order: (local file, destination object, or why this entry cannot be
    uploaded). A stdout/stderr file that does not exist (the command never started) is said on
    `log` and skipped: there is nothing to upload, and nothing failed here."""
    streams: tuple[tuple[paths.Stream, paths.OSSPath | None], ...] = (
        ("stdout", request.stdout_to), ("stderr", request.stderr_to))
    for stream, dest in streams:
        if dest is None:
            continue
        local = os.path.join(request.out_dir, stream)
        if not os.path.exists(local):
            print(f"lakejob-oss: no {local}: the command never started, nothing to upload", file=log, flush=True)
            continue
        key = paths.stream_key(stream, dest, request.job_id, request.task, request.instance)
        yield local, paths.OSSPath(dest.bucket, key), None
    suffix = paths.instance_suffix(request.job_id, request.task, request.instance)
    for entries, entry_suffix in ((request.outputs, ""), (request.logs, suffix)):
        for local, dest in entries:
            try:
                plan = _plan(local, dest, entry_suffix)
            except oss.TransferError as e:
                yield local, dest, e
                continue
            for path, key in plan:
                yield path, paths.OSSPath(dest.bucket, key), None


def _upload(client: S3Client | None, config_error: str | None, local: str,
            dest: paths.OSSPath) -> oss.TransferError | None:
    if client is None:
        return oss.TransferError(f"{local} -> {dest}: {config_error}")
    try:
        oss.upload(client, local, dest.bucket, dest.key)
    except oss.TransferError as e:
        return e
    return None


def upload_all(client: S3Client | None, request: Request, log: TextIO, config_error: str | None = None) -> int:
    """Upload everything; 0, or 1 when anything failed (each failure one line on `log`)."""
    failed = 0
    for local, dest, error in transfers(request, log):
        error = error or _upload(client, config_error, local, dest)
        if error is None:
            print(f"lakejob-oss: uploaded {local} -> {dest}", file=log, flush=True)
        else:
            failed += 1
            print(f"lakejob-oss: upload failed: {error}", file=log, flush=True)
    return 1 if failed else 0


def serve(make_client: Callable[[], S3Client], request: Request, stop: threading.Event,
          stdout: IO[bytes], stderr: IO[bytes], log: TextIO, poll_s: float = POLL_S) -> int:
    """The sidecar: echo the command's output until `stop` is set, then upload. The client is
    made at once so that a configuration error shows at the start of the log (not only when the
    command has ended), but the echo goes on regardless."""
    client: S3Client | None = None
    config_error = None
    try:
        client = make_client()
    except oss.ConfigError as e:
        config_error = str(e)
        print(f"lakejob-oss: uploads will fail: {config_error}", file=log, flush=True)
    tails = [Tail(os.path.join(request.out_dir, "stdout"), stdout),
             Tail(os.path.join(request.out_dir, "stderr"), stderr)]
    try:
        while not stop.is_set():
            for tail in tails:
                tail.pump()
            stop.wait(poll_s)
        for tail in tails:  # what was written after the last poll
            tail.pump()
    finally:
        for tail in tails:
            tail.close()
    return upload_all(client, request, log, config_error)
