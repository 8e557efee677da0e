"""The pure planner: (spec, status, observed children, analysis, now) -> Plan. No I/O, no clock.

Typical use in a handler::

    request = analysis_request(spec, status, now)          # is an analysis run due?
    outcome = await analyse(request) if request else None   # the handler's I/O
    result = plan(meta, spec, status, observed, now, config, analysis=outcome)
    # apply result.manifests, result.scale, result.delete, result.status_patch, result.events
    # (in that order; see outputs.py), then call again after result.requeue_after seconds.

The planner holds no state between calls: everything it needs to resume is in ``status``.
"""

from __future__ import annotations

from modeldeploy.contract.labels import model_selector
from modeldeploy.operator.planner.actions import ACTION_ANNOTATION, ACTIONS, action_value, parse_action
from modeldeploy.operator.planner.analysis_runs import AnalysisRequest, analysis_due_at, analysis_request
from modeldeploy.operator.planner.golden import GoldenCheckRequest, golden_checks_due
from modeldeploy.operator.planner.inputs import (
    GoldenOutcome,
    ModelDeploymentMeta,
    ObservedChildren,
    ObservedRevision,
    PlannerConfig,
    routing_from_configmap,
)
from modeldeploy.operator.planner.outputs import ChildRef, HandledAction, Plan, PlannedEvent, ScaleChange
from modeldeploy.operator.planner.plan import plan

__all__ = [
    "ACTIONS",
    "ACTION_ANNOTATION",
    "AnalysisRequest",
    "ChildRef",
    "GoldenCheckRequest",
    "GoldenOutcome",
    "HandledAction",
    "ModelDeploymentMeta",
    "ObservedChildren",
    "ObservedRevision",
    "Plan",
    "PlannedEvent",
    "PlannerConfig",
    "ScaleChange",
    "action_value",
    "analysis_due_at",
    "analysis_request",
    "golden_checks_due",
    "model_selector",
    "parse_action",
    "plan",
    "routing_from_configmap",
]
