"""Per-metric judgement: minRequests, significance, thresholds, messages."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeldeploy.operator.analysis import judgement
from modeldeploy.operator.analysis.checks import custom, error_rate, latency, shadow
from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict, Verdict, overall_verdict

JUDGE = judgement.Judge(min_requests=50, confidence=0.95, window="30s")
Q = "the query"


def test_error_rate_below_min_requests_is_inconclusive_even_when_all_fail() -> None:
    result = error_rate.judge_error_rate(judgement.Counts(hits=12, total=12), 0.01, JUDGE, Q)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.message == "error rate: served only 12 requests in 30s (minRequests 50)"
    assert result.value == 1.0 and result.threshold == 0.01 and result.query == Q


def test_error_rate_fails_on_significant_evidence() -> None:
    result = error_rate.judge_error_rate(judgement.Counts(hits=90, total=300), 0.01, JUDGE, Q)
    assert result.verdict is Verdict.FAIL
    assert result.value == pytest.approx(0.3)
    assert result.requests == 300
    assert result.message.startswith("error rate 30% (90 of 300 requests) > 1%, significant at 95% (p=")


def test_error_rate_over_the_limit_without_evidence_is_inconclusive() -> None:
    # 2 errors in 50 requests is 4%, but at a 1% limit two errors happen 9% of the time.
    result = error_rate.judge_error_rate(judgement.Counts(hits=2, total=50), 0.01, JUDGE, Q)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "4% (2 of 50 requests) > 1% but not significant at 95% (p=0.089)" in result.message
    assert "waiting for more requests" in result.message


def test_error_rate_within_the_limit_passes() -> None:
    result = error_rate.judge_error_rate(judgement.Counts(hits=0.6, total=199.7), 0.01, JUDGE, Q)
    assert result.verdict is Verdict.PASS
    assert result.message == "error rate 0.3% (1 of 200 requests) <= 1%"


def test_error_rate_limit_zero_fails_on_any_error() -> None:
    assert error_rate.judge_error_rate(judgement.Counts(1, 100), 0.0, JUDGE, Q).verdict is Verdict.FAIL
    assert error_rate.judge_error_rate(judgement.Counts(0, 100), 0.0, JUDGE, Q).verdict is Verdict.PASS


def test_error_rate_against_stable() -> None:
    canary, stable = judgement.Counts(hits=90, total=300), judgement.Counts(hits=15, total=3000)
    failed = error_rate.judge_error_rate_delta(canary, stable, 0.01, JUDGE, Q)
    assert failed.verdict is Verdict.FAIL
    assert failed.value == pytest.approx(0.295)
    assert failed.message.startswith(
        "error rate 30% (90 of 300) vs stable 0.5% (15 of 3000): +29.5% > allowed +1%"
    )
    # One error in 50 vs stable's 0.2%: no evidence, wait.
    waiting = error_rate.judge_error_rate_delta(
        judgement.Counts(1, 50), judgement.Counts(10, 5000), 0.0, JUDGE, Q
    )
    assert waiting.verdict is Verdict.INCONCLUSIVE and "not significant" in waiting.message
    # Canary as good as stable passes.
    same = error_rate.judge_error_rate_delta(
        judgement.Counts(1, 100), judgement.Counts(10, 1000), 0.0, JUDGE, Q
    )
    assert same.verdict is Verdict.PASS and same.message.endswith("<= allowed +0%")


def test_error_rate_against_stable_needs_traffic_on_both_sides() -> None:
    result = error_rate.judge_error_rate_delta(
        judgement.Counts(90, 300), judgement.Counts(0, 10), 0.0, JUDGE, Q
    )
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "stable served only 10 requests" in result.message


BUCKETS = {0.1: 280.0, 0.25: 285.0, 0.5: 300.0, math.inf: 300.0}  # 15 of 300 slower than 250ms


def test_latency_p99_fails_when_significantly_more_than_1pct_are_slower() -> None:
    result = latency.judge_latency_p99(0.412, BUCKETS, 0.25, JUDGE, Q)
    assert result.verdict is Verdict.FAIL
    assert result.message.startswith(
        "p99 latency 412ms > 250ms: 15 of 300 requests slower than 250ms, significant"
    )
    assert result.value == 0.412 and result.threshold == 0.25


def test_latency_p99_one_slow_request_at_low_traffic_is_inconclusive() -> None:
    buckets = {0.1: 59.0, 0.25: 59.0, 0.5: 60.0, math.inf: 60.0}
    result = latency.judge_latency_p99(0.45, buckets, 0.25, JUDGE, Q)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "but only 1 of 60 requests slower than 250ms" in result.message


def test_latency_p99_counts_above_the_next_bucket_when_the_limit_is_between_bounds() -> None:
    result = latency.judge_latency_p99(0.45, BUCKETS, 0.3, JUDGE, Q)
    # Nobody is known to be slower than 500ms (the bucket at or above 300ms): no evidence.
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "0 of 300 requests slower than 500ms (bucket >= limit)" in result.message


def test_latency_p99_pass_low_traffic_and_no_data() -> None:
    assert latency.judge_latency_p99(0.2, BUCKETS, 0.25, JUDGE, Q).verdict is Verdict.PASS
    low = latency.judge_latency_p99(0.9, {0.5: 3.0, math.inf: 3.0}, 0.25, JUDGE, Q)
    assert low.verdict is Verdict.INCONCLUSIVE and "only 3 requests" in low.message
    nan = latency.judge_latency_p99(math.nan, BUCKETS, 0.25, JUDGE, Q)
    assert nan.verdict is Verdict.INCONCLUSIVE and nan.value is None


def test_latency_ratio_to_stable() -> None:
    failed = latency.judge_latency_ratio(0.4, 0.1, 300, 3000, 1.5, JUDGE, Q)
    assert failed.verdict is Verdict.FAIL and failed.value == pytest.approx(4.0)
    assert failed.message == "p99 latency 400ms vs stable 100ms: ratio 4 > 1.5"
    assert latency.judge_latency_ratio(0.12, 0.1, 300, 3000, 1.5, JUDGE, Q).verdict is Verdict.PASS
    assert latency.judge_latency_ratio(0.4, 0.1, 10, 3000, 1.5, JUDGE, Q).verdict is Verdict.INCONCLUSIVE
    assert latency.judge_latency_ratio(0.4, None, 300, 3000, 1.5, JUDGE, Q).verdict is Verdict.INCONCLUSIVE
    assert latency.judge_latency_ratio(0.4, 0.0, 300, 3000, 1.5, JUDGE, Q).verdict is Verdict.INCONCLUSIVE


def test_shadow_agreement() -> None:
    failed = shadow.judge_shadow_agreement(matched=900, compared=1000, minimum=0.98, judge=JUDGE, query=Q)
    assert failed.verdict is Verdict.FAIL and failed.value == pytest.approx(0.9)
    assert failed.message.startswith(
        "shadow agreement 90% (900 of 1000 responses matched) < 98%, significant"
    )
    assert shadow.judge_shadow_agreement(995, 1000, 0.98, JUDGE, Q).verdict is Verdict.PASS
    waiting = shadow.judge_shadow_agreement(48, 50, 0.98, JUDGE, Q)  # 96%, 2 mismatches in 50
    assert waiting.verdict is Verdict.INCONCLUSIVE and "not significant" in waiting.message
    low = shadow.judge_shadow_agreement(10, 10, 0.98, JUDGE, Q)
    assert low.verdict is Verdict.INCONCLUSIVE and "compared only 10 requests" in low.message


def test_custom_metric_thresholds() -> None:
    assert custom.judge_custom("gpu", 0.9, None, 0.8, Q).verdict is Verdict.FAIL
    assert custom.judge_custom("gpu", 0.9, None, 0.8, Q).message == "gpu 0.9 > max 0.8"
    assert custom.judge_custom("acc", 0.7, 0.75, None, Q).message == "acc 0.7 < min 0.75"
    passed = custom.judge_custom("acc", 0.8, 0.75, 1.0, Q)
    assert passed.verdict is Verdict.PASS and passed.message == "acc 0.8 >= 0.75 and <= 1"
    assert custom.judge_custom("acc", None, 0.75, None, Q).verdict is Verdict.INCONCLUSIVE
    assert "NaN" in custom.judge_custom("acc", math.nan, 0.75, None, Q).message
    infinite = custom.judge_custom("ratio", math.inf, None, 2.0, Q)
    assert (
        infinite.verdict is Verdict.FAIL
        and infinite.value is None
        and infinite.message == "ratio inf > max 2"
    )


def _metric(verdict: Verdict) -> MetricVerdict:
    return MetricVerdict(
        metric="m", verdict=verdict, value=None, threshold=None, query="", message=verdict.value
    )


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([], Verdict.PASS),
        ([Verdict.PASS, Verdict.PASS], Verdict.PASS),
        ([Verdict.PASS, Verdict.INCONCLUSIVE], Verdict.INCONCLUSIVE),
        ([Verdict.INCONCLUSIVE, Verdict.FAIL, Verdict.PASS], Verdict.FAIL),
    ],
)
def test_overall_verdict(verdicts: list[Verdict], expected: Verdict) -> None:
    outcome = AnalysisOutcome(revision="abc", results=tuple(_metric(x) for x in verdicts))
    assert outcome.verdict is expected is overall_verdict(outcome.results)
    assert outcome.summary.startswith(expected.value)


def test_outcome_lists_failures_first_in_its_summary() -> None:
    outcome = AnalysisOutcome(
        "abc", (_metric(Verdict.PASS), _metric(Verdict.FAIL), _metric(Verdict.INCONCLUSIVE))
    )
    assert outcome.summary == "fail: fail"
    assert outcome.failed == (outcome.results[1],) and outcome.inconclusive == (outcome.results[2],)
    assert outcome.results[1].to_dict() == {"metric": "m", "verdict": "fail", "query": "", "message": "fail"}


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 2000), data=st.data(), limit=st.floats(0.0, 0.5))
def test_more_errors_never_improve_the_error_rate_verdict(n: int, data: st.DataObject, limit: float) -> None:
    order = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2}
    x = data.draw(st.integers(0, max(0, n - 1)))
    now = error_rate.judge_error_rate(judgement.Counts(x, n), limit, JUDGE, Q).verdict
    worse = error_rate.judge_error_rate(judgement.Counts(min(n, x + 1), n), limit, JUDGE, Q).verdict
    if n < JUDGE.min_requests:
        assert now is worse is Verdict.INCONCLUSIVE
    else:
        assert order[worse] >= order[now]


def test_an_empty_bucket_query_names_the_misspelled_bound() -> None:
    query = 'sum(rate(modeldeploy_request_duration_seconds_bucket{revision="r2",le="1"}[30s]))'
    result = custom.judge_custom("fast-share", None, 0.9, None, query)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.message == (
        'fast-share: empty result (no series); le="1" matches no bucket: bounds are written le="1.0"'
    )
    well_spelled = query.replace('le="1"', 'le="1.0"')
    assert custom.judge_custom("fast-share", None, 0.9, None, well_spelled).message == (
        "fast-share: empty result (no series)"
    )
    assert custom.bucket_selector_hint('x{le="0.25"} + y{le = "10"}') == (
        'le="10" matches no bucket: bounds are written le="10.0"'
    )


def test_custom_metric_units_and_minimum_traffic() -> None:
    assert (
        custom.judge_custom("mem", 3e9, None, 2e9, Q, unit="bytes").message
        == "mem 3e+09 bytes > max 2e+09 bytes"
    )
    assert custom.judge_custom("hit", 12.5, 20, None, Q, unit="%").message == "hit 12.5% < min 20%"
    assert custom.judge_custom("hit", 30, 20, 90, Q, unit="%").message == "hit 30% >= 20% and <= 90%"
    few = custom.judge_custom("p999", 2.0, None, 1.0, Q, served=499, min_requests=500, window="30s")
    assert few.verdict is Verdict.INCONCLUSIVE
    assert few.message == "p999: the canary served only 499 requests in 30s (minRequests 500)"
    enough = custom.judge_custom("p999", 2.0, None, 1.0, Q, served=500, min_requests=500, window="30s")
    assert enough.verdict is Verdict.FAIL
