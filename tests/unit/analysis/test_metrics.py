"""The operator's analysis gauges and verdict counter."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry

from modeldeploy.operator.analysis.metrics import AnalysisMetrics
from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict, Verdict


def verdict(metric: str, result: Verdict, value: float | None, threshold: float | None) -> MetricVerdict:
    return MetricVerdict(
        metric=metric, verdict=result, value=value, threshold=threshold, query="q", message="m"
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"namespace": "ml", "model": "iris", **labels})


def test_values_thresholds_and_verdicts_are_exported() -> None:
    registry = CollectorRegistry()
    metrics = AnalysisMetrics(registry)
    shadow_run = AnalysisOutcome(
        "abc",
        (
            verdict("errorRate", Verdict.FAIL, 0.3, 0.01),
            verdict("latencyP99", Verdict.INCONCLUSIVE, None, 0.25),
            verdict("shadowAgreement", Verdict.PASS, 0.99, 0.98),
        ),
    )
    metrics.record("ml", "iris", shadow_run)
    metrics.record("ml", "iris", AnalysisOutcome("abc", (verdict("errorRate", Verdict.FAIL, 0.25, 0.01),)))
    assert sample(registry, "modeldeploy_analysis_value", metric="errorRate") == 0.25
    assert sample(registry, "modeldeploy_analysis_threshold", metric="errorRate") == 0.01
    assert sample(registry, "modeldeploy_analysis_verdicts_total", metric="errorRate", verdict="fail") == 2
    assert (
        sample(registry, "modeldeploy_analysis_verdicts_total", metric="latencyP99", verdict="inconclusive")
        == 1
    )
    # Gauges describe the latest run only: metrics it did not judge are gone.
    assert sample(registry, "modeldeploy_analysis_value", metric="shadowAgreement") is None
    assert sample(registry, "modeldeploy_analysis_value", metric="latencyP99") is None

    metrics.record(
        "ml", "iris", AnalysisOutcome("abc", (verdict("latencyP99", Verdict.INCONCLUSIVE, None, 0.25),))
    )
    value = sample(registry, "modeldeploy_analysis_value", metric="latencyP99")
    assert value is not None and math.isnan(value)

    metrics.forget("ml", "iris")
    assert sample(registry, "modeldeploy_analysis_verdicts_total", metric="errorRate", verdict="fail") is None
    assert sample(registry, "modeldeploy_analysis_threshold", metric="latencyP99") is None
