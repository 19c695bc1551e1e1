"""Where a process's time went, from a py-spy raw profile: the summary `make bench` prints.

bench/burst.py (--profile) records the operator with `py-spy record --format raw` during a burst;
`summarize` reads the collapsed stacks ("frame;frame;… count" per line, root first) and answers
two questions:
  - self: which package the sampled frame itself was in (the leaf: where the CPU went);
  - inclusive: which of lakejob's own steps, kopf's processing or the HTTP client each sample
    was under (a sample counts once per bucket it is under).
Samples are taken whether the thread runs or waits, so "idle" (the event loop's select) is the
share of time the operator had nothing to do.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

# py-spy's raw frame: "function (path/to/file.py:line)" (the line is absent for some frames).
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")

# Leaf frame → package, first match wins (paths as py-spy prints them: site-packages or the tree).
SELF_BUCKETS: list[tuple[str, str]] = [
    ("selectors.py", "idle (event loop select)"),
    ("kopf/", "kopf"),
    ("aiohttp/", "aiohttp"),
    ("yarl/", "aiohttp"),
    ("multidict/", "aiohttp"),
    ("json/", "json"),
    ("pydantic", "pydantic"),
    ("ssl.py", "ssl"),
    ("asyncio/", "asyncio"),
    ("prometheus_client/", "prometheus_client"),
    ("lakejob/", "lakejob"),
    ("logging/", "logging"),
    ("copy.py", "copy"),
]

# Frames anywhere in the stack → inclusive buckets.
UNDER: list[tuple[str, str]] = [
    ("lakejob/controllers/", "lakejob: reconcile passes and handlers"),
    ("lakejob/render/", "lakejob: render (manifests)"),
    ("lakejob/kube.py", "lakejob: API client calls"),
    ("kopf/_core/reactor/processing.py", "kopf: per-event processing"),
    ("kopf/_core/reactor/queueing.py", "kopf: watch stream and queueing"),
    ("kopf/_cogs/clients/watching.py", "kopf: watch stream and queueing"),
    ("kopf/_core/engines/indexing.py", "kopf: indexes"),
    ("aiohttp/", "aiohttp (any)"),
    ("pydantic", "pydantic (any)"),
]


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """(frames root → leaf as (function, file), samples) per distinct stack."""
    stacks = []
    for line in path.read_text().splitlines():
        text, _, count = line.rpartition(" ")
        if not text or not count.isdigit():
            continue
        frames = []
        for part in text.split(";"):
            m = FRAME.match(part)
            frames.append((m["func"], m["file"]) if m else (part, ""))
        stacks.append((frames, int(count)))
    return stacks


def _bucket(file: str, buckets: list[tuple[str, str]]) -> str | None:
    return next((name for needle, name in buckets if needle in file), None)


def summarize(path: Path, top: int = 12) -> dict[str, object]:
    """Shares (%) of samples by the leaf's package, by what they were under, and the hottest leaves."""
    stacks = parse(path)
    total = sum(n for _, n in stacks) or 1
    by_self: Counter[str] = Counter()
    under: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, n in stacks:
        leaf_func, leaf_file = frames[-1] if frames else ("?", "")
        by_self[_bucket(leaf_file, SELF_BUCKETS) or "other"] += n
        if "selectors.py" not in leaf_file:
            leaves[f"{leaf_func} ({leaf_file.rsplit('/', 2)[-2:][-1] if leaf_file else '?'})"] += n
        for name in {b for _, f in frames if (b := _bucket(f, UNDER))}:
            under[name] += n

    def pct(c: Counter[str], k: int | None = None) -> dict[str, float]:
        return {name: round(100 * n / total, 1) for name, n in c.most_common(k)}

    return {"samples": total, "self_pct": pct(by_self), "under_pct": pct(under), "hot_leaves_pct": pct(leaves, top)}
