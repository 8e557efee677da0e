"""analysis.method sequential in the planner: the start of canary traffic, conclusive rollback, tolerance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modeldeploy.operator.analysis.checks import error_rate
from modeldeploy.operator.analysis.judgement import Judge
from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict, Verdict
from modeldeploy.operator.planner import analysis_request
from tests.unit.planner.harness import Driver, make_spec, rev

V1 = "registry.example.com/iris:1"
V2 = "registry.example.com/iris:2"
R2 = rev(V2)
JUDGE = Judge(min_requests=50, confidence=0.95, window="30s")
SEQUENTIAL: dict[str, Any] = {
    "interval": "30s",
    "failureLimit": 5,
    "inconclusiveLimit": 30,
    "method": "sequential",
    "slo": {"maxErrorRateDeltaToStable": 0},
}


def spec(image: str, **analysis: Any) -> Any:
    base = make_spec(image)
    rollout = base.rollout.model_dump(mode="json", by_alias=True, exclude_none=True)
    rollout["analysis"] = {**SEQUENTIAL, **analysis}
    return make_spec(image, rollout=rollout)


def rolling(**analysis: Any) -> Driver:
    """R1 stable, R2 in its first canary step (10%) under analysis.method sequential."""
    d = Driver(spec=spec(V1, **analysis))
    d.tick()
    d.tick()
    d.change_spec(spec(V2, **analysis))
    d.run_until(lambda x: x.status.current_step == 1 and x.status.step_started_at is not None)
    assert d.status.traffic.canary_weight == 10
    return d


def outcome(d: Driver, *results: MetricVerdict) -> AnalysisOutcome:
    return AnalysisOutcome(revision=R2, results=results, at=d.now)


def test_canary_traffic_start_is_kept_across_steps_and_restarts_and_sets_the_sequential_window() -> None:
    d = rolling()
    began = d.status.analysis.canary_started_at
    assert began is not None and began == d.status.step_started_at
    d.run_until(lambda x: x.status.current_step == 2 and x.status.step_started_at is not None)
    assert d.status.analysis.canary_started_at == began  # the 50% step does not restart the test
    d.now += timedelta(seconds=30)
    restarted = Driver.restore(d.snapshot())  # a new operator process finds only status and cluster
    request = analysis_request(restarted.spec, restarted.status, restarted.now)
    assert request is not None and request.phase_kind == "canary"
    assert request.sequential_since == restarted.now - began


def test_fixed_method_and_shadow_steps_ask_for_no_sequential_test() -> None:
    d = Driver(spec=make_spec(V1))
    d.tick()
    d.tick()
    d.change_spec(make_spec(V2))
    d.run_until(lambda x: x.status.current_step == 0 and x.status.step_started_at is not None)
    d.now += timedelta(seconds=30)
    shadow = analysis_request(d.spec, d.status, d.now)
    assert shadow is not None and shadow.phase_kind == "shadow" and shadow.sequential_since is None
    assert d.status.analysis.canary_started_at is None  # shadow copies are not canary traffic
    d.run_until(lambda x: x.status.current_step == 1 and x.status.step_started_at is not None)
    d.now += timedelta(seconds=30)
    fixed = analysis_request(d.spec, d.status, d.now)
    assert fixed is not None and fixed.phase_kind == "canary" and fixed.sequential_since is None


def test_a_conclusive_failure_rolls_back_at_the_first_run_with_its_evidence() -> None:
    d = rolling()
    d.now += timedelta(seconds=30)
    proved = error_rate.judge_error_rate_delta_sequential(90, 300, 30, 3000, 0.0, JUDGE, "q")
    assert proved.verdict is Verdict.FAIL and proved.conclusive
    d.tick(outcome(d, proved))
    status = d.status
    assert status.phase == "RolledBack" and status.canary_revision is None
    assert status.aborted_revision == R2
    assert status.analysis.consecutive_failures == 1  # failureLimit is 5: no wait for it
    result = status.analysis.results[0]
    assert (result.metric, result.verdict, result.conclusive) == ("errorRateDeltaToStable", "Fail", True)
    assert result.message == proved.message
    evidence = ("90 of 300", "30 of 3000", "95% sequence [", "conclusive (e=", "vs 20 at 95%", "p=")
    assert all(part in result.message for part in evidence), result.message
    rolled_back = next(e for e in d.plans[-1].events if e.reason == "RolledBack")
    assert rolled_back.type == "Warning"
    assert all(part in rolled_back.message for part in evidence), rolled_back.message
    assert "no failureLimit wait" in rolled_back.message
    failed = next(e for e in d.plans[-1].events if e.reason == "AnalysisFailed")
    assert "failed conclusively" in failed.message
    assert status.rollback_reason is not None and proved.message in status.rollback_reason


def test_a_failure_without_a_sequential_test_still_waits_for_failure_limit() -> None:
    d = rolling(failureLimit=2)
    healthy = error_rate.judge_error_rate_delta_sequential(3, 3000, 30, 3000, 0.0, JUDGE, "q")
    assert healthy.verdict is Verdict.PASS
    custom = MetricVerdict("score-mean", Verdict.FAIL, 0.7, 0.5, "avg(score)", "score-mean 0.7 > 0.5")
    d.now += timedelta(seconds=30)
    d.tick(outcome(d, healthy, custom))
    assert d.status.canary_revision == R2 and d.status.analysis.consecutive_failures == 1
    assert d.status.analysis.results[1].conclusive is None
    d.now += timedelta(seconds=30)
    d.tick(outcome(d, healthy, custom))
    assert d.status.phase == "RolledBack"
    assert d.status.rollback_reason is not None
    assert "score-mean 0.7 > 0.5 for 2 consecutive intervals" in d.status.rollback_reason


def test_an_unproved_breach_is_inconclusive_and_does_not_roll_back() -> None:
    d = rolling(failureLimit=1)
    unproved = error_rate.judge_error_rate_delta_sequential(2, 60, 1, 600, 0.0, JUDGE, "q")
    assert unproved.verdict is Verdict.INCONCLUSIVE
    d.now += timedelta(seconds=30)
    d.tick(outcome(d, unproved))
    assert d.status.canary_revision == R2 and d.status.phase == "Progressing"
    assert d.status.analysis.consecutive_inconclusive == 1


def test_with_a_tolerance_the_step_ends_only_once_the_canary_is_shown_within_it() -> None:
    d = rolling(tolerance=0.01)
    not_yet = error_rate.judge_error_rate_delta_sequential(1, 100, 10, 1000, 0.0, JUDGE, "q", tolerance=0.01)
    shown = error_rate.judge_error_rate_delta_sequential(
        20, 20000, 200, 200000, 0.0, JUDGE, "q", tolerance=0.01
    )
    assert not_yet.verdict is Verdict.INCONCLUSIVE and "not yet shown within +1%" in not_yet.message
    assert shown.verdict is Verdict.PASS and "within +1% of stable" in shown.message
    started = d.status.step_started_at
    assert started is not None
    for _ in range(4):  # the step lasts 1m; two minutes of "not yet shown"
        d.now += timedelta(seconds=30)
        d.tick(outcome(d, not_yet))
    assert d.status.current_step == 1, "the step's time alone does not end it under a tolerance"
    d.now += timedelta(seconds=30)
    d.tick(outcome(d, shown))
    assert d.status.current_step == 2


def test_the_shown_tolerance_does_not_end_a_step_before_its_time() -> None:
    d = rolling(tolerance=0.01)
    shown = error_rate.judge_error_rate_delta_sequential(
        20, 20000, 200, 200000, 0.0, JUDGE, "q", tolerance=0.01
    )
    d.now += timedelta(seconds=30)
    d.tick(outcome(d, shown))
    assert d.status.current_step == 1  # 30 s of a 1m step
    d.now += timedelta(seconds=30)
    d.tick(outcome(d, shown))
    assert d.status.current_step == 2
