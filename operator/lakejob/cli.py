"""The `lakejob` command: `run` the operator, write the `crds`.

Entry point of the console script (pyproject [project.scripts]) and of the container image.
`run` builds the Settings once (flags over LAKEJOB_* env vars), hands them to lakejob.operator
and starts kopf with the standard kubeconfig resolution (in-cluster, $KUBECONFIG, ~/.kube/config).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    import kopf

    from lakejob import operator
    from lakejob.settings import Settings

    if not args.all_namespaces and not args.namespace:
        print("lakejob run: say which namespaces to watch: --namespace NS (repeatable, globs allowed) "
              "or --all-namespaces", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except ValueError as e:
        print(f"lakejob run: bad LAKEJOB_* setting: {e}", file=sys.stderr)
        return 2
    operator.configure(settings, peering=args.peering, namespaces=list(args.namespace))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # kopf logs every handler call at INFO: per object and event, too much at thousands of jobs.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        clusterwide=args.all_namespaces,
        namespaces=list(args.namespace),
        standalone=args.standalone,
        priority=args.priority if args.priority is not None else settings.peering_priority(),
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
    )
    return 0


def _crds(args: argparse.Namespace) -> int:
    from lakejob import crds

    for path in crds.write(Path(args.output), with_kustomization=True):
        print(path)
    for directory in args.chart:  # Helm's crds/ takes every file: no kustomization.yaml there
        for path in crds.write(Path(directory)):
            print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakejob", description="Spark/Flink/DAG jobs as Kubernetes resources.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator")
    run.add_argument("-n", "--namespace", action="append", default=[], help="namespace to watch (repeatable; globs)")
    run.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument("--standalone", action="store_true", default=True,
                     help="no peering with other replicas (default)")
    run.add_argument("--peering", default=None, help="kopf peering object name (replicas > 1); disables --standalone")
    run.add_argument("--priority", type=int, default=None,
                     help="peering priority of this replica (default: LAKEJOB_PEERING_PRIORITY, or derived from "
                          "LAKEJOB_PEERING_PRIORITY_FROM, e.g. the pod name, so replicas differ)")
    run.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=_run)
    gen = sub.add_parser("crds", help="write the CRDs generated from the models")
    gen.add_argument("--output", default="crds", help="directory for the CRDs (default: crds)")
    gen.add_argument("--chart", action="append", default=[], help="also write into this directory (repeatable)")
    gen.set_defaults(func=_crds)
    args = parser.parse_args(argv)
    if args.command == "run" and args.peering:
        args.standalone = False
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
