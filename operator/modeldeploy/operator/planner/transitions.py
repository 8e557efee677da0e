"""The rollout state machine: one call decides every transition the inputs allow.

Order within a call (each stage sees the previous stages' decisions):

1. first revision: with no stable revision yet, the spec's revision becomes stable at once;
2. analysis: a due outcome for the new revision is counted; ``failureLimit`` consecutive
   failures roll back, ``inconclusiveLimit`` consecutive inconclusive runs pause or fail;
3. user action from the annotation (promote, promote-full, abort, retry, pause, resume);
4. spec: a new revision supersedes the one in progress or starts a rollout; a rolled-back
   revision is held until the spec changes or ``retry``;
5. progress through the steps (and promotion), or the first revision's wait for its pods;
6. draining revisions whose time is up are released for scale-down.

See docs/rollout-state-machine.md for the table of transitions.
"""

from __future__ import annotations

from datetime import datetime

from modeldeploy.operator.analysis.results import AnalysisOutcome, Verdict
from modeldeploy.operator.planner.analysis_runs import conclusive_failure, count_outcome
from modeldeploy.operator.planner.context import Tick
from modeldeploy.operator.planner.drain import finish_drains
from modeldeploy.operator.planner.outputs import HandledAction
from modeldeploy.operator.planner.pod_wait import wait_for_pods
from modeldeploy.operator.planner.rollback import rollback, supersede
from modeldeploy.operator.planner.rollout import progress, start_rollout
from modeldeploy.operator.planner.user_actions import apply_action


def _intervals(count: int) -> str:
    return f"{count} consecutive interval{'s' if count != 1 else ''}"


def adopt_serving_revision(tick: Tick) -> bool:
    """Empty status but a routing table and its stable Deployment exist (status was lost or
    wiped): take that revision as stable instead of promoting the spec's revision unjudged."""
    table = tick.observed.routing
    if table is None or table.model != tick.meta.name:
        return False
    observed = tick.observed.get(table.stable.revision)
    if observed is None:
        return False
    status = tick.status
    status.stable_revision = observed.revision
    status.stable_image = tick.image_of(observed.revision) or None
    status.phase = "Succeeded"
    tick.normal(
        "Adopted",
        f"status was empty; revision {observed.revision}, which the routing table names as stable, "
        "stays stable",
    )
    return True


def first_revision(tick: Tick) -> None:
    """No stable revision yet: the spec's revision is stable at once (nothing to compare with)."""
    if adopt_serving_revision(tick):
        return
    status = tick.status
    status.stable_revision = tick.spec_revision
    status.stable_image = tick.spec.model.image
    status.waiting_for_pods_since = tick.now
    status.phase = "Progressing"
    tick.normal(
        "Deploying",
        f"deploying revision {tick.spec_revision} ({tick.spec.model.image}) as the first stable revision",
    )


def first_revision_pending(tick: Tick) -> bool:
    """The stable revision has not yet been ready since it was first deployed."""
    status = tick.status
    return status.canary_revision is None and status.waiting_for_pods_since is not None


def wait_for_first_revision(tick: Tick) -> list[datetime]:
    status = tick.status
    assert status.waiting_for_pods_since is not None and status.stable_revision is not None
    wait = wait_for_pods(tick, status.stable_revision, tick.spec.replicas)
    if wait.met:
        status.waiting_for_pods_since = None
        status.phase = "Succeeded"
        tick.record_history(status.stable_revision, "Promoted", "first revision")
        tick.normal(
            "Available", f"revision {status.stable_revision} is serving ({wait.ready}/{wait.need} pods ready)"
        )
        return []
    if not wait.overdue:
        return wait.wake
    if status.phase != "Failed":
        status.phase = "Failed"
        tick.warning(
            "ProgressDeadlineExceeded",
            f"revision {status.stable_revision}: {wait.ready}/{wait.need} pods ready "
            f"{wait.waited} after it was deployed "
            f"(progressDeadline {tick.spec.progress_deadline})",
        )
    return []


