"""Simulated rollouts: the sequential rule's false-rollback rate stays below 1 - confidence; today's does not.

The draws are seeded, so every count here is fixed; the bounds are exact binomial (Clopper-Pearson)
bounds at 99.9% on the simulated count, so the claims are about the true rates, not just these runs.
The table in docs/analysis.md comes from `python -m tests.unit.analysis.canary_simulation`.
"""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats  # type: ignore[import-untyped]

from modeldeploy.contract.metrics import LATENCY_BUCKETS
from tests.unit.analysis import canary_simulation as sim

ALPHA = 1 - sim.CONFIDENCE


def _upper_bound(hits: int, runs: int, confidence: float = 0.999) -> float:
    return 1.0 if hits == runs else float(scipy_stats.beta.ppf(confidence, hits + 1, runs - hits))


def _lower_bound(hits: int, runs: int, confidence: float = 0.999) -> float:
    return 0.0 if hits == 0 else float(scipy_stats.beta.ppf(1 - confidence, hits, runs - hits + 1))


def test_sequential_false_rollback_rate_of_an_identical_canary_is_below_alpha() -> None:
    tally = sim.replay(sim.IDENTICAL, rps=100, runs=200, seed=7, rules=("sequential",))["sequential"]
    assert _upper_bound(tally.rollbacks, tally.runs) <= ALPHA, tally


def test_todays_rule_rolls_identical_canaries_back_more_often_than_alpha() -> None:
    """Why the rule changes: 30 s windows judged every 5 s, two fails in a row, over 36 looks."""
    tally = sim.replay(sim.IDENTICAL, rps=100, runs=100, seed=8, rules=("today",))["today"]
    assert _lower_bound(tally.rollbacks, tally.runs) > ALPHA, tally


def test_sequential_rule_cuts_a_30_percent_error_canary_at_the_first_look() -> None:
    scenario = sim.REGRESSIONS[2]
    assert scenario.canary_error_rate == 0.30
    tally = sim.replay(scenario, rps=100, runs=20, seed=9, rules=("sequential",))["sequential"]
    assert tally.rollbacks == tally.runs
    assert max(tally.seconds) == sim.LOOK_SECONDS


def test_sequential_rule_catches_a_latency_shift_the_p99_ratio_misses() -> None:
    scenario = sim.REGRESSIONS[3]
    result = sim.replay(scenario, rps=1000, runs=20, seed=10)
    assert result["sequential"].rollbacks == 20
    assert result["sequential"].median_seconds == sim.LOOK_SECONDS
    assert result["today"].rollbacks < 20


def test_histogram_quantile_matches_prometheus_interpolation() -> None:
    buckets = {0.1: 50.0, 0.2: 90.0, 0.5: 100.0, math.inf: 100.0}
    assert sim.histogram_quantile(0.5, buckets) == 0.1
    assert sim.histogram_quantile(0.7, buckets) == pytest.approx(0.15)
    assert sim.histogram_quantile(0.95, buckets) == pytest.approx(0.35)
    assert sim.histogram_quantile(0.99, {0.1: 0.0, math.inf: 10.0}) == 0.1
    assert sim.histogram_quantile(0.99, {math.inf: 0.0}) is None


def test_bucket_shares_sum_to_one_and_shift_with_the_factor() -> None:
    base, slower = sim.bucket_shares(1.0), sim.bucket_shares(1.5)
    assert math.isclose(sum(base), 1.0) and math.isclose(sum(slower), 1.0)
    # the share at or below 50 ms falls when every request is 1.5x slower
    at_50ms = LATENCY_BUCKETS.index(0.05) + 1
    assert sum(slower[:at_50ms]) < sum(base[:at_50ms])
