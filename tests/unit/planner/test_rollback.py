"""Rollback: failureLimit, inconclusive analysis, abort, progress deadline; ordering and memory."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeldeploy.contract.labels import REVISION_LABEL
from modeldeploy.operator.analysis.results import AnalysisOutcome, Verdict
from modeldeploy.operator.planner import analysis_request
from tests.unit.planner.harness import Driver, make_spec, rev, verdict

V1 = "registry.example.com/iris:1"
V2 = "registry.example.com/iris:2"
V3 = "registry.example.com/iris:3"
R1, R2, R3 = rev(V1), rev(V2), rev(V3)


def rolling(**spec_overrides: object) -> Driver:
    """R1 stable, R2 in its first canary step (10 %) with traffic on."""
    d = Driver(spec=make_spec(V1, **spec_overrides))
    d.tick()
    d.tick()
    d.change_spec(make_spec(V2, **spec_overrides))
    d.run_until(lambda x: x.status.current_step == 1 and x.status.step_started_at is not None)
    assert d.status.traffic.canary_weight == 10
    return d


def entry_selector(d: Driver) -> str:
    return str(d.cluster.objects[("Service", "iris")]["spec"]["selector"][REVISION_LABEL])


def condition(d: Driver, kind: str) -> tuple[str, str, str]:
    c = next(c for c in d.status.conditions if c.type == kind)
    return c.status, c.reason, c.message


def test_failure_limit_rolls_back_with_the_measured_value_in_words() -> None:
    d = rolling()
    d.next_verdict = Verdict.FAIL
    d.run_until(lambda x: x.status.analysis.consecutive_failures == 1)
    assert d.status.canary_revision == R2  # one failure is below failureLimit 2
    assert d.plans[-1].events[0].reason == "AnalysisFailed"
    assert "(1/2)" in d.plans[-1].events[0].message

    d.run_until(lambda x: x.status.canary_revision is None, limit=60)
    status = d.status
    rollback = d.plans[-1]
    expected = "p99 latency 100ms > 250ms for 2 consecutive intervals"
    assert status.phase == "RolledBack"
    assert status.aborted_revision == R2
    assert status.rollback_reason is not None and expected in status.rollback_reason
    assert condition(d, "RolledBack") == ("True", "AnalysisFailed", status.rollback_reason)
    warning = next(e for e in rollback.events if e.reason == "RolledBack")
    assert warning.type == "Warning" and expected in warning.message
    assert status.history[-1].revision == R2 and status.history[-1].outcome == "RolledBack"
    # The failing verdict stays visible with its value, threshold and query.
    result = status.analysis.results[0]
    assert (result.verdict, result.value, result.threshold) == ("Fail", 0.1, 0.25)
    assert result.query and "histogram_quantile" in result.query


def test_rollback_cuts_traffic_first_and_scales_down_after_the_drain_period() -> None:
    d = rolling()
    d.next_verdict = Verdict.FAIL
    d.run_until(lambda x: x.status.canary_revision is None, limit=120)
    cut = d.plans[-1]
    # In the deciding call: routing without canary or shadow, the canary keeps its pod.
    assert cut.routing.canary is None and cut.routing.shadow is None
    assert cut.routing.stable.revision == R1
    assert d.cluster.deployments[R2].replicas == 1
    assert not [s for s in cut.scale if s.revision == R2]
    assert not cut.delete
    assert entry_selector(d) == R1
    assert [x.revision for x in d.status.draining] == [R2]

    d.advance(25)
    assert d.cluster.deployments[R2].replicas == 1
    d.advance(5)
    # The spec still asks for R2, which was rolled back: kept at zero pods, not retried.
    assert d.cluster.deployments[R2].replicas == 0
    assert d.status.draining == []
    assert d.status.phase == "RolledBack"
    d.advance(600, every=60)
    assert d.status.canary_revision is None and d.status.phase == "RolledBack"
    assert "RolloutStarted" not in [e.reason for p in d.plans[-10:] for e in p.events]
    assert d.cluster.deployments[R2].replicas == 0


def test_entry_service_never_leaves_stable_during_a_failed_rollout() -> None:
    d = rolling()
    d.next_verdict = Verdict.FAIL
    selectors = set()
    for _ in range(40):
        d.now += timedelta(seconds=5)
        d.tick()
        selectors.add(entry_selector(d))
    assert selectors == {R1}


def test_a_pass_between_failures_resets_the_count() -> None:
    d = rolling()
    for kind in (Verdict.FAIL, Verdict.PASS, Verdict.FAIL):
        d.next_verdict = kind
        runs = d.analysis_runs
        d.run_until(lambda x, n=runs: x.analysis_runs > n, limit=60)
    assert d.status.canary_revision == R2
    assert d.status.analysis.consecutive_failures == 1


def test_inconclusive_never_advances_and_pauses_at_the_limit() -> None:
    d = rolling()
    d.next_verdict = Verdict.INCONCLUSIVE
    d.advance(85)  # two runs, past the 1 minute of step 2
    status = d.status
    assert status.current_step == 1
    assert status.analysis.consecutive_inconclusive == 2
    assert status.phase == "Progressing"
    d.advance(30)
    status = d.status
    assert status.phase == "Paused"
    assert status.pause_reason == "InconclusiveAnalysis"
    assert status.current_step == 1 and status.traffic.canary_weight == 10
    assert "AnalysisInconclusive" in d.reasons()
    # More inconclusive runs keep it paused; a pass does not resume it on its own.
    d.next_verdict = Verdict.PASS
    d.advance(300, every=30)
    assert d.status.phase == "Paused" and d.status.current_step == 1
    # resume: the count restarts and the step (clock stopped while paused) can end.
    d.action("resume@1")
    d.advance(60)
    assert (d.status.current_step or 0) >= 2


def test_inconclusive_limit_fails_the_rollout_when_configured() -> None:
    rollout = {
        "steps": [{"canary": {"weight": 10, "duration": "1m"}}],
        "analysis": {"interval": "30s", "inconclusiveLimit": 2, "onInconclusive": "Fail"},
    }
    d = Driver(spec=make_spec(V1, rollout=rollout))
    d.tick()
    d.tick()
    d.change_spec(make_spec(V2, rollout=rollout))
    d.next_verdict = Verdict.INCONCLUSIVE
    d.tick()
    assert d.status.canary_revision == R2
    d.run_until(lambda x: x.status.canary_revision is None, limit=300)
    status = d.status
    assert status.phase == "Failed"
    assert status.aborted_revision == R2
    assert "analysis inconclusive for 2 consecutive intervals" in (status.rollback_reason or "")
    assert condition(d, "RolledBack")[:2] == ("True", "InconclusiveAnalysis")
    assert status.history[-1].outcome == "Failed"


def test_abort_rolls_back_now() -> None:
    d = rolling()
    d.action("abort@x1")
    d.now += timedelta(seconds=1)
    result = d.tick()
    status = d.status
    assert [e.reason for e in result.events] == ["ActionApplied", "RolledBack"]
    assert status.phase == "RolledBack" and status.aborted_revision == R2
    assert condition(d, "RolledBack")[1] == "Aborted"
    assert result.routing.canary is None
    assert status.last_action is not None and status.last_action.result == "Applied"


@pytest.mark.parametrize(
    ("where", "need"),
    [("first step", "0/4"), ("scale-up for canary 50%", "1/2"), ("promotion", "2/4")],
)
def test_progress_deadline_fails_a_revision_whose_pods_do_not_get_ready(where: str, need: str) -> None:
    d = Driver()
    d.tick()
    d.tick()
    d.change_spec(make_spec(V2))
    if where == "first step":
        d.cluster.auto_ready = False
        d.tick()
    elif where == "scale-up for canary 50%":
        d.run_until(lambda x: x.status.current_step == 1)
        d.cluster.auto_ready = False
        d.run_until(lambda x: x.status.current_step == 2)
    else:
        d.run_until(lambda x: x.status.current_step == 3)
        d.cluster.auto_ready = False
        d.action("promote@1")
        d.run_until(lambda x: x.status.current_step == 4)
    waiting = d.status
    assert waiting.step_started_at is None and waiting.waiting_for_pods_since == d.now
    d.advance(295)
    assert d.status.canary_revision == R2
    d.advance(5)
    status = d.status
    assert status.phase == "Failed"
    assert status.aborted_revision == R2
    assert condition(d, "RolledBack")[1] == "ProgressDeadlineExceeded"
    assert f"{need} pods ready 5m after" in (status.rollback_reason or "")
    assert "progressDeadline 5m" in (status.rollback_reason or "")
    assert d.plans[-1].events[-1].reason == "RolloutFailed"
    assert d.plans[-1].routing.canary is None and d.plans[-1].routing.shadow is None
    assert entry_selector(d) == R1


def test_progress_deadline_of_the_first_revision_marks_it_failed_until_it_recovers() -> None:
    d = Driver()
    d.cluster.auto_ready = False
    d.tick()
    d.advance(300, every=60)
    status = d.status
    assert status.phase == "Failed"
    assert condition(d, "Progressing")[:2] == ("False", "ProgressDeadlineExceeded")
    assert d.reasons().count("ProgressDeadlineExceeded") == 1
    d.advance(120, every=60)
    assert d.reasons().count("ProgressDeadlineExceeded") == 1  # said once
    d.cluster.set_ready(R1)
    d.advance(5)
    assert d.status.phase == "Succeeded"


def test_rolled_back_revision_is_not_retried_until_the_spec_changes() -> None:
    d = rolling()
    d.action("abort@1")
    d.advance(60)
    assert d.status.phase == "RolledBack"
    # Same spec, other unrelated fields changed (no new revision): still held.
    d.change_spec(make_spec(V2, replicas=3))
    d.advance(30)
    assert d.status.canary_revision is None and d.status.phase == "RolledBack"
    # A new image: a new rollout, and the RolledBack condition turns False.
    d.change_spec(make_spec(V3, replicas=3))
    d.advance(5)
    status = d.status
    assert status.canary_revision == R3
    assert status.aborted_revision is None
    assert condition(d, "RolledBack")[0] == "False"
    assert R2 not in d.cluster.deployments  # the rolled-back revision's Deployment is removed


def test_retry_action_rolls_the_revision_out_again() -> None:
    d = rolling()
    d.action("abort@1")
    d.advance(60)
    assert d.cluster.deployments[R2].replicas == 0
    d.action("retry@2")
    d.now += timedelta(seconds=1)
    result = d.tick()
    status = d.status
    assert [e.reason for e in result.events] == ["ActionApplied", "RolloutStarted"]
    assert status.canary_revision == R2 and status.current_step == 0
    assert status.analysis.consecutive_failures == 0
    assert d.cluster.deployments[R2].replicas == 4  # shadow 100 %
    d.advance(150)
    assert (d.status.current_step or 0) >= 1


def test_spec_back_to_the_rolled_back_revision_after_a_change_is_a_new_attempt() -> None:
    d = rolling()
    d.action("abort@1")
    d.advance(5)
    d.change_spec(make_spec(V1))  # back to stable: nothing to roll out
    d.advance(5)
    assert d.status.phase == "Succeeded" and d.status.aborted_revision is None
    d.change_spec(make_spec(V2))
    d.advance(5)
    assert d.status.canary_revision == R2


def test_an_outcome_for_another_revision_or_not_due_is_ignored() -> None:
    d = rolling()
    failures = d.status.analysis.consecutive_failures
    # The real reconcile asks only for due analyses of the canary: these are the planner's own guard.
    stray = AnalysisOutcome(revision=R3, results=(verdict(Verdict.FAIL),))
    d.now += timedelta(seconds=1)
    result = d.planned(analysis=stray)
    assert result.status.analysis.consecutive_failures == failures
    assert any("ignored analysis of revision" in n for n in result.notes)
    d.tick()
    early = AnalysisOutcome(revision=R2, results=(verdict(Verdict.FAIL),))
    d.now += timedelta(seconds=1)
    assert analysis_request(d.spec, d.status, d.now) is None, "the outcome below is not due"
    assert d.planned(analysis=early).status.analysis.consecutive_failures == failures
    d.tick()
    assert d.status.analysis.consecutive_failures == failures


def test_a_running_step_whose_pods_vanish_holds_and_rolls_back_after_the_progress_deadline() -> None:
    d = rolling()
    d.cluster.auto_ready = False
    d.cluster.set_ready(R2, 0)  # the canary pods were deleted, or the Deployment scaled to 0
    d.advance(120)  # far beyond the step's 1m: it must not end without its pods
    status = d.status
    assert status.current_step == 1 and status.canary_revision == R2
    assert status.waiting_for_pods_since is not None
    assert condition(d, "Progressing")[1] == "PodsLost"
    assert d.cluster.deployments[R2].replicas == 1, "the Deployment stays asked for its pods"
    d.advance(175)  # progressDeadline 5m counts from the first tick that saw the loss
    assert d.status.canary_revision == R2
    d.advance(10)
    status = d.status
    assert status.phase == "Failed" and status.aborted_revision == R2
    assert "lost its pods during step 2/4" in (status.rollback_reason or "")
    assert "Promoted" not in d.reasons()
    assert entry_selector(d) == R1


def test_a_running_step_whose_pods_come_back_carries_on_to_promotion() -> None:
    d = rolling()
    d.cluster.auto_ready = False
    d.cluster.set_ready(R2, 0)
    d.advance(120)
    assert d.status.current_step == 1
    d.cluster.auto_ready = True
    d.cluster.set_ready(R2)
    d.tick()
    assert d.status.current_step == 2, "the held step ends once its pods are back"
    d.action("promote@1")  # past the final pause step
    d.run_until(lambda x: x.status.current_step == 3)
    d.action("promote@2")
    d.run_until(lambda x: x.status.phase == "Succeeded")
    assert d.status.stable_revision == R2
    assert d.reasons().count("Promoted") == 1
