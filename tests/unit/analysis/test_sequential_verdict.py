"""Sequential verdicts: conclusive failures, pass / inconclusive rules, and the evidence in the message."""

from __future__ import annotations

import math

import pytest

from modeldeploy.operator.analysis import judgement
from modeldeploy.operator.analysis.checks import error_rate, latency
from modeldeploy.operator.analysis.judgement import Judge
from modeldeploy.operator.analysis.results import AnalysisOutcome, Verdict

JUDGE = Judge(min_requests=50, confidence=0.95, window="2m")


def test_overwhelming_error_rate_fails_conclusively_with_its_evidence() -> None:
    result = error_rate.judge_error_rate_sequential(90, 300, 0.01, JUDGE, "q")
    assert result.verdict is Verdict.FAIL and result.conclusive
    assert result.message == (
        "error rate 30% (90 of 300 requests since the rollout began; 95% sequence [21.4%, 39.7%]) > 1%, "
        "conclusive (e=9.8e+99 vs 20 at 95%, p=1e-100)"
    )
    huge = error_rate.judge_error_rate_sequential(900, 3000, 0.01, JUDGE, "q")
    assert huge.message.endswith("conclusive (e>1e300 vs 20 at 95%, p<1e-300)")


def test_error_rate_over_the_limit_without_evidence_waits() -> None:
    result = error_rate.judge_error_rate_sequential(2, 50, 0.01, JUDGE, "q")
    assert result.verdict is Verdict.INCONCLUSIVE and not result.conclusive
    assert "not yet conclusive" in result.message and "waiting for more requests" in result.message


def test_error_rate_within_the_limit_passes_and_low_traffic_is_inconclusive() -> None:
    assert error_rate.judge_error_rate_sequential(3, 1000, 0.01, JUDGE, "q").verdict is Verdict.PASS
    low = error_rate.judge_error_rate_sequential(0, 12, 0.01, JUDGE, "q")
    assert low.verdict is Verdict.INCONCLUSIVE
    assert low.message == "error rate: served only 12 requests in 2m (minRequests 50)"


def test_error_rate_vs_stable_fails_conclusively_and_reports_the_ratio() -> None:
    result = error_rate.judge_error_rate_delta_sequential(60, 2000, 100, 10_000, 0.0, JUDGE, "q")
    assert result.verdict is Verdict.FAIL and result.conclusive
    assert "error rate 3% (60 of 2000) vs stable 1% (100 of 10000) since the rollout began: ratio 3," in (
        result.message
    )
    assert "worse than allowed +0%, conclusive (e=" in result.message
    assert result.value == pytest.approx(0.02)


def test_error_rate_vs_stable_with_a_tolerance_passes_only_when_shown_within_it() -> None:
    early = error_rate.judge_error_rate_delta_sequential(
        10, 1000, 100, 10_000, 0.0, JUDGE, "q", tolerance=0.005
    )
    assert early.verdict is Verdict.INCONCLUSIVE
    assert "not yet shown within +0.5% of stable" in early.message
    later = error_rate.judge_error_rate_delta_sequential(
        200, 20_000, 1000, 100_000, 0.0, JUDGE, "q", tolerance=0.005
    )
    assert later.verdict is Verdict.PASS
    assert "within +0.5% of stable" in later.message
    # without a tolerance the same early counts pass (today's rule: not over the limit)
    assert (
        error_rate.judge_error_rate_delta_sequential(10, 1000, 100, 10_000, 0.0, JUDGE, "q").verdict
        is Verdict.PASS
    )


def _histogram(
    shares: list[float], total: float, bounds: tuple[float, ...] = (0.05, 0.1, 0.25)
) -> dict[float, float]:
    out, running = {}, 0.0
    for bound, share in zip(bounds, shares, strict=True):
        running += share * total
        out[bound] = running
    out[math.inf] = total
    return out


def test_slower_latency_distribution_fails_conclusively() -> None:
    canary = _histogram([0.2, 0.5, 0.25], 2000)  # median above 50 ms
    stable = _histogram([0.5, 0.4, 0.09], 10_000)
    result = latency.judge_latency_distribution(canary, stable, 0.0, JUDGE, "q")
    assert result.verdict is Verdict.FAIL and result.conclusive
    assert result.message.startswith("80% of 2000 requests slower than 50ms vs stable's 50% of 10000")
    assert "slower, allowed +0% at every bound, conclusive" in result.message


def test_same_latency_distribution_passes_or_waits_for_the_tolerance() -> None:
    canary = _histogram([0.5, 0.4, 0.09], 20_000)
    stable = _histogram([0.5, 0.4, 0.09], 100_000)
    assert latency.judge_latency_distribution(canary, stable, 0.0, JUDGE, "q").verdict is Verdict.PASS
    shown = latency.judge_latency_distribution(canary, stable, 0.0, JUDGE, "q", tolerance=0.05)
    assert shown.verdict is Verdict.PASS and "within +5% at every bound" in shown.message
    few = latency.judge_latency_distribution(
        _histogram([0.5, 0.4, 0.09], 100), stable, 0.0, JUDGE, "q", tolerance=0.01
    )
    assert few.verdict is Verdict.INCONCLUSIVE and "not yet shown within +1%" in few.message


def test_latency_distribution_without_data_is_inconclusive() -> None:
    result = latency.judge_latency_distribution({}, {}, 0.0, JUDGE, "q")
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "served only 0 requests" in result.message


def test_outcome_lists_conclusive_failures_only() -> None:
    proved = error_rate.judge_error_rate_sequential(90, 300, 0.01, JUDGE, "q")
    waiting = error_rate.judge_error_rate_sequential(2, 50, 0.01, JUDGE, "q")
    outcome = AnalysisOutcome(revision="r2", results=(proved, waiting))
    assert outcome.conclusive_failures == (proved,)
    assert AnalysisOutcome(revision="r2", results=(waiting,)).conclusive_failures == ()


def test_e_text() -> None:
    assert judgement.e_text(math.log(3.2)) == "e=3.2"
    assert judgement.e_text(800.0) == "e>1e300"
