"""Taking traffic away from a new revision: rollback (it failed) and supersede (a newer spec).

Order, which the plan relies on: in the call that decides, the routing table drops the canary
weight and the shadow (status.traffic goes to 0) and the revision is put on the draining list;
its Deployment keeps its pods. A later call scales it down, once the observed routing table no
longer names it and the drain period has passed (see drain.py). The entry Service never leaves
the stable revision.
"""

from __future__ import annotations

from typing import Literal

from modeldeploy.operator.api import AnalysisStatus
from modeldeploy.operator.planner.context import Tick

RollbackCause = Literal[
    "AnalysisFailed", "Aborted", "ProgressDeadlineExceeded", "InconclusiveAnalysis", "GoldenRequestFailed"
]

FAILED_CAUSES: frozenset[RollbackCause] = frozenset({"ProgressDeadlineExceeded", "InconclusiveAnalysis"})
"""Causes that end a rollout as Failed (it could not be judged) rather than RolledBack (judged bad)."""


def _clear_rollout(tick: Tick) -> str:
    """Forget the rollout in progress and cut its traffic; returns the revision it was rolling out."""
    status = tick.status
    revision = status.canary_revision
    assert revision is not None, "no rollout in progress"
    tick.start_draining(revision)
    status.clear_rollout()
    return revision


def rollback(tick: Tick, cause: RollbackCause, reason: str) -> None:
    """Roll the new revision back: traffic to stable now, scale-down after the drain period."""
    status = tick.status
    image = tick.image_of(status.canary_revision)
    revision = _clear_rollout(tick)
    failed = cause in FAILED_CAUSES
    message = f"revision {revision} ({image}) {'failed' if failed else 'rolled back'}: {reason}"
    status.aborted_revision = revision
    status.rollback_reason = message
    status.phase = "Failed" if failed else "RolledBack"
    tick.record_history(revision, "Failed" if failed else "RolledBack", f"{cause}: {reason}", image=image)
    tick.warning(
        "RolloutFailed" if failed else "RolledBack",
        f"{message}; all traffic stays on stable revision {status.stable_revision}",
    )
    tick.rollback_cause = cause


def supersede(tick: Tick, why: str) -> None:
    """Drop the rollout in progress because the spec moved on (no verdict on the revision)."""
    status = tick.status
    image = tick.image_of(status.canary_revision)
    revision = _clear_rollout(tick)
    status.analysis = AnalysisStatus()
    tick.record_history(revision, "Superseded", why, image=image)
    tick.normal("Superseded", f"rollout of revision {revision} ({image}) stopped: {why}")