def check_analysis_limits(tick: Tick, verdict: Verdict | None) -> None:
    status = tick.status
    analysis = status.analysis
    settings = tick.spec.rollout.analysis
    if status.canary_revision is None:
        return
    proved = conclusive_failure(status)
    if proved is not None:
        rollback(tick, "AnalysisFailed", f"{proved} (a sequential test proved it: no failureLimit wait)")
        return
    failing = "; ".join(r.message or f"{r.metric} failed" for r in analysis.results if r.verdict == "Fail")
    if analysis.consecutive_failures >= settings.failure_limit:
        rollback(
            tick,
            "AnalysisFailed",
            f"{failing or 'analysis failed'} for {_intervals(analysis.consecutive_failures)}",
        )
        return
    if verdict is not Verdict.INCONCLUSIVE or analysis.consecutive_inconclusive < settings.inconclusive_limit:
        return
    unclear = "; ".join(r.message or r.metric for r in analysis.results if r.verdict == "Inconclusive")
    why = f"analysis inconclusive for {_intervals(analysis.consecutive_inconclusive)}"
    if unclear:
        why = f"{why} ({unclear})"
    if settings.on_inconclusive == "Fail":
        rollback(tick, "InconclusiveAnalysis", why)
    elif status.paused_at is None:
        status.paused_at = tick.now
        status.pause_reason = "InconclusiveAnalysis"
        tick.warning(
            "AnalysisInconclusive",
            f"rollout of revision {status.canary_revision} paused: {why}; "
            "resume, promote or abort it (kubectl modeldeploy resume|promote|abort)",
        )


def reconcile_spec(tick: Tick) -> None:
    """Follow the spec: supersede, start a rollout, or hold a rolled-back revision."""
    status = tick.status
    wanted = tick.spec_revision
    if status.aborted_revision is not None and status.aborted_revision != wanted:
        tick.note(f"spec moved on from rolled-back revision {status.aborted_revision}")
        status.aborted_revision = None
    if first_revision_pending(tick) and status.stable_revision != wanted:
        # The stable revision never served: nothing to protect, replace it directly.
        previous = status.stable_revision
        assert previous is not None
        tick.record_history(previous, "Superseded", f"spec changed to revision {wanted} before it was ready")
        tick.start_draining(previous)
        status.stable_revision = wanted
        status.stable_image = tick.spec.model.image
        status.waiting_for_pods_since = tick.now
        status.phase = "Progressing"
        tick.normal(
            "Deploying",
            f"revision {previous} never became ready; deploying revision {wanted} "
            f"({tick.spec.model.image}) in its place",
        )
        return
    if status.canary_revision is not None and status.canary_revision != wanted:
        if wanted == status.stable_revision:
            supersede(tick, f"the spec went back to the stable revision {wanted}")
            status.phase = "Succeeded"
            return
        supersede(tick, f"the spec changed to revision {wanted}")
    if status.canary_revision is None and wanted != status.stable_revision:
        if wanted == status.aborted_revision:
            tick.note(f"revision {wanted} was rolled back; it is not retried until the spec changes or retry")
            return
        tick.stop_draining(wanted)
        start_rollout(tick)


def run(tick: Tick, outcome: AnalysisOutcome | None) -> tuple[list[datetime], HandledAction | None]:
    """Make every transition the inputs allow; returns wake-up times and the handled action."""
    status = tick.status
    status.observed_generation = tick.meta.generation
    if status.stable_revision is None:
        first_revision(tick)
    verdict = count_outcome(tick, outcome) if status.canary_revision is not None else None
    check_analysis_limits(tick, verdict)
    handled = apply_action(tick)
    reconcile_spec(tick)
    wake: list[datetime] = []
    if status.canary_revision is not None:
        wake += progress(tick)
    elif first_revision_pending(tick):
        wake += wait_for_first_revision(tick)
    wake += finish_drains(tick)
    return wake, handled
