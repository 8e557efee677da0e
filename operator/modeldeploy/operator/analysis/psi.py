"""Population stability index (PSI) of two histograms (pure functions: numbers in, numbers out).

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

over the buckets i, where e_i and a_i are the shares of the expected (stable) and actual (canary)
observations in bucket i. Every term is >= 0 (both factors have the same sign), the sum is symmetric
in the two samples (it is the Jeffreys divergence, KL(a||e) + KL(e||a)) and 0 exactly when the shares
are equal.

A share of 0 would make a term infinite, so both sides are smoothed additively before the sum:
q_i = (p_i + EPSILON) / (1 + k * EPSILON) for k buckets. The smoothed shares still sum to 1, equal
shares stay equal (PSI 0 iff the raw shares are equal), and a bucket that is empty on one side and
holds share p on the other contributes about p * ln(p / EPSILON): 0.69 for p = 10%, 0.17 for p = 2%.

Prometheus histograms are cumulative (`le` = "at most this value", `+Inf` = every observation); the
per-bucket counts are the differences of consecutive cumulative counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

EPSILON = 1e-4
"""Additive smoothing of bucket shares (the 0.0001 most PSI write-ups use for empty buckets)."""


def shared_bounds(*histograms: Mapping[float, float]) -> tuple[float, ...]:
    """The `le` bounds present in every histogram, ascending (`+Inf` last when all have it).

    Both revisions normally report the same bounds (one routing table); if they do not (the buckets
    were changed during the window), the bounds they share still define valid, coarser buckets.
    """
    if not histograms:
        return ()
    common = set(histograms[0])
    for histogram in histograms[1:]:
        common &= set(histogram)
    return tuple(sorted(b for b in common if not math.isnan(b)))


def bucket_counts(cumulative: Mapping[float, float], bounds: Sequence[float]) -> tuple[float, ...]:
    """Observations per bucket `(bounds[i-1], bounds[i]]` from cumulative counts at `bounds`.

    `bounds` must be ascending and present in `cumulative`. increase() extrapolates each bucket
    series separately, so a cumulative count can come out slightly below the previous one: such a
    difference is counted as 0, never negative. NaN counts (no samples) count as 0.
    """
    counts: list[float] = []
    previous = 0.0
    for bound in bounds:
        value = cumulative[bound]
        value = 0.0 if math.isnan(value) else value
        counts.append(max(0.0, value - previous))
        previous = max(previous, value)
    return tuple(counts)


def shares(counts: Iterable[float]) -> tuple[float, ...]:
    """Each count's share of the total; all zeros when the total is 0."""
    values = tuple(counts)
    if any(c < 0 or math.isnan(c) for c in values):
        raise ValueError(f"counts must not be negative or NaN, got {list(values)}")
    total = sum(values)
    return tuple(c / total if total > 0 else 0.0 for c in values)


def smoothed(proportions: Sequence[float], epsilon: float = EPSILON) -> tuple[float, ...]:
    """(p_i + epsilon) / (1 + k * epsilon): no share is 0, and the shares still sum to 1."""
    scale = 1.0 + len(proportions) * epsilon
    return tuple((p + epsilon) / scale for p in proportions)


def population_stability_index(
    expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON
) -> float:
    """PSI of two distributions given as bucket shares (each summing to 1) over the same buckets."""
    if len(expected) != len(actual):
        raise ValueError(f"both sides need the same buckets, got {len(expected)} and {len(actual)}")
    if not expected:
        raise ValueError("PSI needs at least one bucket")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    for side, values in (("expected", expected), ("actual", actual)):
        if any(p < 0 or math.isnan(p) for p in values) or not math.isclose(sum(values), 1.0, abs_tol=1e-9):
            raise ValueError(f"{side} shares must be non-negative and sum to 1, got {list(values)}")
    e, a = smoothed(expected, epsilon), smoothed(actual, epsilon)
    return math.fsum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True))


def psi_of_counts(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """PSI of two samples given as counts per bucket (each sample must have observations)."""
    if sum(expected) <= 0 or sum(actual) <= 0:
        raise ValueError("PSI needs observations on both sides")
    return population_stability_index(shares(expected), shares(actual), epsilon)
