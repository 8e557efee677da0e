"""The golden-request gate and the periodic replay against stable (pure).

Gate: once the new revision's pods for its first step are ready, and before that step gives it any
traffic (shadow copies or a canary share), the planner holds the rollout until a golden check of
that revision has passed. Reconcile sends the requests (``golden_checks_due`` says when) and hands
the outcome to the next ``plan`` call; a failed check rolls the revision back like a failed analysis.
The result is kept in ``status.guardrails.golden``, so a restarted operator does not check again.

Periodic: with ``goldenRequests.periodic`` set, the stable revision is checked every interval; a
failure is a Warning Event and ``status.guardrails.periodic`` (stable keeps serving: there is
nothing to roll back to).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modeldeploy.operator.api import ModelDeploymentSpec, ModelDeploymentStatus, parse_duration
from modeldeploy.operator.api.status import GuardrailsStatus
from modeldeploy.operator.planner.context import Tick
from modeldeploy.operator.planner.inputs import GoldenTarget, ObservedChildren
from modeldeploy.operator.planner.rollback import rollback
from modeldeploy.operator.planner.steps import new_revision_replicas

RETRY_SECONDS = 2.0
"""How soon the planner looks again when the gate waits for a check that has not been made."""
PERIODIC_RETRY_SECONDS = 30.0
"""How soon a periodic check that could not be made (no stable Deployment yet) is tried again."""
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class GoldenCheckRequest:
    """Reconcile should send the golden requests to ``revision`` now."""

    revision: str
    target: GoldenTarget


def _gate_passed(status: ModelDeploymentStatus, revision: str) -> bool:
    golden = status.guardrails.golden if status.guardrails is not None else None
    return golden is not None and golden.revision == revision and golden.result == "Passed"


def gate_revision(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observed: ObservedChildren
) -> str | None:
    """The new revision when it waits at the gate with its pods ready; None otherwise."""
    revision = status.canary_revision
    if spec.guardrails.golden_requests is None or revision is None or status.current_step is None:
        return None
    if status.step_started_at is not None or status.paused_at is not None or _gate_passed(status, revision):
        return None
    need = new_revision_replicas(spec.rollout.steps, status.current_step, spec.replicas)
    found = observed.get(revision)
    return revision if found is not None and found.ready_replicas >= need else None


def periodic_due_at(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    """When the stable revision is next due for a periodic check (None: no periodic checks)."""
    golden = spec.guardrails.golden_requests
    if golden is None or golden.periodic is None or status.stable_revision is None:
        return None
    last = status.guardrails.periodic if status.guardrails is not None else None
    if last is None or last.revision != status.stable_revision:
        return NEVER
    return last.checked_at + parse_duration(golden.periodic.interval)


def golden_checks_due(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observed: ObservedChildren, now: datetime
) -> tuple[GoldenCheckRequest, ...]:
    """The golden checks reconcile should make before calling ``plan``."""
    due: list[GoldenCheckRequest] = []
    revision = gate_revision(spec, status, observed)
    if revision is not None:
        due.append(GoldenCheckRequest(revision, "gate"))
    at = periodic_due_at(spec, status)
    stable = status.stable_revision
    if at is not None and at <= now and stable is not None and observed.get(stable) is not None:
        due.append(GoldenCheckRequest(stable, "periodic"))
    return tuple(due)


def _guardrails(tick: Tick) -> GuardrailsStatus:
    if tick.status.guardrails is None:
        tick.status.guardrails = GuardrailsStatus()
    return tick.status.guardrails


def hold_at_gate(tick: Tick) -> tuple[bool, list[datetime]]:
    """At the point where the new revision would get its first traffic: (hold?, wake-up times).

    Consumes the gate outcome given to this call. A failed check rolls back (the caller stops).
    """
    status = tick.status
    revision = status.canary_revision
    if tick.spec.guardrails.golden_requests is None or revision is None or _gate_passed(status, revision):
        return False, []
    outcome = next((o for o in tick.golden if o.target == "gate" and o.revision == revision), None)
    if outcome is None:
        tick.note(f"revision {revision}: pods ready; waiting for the golden-request check")
        return True, [tick.now + timedelta(seconds=RETRY_SECONDS)]
    _guardrails(tick).golden = outcome.as_status()
    if outcome.passed:
        tick.normal(
            "GoldenRequestsPassed",
            f"revision {revision} answered all {outcome.requests} golden request(s) as expected",
        )
        return False, []
    rollback(tick, "GoldenRequestFailed", f"{outcome.which} failed before any traffic: {outcome.message}")
    return True, []


def record_periodic(tick: Tick) -> list[datetime]:
    """Keep the periodic check's outcome given to this call; returns when the next one is due."""
    status = tick.status
    for outcome in tick.golden:
        if outcome.target != "periodic" or outcome.revision != status.stable_revision:
            continue
        previous = status.guardrails.periodic if status.guardrails is not None else None
        _guardrails(tick).periodic = outcome.as_status()
        if not outcome.passed:
            tick.warning(
                "GoldenCheckFailed",
                f"stable revision {outcome.revision}: {outcome.which} failed in the periodic check: "
                f"{outcome.message}",
            )
        elif previous is not None and previous.result == "Failed":
            tick.normal(
                "GoldenCheckPassed", f"stable revision {outcome.revision} passes its golden requests again"
            )
    at = periodic_due_at(tick.spec, status)
    if at is None:
        return []
    return [max(at, tick.now + timedelta(seconds=PERIODIC_RETRY_SECONDS))]
