"""Per-metric judgement of measured numbers (pure: numbers in, `MetricVerdict` out).

Rules shared by the count-based metrics (error rate, error rate against stable, p99 latency via the
requests slower than the objective, shadow agreement):

1. fewer than `minRequests` requests in the window (or no data at all): inconclusive;
2. a one-sided exact test (see `stats`) shows the limit is exceeded at `confidence`: fail;
3. the measured value is over the limit but the test is not significant: inconclusive (the evidence
   does not say "fail" yet; a low-traffic canary waits for more requests instead of being rolled back
   on one unlucky request);
4. otherwise: pass.

The p99 latency ratio to stable and custom metrics are compared directly with their thresholds
(no count-based test applies); empty or NaN results are inconclusive.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from modeldeploy.operator.analysis import stats
from modeldeploy.operator.analysis.results import MetricVerdict, Verdict
from modeldeploy.operator.analysis.stats import p_text

ERROR_RATE = "errorRate"
ERROR_RATE_DELTA = "errorRateDeltaToStable"
LATENCY_P99 = "latencyP99"
LATENCY_RATIO = "latencyP99RatioToStable"
SHADOW_AGREEMENT = "shadowAgreement"
GUARD_TRIPPED = "guardTripped"
BUILTIN_METRICS = (ERROR_RATE, ERROR_RATE_DELTA, LATENCY_P99, LATENCY_RATIO, SHADOW_AGREEMENT)

P99_SLOW_SHARE = 0.01
"""p99 <= limit means at most 1% of requests are slower than the limit."""


@dataclass(frozen=True, slots=True)
class Counts:
    """`hits` (errors, disagreements, slow requests) out of `total`, as Prometheus' increase() gave them.

    increase() extrapolates to the window's edges, so the numbers are not whole; the tests use them
    rounded (`hit_count`, `total_count`).
    """

    hits: float
    total: float

    @property
    def total_count(self) -> int:
        return max(0, round(self.total))

    @property
    def hit_count(self) -> int:
        return min(self.total_count, max(0, round(self.hits)))

    @property
    def ratio(self) -> float | None:
        return self.hits / self.total if self.total > 0 else None


@dataclass(frozen=True, slots=True)
class Judge:
    """The analysis settings every judgement needs."""

    min_requests: int
    confidence: float
    window: str  # e.g. "30s", for messages

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    def few_requests(self, total: int, who: str = "", what: str = "served") -> str | None:
        """None when `total` is enough for a verdict, else why not (e.g. "served only 12 requests ...")."""
        if total >= self.min_requests and total > 0:
            return None
        subject = f"{who} {what}" if who else what
        return f"{subject} only {total} requests in {self.window} (minRequests {self.min_requests})"


def percent(value: float) -> str:
    """0.3 -> "30%", 0.0123 -> "1.23%", 0.0001 -> "0.01%"."""
    scaled = value * 100
    if scaled == 0 or abs(scaled) >= 10:
        return f"{scaled:.1f}%".replace(".0%", "%")
    return f"{scaled:.3g}%"


def seconds_text(value: float) -> str:
    """0.412 -> "412ms", 1.5 -> "1.5s", 0.0004 -> "0.4ms"."""
    if value < 1:
        return f"{value * 1000:.3g}ms"
    return f"{value:.3g}s"


def _verdict(
    metric: str,
    verdict: Verdict,
    value: float | None,
    threshold: float | None,
    query: str,
    message: str,
    requests: float | None = None,
) -> MetricVerdict:
    return MetricVerdict(
        metric=metric,
        verdict=verdict,
        value=value,
        threshold=threshold,
        query=query,
        message=message,
        requests=requests,
    )


def inconclusive(metric: str, threshold: float | None, query: str, message: str) -> MetricVerdict:
    """A metric that could not be judged (Prometheus unreachable, bad query, no data)."""
    return _verdict(metric, Verdict.INCONCLUSIVE, None, threshold, query, message)


def _confidence_text(judge: Judge) -> str:
    return f"{judge.confidence * 100:g}%"


def judge_error_rate(counts: Counts, limit: float, judge: Judge, query: str) -> MetricVerdict:
    """Errors / requests of the revision under test against the absolute `slo.errorRate`."""
    low = judge.few_requests(counts.total_count)
    if low:
        return _verdict(
            ERROR_RATE,
            Verdict.INCONCLUSIVE,
            counts.ratio,
            limit,
            query,
            f"error rate: {low}",
            requests=counts.total,
        )
    x, n = counts.hit_count, counts.total_count
    ratio = counts.ratio or 0.0
    seen = f"error rate {percent(ratio)} ({x} of {n} requests)"
    p = stats.binomial_test_greater(x, n, limit)
    if p < judge.alpha:
        message = f"{seen} > {percent(limit)}, significant at {_confidence_text(judge)} ({p_text(p)})"
        return _verdict(ERROR_RATE, Verdict.FAIL, ratio, limit, query, message, requests=counts.total)
    if ratio > limit:
        message = (
            f"{seen} > {percent(limit)} but not significant at {_confidence_text(judge)} "
            f"({p_text(p)}); waiting for more requests"
        )
        return _verdict(ERROR_RATE, Verdict.INCONCLUSIVE, ratio, limit, query, message, requests=counts.total)
    return _verdict(
        ERROR_RATE, Verdict.PASS, ratio, limit, query, f"{seen} <= {percent(limit)}", requests=counts.total
    )


def judge_error_rate_delta(
    canary: Counts, stable: Counts, delta: float, judge: Judge, query: str
) -> MetricVerdict:
    """Canary error rate minus stable's over the same window against `slo.maxErrorRateDeltaToStable`."""
    low = judge.few_requests(canary.total_count) or judge.few_requests(stable.total_count, "stable")
    c_ratio, s_ratio = canary.ratio, stable.ratio
    difference = c_ratio - s_ratio if c_ratio is not None and s_ratio is not None else None
    if low:
        return _verdict(
            ERROR_RATE_DELTA,
            Verdict.INCONCLUSIVE,
            difference,
            delta,
            query,
            f"error rate vs stable: {low}",
            requests=canary.total,
        )
    assert c_ratio is not None and s_ratio is not None and difference is not None
    x1, n1, x2, n2 = canary.hit_count, canary.total_count, stable.hit_count, stable.total_count
    seen = (
        f"error rate {percent(c_ratio)} ({x1} of {n1}) vs stable {percent(s_ratio)} ({x2} of {n2}): "
        f"{'+' if difference >= 0 else '-'}{percent(abs(difference))}"
    )
    allowed = f"allowed +{percent(delta)}"
    p = stats.difference_test_greater(x1, n1, x2, n2, delta, judge.alpha)
    if p < judge.alpha:
        message = f"{seen} > {allowed}, significant at {_confidence_text(judge)} ({p_text(p)})"
        return _verdict(
            ERROR_RATE_DELTA, Verdict.FAIL, difference, delta, query, message, requests=canary.total
        )
    if difference > delta:
        message = (
            f"{seen} > {allowed} but not significant at {_confidence_text(judge)} ({p_text(p)}); "
            "waiting for more requests"
        )
        return _verdict(
            ERROR_RATE_DELTA, Verdict.INCONCLUSIVE, difference, delta, query, message, requests=canary.total
        )
    return _verdict(
        ERROR_RATE_DELTA,
        Verdict.PASS,
        difference,
        delta,
        query,
        f"{seen} <= {allowed}",
        requests=canary.total,
    )


