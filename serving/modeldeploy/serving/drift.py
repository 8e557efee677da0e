"""Per-feature input histograms for drift analysis: `modeldeploy_input_feature_value`.

prometheus-client's Histogram has one bucket layout per metric, but every drift feature has its
own buckets (from the routing table), so this is a small collector of its own. It exposes a proper
Prometheus histogram per feature, labels model, namespace, revision (this sidecar's: only requests
it serves locally are observed) and feature:
`_bucket{le}` (cumulative, ending with le="+Inf"), `_count` and `_sum`. Values that are missing at
the feature's path or not numbers (strings, booleans, null, NaN, ±Inf) are not observed; they are
counted in `modeldeploy_input_feature_skipped_total{feature, reason=missing|non_numeric}`.

A table that changes a feature's buckets starts its series afresh (a counter reset for
Prometheus); a feature dropped from the table disappears from the exposition.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from modeldeploy.contract.json_pointer import parse_pointer, select
from modeldeploy.contract.routing import DriftFeature, DriftSettings

METRIC = "modeldeploy_input_feature_value"
SKIPPED_METRIC = "modeldeploy_input_feature_skipped_total"


def numeric(value: Any) -> float | None:
    """`value` as a finite float if it is a JSON number (booleans are not numbers), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass
class _Series:
    feature: DriftFeature
    segments: tuple[str, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; last is +Inf
    total: float = 0.0
    missing: int = 0
    non_numeric: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.feature.buckets) + 1)

    def observe_document(self, document: Any) -> None:
        found = False
        buckets = self.feature.buckets
        for value in select(document, self.segments):
            found = True
            number = numeric(value)
            if number is None:
                self.non_numeric += 1
                continue
            self.counts[bisect_left(buckets, number)] += 1  # le semantics: value <= bound
            self.total += number
        if not found:
            self.missing += 1


class FeatureHistograms(Collector):
    """The drift histograms of one sidecar; `configure` on a table change, `observe` per request."""

    def __init__(self, model: str, namespace: str, revision: str) -> None:
        self._labels = {"model": model, "namespace": namespace, "revision": revision}
        self._series: dict[str, _Series] = {}

    def configure(self, settings: DriftSettings | None) -> None:
        """Follow the table: keep series whose feature is unchanged, start changed ones afresh.

        The table's model has checked the pointers and that names are unique."""
        series: dict[str, _Series] = {}
        for feature in settings.features if settings is not None else ():
            kept = self._series.get(feature.name)
            same = kept is not None and kept.feature == feature
            series[feature.name] = kept if same and kept else _Series(feature, parse_pointer(feature.path))
        self._series = series

    @property
    def active(self) -> bool:
        return bool(self._series)

    def observe(self, document: Any) -> None:
        """Observe every feature's values in one parsed request body."""
        for series in self._series.values():
            series.observe_document(document)

    def collect(self) -> Iterator[Metric]:
        if not self._series:
            return
        names = [*self._labels, "feature"]
        values = list(self._labels.values())
        histogram = HistogramMetricFamily(
            METRIC,
            "Numeric input values of the drift features (per-feature buckets) in requests served here.",
            labels=names,
        )
        skipped = CounterMetricFamily(
            SKIPPED_METRIC,
            "Drift feature values not observed: missing at the path, or not a finite number.",
            labels=[*names, "reason"],
        )
        for name, series in self._series.items():
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*series.feature.buckets, math.inf), series.counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), float(cumulative)))  # type: ignore[no-untyped-call]
            histogram.add_metric([*values, name], buckets, series.total)
            skipped.add_metric([*values, name, "missing"], float(series.missing))
            skipped.add_metric([*values, name, "non_numeric"], float(series.non_numeric))
        yield histogram
        yield skipped
