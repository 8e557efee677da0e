"""`modeldeploy-operator`: run the kopf operator for ModelDeployments."""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time

import kopf
from prometheus_client import start_http_server

from modeldeploy.operator.settings import OperatorSettings, settings_from_env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="modeldeploy-operator",
        description="Progressive delivery for ML models: reconciles ModelDeployment resources.",
        epilog="Every flag also reads MODELDEPLOY_<NAME> from the environment (flags win).",
    )
    parser.add_argument(
        "--namespace", action="append", dest="namespaces", help="watch only this namespace (repeat)"
    )
    parser.add_argument(
        "--peering", help="kopf peering name for HA (one active replica); default: standalone"
    )
    parser.add_argument("--metrics-port", type=int, help="port for /metrics (0 disables)")
    parser.add_argument("--sidecar-image", help="image of the modeldeploy sidecar container")
    parser.add_argument("--liveness-port", type=int, default=0, help="port for kopf's /healthz (0 disables)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    parser.add_argument(
        "--analysis-min-window",
        type=float,
        dest="analysis_min_window_seconds",
        help="shortest PromQL window in seconds (>= 2 scrape intervals; default 30)",
    )
    parser.add_argument(
        "--analysis-override",
        choices=["pass", "fail", "inconclusive"],
        help="testing only: use this verdict instead of querying Prometheus",
    )
    return parser.parse_args(argv)


def seniority_priority(started_at: float) -> int:
    """A kopf peering priority that ranks earlier-started replicas higher, ties broken at random.

    kopf pauses every peer when the highest priority is shared, so replicas need distinct
    priorities. Seniority rather than chance means a replica that joins (a restart, a rolling
    update) finds a senior peer working and stays paused from its first look at the peering: it
    never takes the work over from a live peer, only when that peer has left.
    """
    milliseconds = int(started_at * 1000)
    return max(1, 10**13 - milliseconds) * 1000 + random.SystemRandom().randint(0, 999)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings: OperatorSettings = settings_from_env(
        namespaces=tuple(args.namespaces) if args.namespaces else None,
        peering=args.peering,
        metrics_port=args.metrics_port,
        sidecar_image=args.sidecar_image,
        log_level=args.log_level,
        analysis_override=args.analysis_override,
        analysis_min_window_seconds=args.analysis_min_window_seconds,
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from modeldeploy.operator import handlers  # noqa: F401 - registers the kopf handlers

    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="0.0.0.0")
    priority = settings.peering_priority
    if settings.peering is not None and priority is None:
        priority = seniority_priority(time.time())
    if settings.peering is not None:
        logging.getLogger(__name__).info("peering %r with priority %s", settings.peering, priority)
    kopf.run(
        priority=priority,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        standalone=settings.peering is None,
        peering_name=settings.peering or "modeldeploy",
        memo=kopf.Memo(settings=settings),
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