def slow_requests(buckets: Mapping[float, float], limit: float) -> tuple[float, Counts] | None:
    """Requests slower than the smallest bucket bound >= `limit`: (that bound, Counts(slow, total)).

    `buckets` maps each `le` bound (seconds, +Inf included) to its cumulative count. Requests above a
    bound that is >= the limit are certainly slower than the limit, so the count never overstates.
    None when there is no finite bound >= limit or no +Inf bucket.
    """
    total = buckets.get(math.inf)
    finite = sorted(b for b in buckets if math.isfinite(b) and b >= limit * (1 - 1e-9))
    if total is None or not finite:
        return None
    bound = finite[0]
    return bound, Counts(hits=max(0.0, total - buckets[bound]), total=total)


def judge_latency_p99(
    p99: float | None,
    buckets: Mapping[float, float],
    limit: float,
    judge: Judge,
    query: str,
) -> MetricVerdict:
    """p99 latency (seconds) of the revision under test against `slo.latencyP99`.

    Fails only when significantly more than 1% of requests were slower than the limit (counted from
    the histogram buckets); a p99 over the limit without that evidence is inconclusive.
    """
    total = max(0, round(buckets.get(math.inf, 0.0)))
    low = judge.few_requests(total)
    value = None if p99 is None or math.isnan(p99) else p99
    if low:
        return _verdict(
            LATENCY_P99, Verdict.INCONCLUSIVE, value, limit, query, f"p99 latency: {low}", requests=total
        )
    if value is None:
        return inconclusive(LATENCY_P99, limit, query, "p99 latency: no histogram data (NaN/empty)")
    seen = f"p99 latency {seconds_text(value)}"
    if value <= limit:
        return _verdict(
            LATENCY_P99, Verdict.PASS, value, limit, query, f"{seen} <= {seconds_text(limit)}", requests=total
        )
    slow = slow_requests(buckets, limit)
    if slow is None:  # the limit is beyond the largest bucket: nothing to count, trust the quantile
        message = f"{seen} > {seconds_text(limit)}"
        return _verdict(LATENCY_P99, Verdict.FAIL, value, limit, query, message, requests=total)
    bound, counts = slow
    x, n = counts.hit_count, counts.total_count
    where = seconds_text(bound) if math.isclose(bound, limit) else f"{seconds_text(bound)} (bucket >= limit)"
    evidence = f"{x} of {n} requests slower than {where}"
    p = stats.binomial_test_greater(x, n, P99_SLOW_SHARE)
    if p < judge.alpha:
        message = (
            f"{seen} > {seconds_text(limit)}: {evidence}, significant at {_confidence_text(judge)} "
            f"({p_text(p)})"
        )
        return _verdict(LATENCY_P99, Verdict.FAIL, value, limit, query, message, requests=total)
    message = (
        f"{seen} > {seconds_text(limit)} but only {evidence}: not significant at "
        f"{_confidence_text(judge)} ({p_text(p)}); waiting for more requests"
    )
    return _verdict(LATENCY_P99, Verdict.INCONCLUSIVE, value, limit, query, message, requests=total)


