"""User actions by annotation: each one in each state, applied once, acknowledged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.unit.planner.harness import Driver, make_spec, rev

V1 = "registry.example.com/iris:1"
V2 = "registry.example.com/iris:2"
R1, R2 = rev(V1), rev(V2)


def steady() -> Driver:
    d = Driver()
    d.tick()
    d.tick()
    return d


def in_shadow() -> Driver:
    d = steady()
    d.change_spec(make_spec(V2))
    d.run_until(lambda x: x.status.step_started_at is not None)
    return d


def at_pause_step() -> Driver:
    d = in_shadow()
    d.run_until(lambda x: x.status.current_step == 3)
    return d


def user_paused() -> Driver:
    d = in_shadow()
    apply(d, "pause@p")
    return d


def rolled_back() -> Driver:
    d = in_shadow()
    apply(d, "abort@a")
    return d


def promoting() -> Driver:
    d = at_pause_step()
    d.cluster.auto_ready = False
    apply(d, "promote@p")
    return d


def apply(d: Driver, value: str) -> tuple[str, str]:
    d.action(value)
    d.now += timedelta(seconds=1)
    result = d.tick()
    ack = result.events[0]
    return ack.reason, ack.message


STATES: dict[str, Callable[[], Driver]] = {
    "steady": steady,
    "shadow": in_shadow,
    "pause-step": at_pause_step,
    "user-paused": user_paused,
    "rolled-back": rolled_back,
    "promoting": promoting,
}

# (state, action, acknowledgement, check on the status afterwards)
CASES: list[tuple[str, str, str, Callable[[Driver], bool]]] = [
    ("steady", "promote", "ActionIgnored", lambda d: d.status.phase == "Succeeded"),
    ("steady", "abort", "ActionIgnored", lambda d: d.status.phase == "Succeeded"),
    ("steady", "retry", "ActionIgnored", lambda d: d.status.canary_revision is None),
    ("steady", "pause", "ActionIgnored", lambda d: d.status.paused_at is None),
    ("steady", "resume", "ActionIgnored", lambda d: d.status.phase == "Succeeded"),
    ("shadow", "promote", "ActionApplied", lambda d: d.status.current_step == 1),
    ("shadow", "promote-full", "ActionApplied", lambda d: d.status.stable_revision == R2),
    ("shadow", "abort", "ActionApplied", lambda d: d.status.phase == "RolledBack"),
    ("shadow", "retry", "ActionIgnored", lambda d: d.status.current_step == 0),
    ("shadow", "pause", "ActionApplied", lambda d: d.status.phase == "Paused"),
    ("shadow", "resume", "ActionIgnored", lambda d: d.status.phase == "Progressing"),
    ("pause-step", "promote", "ActionApplied", lambda d: d.status.current_step == 4),
    ("pause-step", "resume", "ActionIgnored", lambda d: d.status.current_step == 3),
    ("user-paused", "resume", "ActionApplied", lambda d: d.status.paused_at is None),
    ("user-paused", "pause", "ActionIgnored", lambda d: d.status.phase == "Paused"),
    ("user-paused", "promote", "ActionApplied", lambda d: d.status.paused_at is None),
    ("user-paused", "abort", "ActionApplied", lambda d: d.status.phase == "RolledBack"),
    ("rolled-back", "retry", "ActionApplied", lambda d: d.status.canary_revision == R2),
    ("rolled-back", "promote", "ActionIgnored", lambda d: d.status.phase == "RolledBack"),
    ("rolled-back", "abort", "ActionIgnored", lambda d: d.status.phase == "RolledBack"),
    ("promoting", "promote", "ActionIgnored", lambda d: d.status.current_step == 4),
    ("promoting", "promote-full", "ActionIgnored", lambda d: d.status.current_step == 4),
    ("promoting", "abort", "ActionApplied", lambda d: d.status.aborted_revision == R2),
]


@pytest.mark.parametrize(("state", "action", "ack", "check"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_action_in_state(state: str, action: str, ack: str, check: Callable[[Driver], bool]) -> None:
    d = STATES[state]()
    reason, message = apply(d, f"{action}@case")
    assert reason == ack, message
    last = d.status.last_action
    assert last is not None
    assert (last.name, last.id, last.at) == (action, f"{action}@case", d.now)
    assert last.result == ("Applied" if ack == "ActionApplied" else "Ignored")
    assert last.message and last.message in message
    assert check(d), d.status_json


def test_an_action_is_applied_once() -> None:
    d = at_pause_step()
    d.cluster.auto_ready = False
    apply(d, "promote@1")
    assert d.status.current_step == 4
    d.advance(60)  # the annotation stays (as in GitOps): nothing happens again
    assert sum(r == "ActionApplied" for r in d.reasons()) == 1
    d.cluster.set_ready(R2)
    d.advance(5)
    assert d.status.stable_revision == R2


def test_a_new_id_repeats_an_action() -> None:
    d = in_shadow()
    apply(d, "promote@1")
    assert d.status.current_step == 1
    d.advance(5)
    apply(d, "promote@2")
    assert d.status.current_step == 2


def test_plain_values_work_and_alternate() -> None:
    d = in_shadow()
    assert apply(d, "pause")[0] == "ActionApplied"
    d.advance(30)
    assert apply(d, "resume")[0] == "ActionApplied"
    assert d.status.phase == "Progressing"


def test_unknown_action_is_rejected_with_the_accepted_list() -> None:
    d = in_shadow()
    d.action("promot@7")
    d.now += timedelta(seconds=1)
    result = d.tick()
    event = result.events[0]
    assert (event.type, event.reason) == ("Warning", "ActionRejected")
    assert "unknown action 'promot'" in event.message and "promote, promote-full" in event.message
    assert d.status.last_action is not None and d.status.last_action.result == "Rejected"
    assert result.handled_action is not None and not result.handled_action.accepted
    d.advance(10)
    assert d.reasons().count("ActionRejected") == 1


def test_pause_stops_the_step_clock_and_resume_restores_the_remaining_time() -> None:
    d = in_shadow()
    started = d.status.step_started_at
    assert started is not None
    d.advance(60)
    apply(d, "pause@1")
    d.advance(600, every=30)
    assert d.status.current_step == 0 and d.status.phase == "Paused"
    apply(d, "resume@2")
    status = d.status
    assert status.step_started_at is not None
    held = status.step_started_at - started
    assert timedelta(seconds=600) < held < timedelta(seconds=640)
    d.advance(55)
    assert d.status.current_step == 0  # about 60 s of the 2 minutes are left
    d.advance(10)
    assert d.status.current_step == 1


def test_analysis_failures_still_roll_back_while_paused() -> None:
    from modeldeploy.operator.analysis.results import Verdict

    d = in_shadow()
    apply(d, "pause@1")
    d.next_verdict = Verdict.FAIL
    d.advance(90)
    assert d.status.phase == "RolledBack"


def test_pause_while_waiting_for_pods_stops_the_progress_deadline() -> None:
    d = steady()
    d.cluster.auto_ready = False
    d.change_spec(make_spec(V2))
    d.tick()
    apply(d, "pause@1")
    d.advance(900, every=60)  # far past progressDeadline 5m
    assert d.status.canary_revision == R2 and d.status.phase == "Paused"
    apply(d, "resume@2")
    d.advance(240, every=60)
    assert d.status.canary_revision == R2  # about 5 minutes counted in all
    d.advance(120, every=60)
    assert d.status_json["phase"] == "Failed"


def test_promote_full_is_recorded_as_such_in_history() -> None:
    d = in_shadow()
    apply(d, "promote-full@1")
    assert d.status.stable_revision == R2
    assert d.status.history[-1].reason == "remaining steps skipped by promote-full"
    assert d.status.last_action is not None and d.status.last_action.revision == R2


def test_a_later_rollout_promoted_by_its_steps_is_not_credited_to_an_old_promote_full() -> None:
    d = in_shadow()
    apply(d, "promote-full@1")
    v3 = "registry.example.com/iris:3"
    rollout = {"steps": [{"canary": {"weight": 10, "duration": "1m"}}], "analysis": {"interval": "30s"}}
    d.change_spec(make_spec(v3, rollout=rollout))
    d.run_until(lambda x: x.status.stable_revision == rev(v3))
    assert d.status.last_action is not None and d.status.last_action.name == "promote-full"
    assert d.status.history[-1].reason == "all steps passed"
