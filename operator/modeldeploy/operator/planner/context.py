"""The working state of one planner call: the inputs, the status being rewritten, events and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modeldeploy.operator.api import (
    DrainingRevision,
    HistoryEntry,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Outcome,
    parse_duration,
    revision_hash,
)
from modeldeploy.operator.api.status import MAX_DRAINING, MAX_HISTORY
from modeldeploy.operator.planner.inputs import (
    GoldenOutcome,
    ModelDeploymentMeta,
    ObservedChildren,
    PlannerConfig,
)
from modeldeploy.operator.planner.outputs import NORMAL, WARNING, PlannedEvent


@dataclass
class Tick:
    """One planner call. ``status`` starts as a deep copy of the input and is changed in place."""

    meta: ModelDeploymentMeta
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    observed: ObservedChildren
    now: datetime
    config: PlannerConfig
    events: list[PlannedEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    golden: tuple[GoldenOutcome, ...] = ()
    """Golden checks made by reconcile for this call (see golden.py)."""
    rollback_cause: str | None = None
    """Set by the call that rolls back (the RolledBack condition's reason)."""

    def __post_init__(self) -> None:
        self.spec_revision = revision_hash(self.spec)

    # --- derived settings -------------------------------------------------------------------

    @property
    def steps_count(self) -> int:
        return len(self.spec.rollout.steps)

    @property
    def progress_deadline(self) -> timedelta:
        return parse_duration(self.spec.progress_deadline)

    @property
    def drain_period(self) -> timedelta:
        return parse_duration(self.spec.drain_period)

    def image_of(self, revision: str | None) -> str:
        """The model image of a revision, as far as spec and status know it."""
        if revision == self.spec_revision:
            return self.spec.model.image
        if revision is not None and revision == self.status.stable_revision and self.status.stable_image:
            return self.status.stable_image
        if revision is not None and revision == self.status.canary_revision and self.status.canary_image:
            return self.status.canary_image
        observed = self.observed.get(revision)
        return observed.image if observed is not None and observed.image else ""

    def ready_replicas(self, revision: str | None) -> int:
        observed = self.observed.get(revision)
        return 0 if observed is None else observed.ready_replicas

    # --- outputs ------------------------------------------------------------------------------

    def normal(self, reason: str, message: str) -> None:
        self.events.append(PlannedEvent(NORMAL, reason, message))

    def warning(self, reason: str, message: str) -> None:
        self.events.append(PlannedEvent(WARNING, reason, message))

    def note(self, message: str) -> None:
        self.notes.append(message)

    def record_history(self, revision: str, outcome: Outcome, reason: str, image: str | None = None) -> None:
        entry = HistoryEntry(
            revision=revision,
            image=image if image is not None else self.image_of(revision),
            outcome=outcome,
            at=self.now,
            reason=reason,
        )
        self.status.history = [*self.status.history, entry][-MAX_HISTORY:]

    def start_draining(self, revision: str) -> None:
        """Cut-over done for ``revision``: remove it after the drain period (see drain.py)."""
        if any(d.revision == revision for d in self.status.draining):
            return
        entry = DrainingRevision(revision=revision, since=self.now)
        self.status.draining = [*self.status.draining, entry][-MAX_DRAINING:]

    def stop_draining(self, revision: str) -> None:
        """``revision`` is live again (e.g. the spec went back to it): keep it."""
        self.status.draining = [d for d in self.status.draining if d.revision != revision]
