"""reconcile turns a planner request under analysis.method sequential into analyze()'s SequentialSettings."""

from __future__ import annotations

from datetime import timedelta

from modeldeploy.operator.analysis.run import SequentialSettings
from modeldeploy.operator.api import ModelDeploymentSpec
from modeldeploy.operator.planner import AnalysisRequest
from modeldeploy.operator.reconcile import sequential_settings


def spec(analysis: dict[str, object]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"image": "x"},
            "rollout": {"steps": [{"canary": {"weight": 10, "duration": "1m"}}], "analysis": analysis},
        }
    )


def request(since: timedelta | None) -> AnalysisRequest:
    return AnalysisRequest("r2", "r1", "canary", 10, 0, timedelta(seconds=30), 0, sequential_since=since)


def test_the_spec_tolerance_and_slow_share_allowance_reach_the_analysis() -> None:
    sequential = spec(
        {
            "method": "sequential",
            "tolerance": 0.01,
            "slo": {"maxErrorRateDeltaToStable": 0, "maxSlowShareDeltaToStable": 0.02},
        }
    )
    assert sequential_settings(request(timedelta(minutes=3)), sequential) == SequentialSettings(
        since=timedelta(minutes=3), tolerance=0.01, latency_delta=0.02
    )


def test_no_sequential_window_means_the_fixed_rules() -> None:
    assert sequential_settings(request(None), spec({"method": "sequential"})) is None