def judge_latency_ratio(
    canary_p99: float | None,
    stable_p99: float | None,
    canary_requests: float,
    stable_requests: float,
    max_ratio: float,
    judge: Judge,
    query: str,
) -> MetricVerdict:
    """Canary p99 / stable p99 over the same window against `slo.maxLatencyRatioToStable`."""
    low = judge.few_requests(max(0, round(canary_requests))) or judge.few_requests(
        max(0, round(stable_requests)), "stable"
    )
    if low:
        return inconclusive(LATENCY_RATIO, max_ratio, query, f"p99 latency ratio to stable: {low}")
    if canary_p99 is None or stable_p99 is None or math.isnan(canary_p99) or math.isnan(stable_p99):
        return inconclusive(
            LATENCY_RATIO, max_ratio, query, "p99 latency ratio to stable: no histogram data (NaN/empty)"
        )
    if stable_p99 <= 0:
        return inconclusive(LATENCY_RATIO, max_ratio, query, "p99 latency ratio to stable: stable p99 is 0")
    ratio = canary_p99 / stable_p99
    seen = f"p99 latency {seconds_text(canary_p99)} vs stable {seconds_text(stable_p99)}: ratio {ratio:.3g}"
    if ratio > max_ratio:
        return _verdict(
            LATENCY_RATIO,
            Verdict.FAIL,
            ratio,
            max_ratio,
            query,
            f"{seen} > {max_ratio:g}",
            requests=canary_requests,
        )
    return _verdict(
        LATENCY_RATIO,
        Verdict.PASS,
        ratio,
        max_ratio,
        query,
        f"{seen} <= {max_ratio:g}",
        requests=canary_requests,
    )


def judge_shadow_agreement(
    matched: float, compared: float, minimum: float, judge: Judge, query: str
) -> MetricVerdict:
    """Share of compared shadow copies whose response matched stable's, against `shadowAgreementMin`."""
    counts = Counts(hits=max(0.0, compared - matched), total=compared)  # hits = disagreements
    agreement = matched / compared if compared > 0 else None
    low = judge.few_requests(counts.total_count, what="compared")
    if low:
        message = f"shadow agreement: {low}"
        return _verdict(
            SHADOW_AGREEMENT, Verdict.INCONCLUSIVE, agreement, minimum, query, message, requests=compared
        )
    assert agreement is not None
    n = counts.total_count
    seen = f"shadow agreement {percent(agreement)} ({n - counts.hit_count} of {n} responses matched)"
    p = stats.binomial_test_greater(counts.hit_count, n, 1.0 - minimum)
    if p < judge.alpha:
        message = f"{seen} < {percent(minimum)}, significant at {_confidence_text(judge)} ({p_text(p)})"
        return _verdict(SHADOW_AGREEMENT, Verdict.FAIL, agreement, minimum, query, message, requests=compared)
    if agreement < minimum:
        message = (
            f"{seen} < {percent(minimum)} but not significant at {_confidence_text(judge)} "
            f"({p_text(p)}); waiting for more requests"
        )
        return _verdict(
            SHADOW_AGREEMENT, Verdict.INCONCLUSIVE, agreement, minimum, query, message, requests=compared
        )
    message = f"{seen} >= {percent(minimum)}"
    return _verdict(SHADOW_AGREEMENT, Verdict.PASS, agreement, minimum, query, message, requests=compared)


