"""Population stability index: hand-computed values, empty buckets, cumulative buckets, properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.operator.analysis import psi

TINY = 1e-12  # practically no smoothing: compare with the textbook formula


def test_two_buckets_by_hand() -> None:
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5) = 0.4 ln 1.8 + 0.4 ln 5
    assert psi.population_stability_index([0.5, 0.5], [0.9, 0.1], TINY) == pytest.approx(0.8788898309, 1e-9)
    # the default epsilon barely moves a value without empty buckets
    assert psi.population_stability_index([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.8788898309, rel=1e-3)


def test_four_buckets_from_counts_by_hand() -> None:
    # shares 0.1, 0.2, 0.3, 0.4 against 0.25 each:
    # 0.15 ln 2.5 + 0.05 ln 1.25 + 0.05 ln 1.2 + 0.15 ln 1.6
    value = psi.psi_of_counts([25, 25, 25, 25], [10, 20, 30, 40], TINY)
    assert value == pytest.approx(0.2282174096, 1e-9)


def test_an_empty_bucket_is_smoothed_with_epsilon() -> None:
    # q = (p + 1e-4) / (1 + 3e-4): the empty stable bucket contributes 0.1 ln(0.1001 / 0.0001)
    value = psi.population_stability_index([0.5, 0.5, 0.0], [0.5, 0.4, 0.1])
    expected = (0.1 * math.log(0.5001 / 0.4001) + 0.1 * math.log(0.1001 / 0.0001)) / 1.0003
    assert value == pytest.approx(expected, 1e-12)
    assert value == pytest.approx(0.71297094, 1e-7)
    assert math.isfinite(psi.population_stability_index([1.0, 0.0], [0.0, 1.0]))


def test_identical_distributions_are_zero_and_shifted_ones_large() -> None:
    stable = [120, 300, 410, 280, 90]
    assert psi.psi_of_counts(stable, [c * 3 for c in stable]) == pytest.approx(0.0, abs=1e-15)
    shifted = [0, 10, 90, 300, 600]  # the same shape moved two buckets up
    assert psi.psi_of_counts(stable, shifted) > 1.0


def test_buckets_empty_on_both_sides_add_nothing() -> None:
    with_empty = psi.psi_of_counts([10, 0, 30, 0], [20, 0, 20, 0], TINY)
    without = psi.psi_of_counts([10, 30], [20, 20], TINY)
    assert with_empty == pytest.approx(without, 1e-9)


def test_cumulative_buckets_become_per_bucket_counts() -> None:
    cumulative = {0.5: 3.0, 1.0: 10.0, 2.0: 10.0, math.inf: 14.0}
    assert psi.bucket_counts(cumulative, (0.5, 1.0, 2.0, math.inf)) == (3.0, 7.0, 0.0, 4.0)
    # increase() extrapolates each series on its own: a dip is 0, never negative, and is not
    # subtracted twice
    wobbly = {0.5: 3.2, 1.0: 3.1, 2.0: 5.0, math.inf: math.nan}
    assert psi.bucket_counts(wobbly, (0.5, 1.0, 2.0, math.inf)) == pytest.approx((3.2, 0.0, 1.8, 0.0))


def test_only_bounds_on_both_sides_are_used() -> None:
    canary = {1.0: 1.0, 2.0: 2.0, math.inf: 3.0}
    stable = {2.0: 5.0, 3.0: 6.0, math.inf: 9.0}
    assert psi.shared_bounds(canary, stable) == (2.0, math.inf)
    assert psi.shared_bounds(canary, {}) == ()
    assert psi.shared_bounds() == ()


@pytest.mark.parametrize(
    ("expected", "actual", "message"),
    [
        ([0.5, 0.5], [1.0], "same buckets"),
        ([], [], "at least one bucket"),
        ([0.5, 0.6], [0.5, 0.5], "sum to 1"),
        ([0.5, 0.5], [1.5, -0.5], "non-negative"),
    ],
)
def test_bad_input_is_a_clear_error(expected: list[float], actual: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        psi.population_stability_index(expected, actual)


def test_counts_need_observations_on_both_sides() -> None:
    with pytest.raises(ValueError, match="observations on both sides"):
        psi.psi_of_counts([0, 0], [1, 2])
    with pytest.raises(ValueError, match="epsilon must be positive"):
        psi.population_stability_index([1.0], [1.0], 0.0)


counts = st.lists(st.integers(0, 10_000), min_size=1, max_size=12).filter(lambda c: sum(c) > 0)


@st.composite
def two_samples(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    first = draw(counts)
    second = draw(st.lists(st.integers(0, 10_000), min_size=len(first), max_size=len(first)))
    if sum(second) == 0:
        second[0] = 1
    return first, second


@given(two_samples())
def test_psi_is_non_negative_and_symmetric(sample: tuple[list[int], list[int]]) -> None:
    a, b = sample
    forward, backward = psi.psi_of_counts(a, b), psi.psi_of_counts(b, a)
    assert forward >= 0.0
    assert forward == pytest.approx(backward, rel=1e-12, abs=1e-15)


@given(two_samples())
def test_psi_is_zero_exactly_when_the_shares_are_equal(sample: tuple[list[int], list[int]]) -> None:
    a, b = sample
    value = psi.psi_of_counts(a, b)
    equal = all(
        math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-15)
        for x, y in zip(psi.shares(a), psi.shares(b), strict=True)
    )
    if equal:
        assert value == pytest.approx(0.0, abs=1e-12)
    else:
        assert value > 0.0
    assert psi.psi_of_counts(a, [c * 7 for c in a]) == pytest.approx(0.0, abs=1e-12)


@given(two_samples())
def test_smoothing_bounds_every_value(sample: tuple[list[int], list[int]]) -> None:
    a, b = sample
    # each smoothed share is >= epsilon / (1 + k epsilon), so every log ratio is bounded
    bound = 2 * math.log((1 + psi.EPSILON) / psi.EPSILON)
    assert psi.psi_of_counts(a, b) <= bound
