"""Draining: a revision whose traffic was cut keeps its pods for the drain period, then goes.

A draining revision is removed (Deployment, Service and PodDisruptionBudget deleted) once both
hold: the drain period (``spec.drainPeriod``) has passed since its traffic was cut, and the
routing table observed in the cluster no longer names it (so the cut has really been applied,
even after an operator restart between the two). A rolled-back revision that is still the
spec's revision is scaled to zero instead of deleted, so ``retry`` only has to scale it up.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from modeldeploy.contract.routing import RoutingTable
from modeldeploy.operator.planner.context import Tick

ROUTING_RECHECK = timedelta(seconds=1)
"""How soon to look again when the drain period is over but the cut is not yet observed."""


def routing_names(table: RoutingTable | None, revision: str) -> bool:
    """True if ``table`` sends traffic (live or shadow) to ``revision``."""
    if table is None:
        return False
    names = {table.stable.revision}
    if table.canary is not None:
        names.add(table.canary.revision)
    if table.shadow is not None:
        names.add(table.shadow.revision)
    return revision in names


def finish_drains(tick: Tick) -> list[datetime]:
    """Drop finished entries from ``status.draining``; returns when to look again for the others."""
    status = tick.status
    period = tick.drain_period
    keep = []
    wake: list[datetime] = []
    live = {status.stable_revision, status.canary_revision}
    for entry in status.draining:
        if entry.revision in live:
            tick.note(f"revision {entry.revision} is live again; no longer draining")
            continue
        if tick.observed.get(entry.revision) is None:
            tick.note(f"draining revision {entry.revision} has no Deployment; nothing to scale down")
            continue
        due = entry.since + period
        if tick.now < due:
            keep.append(entry)
            wake.append(due)
            continue
        if routing_names(tick.observed.routing, entry.revision):
            tick.note(
                f"revision {entry.revision} drained, but the routing table in the cluster still names it"
            )
            keep.append(entry)
            wake.append(tick.now + ROUTING_RECHECK)
            continue
        keep_at_zero = entry.revision == tick.spec_revision == status.aborted_revision
        tick.normal(
            "ScaledDown",
            f"revision {entry.revision} {'scaled to zero' if keep_at_zero else 'removed'} "
            f"after draining for {tick.spec.drain_period}",
        )
    status.draining = keep
    return wake


def draining_revisions(tick: Tick) -> set[str]:
    return {entry.revision for entry in tick.status.draining}
