"""Reconcile: connects the pure planner to the cluster, Prometheus and the golden checks through
ports (`ports.py`), with production adapters (`adapters.py`, and `kube.Kube` for the cluster)."""

from modeldeploy.operator.reconcile.adapters import (
    HttpGoldenChecker,
    PrometheusAnalyst,
    WallClock,
    sequential_settings,
)
from modeldeploy.operator.reconcile.ports import Analyst, Clock, Cluster, GoldenChecker
from modeldeploy.operator.reconcile.reconciler import ChildRejected, Reconciler, planner_config
from modeldeploy.operator.settings import OperatorSettings


def production_reconciler(settings: OperatorSettings, cluster: Cluster) -> Reconciler:
    """The operator's reconciler: `cluster` (a `kube.Kube`), Prometheus, HTTP golden checks, wall clock."""
    return Reconciler(
        settings=settings,
        cluster=cluster,
        analyst=PrometheusAnalyst(settings),
        golden=HttpGoldenChecker(settings, planner_config(settings)),
        clock=WallClock(),
    )


__all__ = [
    "Analyst",
    "ChildRejected",
    "Clock",
    "Cluster",
    "GoldenChecker",
    "HttpGoldenChecker",
    "PrometheusAnalyst",
    "Reconciler",
    "WallClock",
    "planner_config",
    "production_reconciler",
    "sequential_settings",
]
