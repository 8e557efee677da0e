"""A deleted ModelDeployment leaves no series behind on the operator's /metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from prometheus_client import REGISTRY

from modeldeploy.operator import metrics
from modeldeploy.operator.analysis.metrics import record_outcome
from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict, Verdict
from modeldeploy.operator.handlers.context import OperatorContext
from modeldeploy.operator.handlers.modeldeployment import modeldeployment_deleted
from modeldeploy.operator.reconcile import Reconciler
from modeldeploy.operator.settings import OperatorSettings
from tests.support.fake_cluster import FakeCluster, FixedClock, ScriptedAnalyst, ScriptedGoldenChecker

deleted = cast(Any, modeldeployment_deleted)  # kopf's decorator types it for kopf's own call


def memo() -> kopf.Memo:
    """The memo kopf hands the handler: the operator context, here with fakes behind its ports."""
    settings, clock = OperatorSettings(), FixedClock(datetime(2026, 11, 22, tzinfo=UTC))
    analyst = ScriptedAnalyst(lambda request, now: None)
    reconciler = Reconciler(settings, FakeCluster(), analyst, ScriptedGoldenChecker(clock), clock)
    return kopf.Memo(operator=OperatorContext(settings, reconciler))


LABELS = {"namespace": "forget-ns", "model": "iris"}


def series() -> dict[str, float | None]:
    return {
        "value": REGISTRY.get_sample_value("modeldeploy_analysis_value", {**LABELS, "metric": "errorRate"}),
        "verdicts": REGISTRY.get_sample_value(
            "modeldeploy_analysis_verdicts_total", {**LABELS, "metric": "errorRate", "verdict": "pass"}
        ),
        "in progress": REGISTRY.get_sample_value("modeldeploy_operator_rollouts_in_progress", LABELS),
        "phase": REGISTRY.get_sample_value(
            "modeldeploy_operator_rollout_phase", {**LABELS, "phase": "Progressing"}
        ),
    }


def test_the_delete_handler_drops_the_models_analysis_series_and_rollout_gauge() -> None:
    result = MetricVerdict(
        metric="errorRate", verdict=Verdict.PASS, value=0.0, threshold=0.01, query="q", message="m"
    )
    record_outcome("forget-ns", "iris", AnalysisOutcome("abc", (result,)))
    metrics.ROLLOUTS_IN_PROGRESS.labels("forget-ns", "iris").set(1)
    metrics.ROLLOUT_PHASE.labels("forget-ns", "iris", "Progressing").set(1)
    assert series() == {"value": 0.0, "verdicts": 1.0, "in progress": 1.0, "phase": 1.0}

    handler_memo = memo()
    asyncio.run(deleted(name="iris", namespace="forget-ns", memo=handler_memo))
    assert series() == {"value": None, "verdicts": None, "in progress": None, "phase": None}
    # twice (a retried handler) is fine
    asyncio.run(deleted(name="iris", namespace="forget-ns", memo=handler_memo))
