"""Moving a new revision through its steps, and promoting it at the end.

Within step ``i`` the rollout is in one of two sub-states, both recorded in status:

- *waiting for pods* (``stepStartedAt`` unset, ``waitingForPodsSince`` set): the new revision's
  Deployment is sized for step ``i`` and the traffic of the previous step stays in force. When
  enough pods are ready, step ``i``'s traffic takes effect and its clock starts. If they are not
  ready within ``progressDeadline``, the revision is rolled back (Failed).
- *running* (``stepStartedAt`` set): the step ends when its duration has passed (not counting
  time paused) and, if the new revision receives traffic, the latest analysis run finished
  within the step and passed. If the new revision loses ready pods meanwhile (deleted or scaled
  down by hand), the step holds (``waitingForPodsSince`` set again) until they are back, and
  the revision is rolled back if they are not within ``progressDeadline``. An inconclusive or
  failed run never ends a step. A pause step without a duration ends only by ``promote``.

After the last step (``currentStep == len(steps)``) the new revision is scaled to full size;
once all its pods are ready it becomes stable in one call: the routing table and the entry
Service switch to it, and the previous stable revision starts draining.
"""

from __future__ import annotations

from datetime import datetime

from modeldeploy.operator.api import AnalysisStatus, TrafficStatus
from modeldeploy.operator.planner.actions import PROMOTE_FULL
from modeldeploy.operator.planner.analysis_runs import latest_run_passed
from modeldeploy.operator.planner.context import Tick
from modeldeploy.operator.planner.golden import hold_at_gate
from modeldeploy.operator.planner.pod_wait import wait_for_pods
from modeldeploy.operator.planner.rollback import rollback
from modeldeploy.operator.planner.steps import (
    describe_step,
    is_promoting,
    new_revision_replicas,
    step_duration,
    step_traffic,
)


def start_rollout(tick: Tick) -> None:
    """Begin rolling out the spec's revision at step 0."""
    status = tick.status
    revision = tick.spec_revision
    tick.stop_draining(revision)
    status.clear_rollout()
    status.canary_revision = revision
    status.canary_image = tick.spec.model.image
    status.current_step = 0
    status.waiting_for_pods_since = tick.now
    status.analysis = AnalysisStatus()
    status.rollback_reason = None
    status.phase = "Progressing"
    tick.normal(
        "RolloutStarted",
        f"rolling out revision {revision} ({tick.spec.model.image}) over {tick.steps_count} step(s); "
        f"stable revision {status.stable_revision} keeps serving",
    )


def enter_step(tick: Tick, index: int) -> None:
    """Move the cursor to step ``index`` (or to promotion): wait for its pods first."""
    status = tick.status
    status.current_step = index
    status.step_started_at = None
    status.waiting_for_pods_since = tick.now
    if is_promoting(tick.spec.rollout.steps, index):
        tick.normal(
            "Promoting",
            f"revision {status.canary_revision} passed every step; scaling it to {tick.spec.replicas} "
            "pod(s) before it takes over",
        )


def step_end(tick: Tick) -> datetime | None:
    """When the running step's duration is over (None: waits for the user, or not running)."""
    status = tick.status
    if status.step_started_at is None or status.current_step is None:
        return None
    duration = step_duration(tick.spec.rollout.steps, status.current_step)
    return None if duration is None else status.step_started_at + duration


def _step_complete(tick: Tick) -> bool:
    end = step_end(tick)
    if end is None or tick.now < end:
        return False
    status = tick.status
    assert status.step_started_at is not None
    if status.traffic.canary_weight <= 0 and status.traffic.shadow_percent <= 0:
        return True
    if latest_run_passed(status, status.step_started_at):
        return True
    tick.note("step duration is over; waiting for a passing analysis run within the step")
    return False


