"""The routing table the sidecars follow, built from status (the traffic in effect).

The stable revision is always the table's ``stable``; the new revision appears as ``canary``
while ``status.traffic.canaryWeight`` is above 0 and as ``shadow`` while
``status.traffic.shadowPercent`` is above 0. ``generation`` is the observed table's, plus one
when anything else differs, so the sidecars can tell a new table from a re-applied one.
"""

from __future__ import annotations

from modeldeploy.contract.labels import revision_name
from modeldeploy.contract.routing import (
    Backend,
    CanaryRoute,
    Comparison,
    DataPathSettings,
    RoutingTable,
    ShadowRoute,
)
from modeldeploy.operator.api import ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.operator.planner.inputs import ModelDeploymentMeta, PlannerConfig


def revision_url(meta: ModelDeploymentMeta, revision: str, config: PlannerConfig) -> str:
    """URL of a revision's Service, e.g. http://iris-1a2b3c4d5e.ml.svc:8080."""
    host = f"{revision_name(meta.name, revision)}.{meta.namespace}.{config.cluster_domain_suffix}"
    return f"http://{host}:{config.service_port}"


def routing_table(
    meta: ModelDeploymentMeta,
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    config: PlannerConfig,
    observed: RoutingTable | None,
    data_path: DataPathSettings | None = None,
) -> RoutingTable:
    stable = status.stable_revision
    if stable is None:
        raise ValueError("a routing table needs a stable revision")
    canary = status.canary_revision
    weight = status.traffic.canary_weight
    percent = status.traffic.shadow_percent
    comparison = spec.traffic.shadow_comparison
    table = RoutingTable(
        model=meta.name,
        namespace=meta.namespace,
        stable=Backend(revision=stable, url=revision_url(meta, stable, config)),
        canary=(
            CanaryRoute(revision=canary, url=revision_url(meta, canary, config), weight=weight)
            if canary is not None and weight > 0
            else None
        ),
        shadow=(
            ShadowRoute(revision=canary, url=revision_url(meta, canary, config), percent=percent)
            if canary is not None and percent > 0
            else None
        ),
        sticky_header=spec.traffic.sticky_header,
        comparison=Comparison(mode=comparison.mode, tolerance=comparison.tolerance),
        data_path=data_path if data_path is not None else DataPathSettings(),
    )
    if observed is None:
        return table.model_copy(update={"generation": 1})
    if table.model_copy(update={"generation": observed.generation}) == observed:
        return observed
    return table.model_copy(update={"generation": observed.generation + 1})
