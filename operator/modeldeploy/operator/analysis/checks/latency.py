"""Latency checks: `latencyDistribution` (sequential), `latencyP99` and `latencyP99RatioToStable`.

Queries: the sidecar's request-duration histogram of the requests each revision served, one query
that covers both revisions (`by (..., le)`, see `queries.Plan`), as bucket counts and as the p99
`histogram_quantile`.

- `latencyP99` against `slo.latencyP99`: fails only when significantly more than 1% of requests were
  slower than the limit (counted from the histogram buckets, exact binomial test); a p99 over the
  limit without that evidence is inconclusive.
- `latencyP99RatioToStable`: the two p99s compared directly with the ratio (no count-based test
  applies); empty or NaN results are inconclusive.
- `latencyDistribution` (sequential canary runs with `slo.maxSlowShareDeltaToStable`): the new
  revision's latencies against stable's since the rollout began, bucket by bucket; fails
  conclusively once "not slower in distribution" is rejected (see `sequential.latency_shift_test`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from modeldeploy.contract.metrics import DURATION
from modeldeploy.operator.analysis import sequential as s
from modeldeploy.operator.analysis import stats
from modeldeploy.operator.analysis.checks.base import Answers, Check, Run
from modeldeploy.operator.analysis.judgement import (
    SINCE,
    Counts,
    Judge,
    evidence_text,
    inconclusive,
    percent,
    seconds_text,
    verdict,
)
from modeldeploy.operator.analysis.queries import Plan, RevisionSelector, requests_sent
from modeldeploy.operator.analysis.results import MetricVerdict, Verdict
from modeldeploy.operator.analysis.stats import p_text
from modeldeploy.operator.api.durations import parse_duration

LATENCY_P99 = "latencyP99"
LATENCY_RATIO = "latencyP99RatioToStable"
LATENCY_DISTRIBUTION = "latencyDistribution"

P99_SLOW_SHARE = 0.01
"""p99 <= limit means at most 1% of requests are slower than the limit."""


def latency_quantile_query(sel: RevisionSelector, window: str, quantile: float = 0.99) -> str:
    """The latency quantile (seconds) of the requests the revision served in the window."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be between 0 and 1, got {quantile}")
    buckets = f"{DURATION}_bucket{sel.served()}"
    return f"histogram_quantile({quantile:g}, sum by (le) (rate({buckets}[{window}])))"


def latency_buckets_query(sel: RevisionSelector, window: str) -> str:
    """Cumulative request counts per latency bucket (`le`) in the window; `+Inf` is every request."""
    return f"sum by (le) (increase({DURATION}_bucket{sel.served()}[{window}]))"


def latency_buckets_sent(plan: Plan) -> str:
    """`latency_buckets_query` of both revisions (or of every ModelDeployment) in one query."""
    selector = plan.selector(f"{DURATION}_bucket", 'route="local"')
    return f"sum {plan.by('le')} (increase({selector}[{plan.window}]))"


def latency_quantiles_sent(plan: Plan, quantile: float = 0.99) -> str:
    """`latency_quantile_query` of both revisions (or of every ModelDeployment): one series each."""
    selector = plan.selector(f"{DURATION}_bucket", 'route="local"')
    rates = f"rate({selector}[{plan.window}])"
    return f"histogram_quantile({quantile:g}, sum {plan.by('le')} ({rates}))"


