"""Progress lines for the long steps of `make demo` and `make test` (images/build.py, hack/demo.py,
hack/cluster/cluster.py): a line when a step starts (with its counter, "[3/9]"), a heartbeat while
it runs, a line with its elapsed seconds when it ends. hack/progress.sh is the same for bash scripts.

Plain lines on stderr, never cursor tricks: they must read the same in a CI log as on a terminal,
and stdout stays free for what a script prints as its result (cluster.py's kubeconfig path).
Standard library only: images/build.py runs before the project's virtualenv exists.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

# Long enough not to drown a log, short enough that nobody wonders whether the step hangs.
HEARTBEAT_S = 20.0


def _say(out: IO[str] | None, line: str) -> None:
    print(line, file=out or sys.stderr, flush=True)  # sys.stderr looked up late: callers redirect it


@contextlib.contextmanager
def step(tag: str, what: str, counter: tuple[int, int] | None = None, every: float | None = HEARTBEAT_S,
         detail: Callable[[], str] | None = None, out: IO[str] | None = None) -> Iterator[None]:
    """Say `tag: [i/n] what…`, then `tag: … still what, 45 s` every `every` seconds (None: never, for
    a step whose inner steps beat themselves), with `(detail())` after it when that says something
    (what a log's last line tells of a long command), then `tag: [i/n] what: done in 12 s`, or
    `failed after 12 s` when the block raises; the exception goes on unchanged (a SystemExit keeps
    its code)."""
    label = f"[{counter[0]}/{counter[1]}] {what}" if counter else what
    _say(out, f"{tag}: {label}…")
    start = time.monotonic()
    stop = threading.Event()

    def beat(every: float) -> None:
        while not stop.wait(every):
            now = detail() if detail else ""
            _say(out, f"{tag}: … still {what}, {time.monotonic() - start:.0f} s" + (f" ({now})" if now else ""))

    # A daemon thread: an interrupted step never keeps the process alive for one more beat.
    beating = threading.Thread(target=beat, args=(every,), name=f"progress: {what}", daemon=True) if every else None
    if beating:
        beating.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        stop.set()
        if beating:
            beating.join()
        _say(out, f"{tag}: {label}: {'done in' if ok else 'failed after'} {time.monotonic() - start:.0f} s")
