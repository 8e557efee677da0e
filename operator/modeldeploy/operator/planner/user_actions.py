"""Carrying out the user action requested by annotation (see actions.py for the protocol).

Each request is acknowledged in ``status.lastAction`` (its ``id`` is the annotation value, so
it is not carried out twice) and by an Event: ActionApplied, ActionIgnored (nothing to do in the
current state, with the reason) or ActionRejected (not a known action).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from modeldeploy.operator.api import LastAction
from modeldeploy.operator.planner.actions import (
    ABORT,
    ACTION_ANNOTATION,
    PAUSE,
    PROMOTE,
    PROMOTE_FULL,
    RESUME,
    RETRY,
    ActionError,
    parse_action,
)
from modeldeploy.operator.planner.context import Tick
from modeldeploy.operator.planner.plan import HandledAction
from modeldeploy.operator.planner.rollback import rollback
from modeldeploy.operator.planner.rollout import enter_step
from modeldeploy.operator.planner.steps import describe_step, is_pause, is_promoting

Result = tuple[Literal["Applied", "Ignored"], str]

MAX_ID = 256


def _no_rollout(tick: Tick) -> Result:
    status = tick.status
    if status.aborted_revision is not None and status.aborted_revision == tick.spec_revision:
        return (
            "Ignored",
            f"no rollout in progress: revision {status.aborted_revision} was rolled back (use retry)",
        )
    return "Ignored", "no rollout in progress"


def _promote(tick: Tick) -> Result:
    status = tick.status
    if status.canary_revision is None or status.current_step is None:
        return _no_rollout(tick)
    steps = tick.spec.rollout.steps
    index = status.current_step
    if is_promoting(steps, index):
        return (
            "Ignored",
            f"revision {status.canary_revision} is already being promoted (waiting for its pods)",
        )
    skipped = describe_step(steps, index)
    status.paused_at = None
    status.pause_reason = None
    enter_step(tick, index + 1)
    return "Applied", f"skipped {skipped} of revision {status.canary_revision}"


def _promote_full(tick: Tick) -> Result:
    status = tick.status
    if status.canary_revision is None or status.current_step is None:
        return _no_rollout(tick)
    steps = tick.spec.rollout.steps
    if is_promoting(steps, status.current_step):
        return (
            "Ignored",
            f"revision {status.canary_revision} is already being promoted (waiting for its pods)",
        )
    status.paused_at = None
    status.pause_reason = None
    enter_step(tick, len(steps))
    return "Applied", (
        f"skipping the remaining steps: revision {status.canary_revision} becomes stable once "
        f"{tick.spec.replicas} pod(s) are ready"
    )


def _abort(tick: Tick) -> Result:
    status = tick.status
    if status.canary_revision is None:
        return _no_rollout(tick)
    revision = status.canary_revision
    rollback(tick, "Aborted", "aborted by the user")
    return "Applied", f"rolled back revision {revision}"


def _retry(tick: Tick) -> Result:
    status = tick.status
    if status.canary_revision is not None:
        return "Ignored", f"revision {status.canary_revision} is being rolled out already"
    if status.aborted_revision is None or status.aborted_revision != tick.spec_revision:
        return "Ignored", "nothing to retry: the spec's revision was not rolled back"
    revision = status.aborted_revision
    status.aborted_revision = None
    return "Applied", f"retrying revision {revision}"


def _pause(tick: Tick) -> Result:
    status = tick.status
    if status.canary_revision is None:
        return _no_rollout(tick)
    if status.paused_at is not None:
        return "Ignored", f"the rollout is already paused ({status.pause_reason})"
    status.paused_at = tick.now
    status.pause_reason = "UserPaused"
    return "Applied", f"paused the rollout of revision {status.canary_revision}; traffic stays as it is"


def _resume(tick: Tick) -> Result:
    status = tick.status
    if status.canary_revision is None:
        return _no_rollout(tick)
    if status.paused_at is None:
        if status.current_step is not None and is_pause(tick.spec.rollout.steps, status.current_step):
            return "Ignored", "the rollout waits at a pause step: use promote to continue past it"
        return "Ignored", "the rollout is not paused"
    held = tick.now - status.paused_at
    if status.step_started_at is not None:
        status.step_started_at += held
    if status.waiting_for_pods_since is not None:
        status.waiting_for_pods_since += held
    if status.pause_reason == "InconclusiveAnalysis":
        status.analysis.consecutive_inconclusive = 0
    status.paused_at = None
    status.pause_reason = None
    return "Applied", f"resumed the rollout of revision {status.canary_revision}"


_HANDLERS: dict[str, Callable[[Tick], Result]] = {
    PROMOTE: _promote,
    PROMOTE_FULL: _promote_full,
    ABORT: _abort,
    RETRY: _retry,
    PAUSE: _pause,
    RESUME: _resume,
}


def apply_action(tick: Tick) -> HandledAction | None:
    """Carry out the requested action if it is new; acknowledge it in status and an Event."""
    value = (tick.meta.annotations.get(ACTION_ANNOTATION) or "").strip()
    if not value:
        return None
    request_id = value[:MAX_ID]
    last = tick.status.last_action
    if last is not None and last.id == request_id:
        return None
    try:
        request = parse_action(value)
    except ActionError as exc:
        name = (value.partition("@")[0].strip() or "unknown")[:63]
        tick.status.last_action = LastAction(
            name=name, id=request_id, at=tick.now, result="Rejected", message=str(exc)
        )
        tick.warning("ActionRejected", str(exc))
        return HandledAction(value=value, action=name, accepted=False, message=str(exc))
    first_consequence = len(tick.events)
    revision = tick.status.canary_revision
    result, message = _HANDLERS[request.action](tick)
    tick.status.last_action = LastAction(
        name=request.action, id=request_id, at=tick.now, result=result, message=message, revision=revision
    )
    tick.normal("ActionApplied" if result == "Applied" else "ActionIgnored", f"{request.action}: {message}")
    # The acknowledgement comes before what the action caused (e.g. the RolledBack event).
    tick.events.insert(first_consequence, tick.events.pop())
    return HandledAction(value=value, action=request.action, accepted=result == "Applied", message=message)
