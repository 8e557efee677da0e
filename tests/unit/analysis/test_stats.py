"""The exact tests against scipy (reference values) and their monotonicity (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats  # type: ignore[import-untyped]

from modeldeploy.operator.analysis import stats


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        (2, 50, 0.01),
        (15, 3000, 0.01),
        (90, 300, 0.01),
        (1, 1, 0.5),
        (5, 5, 0.5),
        (3, 200, 0.001),
        (30_000, 1_000_000, 0.029),
        (1, 1_000_000, 1e-7),
        (480, 500, 0.98),
    ],
)
def test_binomial_tail_matches_scipy(k: int, n: int, p: float) -> None:
    expected = scipy_stats.binomtest(k, n, p, alternative="greater").pvalue
    assert stats.binomial_sf(k, n, p) == pytest.approx(expected, rel=1e-8, abs=1e-300)
    assert stats.binomial_cdf(k - 1, n, p) == pytest.approx(1 - expected, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [
        (2, 50, 10, 5000),
        (1, 50, 10, 5000),
        (15, 500, 5, 500),
        (90, 300, 15, 3000),
        (3, 3, 0, 100),
        (5, 100, 9, 900),
        (300, 1000, 2000, 10000),
        (0, 40, 7, 400),
        (40, 40, 400, 400),
        (7, 20, 3, 25),
    ],
)
def test_fisher_matches_scipy(x1: int, n1: int, x2: int, n2: int) -> None:
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    expected = scipy_stats.fisher_exact(table, alternative="greater")[1]
    assert stats.fisher_greater(x1, n1, x2, n2) == pytest.approx(expected, rel=1e-8, abs=1e-300)


def test_known_textbook_value() -> None:
    # The lady tasting tea: 3 of 4 right in each row, one-sided p = 17/70.
    assert stats.fisher_greater(3, 4, 1, 4) == pytest.approx(17 / 70, rel=1e-12)
    # Three errors in three requests at a 1% limit: p = 0.01^3.
    assert stats.binomial_sf(3, 3, 0.01) == pytest.approx(1e-6, rel=1e-9)


@pytest.mark.parametrize(
    ("x", "n", "confidence"), [(5, 500, 0.99), (0, 50, 0.95), (9, 900, 0.995), (49, 50, 0.9)]
)
def test_clopper_pearson_bounds_match_beta_quantiles(x: int, n: int, confidence: float) -> None:
    upper = scipy_stats.beta.ppf(confidence, x + 1, n - x)
    assert stats.upper_confidence_bound(x, n, confidence) == pytest.approx(upper, rel=1e-9)
    lower = scipy_stats.beta.ppf(1 - confidence, x, n - x + 1) if x else 0.0
    assert stats.lower_confidence_bound(x, n, confidence) == pytest.approx(lower, rel=1e-9, abs=1e-15)


def test_zero_counts() -> None:
    assert stats.binomial_test_greater(0, 0, 0.01) == 1.0  # no requests: no evidence
    assert stats.binomial_test_greater(0, 1000, 0.01) == 1.0  # no errors never fails
    assert stats.binomial_test_greater(1, 10, 0.0) == 0.0  # a limit of 0: any error is a breach
    assert stats.fisher_greater(0, 0, 0, 0) == 1.0
    assert stats.fisher_greater(0, 100, 0, 1000) == 1.0
    assert stats.difference_test_greater(0, 0, 0, 0, 0.01, 0.05) == 1.0
    assert stats.upper_confidence_bound(0, 0, 0.95) == 1.0
    # Rule of three: 0 of n has a 95% upper bound of about 3/n.
    assert stats.upper_confidence_bound(0, 3000, 0.95) == pytest.approx(3 / 3000, rel=0.01)


def test_one_error_at_low_traffic_is_not_significant() -> None:
    # 1 error in 50 canary requests vs 10 in 5000 for stable: not evidence of a worse canary.
    assert stats.fisher_greater(1, 50, 10, 5000) > 0.05
    assert stats.binomial_test_greater(1, 50, 0.01) > 0.05
    # 30% errors in 300 requests is overwhelming evidence against 1% and against 0.5% stable.
    assert stats.binomial_test_greater(90, 300, 0.01) < 1e-50
    assert stats.difference_test_greater(90, 300, 15, 3000, 0.05, 0.05) < 0.05


def test_margin_test_is_valid_at_the_boundary() -> None:
    """Under H0 (p1 = p2 + delta) the test rejects at most alpha of the time (exact enumeration)."""
    n1, n2, p2, delta, alpha = 30, 60, 0.05, 0.05, 0.05
    p1 = p2 + delta
    pmf1 = [math.comb(n1, k) * p1**k * (1 - p1) ** (n1 - k) for k in range(n1 + 1)]
    pmf2 = [math.comb(n2, k) * p2**k * (1 - p2) ** (n2 - k) for k in range(n2 + 1)]
    rejected = sum(
        pmf1[x1] * pmf2[x2]
        for x1 in range(n1 + 1)
        for x2 in range(n2 + 1)
        if stats.difference_test_greater(x1, n1, x2, n2, delta, alpha) < alpha
    )
    assert 0 < rejected <= alpha


@pytest.mark.parametrize(
    "call",
    [
        lambda: stats.binomial_test_greater(5, 3, 0.1),
        lambda: stats.binomial_test_greater(-1, 3, 0.1),
        lambda: stats.binomial_test_greater(1, 3, 1.5),
        lambda: stats.fisher_greater(2, 1, 0, 1),
        lambda: stats.difference_test_greater(1, 10, 1, 10, 0.1, 0.0),
        lambda: stats.regularized_beta(0.5, 0, 1),
    ],
)
def test_bad_input_is_a_clear_error(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError):
        call()


counts = st.integers(min_value=0, max_value=400)


@st.composite
def two_samples(draw: st.DrawFn) -> tuple[int, int, int, int]:
    n1 = draw(st.integers(min_value=1, max_value=300))
    n2 = draw(st.integers(min_value=1, max_value=3000))
    return draw(st.integers(0, n1)), n1, draw(st.integers(0, n2)), n2


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 2000), data=st.data(), p=st.floats(0.0001, 0.9999))
def test_binomial_tail_decreases_with_successes_and_increases_with_the_limit(
    n: int, data: st.DataObject, p: float
) -> None:
    k = data.draw(st.integers(0, n - 1))
    assert stats.binomial_sf(k + 1, n, p) <= stats.binomial_sf(k, n, p) + 1e-12
    q = data.draw(st.floats(p, 1.0))
    assert stats.binomial_sf(k, n, p) <= stats.binomial_sf(k, n, q) + 1e-12
    assert 0.0 <= stats.binomial_sf(k, n, p) <= 1.0


@settings(max_examples=150, deadline=None)
@given(sample=two_samples())
def test_fisher_more_canary_errors_is_more_evidence(sample: tuple[int, int, int, int]) -> None:
    x1, n1, x2, n2 = sample
    p = stats.fisher_greater(x1, n1, x2, n2)
    assert 0.0 <= p <= 1.0
    if x1 < n1:
        assert stats.fisher_greater(x1 + 1, n1, x2, n2) <= p + 1e-12
    if x2 < n2:
        assert stats.fisher_greater(x1, n1, x2 + 1, n2) >= p - 1e-12


@settings(max_examples=100, deadline=None)
@given(
    sample=two_samples(),
    deltas=st.lists(st.floats(0.0, 0.5), min_size=2, max_size=2),
    confidence=st.sampled_from([0.9, 0.95, 0.99]),
)
def test_margin_test_is_monotone(
    sample: tuple[int, int, int, int], deltas: list[float], confidence: float
) -> None:
    x1, n1, x2, n2 = sample
    alpha = 1 - confidence
    small, large = sorted(deltas)
    p_small = stats.difference_test_greater(x1, n1, x2, n2, small, alpha)
    assert p_small <= stats.difference_test_greater(x1, n1, x2, n2, large, alpha) + 1e-12
    if x1 < n1:
        assert stats.difference_test_greater(x1 + 1, n1, x2, n2, small, alpha) <= p_small + 1e-12
    if x2 < n2:
        assert stats.difference_test_greater(x1, n1, x2 + 1, n2, small, alpha) >= p_small - 1e-12


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 5000), data=st.data(), confidence=st.floats(0.5, 0.9999))
def test_bounds_bracket_the_estimate(n: int, data: st.DataObject, confidence: float) -> None:
    x = data.draw(st.integers(0, n))
    lower = stats.lower_confidence_bound(x, n, confidence)
    upper = stats.upper_confidence_bound(x, n, confidence)
    assert 0.0 <= lower <= x / n <= upper <= 1.0


@pytest.mark.parametrize(
    ("a", "x"), [(0.5, 0.1), (1.0, 3.0), (3.0, 2.0), (10.0, 30.0), (2.5, 100.0), (50.0, 45.0), (0.5, 1e-8)]
)
def test_upper_incomplete_gamma_matches_scipy(a: float, x: float) -> None:
    from scipy import special

    assert stats.regularized_gamma_q(a, x) == pytest.approx(float(special.gammaincc(a, x)), rel=1e-9)


@pytest.mark.parametrize(
    "table",
    [
        [[10, 20, 30], [15, 25, 5]],
        [[120, 300, 410, 280, 90], [110, 320, 400, 300, 70]],
        [[0, 10, 90, 300, 600], [120, 300, 410, 280, 90]],
        [[3, 1], [1, 3]],
        [[10.4, 20.7, 0.0], [12.1, 8.3, 0.0]],  # fractional counts; an empty column is left out
    ],
)
def test_chi_square_homogeneity_matches_scipy(table: list[list[float]]) -> None:
    statistic, df, p = stats.chi_square_homogeneity(table[0], table[1])
    kept = [[a, b] for a, b in zip(*table, strict=True) if a + b > 0]
    reference = scipy_stats.chi2_contingency([list(r) for r in zip(*kept, strict=True)], correction=False)
    assert statistic == pytest.approx(reference.statistic, rel=1e-9)
    assert df == reference.dof
    assert p == pytest.approx(reference.pvalue, rel=1e-7, abs=1e-300)


def test_chi_square_homogeneity_without_anything_to_test() -> None:
    assert stats.chi_square_homogeneity([5, 0], [7, 0]) == (0.0, 0, 1.0)  # one category
    assert stats.chi_square_homogeneity([0, 0], [3, 4]) == (0.0, 0, 1.0)  # an empty sample
    with pytest.raises(ValueError, match="same categories"):
        stats.chi_square_homogeneity([1, 2], [1])
    with pytest.raises(ValueError, match="negative"):
        stats.chi_square_homogeneity([1, -2], [1, 2])
    with pytest.raises(ValueError, match="degrees of freedom"):
        stats.chi_square_sf(3.0, 0)
