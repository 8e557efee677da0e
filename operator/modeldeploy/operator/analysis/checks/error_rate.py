"""Error-rate checks: `errorRate` (absolute limit) and `errorRateDeltaToStable` (against stable).

Queries: the requests each revision served and those it answered with a 5xx, one query each that
covers both revisions (see `queries.Plan`); the status shows the revision's error ratio.

Fixed rules (`analysis.method: fixed`, and shadow steps), over the run's window:

1. fewer than `minRequests` requests in the window (or no data at all): inconclusive;
2. a one-sided exact test (see `stats`) shows the limit is exceeded at `confidence`: fail;
3. the measured value is over the limit but the test is not significant: inconclusive (the evidence
   does not say "fail" yet; a low-traffic canary waits for more requests instead of being rolled back
   on one unlucky request);
4. otherwise: pass.

Sequential rules (`analysis.method: sequential`, canary steps), over the counts since the rollout
began: a check fails **conclusively** (`MetricVerdict.conclusive`) the first time its e-value reaches
1/alpha, so the planner may roll back at once instead of waiting for `failureLimit` failed runs (the
chance that this ever happens to a healthy revision over the whole rollout is at most alpha, see
`sequential`). Otherwise, without a tolerance: pass while the estimate is within the limit,
inconclusive ("not yet conclusive") while it is over the limit without enough evidence; with a
tolerance: pass only once "worse by the tolerance or more" is rejected at the same confidence.
Fewer than `minRequests` requests on either side is inconclusive, as for the fixed rules.
"""

from __future__ import annotations

import math

from modeldeploy.contract.metrics import ERROR_CODES, REQUESTS, promql_string
from modeldeploy.operator.analysis import sequential as s
from modeldeploy.operator.analysis import stats
from modeldeploy.operator.analysis.checks.base import Answers, Check, Run
from modeldeploy.operator.analysis.judgement import (
    SINCE,
    Counts,
    Judge,
    evidence_text,
    percent,
    verdict,
)
from modeldeploy.operator.analysis.queries import Plan, RevisionSelector, requests_query, requests_sent
from modeldeploy.operator.analysis.results import MetricVerdict, Verdict
from modeldeploy.operator.analysis.stats import p_text

ERROR_RATE = "errorRate"
ERROR_RATE_DELTA = "errorRateDeltaToStable"


def errors_query(sel: RevisionSelector, window: str) -> str:
    """Requests the revision answered with a 5xx status in the window."""
    return f"sum(increase({REQUESTS}{sel.served(f'code=~{promql_string(ERROR_CODES)}')}[{window}]))"


def error_ratio_query(sel: RevisionSelector, window: str) -> str:
    """Errors / requests in the window (what the analysis computes from the two counts above)."""
    return f"{errors_query(sel, window)} / {requests_query(sel, window)}"


def errors_sent(plan: Plan) -> str:
    """`errors_query` of both revisions (or of every ModelDeployment) in one query."""
    selector = plan.selector(REQUESTS, 'route="local"', f"code=~{promql_string(ERROR_CODES)}")
    return f"sum {plan.by()} (increase({selector}[{plan.window}]))"


def _delta_shown(plan: Plan) -> str:
    return (
        f"({error_ratio_query(plan.canary, plan.window)}) - ({error_ratio_query(plan.stable, plan.window)})"
    )


def checks(run: Run) -> list[Check]:
    """errorRate and errorRateDeltaToStable: sequential on a sequential canary run, else fixed."""
    slo = run.spec.slo
    seq = run.sequential
    plan = seq.plan if seq is not None else run.plan
    c, st = plan.canary, plan.stable
    errors, requests = errors_sent(plan), requests_sent(plan)
    needs = (errors, requests)
    out: list[Check] = []
    if slo.error_rate is not None:
        limit = slo.error_rate
        shown = error_ratio_query(c, plan.window)
        if seq is not None:
            j = seq.judge

            def rate(a: Answers) -> MetricVerdict:
                return judge_error_rate_sequential(a.count(errors, c), a.count(requests, c), limit, j, shown)

        else:
            fixed = run.judge

            def rate(a: Answers) -> MetricVerdict:
                return judge_error_rate(a.counts(errors, requests, c), limit, fixed, shown)

        out.append(Check(ERROR_RATE, limit, shown, needs, rate))
    if slo.max_error_rate_delta_to_stable is not None:
        delta = slo.max_error_rate_delta_to_stable
        shown_delta = _delta_shown(plan)
        if seq is not None:
            j, tolerance = seq.judge, seq.tolerance

            def versus(a: Answers) -> MetricVerdict:
                return judge_error_rate_delta_sequential(
                    a.count(errors, c),
                    a.count(requests, c),
                    a.count(errors, st),
                    a.count(requests, st),
                    delta,
                    j,
                    shown_delta,
                    tolerance,
                )

        else:
            fixed = run.judge

            def versus(a: Answers) -> MetricVerdict:
                return judge_error_rate_delta(
                    a.counts(errors, requests, c),
                    a.counts(errors, requests, st),
                    delta,
                    fixed,
                    shown_delta,
                )

        out.append(Check(ERROR_RATE_DELTA, delta, shown_delta, needs, versus))
    return out


