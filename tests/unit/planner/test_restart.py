"""Status alone is enough to resume: a fresh planner call at any point decides exactly what the
uninterrupted operator would have decided, and a crash between applying children and writing
status still converges to the same end state."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from modeldeploy.operator.analysis.results import Verdict
from modeldeploy.operator.api import ModelDeploymentSpec
from modeldeploy.operator.planner import Plan
from tests.unit.planner.harness import Driver, make_spec, rev

V1 = "registry.example.com/iris:1"
V2 = "registry.example.com/iris:2"
V3 = "registry.example.com/iris:3"


@dataclass(frozen=True)
class Inputs:
    """What the world looked like to the handler at one call (besides status and the cluster)."""

    now: datetime
    spec: ModelDeploymentSpec
    generation: int
    annotations: dict[str, str]
    verdict: Verdict
    auto_ready: bool


@dataclass
class Recording:
    snapshots: list[tuple[Any, ...]]
    inputs: list[Inputs]
    plans: list[Plan]


def record_walk() -> Recording:
    """first deploy → rollout of V2 with every step, pause, promote, drain → V3 fails and rolls back."""
    d = Driver()
    rec = Recording([], [], [])

    def tick() -> None:
        rec.snapshots.append(d.snapshot())
        rec.inputs.append(
            Inputs(d.now, d.spec, d.generation, dict(d.annotations), d.next_verdict, d.cluster.auto_ready)
        )
        rec.plans.append(d.tick())

    def advance(seconds: int, every: int = 5) -> None:
        from datetime import timedelta

        for _ in range(seconds // every):
            d.now += timedelta(seconds=every)
            tick()

    tick()
    tick()
    d.change_spec(make_spec(V2))
    d.cluster.auto_ready = False
    tick()
    d.cluster.auto_ready = True
    advance(10)
    advance(120)  # shadow step
    advance(200)  # canary 10 % and 50 %
    advance(60)  # pause step
    d.action("promote@1")
    advance(40)  # promotion, switch, drain, scale-down
    d.change_spec(make_spec(V3))
    advance(40)
    d.next_verdict = Verdict.FAIL
    advance(100)  # rollback, drain, scale to zero
    assert d.status.phase == "RolledBack" and d.status.stable_revision == rev(V2)
    assert {"Promoted", "RolledBack", "ScaledDown", "StepStarted"} <= set(d.reasons())
    return rec


RECORDING = record_walk()


def replay(start: int, status_json: dict[str, Any], cluster: Any) -> list[Plan]:
    """A fresh driver (a restarted operator) from `start` on, fed the same world."""
    first = RECORDING.inputs[start]
    fresh = Driver(spec=first.spec, now=first.now, status_json=copy.deepcopy(status_json))
    fresh.cluster = copy.deepcopy(cluster)
    fresh.check_idempotent = False  # checked on the recording itself
    plans = []
    for inputs in RECORDING.inputs[start:]:
        fresh.now, fresh.spec, fresh.generation = inputs.now, inputs.spec, inputs.generation
        fresh.annotations = dict(inputs.annotations)
        fresh.next_verdict = inputs.verdict
        fresh.cluster.auto_ready = inputs.auto_ready
        plans.append(fresh.tick())
    return plans


def same_decisions(a: Plan, b: Plan) -> bool:
    return (
        a.status_patch == b.status_patch
        and a.events == b.events
        and a.manifests == b.manifests
        and a.scale == b.scale
        and a.delete == b.delete
        and a.requeue_after == b.requeue_after
    )


@pytest.mark.parametrize("start", range(0, len(RECORDING.inputs), 3))
def test_restart_at_any_call_decides_the_same(start: int) -> None:
    status_json, cluster, *_ = RECORDING.snapshots[start]
    plans = replay(start, status_json, cluster)
    original = RECORDING.plans[start:]
    mismatch = next(
        (i for i, (a, b) in enumerate(zip(plans, original, strict=True)) if not same_decisions(a, b)), None
    )
    assert mismatch is None, f"call {start + (mismatch or 0)} differs after a restart at call {start}"


@pytest.mark.parametrize("crash_after", range(2, len(RECORDING.inputs) - 1, 4))
def test_crash_between_applying_children_and_writing_status_converges(crash_after: int) -> None:
    """Children of call N were applied, its status never written: call N+1 sees old status."""
    status_before, *_ = RECORDING.snapshots[crash_after]
    _, cluster_after, *_ = RECORDING.snapshots[crash_after + 1]
    plans = replay(crash_after + 1, status_before, cluster_after)
    final, expected = plans[-1].status, RECORDING.plans[-1].status
    assert (final.phase, final.stable_revision, final.canary_revision, final.aborted_revision) == (
        expected.phase,
        expected.stable_revision,
        expected.canary_revision,
        expected.aborted_revision,
    )
    assert [(h.revision, h.outcome) for h in final.history] == [
        (h.revision, h.outcome) for h in expected.history
    ]
    assert plans[-1].manifests == RECORDING.plans[-1].manifests
