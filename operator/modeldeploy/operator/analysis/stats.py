"""Exact one-sided tests on request counts, in pure Python (math.lgamma; no scipy at run time).

A low-traffic canary must not fail on one unlucky request, so a count-based metric (error ratio,
shadow disagreement, requests slower than the latency objective) fails only when a one-sided test
says the true proportion exceeds its limit at the configured confidence:

- against an absolute limit `p0`: the exact binomial test, p = P(X >= x) for X ~ Binomial(n, p0);
- against stable with margin `delta = 0`: Fisher's exact test (one-sided, conditional on the total
  number of errors), p = P(X >= x1) for the hypergeometric X;
- against stable with margin `delta > 0` (H0: p_canary <= p_stable + delta): no exact conditional
  test exists for a non-zero difference, so stable's rate is bounded first (Clopper-Pearson upper
  bound at confidence 1 - gamma, gamma = alpha / 10) and the canary is tested binomially against
  that bound + delta; by Berger and Boos (1994) the p-value `P(X >= x1) + gamma` is valid at any
  sample size. It is never reported below Fisher's p-value for delta = 0, so the p-value never
  decreases as delta grows.

All p-values are exact up to floating point; zero counts are handled (0 of n errors never fails; 0
requests gives p = 1).

For input drift (`drift`), Pearson's chi-square test of homogeneity on the two revisions' counts per
histogram bucket tells whether their input distributions differ beyond sampling noise (asymptotic:
the chi-square distribution via the regularized incomplete gamma function).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

STABLE_BOUND_SHARE = 0.1
"""Share gamma/alpha of the error budget spent on bounding stable's rate in the margin test."""

_EPS = 1e-15
_TINY = 1e-300


def p_text(p: float) -> str:
    """ "p=0.031", "p=1.5e-35"; below 1e-300 (or underflowed to 0): "p<1e-300", never "p=0"."""
    if p < 1e-300:
        return "p<1e-300"
    return f"p={p:.2g}"


def _check_counts(x: int, n: int, what: str = "count") -> None:
    if n < 0 or x < 0 or x > n:
        raise ValueError(f"{what}: need 0 <= successes <= trials, got {x} of {n}")


def _check_probability(p: float, name: str = "p") -> None:
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ValueError(f"{name} must be within [0, 1], got {p}")


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz), for x < (a+1)/(a+b+2)."""
    max_iterations = 200 + 20 * math.isqrt(int(max(a, b)) + 1)
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, max_iterations + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the regularized incomplete beta function (a, b > 0, 0 <= x <= 1)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"a and b must be positive, got a={a}, b={b}")
    _check_probability(x, "x")
    if x == 0.0:
        return 0.0
    if x == 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return min(1.0, math.exp(log_front) * _beta_continued_fraction(a, b, x) / a)
    return max(0.0, 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b)


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-sided p-value of k successes when p is the limit."""
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    _check_probability(p)
    if k <= 0:
        return 1.0
    if k > n or p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    return regularized_beta(p, k, n - k + 1)


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    _check_probability(p)
    if k < 0:
        return 0.0
    if k >= n or p == 0.0:
        return 1.0
    if p == 1.0:
        return 0.0
    return regularized_beta(1.0 - p, n - k, k + 1)