def _too_few(
    metric: str,
    judge: Judge,
    totals: tuple[int, int | None],
    value: float | None,
    threshold: float,
    query: str,
    requests: float,
) -> MetricVerdict | None:
    """Inconclusive when the revision (or, for the comparison with stable, either side) served fewer
    than `minRequests` requests, the same for the fixed and the sequential rules; else None."""
    revision, stable = totals
    low = judge.few_requests(revision) or (None if stable is None else judge.few_requests(stable, "stable"))
    if low is None:
        return None
    subject = "error rate vs stable" if stable is not None else "error rate"
    return verdict(metric, Verdict.INCONCLUSIVE, value, threshold, query, f"{subject}: {low}", requests)


# Fixed rules


def judge_error_rate(counts: Counts, limit: float, judge: Judge, query: str) -> MetricVerdict:
    """Errors / requests of the revision under test against the absolute `slo.errorRate`."""
    too_few = _too_few(
        ERROR_RATE, judge, (counts.total_count, None), counts.ratio, limit, query, counts.total
    )
    if too_few is not None:
        return too_few
    x, n = counts.hit_count, counts.total_count
    ratio = counts.ratio or 0.0
    seen = f"error rate {percent(ratio)} ({x} of {n} requests)"
    p = stats.binomial_test_greater(x, n, limit)
    if p < judge.alpha:
        message = f"{seen} > {percent(limit)}, significant at {judge.confidence_text} ({p_text(p)})"
        return verdict(ERROR_RATE, Verdict.FAIL, ratio, limit, query, message, requests=counts.total)
    if ratio > limit:
        message = (
            f"{seen} > {percent(limit)} but not significant at {judge.confidence_text} "
            f"({p_text(p)}); waiting for more requests"
        )
        return verdict(ERROR_RATE, Verdict.INCONCLUSIVE, ratio, limit, query, message, requests=counts.total)
    return verdict(
        ERROR_RATE, Verdict.PASS, ratio, limit, query, f"{seen} <= {percent(limit)}", requests=counts.total
    )


def judge_error_rate_delta(
    canary: Counts, stable: Counts, delta: float, judge: Judge, query: str
) -> MetricVerdict:
    """Canary error rate minus stable's over the same window against `slo.maxErrorRateDeltaToStable`."""
    c_ratio, s_ratio = canary.ratio, stable.ratio
    difference = c_ratio - s_ratio if c_ratio is not None and s_ratio is not None else None
    totals = (canary.total_count, stable.total_count)
    too_few = _too_few(ERROR_RATE_DELTA, judge, totals, difference, delta, query, canary.total)
    if too_few is not None:
        return too_few
    assert c_ratio is not None and s_ratio is not None and difference is not None
    x1, n1, x2, n2 = canary.hit_count, canary.total_count, stable.hit_count, stable.total_count
    seen = (
        f"error rate {percent(c_ratio)} ({x1} of {n1}) vs stable {percent(s_ratio)} ({x2} of {n2}): "
        f"{'+' if difference >= 0 else '-'}{percent(abs(difference))}"
    )
    allowed = f"allowed +{percent(delta)}"
    p = stats.difference_test_greater(x1, n1, x2, n2, delta, judge.alpha)
    if p < judge.alpha:
        message = f"{seen} > {allowed}, significant at {judge.confidence_text} ({p_text(p)})"
        return verdict(
            ERROR_RATE_DELTA, Verdict.FAIL, difference, delta, query, message, requests=canary.total
        )
    if difference > delta:
        message = (
            f"{seen} > {allowed} but not significant at {judge.confidence_text} ({p_text(p)}); "
            "waiting for more requests"
        )
        return verdict(
            ERROR_RATE_DELTA, Verdict.INCONCLUSIVE, difference, delta, query, message, requests=canary.total
        )
    return verdict(
        ERROR_RATE_DELTA,
        Verdict.PASS,
        difference,
        delta,
        query,
        f"{seen} <= {allowed}",
        requests=canary.total,
    )


# Sequential rules


def _counts(errors: float, requests: float) -> s.Counts:
    total = max(0, round(requests))
    return s.Counts(min(total, max(0, round(errors))), total)


