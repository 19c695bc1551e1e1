"""Keeps the operator's memory small: gives the C allocator's free memory back to the operating
system (glibc's `malloc_trim`) and reads TLS into smaller buffers.

Python's small objects live in its own arenas, but everything larger (a LIST's body, the watch
streams' read buffers, the tables of large dicts and lists) comes from glibc's heap, which keeps
what it freed: after a burst of 1,000 CRs about 36 MiB of it was free and still resident
(docs/performance.md). `keep_trimmed` hands it back every half minute; a trim takes well under a
millisecond, and nothing when there is nothing to give back.
Started by lakejob.operator's start-up handler as a background task; where the C library is not
glibc (musl, macOS) there is nothing to call and it returns at once.

asyncio gives every TLS connection a 256 KiB read buffer for good; the operator holds one per
watch and per pooled API connection (64), up to ~18 MiB for buffers that mostly receive a few KiB at a
time. `small_tls_buffers`, called by lakejob.operator at import, makes them TLS_READ_BUFFER:
a large LIST then takes a few more reads, nothing else changes.
"""
from __future__ import annotations

import asyncio
import asyncio.sslproto
import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger("lakejob")

TRIM_EVERY_S = 30.0
TLS_READ_BUFFER = 32 * 1024  # bytes; two TLS records


def small_tls_buffers() -> None:
    """Every TLS connection opened from now on reads into a TLS_READ_BUFFER buffer (asyncio's
    class-level default is 256 KiB)."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def trimmer() -> Callable[[], int] | None:
    """glibc's malloc_trim(0), or None where there is none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: its C library's
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: int(trim(0))


async def keep_trimmed() -> None:
    """Trim the heap every TRIM_EVERY_S, for as long as the operator runs."""
    trim = trimmer()
    if trim is None:
        log.debug("no malloc_trim in this C library: the heap is not trimmed")
        return
    while True:
        await asyncio.sleep(TRIM_EVERY_S)
        trim()
