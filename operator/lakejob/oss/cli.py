"""The `lakejob-oss` command (console script, pyproject [project.scripts]): `fetch` and `upload`.

render.dag runs it in a command task's pod: `lakejob-oss fetch` as the init container `fetch`,
`lakejob-oss upload` as the native sidecar `upload` (lakejob.oss.fetch, lakejob.oss.upload say
what each does). Exit status: 0 done; 1 a transfer failed (one line on stderr naming the path
and the reason); 2 bad arguments or environment (one line naming it).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from lakejob.oss import client as oss
from lakejob.oss import paths

PROG = "lakejob-oss"
INSTANCE_ENV = "BATCH_COMPUTE_DAG_INSTANCE_ID"


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return status


def _fetch(args: argparse.Namespace) -> int:
    from lakejob.oss import blob, fetch

    readers: dict[str, fetch.Reader] = {}

    def reader(scheme: str) -> fetch.Reader:  # one per store, made when a path first names it
        if scheme not in readers:
            if scheme == blob.SCHEME:
                readers[scheme] = blob.reader_from_env()
            else:
                readers[scheme] = oss.reader_from_env(scheme)
        return readers[scheme]

    try:
        fetch.run(reader, args.package, args.into, args.map)
    except oss.ConfigError as e:
        return _fail(str(e), 2)
    except paths.PathError as e:
        return _fail(str(e), 2)
    except fetch.FetchError as e:
        return _fail(f"fetch failed: {e}", 1)
    return 0


def _upload(args: argparse.Namespace) -> int:
    from lakejob.oss import upload

    instance = args.instance if args.instance is not None else os.environ.get(INSTANCE_ENV, "")
    if not instance:
        return _fail(f"upload: give --instance N or set {INSTANCE_ENV}", 2)
    try:
        request = upload.Request(
            job_id=args.job_id, task=args.task, instance=instance, out_dir=args.out_dir,
            stdout_to=paths.parse(args.stdout_to) if args.stdout_to else None,
            stderr_to=paths.parse(args.stderr_to) if args.stderr_to else None,
            outputs=[paths.upload_mapping(m) for m in args.output], logs=[paths.upload_mapping(m) for m in args.log])
    except paths.PathError as e:
        return _fail(str(e), 2)
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    # SIGTERM: Kubernetes, once the command's container has exited; SIGINT: a person at a terminal.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    upload.mark_ready(request.out_dir)
    return upload.serve(oss.client_from_env, request, stop, sys.stdout.buffer, sys.stderr.buffer, sys.stderr)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROG, description="Move a DagJob command task's files between OSS and its pod "
                                                         "(BatchCompute's package, mappings and log uploads).")
    sub = top.add_subparsers(dest="verb", required=True)
    f = sub.add_parser("fetch", help="download and unpack the package, then copy each mapping (init container)")
    f.add_argument("--package", help="oss:// path of a .tar.gz, unpacked into --into")
    f.add_argument("--into", help="directory the package is unpacked into")
    f.add_argument("--map", action="append", default=[], metavar="OSS=LOCAL",
                   help="oss://, s3:// or blob:// folder → local directory, or file → local file (into it when it is a directory "
                        "or ends with /); repeatable")
    f.set_defaults(func=_fetch)
    u = sub.add_parser("upload", help="echo the command's output; on SIGTERM upload it, outputs and logs (sidecar)")
    u.add_argument("--job-id", required=True, help="JobId in the uploaded names")
    u.add_argument("--task", required=True, help="TaskId in the uploaded names")
    u.add_argument("--instance", default=None, help=f"InstanceId in the uploaded names (default: ${INSTANCE_ENV})")
    u.add_argument("--stdout-to", metavar="OSS_FOLDER", help="StdoutRedirectPath: gets stdout.JobId.TaskId.InstanceId")
    u.add_argument("--stderr-to", metavar="OSS_FOLDER", help="StderrRedirectPath: gets stderr.JobId.TaskId.InstanceId")
    u.add_argument("--output", action="append", default=[], metavar="LOCAL=OSS",
                   help="OutputMapping: a directory (recursively) or a file; repeatable")
    u.add_argument("--log", action="append", default=[], metavar="LOCAL=OSS",
                   help="LogMapping: uploaded as NAME.JobId.TaskId.InstanceId in the folder; repeatable")
    u.add_argument("--out-dir", required=True, help="where the command's stdout and stderr files are")
    u.set_defaults(func=_upload)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))
