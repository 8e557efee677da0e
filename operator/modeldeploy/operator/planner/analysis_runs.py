"""When the new revision is analysed, and how one analysis run changes the status.

A run is due while the new revision receives traffic (shadow copies or canary weight) and one
analysis interval has passed since the later of the previous run and the start of the current
step, so the first run of a step looks at a window that lies within the step. The handler asks
``analysis_request`` whether a run is due, runs it, and hands the outcome to the planner in the
same call; an outcome that is not due (or is for another revision) is ignored, so a run is
counted once even if the handler calls the planner more often.

Counting: a pass resets both streaks; a fail adds to ``consecutiveFailures`` and ends the
inconclusive streak; an inconclusive run adds to ``consecutiveInconclusive`` and leaves the
failure streak as it is (it is no evidence either way).

With ``analysis.method: sequential`` a canary run judges the error checks (and the latency
distribution) on the counts since ``status.analysis.canaryStartedAt`` (``sequential_since``); a
failure such a test proves is ``conclusive`` in status and rolls back at once
(``conclusive_failure``), without waiting for ``failureLimit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict, Verdict
from modeldeploy.operator.api import MetricResult, ModelDeploymentSpec, ModelDeploymentStatus, parse_duration
from modeldeploy.operator.api.status import MAX_RESULTS
from modeldeploy.operator.planner.context import Tick

_STATUS_VERDICT: dict[Verdict, Literal["Pass", "Fail", "Inconclusive"]] = {
    Verdict.PASS: "Pass",
    Verdict.FAIL: "Fail",
    Verdict.INCONCLUSIVE: "Inconclusive",
}


@dataclass(frozen=True)
class AnalysisRequest:
    """What to analyse now: ``revision`` against ``stable_revision`` over the last ``window``."""

    revision: str
    stable_revision: str
    phase_kind: Literal["shadow", "canary"]
    """Which traffic the new revision gets now (the analysis judges canary or shadow metrics)."""
    canary_weight: float
    shadow_percent: float
    window: timedelta
    step: int | None
    sequential_since: timedelta | None = None
    """With analysis.method sequential during canary traffic: how long ago canary traffic began (the
    sequential tests count every request since then); None: the fixed rules only."""


def analysis_due_at(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    """When the next run is due; None while the new revision gets no traffic (nothing to judge)."""
    if status.canary_revision is None or status.stable_revision is None:
        return None
    if status.traffic.canary_weight <= 0 and status.traffic.shadow_percent <= 0:
        return None
    since = [t for t in (status.analysis.last_run, status.step_started_at) if t is not None]
    if not since:
        return None
    return max(since) + parse_duration(spec.rollout.analysis.interval)


def analysis_request(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime
) -> AnalysisRequest | None:
    """The analysis run the handler should make before calling ``plan``, or None if none is due."""
    due = analysis_due_at(spec, status)
    if due is None or now < due or status.canary_revision is None or status.stable_revision is None:
        return None
    traffic = status.traffic
    phase_kind: Literal["shadow", "canary"] = "canary" if traffic.canary_weight > 0 else "shadow"
    # A status written before canaryStartedAt existed counts from the running step's start.
    began = status.analysis.canary_started_at or status.step_started_at
    sequential = spec.rollout.analysis.method == "sequential" and phase_kind == "canary" and began is not None
    return AnalysisRequest(
        revision=status.canary_revision,
        stable_revision=status.stable_revision,
        phase_kind=phase_kind,
        canary_weight=traffic.canary_weight,
        shadow_percent=traffic.shadow_percent,
        window=parse_duration(spec.rollout.analysis.interval),
        step=status.current_step,
        sequential_since=now - began if sequential and began is not None else None,
    )


def _metric_result(verdict: MetricVerdict) -> MetricResult:
    return MetricResult(
        metric=verdict.metric[:63],
        verdict=_STATUS_VERDICT[verdict.verdict],
        value=verdict.value,
        threshold=verdict.threshold,
        query=verdict.query[:8192] or None,
        message=verdict.message,
        conclusive=True if verdict.conclusive else None,
    )


def describe_failure(outcome: AnalysisOutcome) -> str:
    """The failing metrics in words, e.g. "p99 latency 412ms > 250ms"."""
    failing = outcome.failed or outcome.inconclusive
    return "; ".join(v.message or f"{v.metric} {v.verdict.value}" for v in failing) or outcome.summary


def count_outcome(tick: Tick, outcome: AnalysisOutcome | None) -> Verdict | None:
    """Count ``outcome`` into ``status.analysis`` if it is due and for the new revision."""
    if outcome is None:
        return None
    status = tick.status
    if outcome.revision != status.canary_revision:
        tick.note(
            f"ignored analysis of revision {outcome.revision}: the new revision is {status.canary_revision}"
        )
        return None
    due = analysis_due_at(tick.spec, status)
    if due is None or tick.now < due:
        tick.note(f"ignored analysis of revision {outcome.revision}: no run was due (next at {due})")
        return None
    analysis = status.analysis
    analysis.last_run = tick.now
    analysis.results = [_metric_result(v) for v in outcome.results][:MAX_RESULTS]
    verdict = outcome.verdict
    if verdict is Verdict.PASS:
        analysis.consecutive_failures = 0
        analysis.consecutive_inconclusive = 0
    elif verdict is Verdict.FAIL:
        analysis.consecutive_failures += 1
        analysis.consecutive_inconclusive = 0
        limit = tick.spec.rollout.analysis.failure_limit
        count = (
            "conclusively" if outcome.conclusive_failures else f"({analysis.consecutive_failures}/{limit})"
        )
        tick.warning(
            "AnalysisFailed",
            f"analysis of revision {outcome.revision} failed {count}: {describe_failure(outcome)}",
        )
    else:
        analysis.consecutive_inconclusive += 1
    return verdict


def latest_run_passed(status: ModelDeploymentStatus, since: datetime) -> bool:
    """True if the latest run finished after ``since`` and every metric passed."""
    analysis = status.analysis
    if analysis.last_run is None or analysis.last_run <= since:
        return False
    return all(result.verdict == "Pass" for result in analysis.results)


def conclusive_failure(status: ModelDeploymentStatus) -> str | None:
    """The failures of the latest run a sequential test proved, in words (None: there are none).

    Such a failure rolls back at once: the chance that a sequential test ever proves a regression of
    a healthy revision over the whole rollout is at most 1 - confidence, so no repeat is needed.
    """
    proved = [
        r.message or f"{r.metric} failed"
        for r in status.analysis.results
        if r.verdict == "Fail" and r.conclusive
    ]
    return "; ".join(proved) or None