def checks(run: Run) -> list[Check]:
    """latencyDistribution (sequential runs that ask for it), latencyP99, latencyP99RatioToStable."""
    out: list[Check] = []
    seq = run.sequential
    if seq is not None and seq.latency_delta is not None:
        since = seq.plan
        allowed, j, tolerance = seq.latency_delta, seq.judge, seq.tolerance
        c, st = since.canary, since.stable
        all_since = latency_buckets_sent(since)
        shown = f"{latency_buckets_query(c, since.window)} vs {latency_buckets_query(st, since.window)}"

        def distribution(a: Answers) -> MetricVerdict:
            return judge_latency_distribution(
                a.buckets(all_since, c),
                a.buckets(all_since, st),
                allowed,
                j,
                shown,
                tolerance,
            )

        out.append(Check(LATENCY_DISTRIBUTION, allowed, shown, (all_since,), distribution))
    slo, plan, judge = run.spec.slo, run.plan, run.judge
    c, st, w = plan.canary, plan.stable, plan.window
    p99s, buckets = latency_quantiles_sent(plan), latency_buckets_sent(plan)
    if slo.latency_p99 is not None:
        seconds = parse_duration(slo.latency_p99).total_seconds()
        shown_p99 = latency_quantile_query(c, w)

        def p99(a: Answers) -> MetricVerdict:
            return judge_latency_p99(
                a.revision_number(p99s, c), a.buckets(buckets, c), seconds, judge, shown_p99
            )

        out.append(Check(LATENCY_P99, seconds, shown_p99, (p99s, buckets), p99))
    if slo.max_latency_ratio_to_stable is not None:
        ratio = slo.max_latency_ratio_to_stable
        requests = requests_sent(plan)
        shown_ratio = f"{latency_quantile_query(c, w)} / {latency_quantile_query(st, w)}"

        def versus(a: Answers) -> MetricVerdict:
            return judge_latency_ratio(
                a.revision_number(p99s, c),
                a.revision_number(p99s, st),
                a.count(requests, c),
                a.count(requests, st),
                ratio,
                judge,
                shown_ratio,
            )

        out.append(Check(LATENCY_RATIO, ratio, shown_ratio, (p99s, requests), versus))
    return out


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
        return verdict(
            LATENCY_P99, Verdict.INCONCLUSIVE, value, limit, query, f"p99 latency: {low}", requests=total
        )
    if value is None:
        return inconclusive(LATENCY_P99, limit, query, "p99 latency: no histogram data (NaN/empty)")
    seen = f"p99 latency {seconds_text(value)}"
    if value <= limit:
        return verdict(
            LATENCY_P99, Verdict.PASS, value, limit, query, f"{seen} <= {seconds_text(limit)}", requests=total
        )
    slow = slow_requests(buckets, limit)
    if slow is None:  # the limit is beyond the largest bucket: nothing to count, trust the quantile
        message = f"{seen} > {seconds_text(limit)}"
        return verdict(LATENCY_P99, Verdict.FAIL, value, limit, query, message, requests=total)
    bound, counts = slow
    x, n = counts.hit_count, counts.total_count
    where = seconds_text(bound) if math.isclose(bound, limit) else f"{seconds_text(bound)} (bucket >= limit)"
    evidence = f"{x} of {n} requests slower than {where}"
    p = stats.binomial_test_greater(x, n, P99_SLOW_SHARE)
    if p < judge.alpha:
        message = (
            f"{seen} > {seconds_text(limit)}: {evidence}, significant at {judge.confidence_text} "
            f"({p_text(p)})"
        )
        return verdict(LATENCY_P99, Verdict.FAIL, value, limit, query, message, requests=total)
    message = (
        f"{seen} > {seconds_text(limit)} but only {evidence}: not significant at "
        f"{judge.confidence_text} ({p_text(p)}); waiting for more requests"
    )
    return verdict(LATENCY_P99, Verdict.INCONCLUSIVE, value, limit, query, message, requests=total)


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
    kind, sign = (Verdict.FAIL, ">") if ratio > max_ratio else (Verdict.PASS, "<=")
    return verdict(
        LATENCY_RATIO, kind, ratio, max_ratio, query, f"{seen} {sign} {max_ratio:g}", requests=canary_requests
    )


def judge_latency_distribution(
    canary_buckets: Mapping[float, float],
    stable_buckets: Mapping[float, float],
    delta: float,
    judge: Judge,
    query: str,
    tolerance: float | None = None,
) -> MetricVerdict:
    """The new revision's latency distribution against stable's (cumulative `le` counts since the start).

    Fails conclusively once "at every bound, new's share slower than it <= stable's + delta" is
    rejected (the new revision is slower in distribution). `value`: the share of new requests slower
    than the bound where the evidence is strongest, minus stable's.
    """
    evidence = s.latency_shift_test(canary_buckets, stable_buckets, delta)
    low = judge.few_requests(evidence.new_requests) or judge.few_requests(evidence.stable_requests, "stable")
    if low:
        message = f"latency distribution vs stable: {low}"
        return verdict(
            LATENCY_DISTRIBUTION, Verdict.INCONCLUSIVE, None, delta, query, message, evidence.new_requests
        )
    if evidence.bound is None:
        message = "latency distribution vs stable: no histogram bounds both revisions report"
        return verdict(
            LATENCY_DISTRIBUTION, Verdict.INCONCLUSIVE, None, delta, query, message, evidence.new_requests
        )
    new_share, old_share = evidence.new_share or 0.0, evidence.stable_share or 0.0
    excess = new_share - old_share
    seen = (
        f"{percent(new_share)} of {evidence.new_requests} requests slower than "
        f"{seconds_text(evidence.bound)} vs stable's {percent(old_share)} of "
        f"{evidence.stable_requests} {SINCE}"
    )
    allowed = f"allowed +{percent(delta)} at every bound"
    requests = float(evidence.new_requests)
    if evidence.rejects(judge.confidence):
        message = f"{seen}: slower, {allowed}, conclusive ({evidence_text(evidence.log_e, judge)})"
        return verdict(
            LATENCY_DISTRIBUTION, Verdict.FAIL, excess, delta, query, message, requests, conclusive=True
        )
    if tolerance is not None and tolerance > 0:
        safe = s.latency_safety_test(canary_buckets, stable_buckets, tolerance)
        if safe >= s.threshold(judge.confidence):
            message = f"{seen}: within +{percent(tolerance)} at every bound ({evidence_text(safe, judge)})"
            return verdict(LATENCY_DISTRIBUTION, Verdict.PASS, excess, delta, query, message, requests)
        message = (
            f"{seen}: not yet shown within +{percent(tolerance)} at every bound "
            f"({evidence_text(safe, judge)}); waiting for more requests"
        )
        return verdict(LATENCY_DISTRIBUTION, Verdict.INCONCLUSIVE, excess, delta, query, message, requests)
    if excess > delta:
        message = (
            f"{seen}: over {allowed} but not yet conclusive ({evidence_text(evidence.log_e, judge)}); "
            "waiting for more requests"
        )
        return verdict(LATENCY_DISTRIBUTION, Verdict.INCONCLUSIVE, excess, delta, query, message, requests)
    return verdict(
        LATENCY_DISTRIBUTION, Verdict.PASS, excess, delta, query, f"{seen}: not slower ({allowed})", requests
    )
