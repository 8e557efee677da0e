"""Verdicts of the sequential checks: counts accumulated since the rollout began, judged anytime-valid.

A sequential check fails **conclusively** (`MetricVerdict.conclusive`) the first time its e-value
reaches 1/alpha: the planner may roll back at once instead of waiting for `failureLimit` failed runs,
because the chance that this ever happens to a healthy revision over the whole rollout is at most
alpha (see `sequential`). Otherwise:

- without a tolerance: pass while the estimate is within the limit, inconclusive ("not yet
  conclusive") while it is over the limit without enough evidence;
- with a tolerance: pass only once "worse by the tolerance or more" is rejected at the same
  confidence (the "no regression beyond the tolerance" decision that may promote), else inconclusive.

Fewer than `minRequests` requests on either side is inconclusive, as for the fixed checks.
Messages carry the evidence: counts, the e-value against its threshold, the always-valid p-value,
and the estimate with its confidence sequence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from modeldeploy.operator.analysis import sequential as s
from modeldeploy.operator.analysis.results import MetricVerdict, Verdict
from modeldeploy.operator.analysis.stats import p_text
from modeldeploy.operator.analysis.verdict import Judge, percent, seconds_text

ERROR_RATE = "errorRate"
ERROR_RATE_DELTA = "errorRateDeltaToStable"
LATENCY_DISTRIBUTION = "latencyDistribution"

SINCE = "since the rollout began"


def e_text(log_e: float) -> str:
    """The e-value in words: "e=3.2", "e=4.1e+12", "e>1e300"."""
    if log_e > 690:
        return "e>1e300"
    return f"e={math.exp(log_e):.2g}"


def _evidence_text(log_e: float, judge: Judge) -> str:
    threshold = 1.0 / judge.alpha
    p = math.exp(-max(log_e, 0.0))
    return f"{e_text(log_e)} vs {threshold:g} at {judge.confidence * 100:g}%, {p_text(p)}"


def _counts(errors: float, requests: float) -> s.Counts:
    total = max(0, round(requests))
    return s.Counts(min(total, max(0, round(errors))), total)


def _verdict(
    metric: str,
    verdict: Verdict,
    value: float | None,
    threshold: float,
    query: str,
    message: str,
    requests: float,
    *,
    conclusive: bool = False,
) -> MetricVerdict:
    return MetricVerdict(
        metric=metric,
        verdict=verdict,
        value=value,
        threshold=threshold,
        query=query,
        message=message,
        requests=requests,
        conclusive=conclusive,
    )


def judge_error_rate(errors: float, requests: float, limit: float, judge: Judge, query: str) -> MetricVerdict:
    """The new revision's error rate since the rollout began against the absolute `slo.errorRate`.

    Fails conclusively once "rate <= limit" is rejected; passes while the observed rate is within it.
    """
    counts = _counts(errors, requests)
    low = judge.few_requests(counts.total)
    if low:
        return _verdict(
            ERROR_RATE, Verdict.INCONCLUSIVE, counts.rate, limit, query, f"error rate: {low}", requests
        )
    evidence = s.limit_test(counts, limit, judge.confidence)
    rate = counts.rate or 0.0
    seen = (
        f"error rate {percent(rate)} ({counts.hits} of {counts.total} requests {SINCE}; "
        f"{judge.confidence * 100:g}% sequence [{percent(evidence.lower)}, {percent(evidence.upper)}])"
    )
    if evidence.rejects(judge.confidence):
        message = f"{seen} > {percent(limit)}, conclusive ({_evidence_text(evidence.log_e, judge)})"
        return _verdict(ERROR_RATE, Verdict.FAIL, rate, limit, query, message, requests, conclusive=True)
    if rate > limit:
        message = (
            f"{seen} > {percent(limit)} but not yet conclusive ({_evidence_text(evidence.log_e, judge)}); "
            "waiting for more requests"
        )
        return _verdict(ERROR_RATE, Verdict.INCONCLUSIVE, rate, limit, query, message, requests)
    return _verdict(ERROR_RATE, Verdict.PASS, rate, limit, query, f"{seen} <= {percent(limit)}", requests)


def judge_error_rate_delta(
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
    low = judge.few_requests(new.total) or judge.few_requests(old.total, "stable")
    difference = new.rate - old.rate if new.rate is not None and old.rate is not None else None
    if low:
        return _verdict(
            ERROR_RATE_DELTA,
            Verdict.INCONCLUSIVE,
            difference,
            delta,
            query,
            f"error rate vs stable: {low}",
            canary_requests,
        )
    assert new.rate is not None and old.rate is not None and difference is not None
    evidence = s.difference_test(new, old, delta, judge.confidence)
    ratio = "n/a (stable had no errors)" if evidence.estimate is None else f"{evidence.estimate:.3g}"
    upper = "inf" if math.isinf(evidence.upper) else f"{evidence.upper:.3g}"
    seen = (
        f"error rate {percent(new.rate)} ({new.hits} of {new.total}) vs stable {percent(old.rate)} "
        f"({old.hits} of {old.total}) {SINCE}: ratio {ratio}, {judge.confidence * 100:g}% sequence "
        f"[{evidence.lower:.3g}, {upper}]"
    )
    allowed = f"allowed +{percent(delta)}"
    if evidence.rejects(judge.confidence):
        message = f"{seen}; worse than {allowed}, conclusive ({_evidence_text(evidence.log_e, judge)})"
        return _verdict(
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
            message = f"{seen}; within +{percent(tolerance)} of stable ({_evidence_text(safe, judge)})"
            return _verdict(
                ERROR_RATE_DELTA, Verdict.PASS, difference, delta, query, message, canary_requests
            )
        message = (
            f"{seen}; not yet shown within +{percent(tolerance)} of stable "
            f"({_evidence_text(safe, judge)}); waiting for more requests"
        )
        return _verdict(
            ERROR_RATE_DELTA, Verdict.INCONCLUSIVE, difference, delta, query, message, canary_requests
        )
    if difference > delta:
        message = (
            f"{seen}; over {allowed} but not yet conclusive ({_evidence_text(evidence.log_e, judge)}); "
            "waiting for more requests"
        )
        return _verdict(
            ERROR_RATE_DELTA, Verdict.INCONCLUSIVE, difference, delta, query, message, canary_requests
        )
    return _verdict(
        ERROR_RATE_DELTA, Verdict.PASS, difference, delta, query, f"{seen}; {allowed}", canary_requests
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
        return _verdict(
            LATENCY_DISTRIBUTION, Verdict.INCONCLUSIVE, None, delta, query, message, evidence.new_requests
        )
    if evidence.bound is None:
        message = "latency distribution vs stable: no histogram bounds both revisions report"
        return _verdict(
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
        message = f"{seen}: slower, {allowed}, conclusive ({_evidence_text(evidence.log_e, judge)})"
        return _verdict(
            LATENCY_DISTRIBUTION, Verdict.FAIL, excess, delta, query, message, requests, conclusive=True
        )
    if tolerance is not None and tolerance > 0:
        safe = s.latency_safety_test(canary_buckets, stable_buckets, tolerance)
        if safe >= s.threshold(judge.confidence):
            message = f"{seen}: within +{percent(tolerance)} at every bound ({_evidence_text(safe, judge)})"
            return _verdict(LATENCY_DISTRIBUTION, Verdict.PASS, excess, delta, query, message, requests)
        message = (
            f"{seen}: not yet shown within +{percent(tolerance)} at every bound "
            f"({_evidence_text(safe, judge)}); waiting for more requests"
        )
        return _verdict(LATENCY_DISTRIBUTION, Verdict.INCONCLUSIVE, excess, delta, query, message, requests)
    if excess > delta:
        message = (
            f"{seen}: over {allowed} but not yet conclusive ({_evidence_text(evidence.log_e, judge)}); "
            "waiting for more requests"
        )
        return _verdict(LATENCY_DISTRIBUTION, Verdict.INCONCLUSIVE, excess, delta, query, message, requests)
    return _verdict(
        LATENCY_DISTRIBUTION, Verdict.PASS, excess, delta, query, f"{seen}: not slower ({allowed})", requests
    )