def judge_guard(value: float | None, revision: str, query: str) -> MetricVerdict:
    """The sidecars' fast guard is evidence by itself: it trips only after enough failed forwards.

    No series (no stable sidecar scraped yet) is no evidence either way, so it passes; any other
    metric still needs its own data. A tripped guard also starves the canary of traffic, which
    would otherwise only look like "too few requests" forever.
    """
    if value is None or math.isnan(value) or value < 1:
        return _verdict(
            GUARD_TRIPPED,
            Verdict.PASS,
            value if value is not None and not math.isnan(value) else None,
            1.0,
            query,
            "fast guard not tripped",
        )
    return _verdict(
        GUARD_TRIPPED,
        Verdict.FAIL,
        value,
        1.0,
        query,
        f"fast guard tripped: the sidecars stopped forwarding to {revision} after too many failed requests",
    )


_LE_MATCHER = re.compile(r'\ble\s*=\s*"([^"]*)"')


def bucket_selector_hint(query: str) -> str:
    """Why a histogram query may match nothing: `le="1"` where the series say `le="1.0"`.

    Bucket bounds are label strings: the sidecar (Python client) writes whole numbers as "1.0", and
    Prometheus 3 normalises every `le` to that form, so `le="1"` matches no series. "" when no
    `le="..."` matcher in `query` is a whole number written without ".0".
    """
    hints = []
    for written in _LE_MATCHER.findall(query):
        if written.isdigit():
            hints.append(f'le="{written}" matches no bucket: bounds are written le="{int(written)}.0"')
    return "; ".join(hints)


def with_unit(number: float, unit: str | None, spec: str = ".4g") -> str:
    """A number and its unit in words: "0.41 s", "12%", "3e+09 bytes"."""
    text = format(number, spec)
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def judge_custom(
    name: str,
    value: float | None,
    minimum: float | None,
    maximum: float | None,
    query: str,
    *,
    unit: str | None = None,
    served: float | None = None,
    min_requests: int | None = None,
    window: str = "",
) -> MetricVerdict:
    """A custom metric's single number against its `min` and/or `max`.

    With `min_requests`, fewer than that many canary requests `served` in the window is inconclusive
    (one slow request out of a few hundred must not fail a p99.9). `unit` is printed after the numbers.
    """
    threshold = maximum if maximum is not None else minimum
    if min_requests is not None and (served is None or served < min_requests):
        count = 0 if served is None or math.isnan(served) else round(served)
        why = f"{name}: the canary served only {count} requests in {window} (minRequests {min_requests})"
        return inconclusive(name, threshold, query, why)
    if value is None:
        hint = bucket_selector_hint(query)
        why = f"{name}: empty result (no series)" + (f"; {hint}" if hint else "")
        return inconclusive(name, threshold, query, why)
    if math.isnan(value):
        return inconclusive(name, threshold, query, f"{name}: result is NaN (e.g. 0/0 without traffic)")
    shown = value if math.isfinite(value) else None  # JSON (and so .status) has no infinity
    seen = with_unit(value, unit)
    if maximum is not None and value > maximum:
        message = f"{name} {seen} > max {with_unit(maximum, unit, 'g')}"
        return _verdict(name, Verdict.FAIL, shown, maximum, query, message)
    if minimum is not None and value < minimum:
        message = f"{name} {seen} < min {with_unit(minimum, unit, 'g')}"
        return _verdict(name, Verdict.FAIL, shown, minimum, query, message)
    bounds = [f">= {with_unit(minimum, unit, 'g')}"] if minimum is not None else []
    bounds += [f"<= {with_unit(maximum, unit, 'g')}"] if maximum is not None else []
    within = " and ".join(bounds)
    return _verdict(name, Verdict.PASS, shown, threshold, query, f"{name} {seen} {within}")
