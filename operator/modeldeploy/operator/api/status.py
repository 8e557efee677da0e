"""`status` of a ModelDeployment, written only by the operator: where the rollout is and why.

Everything the operator needs to resume after a restart lives here (current step, when it started,
revisions, analysis counters), and so does everything a user may ask about (why paused, which value
breached which threshold, what was rolled back).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from modeldeploy.operator.api.cel import ApiModel, SchemaExtra
from modeldeploy.operator.api.fields import bounded

MAX_HISTORY = 20
MAX_RESULTS = 32
MAX_CONDITIONS = 16

Phase = Literal["Progressing", "Paused", "Succeeded", "RolledBack", "Degraded", "Failed"]
PHASES: tuple[Phase, ...] = ("Progressing", "Paused", "Succeeded", "RolledBack", "Degraded", "Failed")
VerdictName = Literal["Pass", "Fail", "Inconclusive"]
"""A verdict as status spells it (analysis.results.Verdict is the analysis's enum)."""
Outcome = Literal["Promoted", "RolledBack", "Failed", "Superseded"]
ActionResult = Literal["Applied", "Ignored", "Rejected"]
PauseReason = Literal["UserPaused", "InconclusiveAnalysis"]
MAX_DRAINING = 16
ConditionStatus = Literal["True", "False", "Unknown"]

REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
Revision = Annotated[str, bounded(63, 1)]
Message = Annotated[str, bounded(32768)]


class TrafficStatus(ApiModel):
    """The traffic split in effect."""

    canary_weight: float = Field(
        default=0, ge=0, le=100, description="Percent of live traffic sent to the canary."
    )
    shadow_percent: float = Field(
        default=0, ge=0, le=100, description="Percent of live requests copied to the shadow revision."
    )


class MetricResult(ApiModel):
    """The verdict on one metric at the latest analysis run."""

    metric: Annotated[str, bounded(63, 1)] = Field(
        description="Metric name: a built-in (errorRate, latencyP99, ...) or a custom metric's name."
    )
    verdict: VerdictName = Field(description="Pass, Fail, or Inconclusive (too little data or no answer).")
    value: float | None = Field(default=None, description="Measured value; absent when there was no data.")
    threshold: float | None = Field(default=None, description="The threshold the value was compared with.")
    query: Annotated[str, bounded(8192)] | None = Field(
        default=None, description="The PromQL that was run, with placeholders resolved."
    )
    message: Message = Field(default="", description="The verdict in words, e.g. p99 0.41s > 0.25s.")
    conclusive: bool | None = Field(
        default=None,
        description=(
            "True when a sequential test (analysis.method sequential) proved the failure: the rollback "
            "needs no failureLimit repeats; the message carries the evidence."
        ),
    )


class AnalysisStatus(ApiModel):
    """Outcome of the analysis of the current new revision."""

    last_run: datetime | None = Field(default=None, description="When the latest analysis run finished.")
    canary_started_at: datetime | None = Field(
        default=None,
        description=(
            "When the new revision first received canary traffic; with analysis.method sequential every "
            "run counts the requests since then (kept across operator restarts)."
        ),
    )
    consecutive_failures: int = Field(
        default=0, ge=0, description="Failed runs in a row (rollback at failureLimit)."
    )
    consecutive_inconclusive: int = Field(
        default=0, ge=0, description="Inconclusive runs in a row (onInconclusive at inconclusiveLimit)."
    )
    results: Annotated[list[MetricResult], Field(max_length=MAX_RESULTS)] = Field(
        default_factory=list, description="Per-metric verdicts of the latest run."
    )


class Condition(ApiModel):
    """A condition in the standard Kubernetes shape (metav1.Condition)."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=316)] = Field(
        description="Condition type: Ready, Progressing, RolledBack."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was set for."
    )
    last_transition_time: datetime = Field(description="When status last changed.")
    reason: Annotated[
        str,
        StringConstraints(min_length=1, max_length=1024, pattern=REASON_PATTERN),
    ] = Field(description="Machine-readable CamelCase reason, e.g. AnalysisFailed.")
    message: Message = Field(default="", description="Human-readable details.")


class HistoryEntry(ApiModel):
    """A finished rollout of one revision."""

    revision: Revision = Field(description="Revision hash.")
    image: Annotated[str, bounded(512)] = Field(description="Model image of that revision.")
    outcome: Outcome = Field(description="Promoted, RolledBack, Failed, or Superseded by a newer spec.")
    at: datetime = Field(description="When the rollout finished.")
    reason: Message = Field(default="", description="Why, in words.")


class LastAction(ApiModel):
    """The latest user action (promote, abort, retry, ...) the operator has carried out."""

    name: Annotated[str, bounded(63, 1)] = Field(description="Action name, e.g. promote.")
    id: Annotated[str, bounded(256)] | None = Field(
        default=None, description="Value of the action's request annotation, so a request is applied once."
    )
    at: datetime = Field(description="When the operator carried it out.")
    result: ActionResult | None = Field(
        default=None,
        description="Applied, Ignored (nothing to do in the current state) or Rejected (unknown action).",
    )
    message: Message = Field(default="", description="What the action did, or why it did nothing.")
    revision: Revision | None = Field(
        default=None, description="The revision being rolled out when the action was carried out, if any."
    )


class DrainingRevision(ApiModel):
    """A revision that no longer gets traffic and is removed (or scaled to zero) once drained."""

    revision: Revision = Field(description="Revision hash.")
    since: datetime = Field(description="When its traffic was cut; removal follows after the drain period.")


class GoldenCheck(ApiModel):
    """The latest replay of the golden requests against one revision."""

    revision: Revision = Field(description="Revision the golden requests were sent to.")
    result: Literal["Passed", "Failed"] = Field(description="Passed when every response was as expected.")
    checked_at: datetime = Field(description="When the check ran.")
    requests: int = Field(default=0, ge=0, description="Golden requests sent.")
    failed_request: Annotated[str, bounded(63)] | None = Field(
        default=None, description="Name of the first request whose response was not as expected."
    )
    message: Annotated[str, bounded(4096)] = Field(
        default="", description="What was expected and what came back (truncated)."
    )


class GuardrailsStatus(ApiModel):
    """Results of the guardrail checks the operator runs itself."""

    golden: GoldenCheck | None = Field(
        default=None, description="Golden-request gate of the revision being (or last) rolled out."
    )
    periodic: GoldenCheck | None = Field(
        default=None, description="Latest periodic replay of the golden requests against stable."
    )


class ModelDeploymentStatus(ApiModel):
    """Observed state of the rollout, written by the operator."""

    phase: Phase | None = Field(
        default=None, description="Progressing, Paused, Succeeded, RolledBack, Degraded or Failed."
    )
    message: Message = Field(default="", description="What is happening, in words.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status describes."
    )
    stable_revision: Revision | None = Field(default=None, description="Revision receiving live traffic.")
    stable_image: Annotated[str, bounded(512)] | None = Field(
        default=None, description="Model image of the stable revision."
    )
    canary_revision: Revision | None = Field(
        default=None, description="Revision being rolled out (shadow or canary), if any."
    )
    canary_image: Annotated[str, bounded(512)] | None = Field(
        default=None, description="Model image of the revision being rolled out."
    )
    current_step: int | None = Field(
        default=None, ge=0, description="Index (from 0) of the rollout step in progress."
    )
    step_started_at: datetime | None = Field(default=None, description="When the current step started.")
    waiting_for_pods_since: datetime | None = Field(
        default=None,
        description=(
            "Set while the current step (or the first revision) waits for its pods to become ready; "
            "progressDeadline counts from here."
        ),
    )
    paused_at: datetime | None = Field(
        default=None, description="When the rollout was paused by the user or by inconclusive analysis."
    )
    pause_reason: PauseReason | None = Field(
        default=None, description="UserPaused (kubectl modeldeploy pause) or InconclusiveAnalysis."
    )
    draining: Annotated[list[DrainingRevision], Field(max_length=MAX_DRAINING)] = Field(
        default_factory=list,
        description="Revisions whose traffic was cut, waiting out the drain period before scale-down.",
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Pods asked of all the model's revisions (stable, canary or shadow, draining): the scale "
            "subresource's status.replicas."
        ),
    )
    selector: Annotated[str, bounded(512)] | None = Field(
        default=None,
        description=(
            "Label selector of all the model's pods (the scale subresource's selector, which a "
            "HorizontalPodAutoscaler averages metrics over)."
        ),
    )
    traffic: TrafficStatus = Field(default_factory=TrafficStatus, description="Traffic split in effect.")
    analysis: AnalysisStatus = Field(default_factory=AnalysisStatus, description="Analysis of the canary.")
    rollback_reason: Message | None = Field(default=None, description="Why the latest rollback happened.")
    aborted_revision: Revision | None = Field(
        default=None,
        description=(
            "Revision that was rolled back or failed; not retried until the spec changes again or the user "
            "runs kubectl modeldeploy retry."
        ),
    )
    last_action: LastAction | None = Field(
        default=None, description="Latest user action carried out (acknowledgement)."
    )
    guardrails: GuardrailsStatus | None = Field(
        default=None, description="Golden-request checks: the gate of the new revision and periodic replays."
    )
    conditions: Annotated[
        list[Condition],
        Field(max_length=MAX_CONDITIONS),
        SchemaExtra({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
    ] = Field(default_factory=list, description="Ready, Progressing and RolledBack conditions.")
    history: Annotated[list[HistoryEntry], Field(max_length=MAX_HISTORY)] = Field(
        default_factory=list, description=f"Finished rollouts, newest last (at most {MAX_HISTORY})."
    )

    def clear_rollout(self) -> None:
        """No rollout in progress: its revision, step cursor, pod wait, pause and traffic are reset."""
        self.canary_revision = None
        self.canary_image = None
        self.current_step = None
        self.step_started_at = None
        self.waiting_for_pods_since = None
        self.paused_at = None
        self.pause_reason = None
        self.traffic = TrafficStatus()
