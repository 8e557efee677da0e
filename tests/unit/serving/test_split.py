"""Properties of the canary split and shadow sampling (modeldeploy.serving.split)."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from modeldeploy.serving.split import below_percent, choose_canary, choose_shadow, sticky_point

weights = st.floats(min_value=0, max_value=100, allow_nan=False)
keys = st.text(min_size=0, max_size=40)


@given(keys)
def test_sticky_point_is_in_unit_interval_and_stable(key: str) -> None:
    point = sticky_point(key)
    assert 0.0 <= point < 1.0
    assert sticky_point(key) == point


@given(key=keys, weight=weights, seed=st.integers())
def test_sticky_key_ignores_randomness(key: str, weight: float, seed: int) -> None:
    first = choose_canary(weight, key, random.Random(seed))
    assert all(choose_canary(weight, key, random.Random(seed + i)) == first for i in range(1, 5))


@given(key=keys, low=weights, high=weights)
def test_sticky_canary_is_monotone_in_weight(key: str, low: float, high: float) -> None:
    """A key on the canary stays on the canary when the weight grows (no flapping on step-up)."""
    low, high = min(low, high), max(low, high)
    if choose_canary(low, key, random.Random(0)):
        assert choose_canary(high, key, random.Random(0))


@given(key=st.one_of(st.none(), keys), seed=st.integers())
def test_weight_bounds_are_absolute(key: str | None, seed: int) -> None:
    rng = random.Random(seed)
    assert choose_canary(0, key, rng) is False
    assert choose_canary(100, key, rng) is True
    assert choose_shadow(0, rng) is False
    assert choose_shadow(100, rng) is True


@given(point=st.floats(min_value=0, max_value=1, exclude_max=True), percent=weights)
def test_below_percent_is_the_interval_test(point: float, percent: float) -> None:
    assert below_percent(point, percent) == (point * 100 < percent)


def _within_binomial(hits: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(hits - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


@settings(max_examples=25, deadline=None)
@given(weight=st.floats(min_value=0.5, max_value=99.5), seed=st.integers())
def test_random_split_matches_weight_in_expectation(weight: float, seed: int) -> None:
    rng = random.Random(seed)
    n = 20_000
    hits = sum(choose_canary(weight, None, rng) for _ in range(n))
    assert _within_binomial(hits, n, weight / 100)


@settings(max_examples=25, deadline=None)
@given(percent=st.floats(min_value=0.5, max_value=99.5), seed=st.integers())
def test_shadow_sampling_matches_percent_in_expectation(percent: float, seed: int) -> None:
    rng = random.Random(seed)
    n = 20_000
    hits = sum(choose_shadow(percent, rng) for _ in range(n))
    assert _within_binomial(hits, n, percent / 100)


@settings(max_examples=10, deadline=None)
@given(weight=st.floats(min_value=1, max_value=99), prefix=st.text(max_size=8))
def test_sticky_keys_spread_like_the_weight(weight: float, prefix: str) -> None:
    """Over many distinct keys the sticky split is as fair as the random one."""
    n = 20_000
    hits = sum(choose_canary(weight, f"{prefix}user-{i}", random.Random(0)) for i in range(n))
    assert _within_binomial(hits, n, weight / 100)
