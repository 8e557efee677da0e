"""The text `kubectl modeldeploy status` prints: phase, steps, traffic, verdicts and a progress bar.

Pure functions of the ModelDeployment object and the current time, so they are unit-tested without
a cluster and the live view (`--watch`) only has to redraw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modeldeploy.operator.api import (
    CanaryStep,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    PauseStep,
    ShadowStep,
    Step,
    parse_duration,
)

ICONS = {
    "Succeeded": "✔",
    "Progressing": "◌",
    "Paused": "॥",
    "RolledBack": "✖",
    "Failed": "✖",
    "Degraded": "✖",
}
BAR_WIDTH = 30


@dataclass(frozen=True)
class Parsed:
    name: str
    namespace: str
    generation: int
    spec: ModelDeploymentSpec | None
    status: ModelDeploymentStatus
    problem: str | None
    """Why the spec or status could not be read (shown instead of the details)."""


def parse(obj: dict[str, Any]) -> Parsed:
    meta = obj.get("metadata") or {}
    problem = None
    spec: ModelDeploymentSpec | None = None
    try:
        spec = ModelDeploymentSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        problem = f"spec does not validate: {exc.errors()[0]['msg']}"
    try:
        status = ModelDeploymentStatus.model_validate(obj.get("status") or {})
    except ValidationError as exc:
        problem = f"status does not validate (operator of another version?): {exc.errors()[0]['msg']}"
        status = ModelDeploymentStatus()
    return Parsed(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        generation=int(meta.get("generation") or 0),
        spec=spec,
        status=status,
        problem=problem,
    )


def ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    return format_duration_s(seconds)


def format_duration_s(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def step_label(step: Step) -> str:
    if isinstance(step, ShadowStep):
        return f"shadow {step.shadow.percent:g}% for {step.shadow.duration}"
    if isinstance(step, CanaryStep):
        return f"canary {step.canary.weight:g}% for {step.canary.duration}"
    assert isinstance(step, PauseStep)
    if step.pause.duration is None:
        return "pause until promoted"
    return f"pause for {step.pause.duration}"


def rolling_out(status: ModelDeploymentStatus) -> bool:
    return status.canary_revision is not None and status.current_step is not None


def step_fraction(step: Step, status: ModelDeploymentStatus, now: datetime) -> float:
    """How far the running step is (0..1) by its clock; 0 while it waits for pods or for a user."""
    if status.step_started_at is None:
        return 0.0
    duration = step.duration
    if duration is None:
        return 0.0
    total = parse_duration(duration).total_seconds()
    clock_end = status.paused_at or now
    elapsed = (clock_end - status.step_started_at).total_seconds()
    return min(1.0, max(0.0, elapsed / total)) if total > 0 else 1.0


def progress(parsed: Parsed, now: datetime) -> float:
    """0..1: the share of the rollout behind us (1 when nothing is being rolled out)."""
    status, spec = parsed.status, parsed.spec
    if not rolling_out(status) or spec is None:
        # Nothing rolling out: done, unless the last new revision was rolled back or never started.
        return 1.0 if status.phase in ("Succeeded", "Degraded") else 0.0
    steps = spec.rollout.steps
    index = status.current_step or 0
    if index >= len(steps):
        return 1.0 if status.phase == "Succeeded" else (len(steps) / (len(steps) + 1))
    done = index + step_fraction(steps[index], status, now)
    return done / (len(steps) + 1)  # the promotion is the last share


def progress_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    fraction = max(0.0, min(1.0, fraction))
    filled = round(fraction * width)
    return "[" + "█" * filled + "░" * (width - filled) + f"] {fraction * 100:3.0f}%"


def phase_line(parsed: Parsed) -> str:
    status = parsed.status
    phase = status.phase or "Pending"
    text = f"{ICONS.get(phase, '…')} {phase}"
    if status.phase == "Paused" and status.pause_reason:
        text += f" ({status.pause_reason})"
    if status.observed_generation is not None and status.observed_generation < parsed.generation:
        text += f" — generation {parsed.generation} not yet observed by the operator"
    return text


def step_lines(parsed: Parsed, now: datetime) -> list[str]:
    status, spec = parsed.status, parsed.spec
    if spec is None:
        return []
    steps = spec.rollout.steps
    current = status.current_step if rolling_out(status) else None
    finished = status.phase == "Succeeded" and current is None and status.stable_revision is not None
    lines = []
    for index, step in enumerate(steps):
        if current is None:
            mark = "✔" if finished else "·"
        elif index < current:
            mark = "✔"
        elif index == current:
            mark = "॥" if status.paused_at or isinstance(step, PauseStep) else "▶"
        else:
            mark = "·"
        line = f"  {mark} {index + 1:>2}  {step_label(step)}"
        if current == index:
            if status.step_started_at is None:
                line += "   (waiting for pods)"
            else:
                line += f"   (running {ago(status.step_started_at, status.paused_at or now)})"
        lines.append(line)
    if current is not None and current >= len(steps):
        lines.append("  ▶  ✓  promotion (waiting for all pods of the new revision)")
    return lines


def analysis_lines(parsed: Parsed, now: datetime) -> list[str]:
    analysis, spec = parsed.status.analysis, parsed.spec
    if analysis.last_run is None and not analysis.results:
        return []
    failure_limit = spec.rollout.analysis.failure_limit if spec else "?"
    inconclusive_limit = spec.rollout.analysis.inconclusive_limit if spec else "?"
    lines = [
        f"Analysis:       last run {ago(analysis.last_run, now)} ago; "
        f"failures {analysis.consecutive_failures}/{failure_limit}, "
        f"inconclusive {analysis.consecutive_inconclusive}/{inconclusive_limit} in a row"
    ]
    if analysis.results:
        rows = [("METRIC", "VERDICT", "VALUE", "THRESHOLD", "MESSAGE")]
        for result in analysis.results:
            rows.append(
                (
                    result.metric,
                    {"Pass": "✔ Pass", "Fail": "✖ Fail"}.get(result.verdict, "? Inconclusive"),
                    "-" if result.value is None else f"{result.value:.4g}",
                    "-" if result.threshold is None else f"{result.threshold:.4g}",
                    result.message,
                )
            )
        lines += ["  " + line for line in table(rows)]
    return lines


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def render_status(obj: dict[str, Any], now: datetime | None = None) -> str:
    """The full status view of one ModelDeployment object (as returned by the API)."""
    now = now or datetime.now(UTC)
    parsed = parse(obj)
    status, spec = parsed.status, parsed.spec
    lines = [
        f"Name:           {parsed.name}",
        f"Namespace:      {parsed.namespace}",
        f"Status:         {phase_line(parsed)}",
    ]
    if status.message:
        lines.append(f"Message:        {status.message}")
    if parsed.problem:
        lines.append(f"Problem:        {parsed.problem}")
    if spec is not None:
        lines.append(f"Replicas:       {spec.replicas}")
    lines.append(f"Stable:         {status.stable_revision or '-'}  {status.stable_image or ''}".rstrip())
    if status.canary_revision:
        lines.append(f"Canary:         {status.canary_revision}  {status.canary_image or ''}".rstrip())
    traffic = status.traffic
    lines.append(f"Traffic:        canary {traffic.canary_weight:g}%, shadow {traffic.shadow_percent:g}%")
    if rolling_out(status) and spec is not None:
        steps = spec.rollout.steps
        index = status.current_step or 0
        where = "promotion" if index >= len(steps) else f"{index + 1}/{len(steps)}"
        lines.append(f"Step:           {where}")
    lines.append(f"Progress:       {progress_bar(progress(parsed, now))}")
    if status.paused_at is not None:
        lines.append(f"Paused:         {ago(status.paused_at, now)} ago ({status.pause_reason})")
    if status.rollback_reason:
        lines.append(f"Rolled back:    {status.rollback_reason}")
    rendered_steps = step_lines(parsed, now)
    if rendered_steps:
        lines += ["Steps:", *rendered_steps]
    lines += analysis_lines(parsed, now)
    if status.conditions:
        lines.append("Conditions:")
        rows = [("TYPE", "STATUS", "REASON", "MESSAGE")]
        rows += [(c.type, c.status, c.reason, c.message) for c in status.conditions]
        lines += ["  " + line for line in table(rows)]
    if status.last_action is not None:
        action = status.last_action
        lines.append(
            f"Last action:    {action.name} {action.result or ''} {ago(action.at, now)} ago: {action.message}"
        )
    return "\n".join(lines)
