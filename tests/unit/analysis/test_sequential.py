"""The anytime-valid tests: known values, scipy cross-checks, and Ville's bound computed exactly."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize  # type: ignore[import-untyped]
from scipy import stats as scipy_stats

from modeldeploy.operator.analysis import sequential, stats
from modeldeploy.operator.analysis.sequential import Counts

UNIFORM = (1.0, 1.0)


def test_mixture_known_values() -> None:
    # Uniform prior: the integral of p^x (1-p)^(n-x) is 1 / ((n+1) C(n, x)).
    assert math.exp(sequential.log_mixture(Counts(3, 3), UNIFORM)) == pytest.approx(1 / 4, rel=1e-12)
    assert math.exp(sequential.log_mixture(Counts(2, 5), UNIFORM)) == pytest.approx(1 / 60, rel=1e-12)
    # Jeffreys: one success in one trial has prior predictive probability 1/2 (the prior's mean).
    assert math.exp(sequential.log_mixture(Counts(1, 1))) == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize(("x", "n"), [(0, 10), (3, 40), (17, 200), (200, 200)])
def test_mixture_matches_numerical_integration(x: int, n: int) -> None:
    a, b = sequential.JEFFREYS
    expected, _ = integrate.quad(
        lambda p: p**x * (1 - p) ** (n - x) * scipy_stats.beta.pdf(p, a, b), 0, 1, limit=200, points=[x / n]
    )
    assert math.exp(sequential.log_mixture(Counts(x, n))) == pytest.approx(expected, rel=1e-6)


def test_limit_test_known_value() -> None:
    # 3 errors in 3 requests, uniform prior, limit 1%: E = (1/4) / 0.01^3 = 250000.
    evidence = sequential.limit_test(Counts(3, 3), 0.01, 0.95, UNIFORM)
    assert evidence.e_value == pytest.approx(250_000, rel=1e-9)
    assert evidence.p_value == pytest.approx(4e-6, rel=1e-9)
    assert evidence.rejects(0.95)
    # Confidence sequence: p with (1/4) / p^3 < 20, i.e. p > 80^(-1/3).
    assert evidence.lower == pytest.approx(80 ** (-1 / 3), rel=1e-9)
    assert evidence.upper == 1.0


def test_limit_test_under_the_limit_is_no_evidence() -> None:
    evidence = sequential.limit_test(Counts(5, 1000), 0.01, 0.95)
    assert evidence.log_e < 0
    assert not evidence.rejects(0.95)
    assert evidence.lower < 0.005 < evidence.upper


def test_no_requests_says_nothing() -> None:
    evidence = sequential.limit_test(Counts(0, 0), 0.01, 0.95)
    assert evidence.log_e == 0.0 and evidence.estimate is None
    difference = sequential.difference_test(Counts(0, 0), Counts(0, 0), 0.0, 0.95)
    assert difference.log_e == 0.0 and (difference.lower, difference.upper) == (0.0, math.inf)


def _ville_crossing_probability(limit: float, horizon: int, confidence: float) -> float:
    """P(the limit test rejects at some look t <= horizon) for requests failing with probability `limit`.

    Exact: dynamic programming over the number of errors, removing the paths that already rejected.
    """
    alive = {0: 1.0}
    crossed = 0.0
    for t in range(1, horizon + 1):
        nxt: dict[int, float] = {}
        for x, mass in alive.items():
            nxt[x + 1] = nxt.get(x + 1, 0.0) + mass * limit
            nxt[x] = nxt.get(x, 0.0) + mass * (1 - limit)
        alive = {}
        for x, mass in nxt.items():
            if sequential.limit_test(Counts(x, t), limit, confidence, sequence=False).rejects(confidence):
                crossed += mass
            else:
                alive[x] = mass
    return crossed


@pytest.mark.parametrize(("limit", "confidence"), [(0.01, 0.95), (0.05, 0.95), (0.2, 0.9)])
def test_limit_test_type_one_error_over_every_look_is_below_alpha(limit: float, confidence: float) -> None:
    # Looked at after every single request for 600 requests, at the worst rate H0 allows.
    assert _ville_crossing_probability(limit, 600, confidence) <= 1 - confidence


def test_repeated_fixed_test_would_not_be() -> None:
    """The peeking problem the sequential test solves: the exact binomial test after every request."""
    limit, alpha, horizon = 0.05, 0.05, 600
    alive = {0: 1.0}
    crossed = 0.0
    for t in range(1, horizon + 1):
        nxt: dict[int, float] = {}
        for x, mass in alive.items():
            nxt[x + 1] = nxt.get(x + 1, 0.0) + mass * limit
            nxt[x] = nxt.get(x, 0.0) + mass * (1 - limit)
        alive = {}
        # the smallest error count whose one-sided p-value P(X >= x) is below alpha
        critical = int(scipy_stats.binom.isf(alpha, t, limit)) + 1
        for x, mass in nxt.items():
            if x >= critical:
                crossed += mass
            else:
                alive[x] = mass
    assert crossed > 3 * alpha


def test_difference_test_known_value() -> None:
    # new 2 of 2, stable 0 of 2, uniform priors: mixtures 1/3 each; pooled MLE 1/2: L = 1/16.
    evidence = sequential.difference_test(Counts(2, 2), Counts(0, 2), 0.0, 0.95, UNIFORM)
    assert evidence.e_value == pytest.approx(16 / 9, rel=1e-12)
    assert evidence.estimate is None  # stable has no errors: no ratio


def test_difference_test_overwhelming_regression() -> None:
    evidence = sequential.difference_test(Counts(600, 2000), Counts(100, 10_000), 0.0, 0.95)
    assert evidence.rejects(0.95)
    assert stats.p_text(evidence.p_value) == "p<1e-300"
    assert evidence.estimate == pytest.approx(30.0)
    assert evidence.lower < 30.0 < evidence.upper
    assert evidence.lower > 15.0


def test_difference_test_margin_makes_it_more_lenient() -> None:
    new, stable = Counts(40, 1000), Counts(100, 10_000)
    strict = sequential.difference_test(new, stable, 0.0, 0.95)
    lenient = sequential.difference_test(new, stable, 0.02, 0.95)
    assert strict.rejects(0.95)
    assert lenient.log_e < strict.log_e
    assert not lenient.rejects(0.95)


@pytest.mark.parametrize(
    ("new", "stable", "ratio"),
    [
        (Counts(30, 1000), Counts(100, 10_000), 2.0),
        (Counts(3, 50), Counts(7, 900), 0.5),
        (Counts(0, 9), Counts(4, 9), 3.0),
    ],
)
def test_ratio_profile_is_the_maximum(new: Counts, stable: Counts, ratio: float) -> None:
    def negative(p: float) -> float:
        return -(sequential.log_likelihood(new, ratio * p) + sequential.log_likelihood(stable, p))

    found = optimize.minimize_scalar(
        negative, bounds=(1e-12, min(1.0, 1 / ratio) - 1e-12), method="bounded", options={"xatol": 1e-12}
    )
    assert sequential._ratio_profile(new, stable, ratio) == pytest.approx(-found.fun, rel=1e-7, abs=1e-7)


@pytest.mark.parametrize(
    ("new", "stable", "delta"),
    [
        (Counts(60, 1000), Counts(100, 10_000), 0.01),
        (Counts(9, 10), Counts(1, 20), 0.3),
        (Counts(5, 5), Counts(0, 5), 0.5),
    ],
)
def test_shifted_profile_is_the_maximum(new: Counts, stable: Counts, delta: float) -> None:
    def negative(p: float) -> float:
        return -(sequential.log_likelihood(new, p + delta) + sequential.log_likelihood(stable, p))

    found = optimize.minimize_scalar(
        negative, bounds=(0.0, 1.0 - delta), method="bounded", options={"xatol": 1e-12}
    )
    assert sequential._shifted_profile(new, stable, delta) == pytest.approx(-found.fun, rel=1e-7, abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(x1=st.integers(0, 200), extra=st.integers(1, 50), x2=st.integers(0, 200), n=st.integers(200, 2000))
def test_more_errors_on_the_new_revision_is_more_evidence(x1: int, extra: int, x2: int, n: int) -> None:
    # Where the new revision already looks worse (below that, the e-value is < 1 and not monotone).
    assume(x1 >= x2)
    base = sequential.difference_test(Counts(x1, n), Counts(x2, n), 0.0, 0.95, sequence=False)
    worse = sequential.difference_test(
        Counts(min(n, x1 + extra), n), Counts(x2, n), 0.0, 0.95, sequence=False
    )
    assert worse.log_e >= base.log_e - 1e-9


def test_safety_test_shows_no_regression_with_enough_requests() -> None:
    # Same 1% error rate on both sides; is the new revision at most 0.5 points worse?
    assert sequential.safety_test(Counts(10, 1000), Counts(100, 10_000), 0.005) < sequential.threshold(0.95)
    assert sequential.safety_test(Counts(200, 20_000), Counts(1000, 100_000), 0.005) > sequential.threshold(
        0.95
    )
    # A real 1-point regression is never shown to be within 0.5 points.
    assert sequential.safety_test(Counts(400, 20_000), Counts(1000, 100_000), 0.005) < 0


def test_latency_with_one_bound_is_the_difference_test() -> None:
    new = {0.1: 70.0, math.inf: 100.0}
    stable = {0.1: 950.0, math.inf: 1000.0}
    evidence = sequential.latency_shift_test(new, stable)
    single = sequential.difference_test(Counts(30, 100), Counts(50, 1000), 0.0, 0.95)
    assert evidence.log_e == pytest.approx(single.log_e, rel=1e-12)
    assert (evidence.bound, evidence.new_share, evidence.stable_share) == (0.1, 0.3, 0.05)


def test_latency_e_value_is_the_mean_over_bounds() -> None:
    new = {0.05: 20.0, 0.1: 70.0, math.inf: 100.0}
    stable = {0.05: 500.0, 0.1: 950.0, math.inf: 1000.0}
    evidence = sequential.latency_shift_test(new, stable)
    parts = [
        sequential.difference_test(Counts(80, 100), Counts(500, 1000), 0.0, 0.95).e_value,
        sequential.difference_test(Counts(30, 100), Counts(50, 1000), 0.0, 0.95).e_value,
    ]
    assert math.exp(evidence.log_e) == pytest.approx(sum(parts) / 2, rel=1e-9)
    assert evidence.bound == 0.1  # the bound with the strongest evidence: 30% vs 5% slower


def test_a_faster_new_revision_is_no_evidence_of_a_regression() -> None:
    new = {0.05: 95.0, 0.1: 100.0, math.inf: 100.0}
    stable = {0.05: 500.0, 0.1: 950.0, math.inf: 1000.0}
    assert sequential.latency_shift_test(new, stable).log_e < 0


def test_latency_without_common_bounds_says_nothing() -> None:
    assert sequential.latency_shift_test({math.inf: 5.0}, {math.inf: 5.0}).log_e == 0.0
    assert sequential.latency_safety_test({math.inf: 5.0}, {math.inf: 5.0}, 0.05) == -math.inf


def test_latency_safety_needs_every_bound() -> None:
    same_new = {0.05: 9000.0, 0.1: 9900.0, math.inf: 10_000.0}
    same_stable = {0.05: 45_000.0, 0.1: 49_500.0, math.inf: 50_000.0}
    assert sequential.latency_safety_test(same_new, same_stable, 0.02) > sequential.threshold(0.95)
    slower = {0.05: 7000.0, 0.1: 9900.0, math.inf: 10_000.0}
    assert sequential.latency_safety_test(slower, same_stable, 0.02) < 0


def test_slower_than_rounds_and_clamps() -> None:
    counts = sequential.slower_than({0.1: 10.4, 0.5: 30.6, math.inf: 30.2})
    assert counts == {0.1: Counts(20, 30), 0.5: Counts(0, 30)}


@pytest.mark.parametrize(
    ("p", "text"), [(0.031, "p=0.031"), (1.5e-35, "p=1.5e-35"), (0.0, "p<1e-300"), (5e-320, "p<1e-300")]
)
def test_p_text(p: float, text: str) -> None:
    assert stats.p_text(p) == text


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="hits <= total"):
        Counts(5, 3)
    with pytest.raises(ValueError, match="confidence"):
        sequential.threshold(1.0)
    with pytest.raises(ValueError, match="limit"):
        sequential.limit_test(Counts(1, 2), 1.5, 0.95)
    with pytest.raises(ValueError, match="tolerance"):
        sequential.safety_test(Counts(1, 2), Counts(1, 2), 0.0)


@pytest.mark.parametrize("delta", [0.0, 0.01, 0.5, 0.99])
def test_edge_counts_never_raise(delta: float) -> None:
    edges = [Counts(0, 0), Counts(0, 1), Counts(1, 1), Counts(0, 1000), Counts(1000, 1000), Counts(3, 1000)]
    for new in edges:
        for old in edges:
            evidence = sequential.difference_test(new, old, delta, 0.95)
            assert not math.isnan(evidence.log_e), (new, old, delta)
            assert 0.0 <= evidence.lower <= evidence.upper
            if delta > 0:
                assert not math.isnan(sequential.safety_test(new, old, delta))
