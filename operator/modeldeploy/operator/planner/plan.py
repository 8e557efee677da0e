"""``plan()``: one pure call from (spec, status, observed children, I/O results, now) to a Plan.

The stages, in order: decide (transitions.py runs the state machine over a working copy of
status), describe (conditions.py finishes the status, data_path.py resolves the guardrails),
render (render.py turns the decision into children and the routing table); outputs.py holds the
Plan type and the order in which reconcile applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from modeldeploy.contract.labels import model_selector
from modeldeploy.operator.analysis.results import AnalysisOutcome
from modeldeploy.operator.api import ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.operator.planner.analysis_runs import analysis_due_at
from modeldeploy.operator.planner.conditions import finish_status
from modeldeploy.operator.planner.context import Tick
from modeldeploy.operator.planner.data_path import data_path
from modeldeploy.operator.planner.golden import record_periodic
from modeldeploy.operator.planner.inputs import (
    GoldenOutcome,
    ModelDeploymentMeta,
    ObservedChildren,
    PlannerConfig,
)
from modeldeploy.operator.planner.outputs import Plan
from modeldeploy.operator.planner.render import render
from modeldeploy.operator.planner.transitions import run


def plan(
    meta: ModelDeploymentMeta,
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: ObservedChildren,
    now: datetime,
    config: PlannerConfig,
    analysis: AnalysisOutcome | None = None,
    golden: Sequence[GoldenOutcome] = (),
) -> Plan:
    """Decide the next state of one ModelDeployment and the children that realise it.

    ``now`` must be timezone-aware. ``analysis`` is the outcome of the run ``analysis_request``
    asked for in this same round (None when none was due or it could not be made); ``golden``
    the golden checks ``golden_checks_due`` asked for.
    """
    if now.tzinfo is None or now.utcoffset() != timedelta(0):
        raise ValueError(f"now must be a UTC datetime, got {now!r}")
    tick = Tick(
        meta=meta,
        spec=spec,
        status=status.model_copy(deep=True),
        observed=observed,
        now=now,
        config=config,
        golden=tuple(golden),
    )
    wake, handled = run(tick, analysis)
    wake += record_periodic(tick)
    finish_status(tick)
    # The scale subresource: pods of every revision (observed) and the selector of all of them.
    tick.status.replicas = sum(revision.replicas for revision in observed.revisions)
    tick.status.selector = model_selector(meta.name)
    rendered = render(tick, data_path(tick))
    # Validate what we wrote (bounded lists, enums) so a bug fails here, not at the API server.
    new_status = ModelDeploymentStatus.model_validate(tick.status.model_dump(by_alias=True))
    due = analysis_due_at(spec, new_status)
    if due is not None:
        wake.append(due)
    future = [max((t - now).total_seconds(), 0.0) for t in wake]
    patch = new_status.model_dump(mode="json", by_alias=True)
    return Plan(
        manifests=rendered.manifests,
        routing=rendered.routing,
        status=new_status,
        status_patch=patch,
        status_changed=patch != status.model_dump(mode="json", by_alias=True),
        events=tuple(tick.events),
        scale=rendered.scale,
        delete=rendered.delete,
        requeue_after=min(future) if future else None,
        handled_action=handled,
        notes=tuple(tick.notes),
    )