def _solve_decreasing(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """The p in [lo, hi] where the decreasing function f(p) crosses `target` (bisection)."""
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if mid in (lo, hi):
            break
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


def upper_confidence_bound(x: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound of a proportion seen as x of n (1.0 when n is 0)."""
    _check_counts(x, n)
    _check_probability(confidence, "confidence")
    if n == 0 or x == n:
        return 1.0
    return _solve_decreasing(lambda p: binomial_cdf(x, n, p), 1.0 - confidence, x / n, 1.0)


def lower_confidence_bound(x: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson lower bound of a proportion seen as x of n (0.0 when x is 0)."""
    _check_counts(x, n)
    _check_probability(confidence, "confidence")
    if x == 0:
        return 0.0
    # binomial_sf(x, n, p) increases with p: solve 1 - sf (decreasing) = confidence.
    return _solve_decreasing(lambda p: 1.0 - binomial_sf(x, n, p), confidence, 0.0, x / n)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(x1: int, n1: int, x2: int, n2: int) -> float:
    """One-sided Fisher exact p-value that proportion 1 (x1 of n1) exceeds proportion 2 (x2 of n2).

    P(X >= x1) for X hypergeometric: n1 draws from n1 + n2 items of which x1 + x2 are "errors".
    """
    _check_counts(x1, n1, "first sample")
    _check_counts(x2, n2, "second sample")
    total, errors = n1 + n2, x1 + x2
    lo, hi = max(0, n1 - (total - errors)), min(n1, errors)
    if x1 <= lo:
        return 1.0
    log_denominator = _log_choose(total, n1)

    def pmf(k: int) -> float:
        return math.exp(_log_choose(errors, k) + _log_choose(total - errors, n1 - k) - log_denominator)

    mode = (n1 + 1) * (errors + 1) // (total + 2)
    if x1 > mode:  # upper tail: terms shrink as k grows
        upper = 0.0
        for k in range(x1, hi + 1):
            term = pmf(k)
            upper += term
            if term < upper * 1e-17:
                break
        return min(1.0, upper)
    lower = 0.0  # P(X <= x1 - 1): terms shrink as k falls below the mode
    for k in range(x1 - 1, lo - 1, -1):
        term = pmf(k)
        lower += term
        if term < lower * 1e-17:
            break
    return min(1.0, max(0.0, 1.0 - lower))


def binomial_test_greater(x: int, n: int, limit: float) -> float:
    """p-value of H0: proportion <= limit against H1: proportion > limit, seeing x of n."""
    _check_counts(x, n)
    _check_probability(limit, "limit")
    return binomial_sf(x, n, limit)


def difference_test_greater(x1: int, n1: int, x2: int, n2: int, delta: float, alpha: float) -> float:
    """p-value of H0: p1 <= p2 + delta against H1: p1 > p2 + delta (see the module docstring).

    `alpha` (1 - confidence) sets the share of the error budget spent on bounding p2 when delta > 0.
    """
    _check_counts(x1, n1, "canary")
    _check_counts(x2, n2, "stable")
    _check_probability(delta, "delta")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    fisher = fisher_greater(x1, n1, x2, n2)
    if delta == 0.0:
        return fisher
    gamma = alpha * STABLE_BOUND_SHARE
    reference = min(1.0, upper_confidence_bound(x2, n2, 1.0 - gamma) + delta)
    return min(1.0, max(fisher, binomial_sf(x1, n1, reference) + gamma))


def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a), the regularized upper incomplete gamma function (a > 0, x >= 0)."""
    if a <= 0 or x < 0 or math.isnan(x):
        raise ValueError(f"need a > 0 and x >= 0, got a={a}, x={x}")
    if x == 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    max_iterations = 500 + 20 * math.isqrt(int(a) + 1)
    if x < a + 1.0:  # series for P(a, x)
        term = total = 1.0 / a
        denominator = a
        for _ in range(max_iterations):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPS:
                return min(1.0, max(0.0, 1.0 - total * math.exp(log_front)))
        raise ArithmeticError(f"incomplete gamma series did not converge for a={a}, x={x}")
    # continued fraction for Q(a, x) (modified Lentz)
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, max_iterations + 1):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = d if abs(d) > _TINY else _TINY
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return min(1.0, max(0.0, math.exp(log_front) * h))
    raise ArithmeticError(f"incomplete gamma fraction did not converge for a={a}, x={x}")


def chi_square_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for X ~ chi-square with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    return regularized_gamma_q(df / 2.0, max(0.0, statistic) / 2.0)


def chi_square_homogeneity(first: Sequence[float], second: Sequence[float]) -> tuple[float, int, float]:
    """Pearson's chi-square test that two samples of counts per category share one distribution.

    Returns (statistic, degrees of freedom, p-value). Categories empty in both samples are left out;
    with fewer than two categories left, or an empty sample, there is nothing to test: (0, 0, 1.0).
    Counts may be fractional (Prometheus' increase() extrapolates).
    """
    if len(first) != len(second):
        raise ValueError(f"samples need the same categories, got {len(first)} and {len(second)}")
    if any(c < 0 or math.isnan(c) for c in (*first, *second)):
        raise ValueError("counts must not be negative or NaN")
    columns = [(a, b) for a, b in zip(first, second, strict=True) if a + b > 0]
    n1, n2 = sum(a for a, _ in columns), sum(b for _, b in columns)
    if len(columns) < 2 or n1 <= 0 or n2 <= 0:
        return 0.0, 0, 1.0
    total = n1 + n2
    statistic = 0.0
    for a, b in columns:
        column = a + b
        e1, e2 = n1 * column / total, n2 * column / total
        statistic += (a - e1) ** 2 / e1 + (b - e2) ** 2 / e2
    df = len(columns) - 1
    return statistic, df, chi_square_sf(statistic, df)
