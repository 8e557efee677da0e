"""Anytime-valid (sequential) tests on request counts, in pure Python.

A canary is watched continuously, so its counts are looked at again and again. A fixed-confidence
test repeated at every look inflates the false-alarm rate (the peeking problem); the tests here stay
valid however often they are looked at and whenever the looking stops (Lindon, Sanden, Shirikian,
"Rapid Regression Detection in Software Deployments through Sequential Testing", KDD 2022; Ramdas
et al., "Game-theoretic statistics and safe anytime-valid inference", 2023).

Each test computes an **e-value** E from the counts accumulated since the test started (requests and
errors of each revision, or requests per latency bucket): the ratio of a mixture likelihood (every
rate weighted by a Beta prior fixed in advance) to the best likelihood the null hypothesis allows.
Under any distribution of the null, E is bounded by a non-negative martingale with mean 1, so by
Ville's inequality P(E ever reaches 1/alpha) <= alpha: reject the null the first time E >= 1/alpha,
at any look. The always-valid p-value is min(1, 1/E) (its running minimum is valid too). The
**confidence sequence** of a parameter is the set of values whose point null is not rejected; it
covers the true value at every look at once with probability >= 1 - alpha.

The model: every request of a revision fails independently with that revision's probability (the
Bernoulli model per request). It needs only cumulative counts, so it is unaffected by the traffic
split changing between steps and by the order in which Prometheus reveals requests.

- `limit_test`: H0 p <= limit (absolute error-rate limit, share of slow requests, disagreements);
- `difference_test`: H0 p_new <= p_stable + delta (error rate against stable with an allowed margin),
  with a confidence sequence for the rate ratio p_new / p_stable;
- `safety_test`: H0 p_new >= p_stable + tolerance: rejecting it shows "no regression beyond the
  tolerance" (the decision that may promote);
- `latency_shift_test`: binned latencies (cumulative histogram buckets) of the new revision against
  stable's. H0: at every bucket bound the share of the new revision's requests slower than the bound
  is at most stable's share plus delta (the new revision is not stochastically slower). The e-value
  is the mean of the per-bound `difference_test` e-values, itself an e-value (a mixture of
  test martingales is one), so no bound needs its own alpha.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

JEFFREYS = (0.5, 0.5)
"""Beta prior of every rate in the mixture: Jeffreys' prior, which puts more weight near 0 and 1 than
the uniform prior (error rates are usually small), and is fixed in advance, as validity requires."""

_BISECTION_STEPS = 64


@dataclass(frozen=True, slots=True)
class Counts:
    """`hits` (errors, slow requests, disagreements) among `total` requests, accumulated since the start."""

    hits: int
    total: int

    def __post_init__(self) -> None:
        if self.total < 0 or self.hits < 0 or self.hits > self.total:
            raise ValueError(f"need 0 <= hits <= total, got {self.hits} of {self.total}")

    @property
    def rate(self) -> float | None:
        return self.hits / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a sequential test concluded so far.

    `log_e`: natural log of the e-value against the null (log(1/alpha) or more rejects it);
    `estimate`: the point estimate of the tested quantity (None when nothing was seen);
    `lower`, `upper`: its confidence sequence at the confidence the test was asked for (may be
    0 and infinity when the data say nothing yet).
    """

    log_e: float
    estimate: float | None
    lower: float
    upper: float

    @property
    def e_value(self) -> float:
        return math.exp(min(self.log_e, 709.0))

    @property
    def p_value(self) -> float:
        """The always-valid p-value min(1, 1/E) (0.0 once it underflows; `stats.p_text` prints it)."""
        return math.exp(-max(self.log_e, 0.0))

    def rejects(self, confidence: float) -> bool:
        return self.log_e >= threshold(confidence)


def threshold(confidence: float) -> float:
    """log(1/alpha): the log e-value at which the null is rejected."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return -math.log1p(-confidence)


def _xlogy(x: float, y: float) -> float:
    """x * log(y) with 0 * log(0) = 0."""
    if x == 0:
        return 0.0
    return x * math.log(y) if y > 0 else -math.inf


def log_likelihood(counts: Counts, p: float) -> float:
    """Log-likelihood of `counts` under rate p (without the binomial coefficient, which cancels)."""
    return _xlogy(counts.hits, p) + _xlogy(counts.total - counts.hits, 1.0 - p)


def log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def log_mixture(counts: Counts, prior: tuple[float, float] = JEFFREYS) -> float:
    """log of the likelihood averaged over the rate's Beta(a, b) prior (beta-binomial, no coefficient)."""
    a, b = prior
    return log_beta(a + counts.hits, b + counts.total - counts.hits) - log_beta(a, b)


def _mle(counts: Counts) -> float:
    return counts.hits / counts.total if counts.total else 0.0


