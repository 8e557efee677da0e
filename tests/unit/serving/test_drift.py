"""The drift histogram collector: per-feature buckets, a proper Prometheus histogram exposition."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.contract.routing import DriftSettings
from modeldeploy.serving.drift import FeatureHistograms, numeric

SETTINGS = DriftSettings.model_validate(
    {
        "features": [
            {"name": "sepal_length", "path": "/features/*/0", "buckets": [4.5, 5, 5.5, 6]},
            {"name": "petal_width", "path": "/features/*/3", "buckets": [0.5, 1.5]},
        ]
    }
)


def collected() -> tuple[FeatureHistograms, CollectorRegistry]:
    registry = CollectorRegistry()
    histograms = FeatureHistograms("iris", "ml", "aaaa")
    registry.register(histograms)
    histograms.configure(SETTINGS)
    return histograms, registry


def samples(registry: CollectorRegistry) -> dict[tuple[str, str, str], float]:
    """(sample name, feature, le or reason) -> value, parsed back from the text exposition."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            assert {"model": "iris", "namespace": "ml", "revision": "aaaa"}.items() <= s.labels.items()
            out[(s.name, s.labels["feature"], s.labels.get("le", s.labels.get("reason", "")))] = s.value
    return out


def test_numeric() -> None:
    assert numeric(3) == 3.0 and numeric(2.5) == 2.5
    assert numeric(True) is None and numeric("1") is None and numeric(None) is None
    assert numeric(float("nan")) is None and numeric(float("inf")) is None


def test_histogram_is_cumulative_with_inf_count_and_sum() -> None:
    histograms, registry = collected()
    histograms.observe({"features": [[4.5, 3, 1, 0.2], [5.2, 3, 4, 1.3], [7.9, 3, 6, 2.5]]})
    histograms.observe({"features": [[5.0, 3, 1, "wide"]]})
    got = samples(registry)
    name = "modeldeploy_input_feature_value"
    # 4.5 sits in le=4.5 (upper bounds are inclusive), 5.0 in le=5.0, 5.2 in le=5.5, 7.9 only in +Inf
    assert [got[(f"{name}_bucket", "sepal_length", le)] for le in ("4.5", "5.0", "5.5", "6.0", "+Inf")] == [
        1,
        2,
        3,
        3,
        4,
    ]
    assert got[(f"{name}_count", "sepal_length", "")] == 4
    assert got[(f"{name}_sum", "sepal_length", "")] == pytest.approx(4.5 + 5.2 + 7.9 + 5.0)
    assert [got[(f"{name}_bucket", "petal_width", le)] for le in ("0.5", "1.5", "+Inf")] == [1, 2, 3]
    assert got[("modeldeploy_input_feature_skipped_total", "petal_width", "non_numeric")] == 1
    assert got[("modeldeploy_input_feature_skipped_total", "petal_width", "missing")] == 0


def test_missing_values_are_counted_not_observed() -> None:
    histograms, registry = collected()
    histograms.observe({"rows": [[1, 2, 3, 4]]})
    histograms.observe({"features": []})
    got = samples(registry)
    assert got[("modeldeploy_input_feature_value_count", "sepal_length", "")] == 0
    assert got[("modeldeploy_input_feature_skipped_total", "sepal_length", "missing")] == 2


def test_reconfigure_keeps_unchanged_features_and_restarts_changed_ones() -> None:
    histograms, registry = collected()
    histograms.observe({"features": [[5.1, 3, 1, 0.2]]})
    changed = DriftSettings.model_validate(
        {
            "features": [
                {"name": "sepal_length", "path": "/features/*/0", "buckets": [4.5, 5, 5.5, 6]},
                {"name": "petal_width", "path": "/features/*/3", "buckets": [1.0]},
            ]
        }
    )
    histograms.configure(changed)
    got = samples(registry)
    assert got[("modeldeploy_input_feature_value_count", "sepal_length", "")] == 1
    assert got[("modeldeploy_input_feature_value_count", "petal_width", "")] == 0
    assert ("modeldeploy_input_feature_value_bucket", "petal_width", "1.0") in got
    histograms.configure(None)
    assert not histograms.active and samples(registry) == {}