def judge_error_rate_sequential(
    errors: float, requests: float, limit: float, judge: Judge, query: str
) -> MetricVerdict:
    """The new revision's error rate since the rollout began against the absolute `slo.errorRate`.

    Fails conclusively once "rate <= limit" is rejected; passes while the observed rate is within it.
    """
    counts = _counts(errors, requests)
    too_few = _too_few(ERROR_RATE, judge, (counts.total, None), counts.rate, limit, query, requests)
    if too_few is not None:
        return too_few
    evidence = s.limit_test(counts, limit, judge.confidence)
    rate = counts.rate or 0.0
    seen = (
        f"error rate {percent(rate)} ({counts.hits} of {counts.total} requests {SINCE}; "
        f"{judge.confidence_text} sequence [{percent(evidence.lower)}, {percent(evidence.upper)}])"
    )
    if evidence.rejects(judge.confidence):
        message = f"{seen} > {percent(limit)}, conclusive ({evidence_text(evidence.log_e, judge)})"
        return verdict(ERROR_RATE, Verdict.FAIL, rate, limit, query, message, requests, conclusive=True)
    if rate > limit:
        message = (
            f"{seen} > {percent(limit)} but not yet conclusive ({evidence_text(evidence.log_e, judge)}); "
            "waiting for more requests"
        )
        return verdict(ERROR_RATE, Verdict.INCONCLUSIVE, rate, limit, query, message, requests)
    return verdict(ERROR_RATE, Verdict.PASS, rate, limit, query, f"{seen} <= {percent(limit)}", requests)


def judge_error_rate_delta_sequential(
    canary_errors: float,
    canary_requests: float,
    stable_errors: float,
    stable_requests: float,
    delta: float,
    judge: Judge,
    query: str,
    tolerance: float | None = None,
) -> MetricVerdict:
    """The new revision's error rate minus stable's, since the rollout began, against `delta`.

    Fails conclusively once "p_new <= p_stable + delta" is rejected. With a `tolerance` (> 0) it
    passes only once "p_new >= p_stable + tolerance" is rejected.
    """
    new, old = _counts(canary_errors, canary_requests), _counts(stable_errors, stable_requests)
    difference = new.rate - old.rate if new.rate is not None and old.rate is not None else None
    too_few = _too_few(
        ERROR_RATE_DELTA, judge, (new.total, old.total), difference, delta, query, canary_requests
    )
    if too_few is not None:
        return too_few
    assert new.rate is not None and old.rate is not None and difference is not None
    evidence = s.difference_test(new, old, delta, judge.confidence)
    ratio = "n/a (stable had no errors)" if evidence.estimate is None else f"{evidence.estimate:.3g}"
    upper = "inf" if math.isinf(evidence.upper) else f"{evidence.upper:.3g}"
    seen = (
        f"error rate {percent(new.rate)} ({new.hits} of {new.total}) vs stable {percent(old.rate)} "
        f"({old.hits} of {old.total}) {SINCE}: ratio {ratio}, {judge.confidence_text} sequence "
        f"[{evidence.lower:.3g}, {upper}]"
    )
    allowed = f"allowed +{percent(delta)}"
    if evidence.rejects(judge.confidence):
        message = f"{seen}; worse than {allowed}, conclusive ({evidence_text(evidence.log_e, judge)})"
        return verdict(
            ERROR_RATE_DELTA,
            Verdict.FAIL,
            difference,
            delta,
            query,
            message,
            canary_requests,
            conclusive=True,
        )
    if tolerance is not None and tolerance > 0:
        safe = s.safety_test(new, old, tolerance)
        if safe >= s.threshold(judge.confidence):
            message = f"{seen}; within +{percent(tolerance)} of stable ({evidence_text(safe, judge)})"
            return verdict(ERROR_RATE_DELTA, Verdict.PASS, difference, delta, query, message, canary_requests)
        message = (
            f"{seen}; not yet shown within +{percent(tolerance)} of stable "
            f"({evidence_text(safe, judge)}); waiting for more requests"
        )
        return verdict(
            ERROR_RATE_DELTA, Verdict.INCONCLUSIVE, difference, delta, query, message, canary_requests
        )
    if difference > delta:
        message = (
            f"{seen}; over {allowed} but not yet conclusive ({evidence_text(evidence.log_e, judge)}); "
            "waiting for more requests"
        )
        return verdict(
            ERROR_RATE_DELTA, Verdict.INCONCLUSIVE, difference, delta, query, message, canary_requests
        )
    return verdict(
        ERROR_RATE_DELTA, Verdict.PASS, difference, delta, query, f"{seen}; {allowed}", canary_requests
    )
