"""What the page shows of one ModelDeployment, as plain JSON (pure: the object and a clock in).

The browser never reads the raw object: it gets this snapshot, whose keys are the words the page
shows (phase, steps with their state, traffic, analysis, history). The status text of
`kubectl modeldeploy status` and this snapshot share their helpers (cli/view.py), so both say the
same thing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modeldeploy.operator.api import PauseStep
from modeldeploy.operator.cli.view import Parsed, parse, progress, rolling_out, step_label


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def step_states(parsed: Parsed) -> list[dict[str, Any]]:
    """Each step with its state: done, running, paused or pending (the timeline)."""
    status, spec = parsed.status, parsed.spec
    if spec is None:
        return []
    current = status.current_step if rolling_out(status) else None
    finished = status.phase == "Succeeded" and current is None and status.stable_revision is not None
    steps = []
    for index, step in enumerate(spec.rollout.steps):
        if current is None:
            state = "done" if finished else "pending"
        elif index < current:
            state = "done"
        elif index == current:
            state = "paused" if status.paused_at or isinstance(step, PauseStep) else "running"
        else:
            state = "pending"
        steps.append({"index": index, "label": step_label(step), "kind": step.kind, "state": state})
    if current is not None and current >= len(spec.rollout.steps):
        steps.append({"index": current, "label": "promotion", "kind": "promotion", "state": "running"})
    return steps


def snapshot(obj: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The page's view of one ModelDeployment object (as the API returns it)."""
    parsed = parse(obj)
    status, spec = parsed.status, parsed.spec
    prometheus = spec.prometheus.url if spec is not None and spec.prometheus is not None else None
    return {
        "key": f"{parsed.namespace}/{parsed.name}",
        "namespace": parsed.namespace,
        "name": parsed.name,
        "generation": parsed.generation,
        "observedGeneration": status.observed_generation,
        "phase": status.phase or "Pending",
        "message": status.message,
        "problem": parsed.problem,
        "pauseReason": status.pause_reason,
        "pausedAt": _iso(status.paused_at),
        "stable": {"revision": status.stable_revision, "image": status.stable_image},
        "canary": {"revision": status.canary_revision, "image": status.canary_image},
        "traffic": {
            "canaryWeight": status.traffic.canary_weight,
            "shadowPercent": status.traffic.shadow_percent,
        },
        "replicas": spec.replicas if spec is not None else None,
        "steps": step_states(parsed),
        "stepStartedAt": _iso(status.step_started_at),
        "progress": round(progress(parsed, now), 4),
        "analysis": {
            "lastRun": _iso(status.analysis.last_run),
            "consecutiveFailures": status.analysis.consecutive_failures,
            "consecutiveInconclusive": status.analysis.consecutive_inconclusive,
            "failureLimit": spec.rollout.analysis.failure_limit if spec is not None else None,
            "results": [r.model_dump(mode="json", by_alias=True) for r in status.analysis.results],
        },
        "rollbackReason": status.rollback_reason,
        "abortedRevision": status.aborted_revision,
        "lastAction": status.last_action.model_dump(mode="json", by_alias=True)
        if status.last_action
        else None,
        "conditions": [c.model_dump(mode="json", by_alias=True) for c in status.conditions],
        "history": [h.model_dump(mode="json", by_alias=True) for h in status.history],
        "prometheusUrl": prometheus,
    }
