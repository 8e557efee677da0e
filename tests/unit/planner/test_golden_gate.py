"""The golden-request gate: checked once the new revision's pods are ready, before any traffic."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modeldeploy.operator.planner import golden_checks_due, plan
from tests.unit.planner.harness import CONFIG, Driver, make_spec

GOLDEN: dict[str, Any] = {
    "goldenRequests": {
        "requests": [{"name": "setosa", "path": "/classify", "body": {"features": [[5.1, 3.5, 1.4, 0.2]]}}]
    }
}
V1, V2 = "registry.example.com/iris:1", "registry.example.com/iris:2"
ROLLOUT = {
    "steps": [{"shadow": {"percent": 100, "duration": "1m"}}, {"canary": {"weight": 20, "duration": "1m"}}],
    "analysis": {"interval": "30s"},
}


def spec(image: str, **fields: Any) -> Any:
    return make_spec(image, rollout=ROLLOUT, **fields)


def promoted_v1(**fields: Any) -> Driver:
    driver = Driver(spec=spec(V1, **fields))
    driver.run_until(lambda d: d.status.phase == "Succeeded")
    return driver


def test_first_revision_is_not_gated_but_a_new_one_is_checked_before_traffic() -> None:
    driver = promoted_v1(guardrails=GOLDEN)
    assert driver.golden_checks == []  # nothing to roll back to: the first revision just starts
    driver.cluster.auto_ready = False
    driver.change_spec(spec(V2, guardrails=GOLDEN))
    driver.tick()
    canary = driver.status.canary_revision
    assert canary is not None and driver.golden_checks == []  # pods not ready: no check yet
    assert driver.status.traffic.shadow_percent == 0
    driver.cluster.set_ready(canary)
    driver.now += timedelta(seconds=5)
    driver.tick()
    assert [(c.revision, c.target) for c in driver.golden_checks] == [(canary, "gate")]
    status = driver.status
    assert status.guardrails is not None and status.guardrails.golden is not None
    assert (status.guardrails.golden.revision, status.guardrails.golden.result) == (canary, "Passed")
    assert status.traffic.shadow_percent == 100  # step 0 (shadow) took effect in the same call
    assert "GoldenRequestsPassed" in driver.reasons()
    driver.cluster.auto_ready = True
    driver.run_until(lambda d: d.status.phase == "Succeeded")
    assert len(driver.golden_checks) == 1  # checked once per revision


def test_a_failed_check_rolls_back_before_any_traffic() -> None:
    driver = promoted_v1(guardrails=GOLDEN)
    driver.golden_passes = False
    driver.change_spec(spec(V2, guardrails=GOLDEN))
    weights: list[tuple[float, float]] = []
    for _ in range(5):
        driver.now += timedelta(seconds=5)
        driver.tick()
        weights.append((driver.status.traffic.canary_weight, driver.status.traffic.shadow_percent))
    status = driver.status
    assert status.phase == "RolledBack"
    assert set(weights) == {(0, 0)}
    assert all(t.canary is None and t.shadow is None for t in driver.cluster.applied_routing)
    assert status.guardrails is not None and status.guardrails.golden is not None
    assert status.guardrails.golden.failed_request == "setosa"
    rolled = [m for r, m in driver.events if r == "RolledBack"]
    assert len(rolled) == 1 and "golden request setosa failed before any traffic" in rolled[0]
    assert 'got ["versicolor"]' in rolled[0]
    assert any(c.type == "RolledBack" and c.reason == "GoldenRequestFailed" for c in status.conditions)
    assert len(driver.golden_checks) == 1  # not retried until the spec changes or retry


def test_the_gate_holds_until_a_check_is_made_and_asks_again_after_a_restart() -> None:
    driver = promoted_v1(guardrails=GOLDEN)
    driver.change_spec(spec(V2, guardrails=GOLDEN))
    driver.tick()  # the rollout starts; pods become ready after this call
    observed = driver.cluster.observed()
    due = golden_checks_due(driver.spec, driver.status, observed, driver.now)
    assert [c.target for c in due] == ["gate"]
    # A call without the check it asked for (the operator died while checking) holds at the gate.
    held = plan(driver.meta, driver.spec, driver.status, observed, driver.now, CONFIG, None, ())
    assert (held.status.traffic.canary_weight, held.status.traffic.shadow_percent) == (0, 0)
    assert held.requeue_after is not None and held.requeue_after <= 2
    assert golden_checks_due(driver.spec, held.status, observed, driver.now) == due


def test_periodic_checks_of_stable_are_due_every_interval() -> None:
    periodic = {"goldenRequests": {**GOLDEN["goldenRequests"], "periodic": {"interval": "5m"}}}
    driver = promoted_v1(guardrails=periodic)
    stable = driver.status.stable_revision
    first = [c for c in driver.golden_checks if c.target == "periodic"]
    assert first and all(c.revision == stable for c in first)
    count = len(first)
    driver.advance(240, every=30)
    assert len([c for c in driver.golden_checks if c.target == "periodic"]) == count
    driver.advance(90, every=30)
    assert len([c for c in driver.golden_checks if c.target == "periodic"]) == count + 1
    driver.golden_passes = False
    driver.advance(330, every=30)
    assert driver.status.phase == "Succeeded"  # stable keeps serving
    assert any(r == "GoldenCheckFailed" for r in driver.reasons())
    assert driver.status.guardrails is not None and driver.status.guardrails.periodic is not None
    assert driver.status.guardrails.periodic.result == "Failed"