def _shifted_profile(new: Counts, stable: Counts, delta: float) -> float:
    """max over p of log L(new | p + delta) + log L(stable | p), p in [0, 1 - delta]."""
    if delta == 0.0:
        pooled = Counts(new.hits + stable.hits, new.total + stable.total)
        return log_likelihood(pooled, _mle(pooled))
    new_misses, stable_misses = new.total - new.hits, stable.total - stable.hits

    def slope(p: float) -> float:  # derivative of the concave profile inside (0, 1 - delta); decreasing
        q = p + delta
        total = new.hits / q + (stable.hits / p if stable.hits else 0.0)
        if new_misses:
            total -= new_misses / (1.0 - q) if q < 1.0 else math.inf
        if stable_misses:
            total -= stable_misses / (1.0 - p)
        return total

    def profile(p: float) -> float:
        return log_likelihood(new, min(1.0, p + delta)) + log_likelihood(stable, p)

    lo, hi = 0.0, 1.0 - delta
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2.0
        if mid in (lo, hi):
            break
        if slope(mid) > 0:
            lo = mid
        else:
            hi = mid
    # the maximum is at the root of the slope, or at an end of the interval when there is none
    return max(profile(0.0), profile((lo + hi) / 2.0), profile(1.0 - delta))


def _ratio_profile(new: Counts, stable: Counts, ratio: float) -> float:
    """max over p of log L(new | ratio * p) + log L(stable | p), with ratio * p <= 1 (closed form)."""
    s = new.hits + stable.hits
    if s == 0:
        return 0.0  # p = 0: every request succeeded on both sides
    n = new.total + stable.total
    b = ratio * new.total + stable.total + new.hits + ratio * stable.hits
    p = 2.0 * s / (b + math.sqrt(max(0.0, b * b - 4.0 * ratio * n * s)))
    p = min(p, 1.0, 1.0 / ratio)
    return log_likelihood(new, min(1.0, ratio * p)) + log_likelihood(stable, p)


def _crossing(f: Callable[[float], float], level: float, inside: float, outside: float) -> float:
    """The point between `inside` (f < level) and `outside` (f >= level) where f crosses `level`."""
    for _ in range(_BISECTION_STEPS):
        mid = (inside + outside) / 2.0
        if mid in (inside, outside):
            break
        if f(mid) < level:
            inside = mid
        else:
            outside = mid
    return inside


def limit_test(
    counts: Counts,
    limit: float,
    confidence: float,
    prior: tuple[float, float] = JEFFREYS,
    *,
    sequence: bool = True,
) -> Evidence:
    """H0: rate <= `limit`. Estimate: the observed rate, with its confidence sequence (or [0, 1]
    without `sequence`)."""
    if not 0.0 <= limit <= 1.0:
        raise ValueError(f"limit must be within [0, 1], got {limit}")
    level = threshold(confidence)
    numerator = log_mixture(counts, prior)
    rate = _mle(counts)
    log_e = numerator - log_likelihood(counts, min(rate, limit))
    if counts.total == 0 or not sequence:
        return Evidence(log_e=log_e, estimate=rate if counts.total else None, lower=0.0, upper=1.0)

    def point(p: float) -> float:
        return numerator - log_likelihood(counts, p)

    lower = 0.0 if point(0.0) < level else _crossing(point, level, rate, 0.0)
    upper = 1.0 if point(1.0) < level else _crossing(point, level, rate, 1.0)
    return Evidence(log_e=log_e, estimate=rate, lower=lower, upper=upper)


def _ratio_sequence(new: Counts, stable: Counts, numerator: float, level: float) -> tuple[float, float]:
    """Confidence sequence for p_new / p_stable: the ratios whose point null is not rejected."""
    if new.total == 0 or stable.total == 0 or new.hits + stable.hits == 0:
        return 0.0, math.inf

    def point(log_ratio: float) -> float:
        return numerator - _ratio_profile(new, stable, math.exp(log_ratio))

    p_new, p_stable = _mle(new), _mle(stable)
    if p_new == 0:
        centre = -30.0
    elif p_stable == 0:
        centre = 30.0
    else:
        centre = math.log(p_new / p_stable)
    if point(centre) >= level:  # numerically at the edge of the range: nothing sensible to report
        return 0.0, math.inf
    lower = 0.0 if point(-50.0) < level else math.exp(_crossing(point, level, centre, -50.0))
    upper = math.inf if point(50.0) < level else math.exp(_crossing(point, level, centre, 50.0))
    return lower, upper


def difference_test(
    new: Counts,
    stable: Counts,
    delta: float,
    confidence: float,
    prior: tuple[float, float] = JEFFREYS,
    *,
    sequence: bool = True,
) -> Evidence:
    """H0: p_new <= p_stable + `delta`. Estimate: p_new / p_stable with its confidence sequence.

    (The ratio is what a regression "2x" means; the decision itself is on the difference, the form of
    `slo.maxErrorRateDeltaToStable`.) The estimate is None when stable has no errors yet. Without
    `sequence` the confidence sequence (the costly part) is skipped: (0, inf).
    """
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be within [0, 1), got {delta}")
    numerator = log_mixture(new, prior) + log_mixture(stable, prior)
    if _mle(new) <= _mle(stable) + delta:
        denominator = log_likelihood(new, _mle(new)) + log_likelihood(stable, _mle(stable))
    else:
        denominator = _shifted_profile(new, stable, delta)
    p_new, p_stable = _mle(new), _mle(stable)
    estimate = p_new / p_stable if new.total and stable.total and p_stable > 0 else None
    lower, upper = (
        _ratio_sequence(new, stable, numerator, threshold(confidence)) if sequence else (0.0, math.inf)
    )
    return Evidence(log_e=numerator - denominator, estimate=estimate, lower=lower, upper=upper)


