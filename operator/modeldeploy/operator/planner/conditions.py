"""Phase, message and the Ready / Progressing / RolledBack conditions, derived after the transitions.

Conditions have the metav1.Condition shape; ``lastTransitionTime`` changes only when a
condition's status flips, so a status that did not change patches to the same value.
"""

from __future__ import annotations

from datetime import datetime

from modeldeploy.operator.api import Condition
from modeldeploy.operator.api.status import ConditionStatus
from modeldeploy.operator.planner.context import Tick
from modeldeploy.operator.planner.rollout import step_end
from modeldeploy.operator.planner.steps import describe_step, is_pause, is_promoting, new_revision_replicas

READY = "Ready"
PROGRESSING = "Progressing"
ROLLED_BACK = "RolledBack"


def iso(value: datetime) -> str:
    """A UTC time as Kubernetes writes it, e.g. 2026-11-22T10:00:00Z."""
    return value.isoformat().replace("+00:00", "Z")


def set_condition(tick: Tick, type_: str, state: ConditionStatus, reason: str, message: str) -> None:
    status = tick.status
    existing = next((c for c in status.conditions if c.type == type_), None)
    changed_at = tick.now if existing is None or existing.status != state else existing.last_transition_time
    condition = Condition(
        type=type_,
        status=state,
        observed_generation=tick.meta.generation,
        last_transition_time=changed_at,
        reason=reason,
        message=message,
    )
    others = [c for c in status.conditions if c.type != type_]
    order = {READY: 0, PROGRESSING: 1, ROLLED_BACK: 2}
    status.conditions = sorted([*others, condition], key=lambda c: (order.get(c.type, 9), c.type))


def _stable_pods(tick: Tick) -> tuple[int, int, bool]:
    """(ready, wanted, exists) for the stable revision's Deployment."""
    stable = tick.status.stable_revision
    observed = tick.observed.get(stable)
    return (0 if observed is None else observed.ready_replicas), tick.spec.replicas, observed is not None


def _rollout_message(tick: Tick) -> tuple[str, str, bool]:
    """(reason, message, paused) of the rollout in progress."""
    status = tick.status
    steps = tick.spec.rollout.steps
    index = status.current_step or 0
    revision = status.canary_revision
    where = describe_step(steps, index)
    if status.paused_at is not None:
        why = "by the user" if status.pause_reason == "UserPaused" else "analysis is inconclusive"
        return (
            "RolloutPaused",
            f"revision {revision} paused at {where}: {why}; resume, promote or abort",
            True,
        )
    if status.step_started_at is None:
        need = new_revision_replicas(steps, index, tick.spec.replicas)
        ready = tick.ready_replicas(revision)
        reason = "Promoting" if is_promoting(steps, index) else "WaitingForPods"
        return reason, f"revision {revision}: {where}: waiting for pods ({ready}/{need} ready)", False
    if status.waiting_for_pods_since is not None:  # a running step whose pods were lost
        need = new_revision_replicas(steps, index, tick.spec.replicas)
        ready = tick.ready_replicas(revision)
        return (
            "PodsLost",
            f"revision {revision}: {where}: {ready}/{need} pods ready; the step holds until they are back",
            False,
        )
    if is_pause(steps, index):
        end = step_end(tick)
        until = "until promoted (kubectl modeldeploy promote)" if end is None else f"until {iso(end)}"
        return "RolloutPaused", f"revision {revision}: {where}, {until}", True
    end = step_end(tick)
    return (
        "StepRunning",
        f"revision {revision}: {where} since {iso(status.step_started_at)}"
        + ("" if end is None else f", ends at {iso(end)} or later (needs a passing analysis)"),
        False,
    )


def finish_status(tick: Tick) -> None:
    """Set phase, message and conditions from the status the transitions left."""
    status = tick.status
    ready, wanted, exists = _stable_pods(tick)
    stable = status.stable_revision
    draining = ", ".join(d.revision for d in status.draining)
    drain_note = f"; draining revision(s) {draining}" if draining else ""

    if not exists:
        set_condition(
            tick, READY, "False", "StableMissing", f"stable revision {stable} has no Deployment yet"
        )
    elif ready >= wanted:
        set_condition(
            tick, READY, "True", "Available", f"{ready}/{wanted} pods of stable revision {stable} ready"
        )
    else:
        set_condition(
            tick, READY, "False", "PodsNotReady", f"{ready}/{wanted} pods of stable revision {stable} ready"
        )

    if status.canary_revision is not None:
        reason, message, paused = _rollout_message(tick)
        status.phase = "Paused" if paused else "Progressing"
        status.message = message
        set_condition(tick, PROGRESSING, "True", reason, message)
    elif status.waiting_for_pods_since is not None:  # first revision not ready yet
        message = f"revision {stable}: waiting for pods ({ready}/{wanted} ready)"
        if status.phase == "Failed":
            message += f"; not ready within progressDeadline {tick.spec.progress_deadline}"
            set_condition(tick, PROGRESSING, "False", "ProgressDeadlineExceeded", message)
        else:
            status.phase = "Progressing"
            set_condition(tick, PROGRESSING, "True", "WaitingForPods", message)
        status.message = message
    elif status.aborted_revision is not None and status.aborted_revision == tick.spec_revision:
        if status.phase not in ("RolledBack", "Failed"):
            status.phase = "RolledBack"
        status.message = (
            f"{status.rollback_reason or f'revision {status.aborted_revision} was rolled back'}; "
            "change the spec or run kubectl modeldeploy retry" + drain_note
        )
        set_condition(tick, PROGRESSING, "False", status.phase, status.message)
    else:
        degraded = not exists or ready == 0
        if degraded and status.phase != "Degraded":
            tick.warning("Degraded", f"stable revision {stable} has no ready pods (0/{wanted})")
        status.phase = "Degraded" if degraded else "Succeeded"
        status.message = f"revision {stable} is stable ({ready}/{wanted} pods ready){drain_note}"
        if draining:
            set_condition(tick, PROGRESSING, "True", "Draining", status.message)
        else:
            set_condition(tick, PROGRESSING, "False", "RolloutComplete", status.message)

    if tick.rollback_cause is not None:
        set_condition(tick, ROLLED_BACK, "True", tick.rollback_cause, status.rollback_reason or "")
    elif status.aborted_revision is not None and status.aborted_revision == tick.spec_revision:
        current = next((c for c in status.conditions if c.type == ROLLED_BACK), None)
        if current is None or current.status != "True":
            set_condition(tick, ROLLED_BACK, "True", "RolledBack", status.rollback_reason or "")
    else:
        set_condition(tick, ROLLED_BACK, "False", "NotRolledBack", "")
