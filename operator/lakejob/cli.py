"""The `lakejob` command: `run` the operator, serve the vendors' APIs (`gateway`), `submit` a vendor's
body and follow it (`logs`, `stop`), show a DagJob's tasks (`get dag`), write the `crds`, print the
`settings` (or their reference); `lakejob --version`.

Entry point of the console script (pyproject [project.scripts]) and of the container image.
`run` builds the Settings once (flags over LAKEJOB_* env vars), hands them to lakejob.operator
and starts kopf with the standard kubeconfig resolution (in-cluster, $KUBECONFIG, ~/.kube/config).
With --leader-elect it first waits to hold the Lease (lakejob.leader), on the loop kopf then runs on.
When kopf stops for lakejob.operator.request_restart (Kueue came or went) or ends on a watch's 404
(a CRD deleted under it), `run` execs its own command line anew (docs/queues.md).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path


RESTART_PAUSE_S = 2.0


def _without_client_library() -> None:
    """Keep kubernetes_asyncio out of this process unless its credentials need it: kopf imports
    it at start-up whenever it can (850 modules, ~50 MiB resident), and nothing else of lakejob's
    uses it but the exec-plugin / auth-provider logins (lakejob.credentials)."""
    from lakejob import credentials

    if "kopf" not in sys.modules and not credentials.needs_client_library():
        sys.modules.setdefault("kubernetes_asyncio", None)  # type: ignore[arg-type]


def _run(args: argparse.Namespace) -> int:
    _without_client_library()
    import kopf

    from lakejob import leader, logs, operator
    from lakejob.settings import Settings

    if not args.all_namespaces and not args.namespace:
        print("lakejob run: say which namespaces to watch: --namespace NS (repeatable, globs allowed) "
              "or --all-namespaces", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        # The flags over the environment (argparse has checked their values).
        settings = settings.model_copy(update={k: v for k, v in (("log_format", args.log_format),
                                                                  ("log_level", args.log_level)) if v})
        timing = leader.Timing(settings.leader_lease_duration_s, settings.leader_renew_deadline_s,
                               settings.leader_retry_period_s)
    except ValueError as e:
        print(f"lakejob run: bad settings:\n{e}", file=sys.stderr)
        return 2
    lease_namespace = args.leader_elect_namespace or os.environ.get("POD_NAMESPACE")
    if args.leader_elect and not lease_namespace:
        print("lakejob run: --leader-elect: say where the Lease is: --leader-elect-namespace NS or POD_NAMESPACE",
              file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    loop = None
    elector = None
    if args.leader_elect and lease_namespace:
        # One loop for the campaign and kopf: the elector's API client belongs to it, and kopf's
        # start-up handler renews the Lease on it.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        elector = loop.run_until_complete(leader.campaign(
            lease_namespace, args.leader_elect_lease or settings.leader_lease_name, timing, args.liveness))
    restart = asyncio.Event()
    operator.configure(settings, namespaces=list(args.namespace), elector=elector, restart=restart)
    try:
        kopf.run(
            loop=loop,
            clusterwide=args.all_namespaces,
            namespaces=list(args.namespace),
            # Never kopf's peering (it pauses a replica only after it noticed the other, too late for a
            # frozen one that resumes): one replica runs kopf at all, the one holding the Lease.
            standalone=True,
            liveness_endpoint=args.liveness,
            stop_flag=restart,
        )
    except Exception as e:
        # kopf ends when a watch it keeps answers 404: a CRD deleted under it (Kueue's, uninstalled)
        # before its scan noticed. Anything else is a failure to report as one.
        if getattr(e, "status", None) != 404:
            raise
        operator.log.warning("restarting the operator: an API it watched is no longer served (%s)", e)
        if elector is not None and loop is not None:
            # kopf's clean-up did not run: give the Lease back so that no one waits out its expiry.
            with contextlib.suppress(Exception):
                loop.run_until_complete(elector.release())
    else:
        if not restart.is_set():
            return 0  # stopped by a signal
    _exec_self()
    return 0  # not reached: the process is replaced


def _exec_self() -> None:
    """The operator anew in this process (same pid, so a container does not count a restart), after a
    short pause: a CRD whose deletion is still under way can linger in discovery for a moment."""
    import time

    time.sleep(RESTART_PAUSE_S)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


def _settings(args: argparse.Namespace) -> int:
    from lakejob import settings

    if args.markdown:
        sys.stdout.write(settings.markdown())
        return 0
    try:
        current = settings.Settings.from_env()
    except ValueError as e:
        print(f"lakejob settings: bad settings:\n{e}", file=sys.stderr)
        return 2
    for name, variable in settings.Settings.env_names().items():
        print(f"{variable}={current.env_text(name)}")
    return 0


def _crds(args: argparse.Namespace) -> int:
    from lakejob import crds

    for path in crds.write(Path(args.output), with_kustomization=True):
        print(path)
    for directory in args.chart:  # Helm's crds/ takes every file: no kustomization.yaml there
        for path in crds.write(Path(directory)):
            print(path)
    return 0


def _gateway(args: argparse.Namespace) -> int:
    _without_client_library()
    from lakejob import logs
    from lakejob.gateway import identity, server

    if args.keys:
        try:
            identity.KeysFile(args.keys).keys()
        except (OSError, ValueError) as e:
            print(f"lakejob gateway: --keys: {e}", file=sys.stderr)
            return 2
    logs.configure("text", "debug" if args.verbose else "info")
    server.serve(args.port, args.keys, args.namespace)
    return 0


def _submit(args: argparse.Namespace) -> int:
    import json

    from lakejob import submit

    try:
        with open(args.file, encoding="utf-8") as f:
            body = json.load(f)
    except (OSError, ValueError) as e:
        print(f"lakejob submit: {args.file}: {e}", file=sys.stderr)
        return 2
    if not isinstance(body, dict):
        print(f"lakejob submit: {args.file}: expected a JSON object (the vendor's request body)", file=sys.stderr)
        return 2
    return submit.run(submit.submit(args.namespace, body, args.api, args.name, args.watch, sys.stdout))


def _logs(args: argparse.Namespace) -> int:
    from lakejob import submit

    return submit.run(submit.logs(args.namespace, args.name, args.kind, sys.stdout))


def _stop(args: argparse.Namespace) -> int:
    from lakejob import submit

    return submit.run(submit.stop(args.namespace, args.name, args.kind, sys.stdout))


def _get_dag(args: argparse.Namespace) -> int:
    from lakejob import submit

    return submit.run(submit.get_dag(args.namespace, args.name, args.output == "wide", sys.stdout))


def main(argv: list[str] | None = None) -> int:
    from lakejob import version

    parser = argparse.ArgumentParser(prog="lakejob", description="Spark/Flink/DAG jobs as Kubernetes resources.")
    parser.add_argument("--version", action="version", version=f"lakejob {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator")
    run.add_argument("-n", "--namespace", action="append", default=[], help="namespace to watch (repeatable; globs)")
    run.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument("--leader-elect", action="store_true",
                     help="replicas > 1: act only while holding a coordination.k8s.io Lease, stand by until then")
    run.add_argument("--leader-elect-namespace", default=None,
                     help="namespace of the Lease (default: $POD_NAMESPACE, the operator's own)")
    run.add_argument("--leader-elect-lease", default=None,
                     help="name of the Lease (default: LAKEJOB_LEADER_LEASE_NAME, else lakejob)")
    run.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--log-format", choices=["text", "json"], default=None,
                     help="log lines as text or JSON objects (default: LAKEJOB_LOG_FORMAT, else text)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None,
                     help="lowest level logged; debug adds kopf's per-event lines (default: LAKEJOB_LOG_LEVEL, "
                          "else info)")
    run.set_defaults(func=_run)
    gw = sub.add_parser("gateway", help="serve the vendors' REST APIs (Livy, DLI, BatchCompute) over lakejob's "
                                        "resources, acting as each caller (docs/gateway.md)")
    gw.add_argument("--port", type=int, default=8998, help="port to listen on (default 8998, Livy's)")
    gw.add_argument("--keys", default=None,
                    help="the keys file: vendor credentials and the Kubernetes identity each stands for "
                         "(a mounted Secret; re-read when it changes). Without it only bearer tokens are accepted")
    gw.add_argument("-n", "--namespace", default=None,
                    help="namespace of requests whose path and key name none (Livy's /batches)")
    gw.add_argument("-v", "--verbose", action="store_true")
    gw.set_defaults(func=_gateway)
    sm = sub.add_parser("submit", help="make the job a vendor's request body stands for (DLI, Livy, BatchCompute)")
    sm.add_argument("file", help="the request body, JSON, as the vendor's API takes it")
    sm.add_argument("--api", required=True, choices=["dli", "livy", "batchcompute"])
    sm.add_argument("-n", "--namespace", default="default")
    sm.add_argument("--name", default=None, help="the resource's name (default: generated, <api>-xxxxx)")
    sm.add_argument("--watch", action="store_true", help="follow its state until it ends; exit 0 on success")
    sm.set_defaults(func=_submit)
    for verb, func, text in (("logs", _logs, "print a job's driver (Flink: JobManager) log"),
                             ("stop", _stop, "stop a job (spec.suspend: true)")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("name")
        p.add_argument("-n", "--namespace", default="default")
        p.add_argument("--kind", choices=["SparkBatch", "SparkSession", "FlinkJarJob", "DagJob"], default=None,
                       help="when the name is taken by more than one kind")
        p.set_defaults(func=func)
    get = sub.add_parser("get", help="show a job: `get dag NAME`, a DagJob's tasks as a tree (as argo get)")
    what = get.add_subparsers(dest="what", required=True)
    dag = what.add_parser("dag", aliases=["dagjob"], help="a DagJob's state and its tasks' tree (docs/dagjob.md)")
    dag.add_argument("name")
    dag.add_argument("-n", "--namespace", default="default")
    dag.add_argument("-o", "--output", choices=["wide"], default=None,
                     help="wide: also each task's child (Job or resource) and its start and end times")
    dag.set_defaults(func=_get_dag)
    st = sub.add_parser("settings", help="print the LAKEJOB_* settings in effect here (exit 2 naming any bad one)")
    st.add_argument("--markdown", action="store_true", help="print the settings reference instead (docs/settings.md)")
    st.set_defaults(func=_settings)
    gen = sub.add_parser("crds", help="write the CRDs generated from the models")
    gen.add_argument("--output", default="crds", help="directory for the CRDs (default: crds)")
    gen.add_argument("--chart", action="append", default=[], help="also write into this directory (repeatable)")
    gen.set_defaults(func=_crds)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
