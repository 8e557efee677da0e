"""The operator's analysis metrics: what was measured, against which threshold, and the verdicts.

    modeldeploy_analysis_value{namespace,model,metric}        latest measured value (NaN: none)
    modeldeploy_analysis_threshold{namespace,model,metric}    the threshold it was judged against
    modeldeploy_analysis_verdicts_total{namespace,model,metric,verdict}

Registered in prometheus-client's default registry, which the operator serves on /metrics.
"""

from __future__ import annotations

import contextlib
import math

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from modeldeploy.operator.analysis.results import AnalysisOutcome, Verdict

_LABELS = ("namespace", "model", "metric")


class AnalysisMetrics:
    """The three series families, in `registry` (the default one unless a test passes its own)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.value = Gauge(
            "modeldeploy_analysis_value",
            "Latest measured value of an analysis metric (ratios 0-1, latencies in seconds; NaN: no data).",
            _LABELS,
            registry=registry,
        )
        self.threshold = Gauge(
            "modeldeploy_analysis_threshold",
            "Threshold the latest value of an analysis metric was judged against.",
            _LABELS,
            registry=registry,
        )
        self.verdicts = Counter(
            "modeldeploy_analysis_verdicts",
            "Analysis verdicts per metric: pass, fail or inconclusive.",
            [*_LABELS, "verdict"],
            registry=registry,
        )
        self._seen: dict[tuple[str, str], set[str]] = {}

    def record(self, namespace: str, model: str, outcome: AnalysisOutcome) -> None:
        """Export one run's values, thresholds and verdicts (each verdict counted once).

        Value and threshold gauges of metrics this run did not judge (e.g. shadowAgreement after the
        shadow steps) are removed, so the gauges always describe the latest run.
        """
        current = {result.metric for result in outcome.results}
        previous = self._seen.get((namespace, model), set())
        for metric in previous - current:
            self._remove_gauges(namespace, model, metric)
        self._seen[(namespace, model)] = previous | current
        for result in outcome.results:
            labels = (namespace, model, result.metric)
            self.value.labels(*labels).set(math.nan if result.value is None else result.value)
            self.threshold.labels(*labels).set(math.nan if result.threshold is None else result.threshold)
            self.verdicts.labels(*labels, result.verdict.value).inc()

    def _remove_gauges(self, namespace: str, model: str, metric: str) -> None:
        for family in (self.value, self.threshold):
            with contextlib.suppress(KeyError):
                family.remove(namespace, model, metric)

    def forget(self, namespace: str, model: str) -> None:
        """Remove every series of a ModelDeployment (it was deleted)."""
        for metric in self._seen.pop((namespace, model), set()):
            self._remove_gauges(namespace, model, metric)
            for verdict in Verdict:
                with contextlib.suppress(KeyError):
                    self.verdicts.remove(namespace, model, metric, verdict.value)


ANALYSIS_METRICS = AnalysisMetrics()
"""The operator's instance (default registry)."""


def record_outcome(namespace: str, model: str, outcome: AnalysisOutcome) -> None:
    """Export `outcome` on the operator's /metrics."""
    ANALYSIS_METRICS.record(namespace, model, outcome)


def forget_model(namespace: str, model: str) -> None:
    """Drop the analysis series of a deleted ModelDeployment."""
    ANALYSIS_METRICS.forget(namespace, model)
