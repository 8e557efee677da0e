"""From the decided status to the objects: manifests to apply, replicas to patch, children to delete.

Which revisions keep a Deployment and Service: the stable one, the one being rolled out, the
draining ones, and a rolled-back revision the spec still asks for (kept at zero pods, so a
``retry`` only scales it up). Only the spec's revision can be rendered in full; the others (an
older stable or a superseded canary, whose pod template is no longer in the spec) are changed
through ``ScaleChange`` alone. Any other revision found in the cluster is deleted, but never
while the observed routing table still sends it traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeldeploy.contract.labels import revision_name
from modeldeploy.contract.routing import DataPathSettings, RoutingTable
from modeldeploy.operator.planner.children import deployment
from modeldeploy.operator.planner.context import Tick
from modeldeploy.operator.planner.drain import draining_revisions, routing_names
from modeldeploy.operator.planner.outputs import ChildRef, Manifest, ScaleChange
from modeldeploy.operator.planner.pod_template import pod_service_account
from modeldeploy.operator.planner.routing import routing_table
from modeldeploy.operator.planner.services import (
    disruption_budget,
    entry_service,
    revision_service,
    routing_configmap,
    sidecar_rbac,
)
from modeldeploy.operator.planner.steps import new_revision_replicas


@dataclass(frozen=True)
class Rendered:
    manifests: tuple[Manifest, ...]
    routing: RoutingTable
    scale: tuple[ScaleChange, ...]
    delete: tuple[ChildRef, ...]


def kept_revisions(tick: Tick) -> list[str]:
    """Revisions that keep their Deployment and Service, in a stable order."""
    status = tick.status
    ordered = [status.stable_revision, status.canary_revision, *(d.revision for d in status.draining)]
    if status.aborted_revision is not None and status.aborted_revision == tick.spec_revision:
        ordered.append(status.aborted_revision)
    kept: list[str] = []
    for revision in ordered:
        if revision is not None and revision not in kept:
            kept.append(revision)
    return kept


def desired_replicas(tick: Tick, revision: str) -> int:
    status = tick.status
    if revision == status.stable_revision:
        return tick.spec.replicas
    if revision == status.canary_revision and status.current_step is not None:
        return new_revision_replicas(tick.spec.rollout.steps, status.current_step, tick.spec.replicas)
    observed = tick.observed.get(revision)
    if revision in draining_revisions(tick):
        # Keeps its pods (traffic already cut) until the drain period ends, never above the spec.
        return 0 if observed is None else min(observed.replicas, tick.spec.replicas)
    return 0  # a rolled-back revision held at zero


def _revision_children(name: str, revision: str) -> list[ChildRef]:
    child = revision_name(name, revision)
    return [
        ChildRef("apps/v1", "Deployment", child),
        ChildRef("v1", "Service", child),
        ChildRef("policy/v1", "PodDisruptionBudget", child),
    ]


def render(tick: Tick, data_path: DataPathSettings | None = None) -> Rendered:
    meta, spec, status, config = tick.meta, tick.spec, tick.status, tick.config
    assert status.stable_revision is not None
    table = routing_table(meta, spec, status, config, tick.observed.routing, data_path)
    manifests: list[Manifest] = [routing_configmap(meta, table)]
    if config.sidecar_rbac:
        manifests += sidecar_rbac(meta, pod_service_account(spec.template))
    manifests.append(entry_service(meta, status.stable_revision, config))
    scale: list[ScaleChange] = []
    kept = kept_revisions(tick)
    for revision in kept:
        replicas = desired_replicas(tick, revision)
        observed = tick.observed.get(revision)
        if revision == tick.spec_revision:
            manifests.append(deployment(meta, spec, revision, replicas, config))
        elif observed is None:
            tick.note(f"revision {revision} has no Deployment and its pod template is no longer in the spec")
        elif observed.replicas != replicas:
            scale.append(ScaleChange(revision_name(meta.name, revision), revision, replicas))
        manifests.append(revision_service(meta, revision, config))
    if spec.replicas > 1:
        manifests.append(disruption_budget(meta, status.stable_revision))

    delete: list[ChildRef] = []
    for observed in tick.observed.revisions:
        if observed.revision in kept:
            continue
        if routing_names(tick.observed.routing, observed.revision):
            tick.note(
                f"revision {observed.revision} is retired but still in the routing table; removing it later"
            )
            continue
        delete += _revision_children(meta.name, observed.revision)
    wanted = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    wanted |= {("Deployment", revision_name(meta.name, r)) for r in kept}
    wanted |= {("Service", revision_name(meta.name, r)) for r in kept}
    routed = set() if tick.observed.routing is None else _routed_children(meta.name, tick.observed.routing)
    for other in tick.observed.others:
        key = (other.kind, other.name)
        if key in wanted or key in routed or other in delete:
            continue
        delete.append(other)
    return Rendered(tuple(manifests), table, tuple(scale), tuple(delete))


def _routed_children(name: str, table: RoutingTable) -> set[tuple[str, str]]:
    """Deployments and Services of revisions the observed routing table still sends traffic to."""
    revisions = {table.stable.revision}
    revisions |= {route.revision for route in (table.canary, table.shadow) if route is not None}
    return {(kind, revision_name(name, r)) for r in revisions for kind in ("Deployment", "Service")}
