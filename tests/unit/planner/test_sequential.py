"""analysis.method sequential in the planner: the start of canary traffic, conclusive rollback, tolerance."""

from __future__ import annotations

from typing import Any

from tests.unit.planner.harness import Driver, make_spec

V1 = "registry.example.com/iris:1"
V2 = "registry.example.com/iris:2"
SEQUENTIAL: dict[str, Any] = {
    "interval": "30s",
    "failureLimit": 5,
    "inconclusiveLimit": 30,
    "method": "sequential",
    "slo": {"maxErrorRateDeltaToStable": 0},
}


def spec(image: str, **analysis: Any) -> Any:
    base = make_spec(image)
    rollout = base.rollout.model_dump(mode="json", by_alias=True, exclude_none=True)
    rollout["analysis"] = {**SEQUENTIAL, **analysis}
    return make_spec(image, rollout=rollout)


def test_canary_traffic_start_is_recorded_once_and_survives_a_restart() -> None:
    d = Driver(spec=spec(V1))
    d.tick()
    d.tick()
    d.change_spec(spec(V2))
    d.run_until(lambda x: x.status.current_step == 0 and x.status.step_started_at is not None)
    assert d.status.analysis.canary_started_at is None  # shadow copies are not canary traffic
    d.run_until(lambda x: x.status.current_step == 1 and x.status.step_started_at is not None)
    began = d.status.analysis.canary_started_at
    assert began is not None and began == d.status.step_started_at
    d.run_until(lambda x: x.status.current_step == 2 and x.status.step_started_at is not None)
    restarted = Driver.restore(d.snapshot())  # a new operator process finds only status and cluster
    assert restarted.status.analysis.canary_started_at == began  # the 50% step continues the test
