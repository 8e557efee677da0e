"""Exact binomial acceptance intervals for tests of sampled behaviour (no normal approximation)."""

from __future__ import annotations

import math


def binomial_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0 if k == 0 else 0.0
    if p >= 1.0:
        return 1.0 if k == n else 0.0
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return math.exp(log_choose + k * math.log(p) + (n - k) * math.log1p(-p))


def binomial_interval(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """[low, high] holding Binomial(n, p) with probability >= `confidence`, equal-tailed.

    `low` is the largest k with P(X < k) <= (1 - confidence) / 2, `high` the smallest k with
    P(X > k) <= (1 - confidence) / 2; a correct sampler falls outside with probability at most
    1 - confidence.
    """
    if n < 0 or not 0.0 <= p <= 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need n >= 0, 0 <= p <= 1, 0 < confidence < 1; got {n}, {p}, {confidence}")
    tail = (1.0 - confidence) / 2.0
    pmf = [binomial_pmf(k, n, p) for k in range(n + 1)]
    below, low = 0.0, 0
    while low < n and below + pmf[low] <= tail:
        below += pmf[low]
        low += 1
    above, high = 0.0, n
    while high > 0 and above + pmf[high] <= tail:
        above += pmf[high]
        high -= 1
    return low, high