def safety_test(
    new: Counts,
    stable: Counts,
    tolerance: float,
    prior: tuple[float, float] = JEFFREYS,
) -> float:
    """log e-value against H0: p_new >= p_stable + `tolerance` (a regression of at least the tolerance).

    Rejecting it (log e >= log(1/alpha)) shows the new revision is not worse than stable by the
    tolerance or more.
    """
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"tolerance must be within (0, 1), got {tolerance}")
    numerator = log_mixture(new, prior) + log_mixture(stable, prior)
    if _mle(new) >= _mle(stable) + tolerance:
        return numerator - (log_likelihood(new, _mle(new)) + log_likelihood(stable, _mle(stable)))
    return numerator - _shifted_profile(new, stable, tolerance)


@dataclass(frozen=True, slots=True)
class LatencyEvidence:
    """The distribution test's result: the e-value and the bound where the new revision looks worst.

    `bound`: that histogram bound (seconds); `new_share`, `stable_share`: the shares of each revision's
    requests slower than it; `new_requests`, `stable_requests`: the totals.
    """

    log_e: float
    bound: float | None
    new_share: float | None
    stable_share: float | None
    new_requests: int
    stable_requests: int

    @property
    def p_value(self) -> float:
        return math.exp(-max(self.log_e, 0.0))

    def rejects(self, confidence: float) -> bool:
        return self.log_e >= threshold(confidence)


def slower_than(buckets: Mapping[float, float]) -> dict[float, Counts]:
    """Cumulative `le` counts (+Inf included) -> per finite bound, Counts(slower than it, total).

    Counts are rounded (Prometheus' increase() extrapolates) and made monotone.
    """
    total = round(max(0.0, buckets.get(math.inf, 0.0)))
    out: dict[float, Counts] = {}
    for bound in sorted(b for b in buckets if math.isfinite(b)):
        within = min(total, round(max(0.0, buckets[bound])))
        out[bound] = Counts(total - within, total)
    return out


def _log_mean_exp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values)) - math.log(len(values))


def latency_shift_test(
    new: Mapping[float, float],
    stable: Mapping[float, float],
    delta: float = 0.0,
    prior: tuple[float, float] = JEFFREYS,
) -> LatencyEvidence:
    """H0: at every bucket bound both revisions report, share(new slower) <= share(stable slower) + delta.

    `new`, `stable`: cumulative counts per `le` bound (seconds, +Inf included), accumulated since the
    test started. Rejecting H0 means the new revision is slower in distribution.
    """
    new_slow, stable_slow = slower_than(new), slower_than(stable)
    bounds = sorted(set(new_slow) & set(stable_slow))
    new_total = round(max(0.0, new.get(math.inf, 0.0)))
    stable_total = round(max(0.0, stable.get(math.inf, 0.0)))
    if not bounds:
        return LatencyEvidence(0.0, None, None, None, new_total, stable_total)
    per_bound: list[float] = []
    for bound in bounds:
        a, b = new_slow[bound], stable_slow[bound]
        numerator = log_mixture(a, prior) + log_mixture(b, prior)
        if _mle(a) <= _mle(b) + delta:
            denominator = log_likelihood(a, _mle(a)) + log_likelihood(b, _mle(b))
        else:
            denominator = _shifted_profile(a, b, delta)
        per_bound.append(numerator - denominator)
    worst = max(range(len(bounds)), key=per_bound.__getitem__)
    bound = bounds[worst]
    return LatencyEvidence(
        log_e=_log_mean_exp(per_bound),
        bound=bound,
        new_share=new_slow[bound].rate,
        stable_share=stable_slow[bound].rate,
        new_requests=new_total,
        stable_requests=stable_total,
    )


def latency_safety_test(
    new: Mapping[float, float],
    stable: Mapping[float, float],
    tolerance: float,
    prior: tuple[float, float] = JEFFREYS,
) -> float:
    """log e-value against "at some bound the new revision's slow share exceeds stable's by >= tolerance".

    That null is a union over the bounds, so it is rejected when every bound's own null is
    (intersection-union test): the result is the smallest per-bound log e-value (-inf without bounds).
    """
    new_slow, stable_slow = slower_than(new), slower_than(stable)
    bounds = sorted(set(new_slow) & set(stable_slow))
    if not bounds:
        return -math.inf
    return min(safety_test(new_slow[b], stable_slow[b], tolerance, prior) for b in bounds)