def _pods_lost(tick: Tick, need: int) -> list[datetime] | None:
    """A running step whose new revision lost ready pods (deleted, scaled down by hand) holds.

    The step cannot end until the pods are back (the Deployment is re-applied at its size, so
    they are recreated); if they are not ready within ``progressDeadline`` of the loss, the
    revision is rolled back. Returns the wake-up times while holding, None when all is well.
    """
    status = tick.status
    assert status.canary_revision is not None and status.current_step is not None
    wait = wait_for_pods(tick, status.canary_revision, need)
    if wait.met:
        status.waiting_for_pods_since = None
        return None
    where = describe_step(tick.spec.rollout.steps, status.current_step)
    if wait.overdue:
        rollback(
            tick,
            "ProgressDeadlineExceeded",
            f"revision {status.canary_revision} lost its pods during {where}: {wait.ready}/{need} ready "
            f"for {wait.waited} (progressDeadline {tick.spec.progress_deadline})",
        )
        return []
    tick.note(
        f"{where}: {wait.ready}/{need} pods of the new revision ready; the step holds until they are back"
    )
    return wait.wake


def promote(tick: Tick) -> None:
    """The new revision becomes stable: routing and entry Service switch, the old one drains."""
    status = tick.status
    revision = status.canary_revision
    assert revision is not None
    image = tick.image_of(revision)
    previous = status.stable_revision
    status.stable_revision = revision
    status.stable_image = image
    status.clear_rollout()
    status.aborted_revision = None
    status.phase = "Succeeded"
    drain = ""
    if previous is not None and previous != revision:
        tick.start_draining(previous)
        drain = f"; revision {previous} drains for {tick.spec.drain_period}, then is removed"
    last = status.last_action
    skipped = (
        last is not None
        and last.name == PROMOTE_FULL
        and last.result == "Applied"
        and last.revision == revision
    )
    why = "remaining steps skipped by promote-full" if skipped else "all steps passed"
    tick.record_history(revision, "Promoted", why, image=image)
    tick.normal("Promoted", f"revision {revision} ({image}) is now stable{drain}")


def progress(tick: Tick) -> list[datetime]:
    """Advance the rollout as far as the clock, pods and analysis allow; returns wake-up times."""
    status = tick.status
    steps = tick.spec.rollout.steps
    replicas = tick.spec.replicas
    for _ in range(len(steps) + 2):
        if status.canary_revision is None or status.current_step is None:
            return []
        if status.paused_at is not None:
            tick.note(f"rollout paused ({status.pause_reason}); nothing advances")
            return []
        index = status.current_step
        if status.step_started_at is None:
            wait = wait_for_pods(tick, status.canary_revision, new_revision_replicas(steps, index, replicas))
            if not wait.met:
                if wait.overdue:
                    rollback(
                        tick,
                        "ProgressDeadlineExceeded",
                        f"{wait.ready}/{wait.need} pods ready {wait.waited} after "
                        f"{describe_step(steps, index)} began "
                        f"(progressDeadline {tick.spec.progress_deadline})",
                    )
                    return []
                tick.note(f"{describe_step(steps, index)}: waiting for pods ({wait.ready}/{wait.need} ready)")
                return wait.wake
            hold, wake = hold_at_gate(tick)
            if hold:
                return wake
            if is_promoting(steps, index):
                promote(tick)
                return []
            traffic = step_traffic(steps, index)
            status.traffic = TrafficStatus(
                canary_weight=traffic.canary_weight, shadow_percent=traffic.shadow_percent
            )
            status.step_started_at = tick.now
            if traffic.canary_weight > 0 and status.analysis.canary_started_at is None:
                status.analysis.canary_started_at = tick.now
            status.waiting_for_pods_since = None
            tick.normal("StepStarted", f"revision {status.canary_revision}: {describe_step(steps, index)}")
            continue
        lost = _pods_lost(tick, need=new_revision_replicas(steps, index, replicas))
        if lost is not None:
            return lost
        if _step_complete(tick):
            enter_step(tick, index + 1)
            continue
        end = step_end(tick)
        return [] if end is None or end <= tick.now else [end]
    return []
