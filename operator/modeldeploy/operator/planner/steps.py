"""The step cursor: what traffic and how many pods each step means, and how long it lasts.

``currentStep`` in status indexes ``spec.rollout.steps``; the index one past the last step
(``len(steps)``) means *promoting*: every step has passed and the new revision is being scaled to
full size before it takes over. A pause step keeps the traffic of the step before it (nothing
before it: no traffic, one pod, so the new revision at least proves it starts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from modeldeploy.operator.api import CanaryStep, PauseStep, ShadowStep, Step, parse_duration
from modeldeploy.operator.planner.sizing import canary_replicas, shadow_replicas


@dataclass(frozen=True)
class Traffic:
    """A traffic split towards the new revision."""

    canary_weight: float = 0.0
    shadow_percent: float = 0.0


NO_TRAFFIC = Traffic()


def is_promoting(steps: Sequence[Step], index: int) -> bool:
    """True when ``index`` is past the last step: the new revision is being promoted."""
    return index >= len(steps)


def step_traffic(steps: Sequence[Step], index: int) -> Traffic:
    """The traffic split in force during step ``index`` (the last step's while promoting)."""
    for position in range(min(index, len(steps) - 1), -1, -1):
        step = steps[position]
        if isinstance(step, ShadowStep):
            return Traffic(shadow_percent=step.shadow.percent)
        if isinstance(step, CanaryStep):
            return Traffic(canary_weight=step.canary.weight)
    return NO_TRAFFIC


def new_revision_replicas(steps: Sequence[Step], index: int, replicas: int) -> int:
    """Pods of the new revision during step ``index``: sized to its share; full size when promoting."""
    if is_promoting(steps, index):
        return replicas
    traffic = step_traffic(steps, index)
    return max(
        canary_replicas(replicas, traffic.canary_weight),
        shadow_replicas(replicas, traffic.shadow_percent),
    )


def step_duration(steps: Sequence[Step], index: int) -> timedelta | None:
    """How long step ``index`` lasts; None for a pause that waits for the user (and when promoting)."""
    if is_promoting(steps, index):
        return None
    step = steps[index]
    duration = step.pause.duration if isinstance(step, PauseStep) else step.duration
    return None if duration is None else parse_duration(duration)


def is_pause(steps: Sequence[Step], index: int) -> bool:
    return not is_promoting(steps, index) and isinstance(steps[index], PauseStep)


def describe_step(steps: Sequence[Step], index: int) -> str:
    """E.g. "step 2/4 (canary 10% for 1m)", "step 4/4 (pause until promoted)", "promotion"."""
    if is_promoting(steps, index):
        return "promotion"
    step = steps[index]
    where = f"step {index + 1}/{len(steps)}"
    if isinstance(step, ShadowStep):
        return f"{where} (shadow {step.shadow.percent:g}% for {step.shadow.duration})"
    if isinstance(step, CanaryStep):
        return f"{where} (canary {step.canary.weight:g}% for {step.canary.duration})"
    if step.pause.duration is None:
        return f"{where} (pause until promoted)"
    return f"{where} (pause for {step.pause.duration})"
