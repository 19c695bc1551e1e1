#!/usr/bin/env python3
"""Poll cost of idle SparkSessions: the operator's CPU per session for watching idle/busy.

Runs the real SparkSessionReconciler's REST poller (controllers.sparksession: one shared HTTP
client, bounded concurrency, per-session schedule) in this process over N idle sessions whose
drivers' REST APIs are served by a separate process (recorded idle payload), and measures this
process's CPU time over a window: the poller's share of one core. A fraction F of the sessions
get 404s (what a driver without that application answers), to show the back-off at work. No Kubernetes is involved: the
sessions are in the reconciler's memory as the kopf watch would put them, and the reconciles the
poller wakes (none, when nothing changes) would run against a stub that counts them.

    python bench/sparksession_poll.py [--sessions 500] [--seconds 60] [--interval 5] [--unreachable 0.1]

Prints and appends a JSON line to bench/results/sparksession_poll.jsonl. Not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from lakejob.controllers.sparksession import SparkSessionReconciler
from lakejob.controllers.sparksession_decide import RestActivity, RestObs
from lakejob.http import Http
from lakejob.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
IDLE = json.dumps(json.loads((ROOT / "tests" / "e2e" / "data" / "sparksession_rest.json").read_text())["jobs_idle"])


def serve(port: int) -> None:
    """The drivers' REST APIs: every path answers the recorded idle jobs list."""
    async def jobs(request: web.Request) -> web.Response:
        if request.path.startswith("/dead/"):
            return web.Response(status=404, text="no such app")
        return web.Response(text=IDLE, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", jobs)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class Counting(SparkSessionReconciler):
    """The real poller; reconciles it wakes are counted instead of run."""

    woken = 0

    def _spawn(self, key: Any) -> None:
        type(self).woken += 1


class CountingHttp(Http):
    polls = 0

    async def get_json(self, url: str, timeout_s: float) -> Any | None:
        type(self).polls += 1
        return await super().get_json(url, timeout_s)


async def reconcile_cost_ms(rec: SparkSessionReconciler, rounds: int = 2000) -> float:
    """CPU of one reconcile of an idle session whose poll did not change (what the resync safety net
    runs for every live session every LAKEJOB_RESYNC_INTERVAL_SECONDS): parse, decide, no write."""
    key = ("bench", "r")
    body = {"metadata": {"name": "r", "namespace": "bench", "uid": "u-r", "resourceVersion": "1", "generation": 1,
                         "creationTimestamp": "2026-11-22T00:00:00Z"},
            "spec": {"kind": "spark", "cluster_name": "c1", "heartbeatTimeoutInSecond": 0}, "status": {}}
    rec.indexes["sparksession_pods"] = {key: [{"name": "r-session-1", "role": "driver", "app": None,
                                               "phase": "Running", "created_ms": 0, "deleting": False}]}
    rec.rest[key] = RestObs(app="", at_ms=0, activity=RestActivity(0, None))

    async def write(body_: Any, new: dict[str, Any]) -> None:
        body_["status"] = new  # as the watch would bring it back

    async def nothing(*_: Any, **__: Any) -> None:
        return None

    rec.write_status = write  # type: ignore[method-assign]
    rec.post_events = nothing  # type: ignore[method-assign]
    rec._ensure_children = nothing  # type: ignore[method-assign]
    rec._create_driver = nothing  # type: ignore[method-assign]
    for _ in range(5):  # to idle: not_started → starting → idle
        rec.rest[key] = RestObs(app=body["status"].get("appId", ""), at_ms=0, activity=RestActivity(0, None))
        await rec.reconcile_one(key, body)
    assert body["status"]["state"] == "idle", body["status"]
    c0 = cpu_s()
    for _ in range(rounds):
        await rec.reconcile_one(key, body)
    return (cpu_s() - c0) * 1000 / rounds


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(spark_rest_url_template=f"http://127.0.0.1:{args.port}/{{namespace}}/{{name}}/{{appId}}",
                        session_poll_interval_s=args.interval)
    http = CountingHttp()
    rec = Counting(settings, None, lambda: int(time.time() * 1000), http, None)  # type: ignore[arg-type]
    dead = int(args.sessions * args.unreachable)
    for i in range(args.sessions):
        ns = "dead" if i < dead else "bench"  # the server answers 404 for these: not a jobs list
        rec.bodies[(ns, f"s{i}")] = {"metadata": {"name": f"s{i}", "namespace": ns, "uid": f"u{i}",
                                                  "resourceVersion": "1"},
                                     "status": {"state": "idle", "appId": f"spark-{i:032x}"}}
    task = asyncio.create_task(rec.poll_forever())
    await asyncio.sleep(args.interval * 2)  # warm-up: connections made, first round done
    seen = len(rec.rest)
    c0, t0, w0, p0 = cpu_s(), time.monotonic(), Counting.woken, CountingHttp.polls
    await asyncio.sleep(args.seconds)
    c1, t1, polls = cpu_s(), time.monotonic(), CountingHttp.polls - p0
    task.cancel()
    await http.close()
    busy = (c1 - c0) / (t1 - t0)
    per_reconcile = await reconcile_cost_ms(Counting(settings, None, rec.now_ms, http, None))  # type: ignore[arg-type]
    resync = args.sessions / settings.resync_interval_s * per_reconcile / 1000
    return {"bench": "sparksession_poll", "sessions": args.sessions, "interval_s": args.interval,
            "window_s": round(t1 - t0, 1), "cpu_fraction_of_one_core": round(busy, 4),
            "polls_in_window": polls, "cpu_ms_per_poll": round((c1 - c0) * 1000 / max(polls, 1), 3),
            "reconciles_woken_in_window": Counting.woken - w0,
            "idle_reconcile_cpu_ms": round(per_reconcile, 3),
            "resync_cpu_fraction_of_one_core": round(resync, 4), "sessions_seen": seen, "unreachable": dead,
            "python": sys.version.split()[0], "machine": platform.machine(),
            "cores": multiprocessing.cpu_count(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=500)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--port", type=int, default=18471)
    p.add_argument("--unreachable", type=float, default=0.0)
    args = p.parse_args()
    server = multiprocessing.Process(target=serve, args=(args.port,), daemon=True)
    server.start()
    time.sleep(1.5)
    try:
        result = asyncio.run(run(args))
    finally:
        server.terminate()
        server.join()
    print(json.dumps(result, indent=1))
    out = ROOT / "bench" / "results" / "sparksession_poll.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
