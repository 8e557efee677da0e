"""Properties that hold whatever happens: random sequences of time, verdicts, pod failures, user
actions and spec edits, checked after every planner call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeldeploy.contract.labels import REVISION_LABEL
from modeldeploy.contract.routing import RoutingTable
from modeldeploy.operator.analysis.results import Verdict
from modeldeploy.operator.planner import Plan
from modeldeploy.operator.planner.actions import ACTIONS
from modeldeploy.operator.planner.steps import new_revision_replicas, step_traffic
from tests.unit.planner.harness import Driver, make_spec

IMAGES = [f"registry.example.com/iris:{n}" for n in range(1, 5)]

Op = tuple[str, Any]
operations = st.one_of(
    st.tuples(st.just("advance"), st.sampled_from([5, 15, 30, 60, 120, 400])),
    st.tuples(st.just("verdict"), st.sampled_from(list(Verdict))),
    st.tuples(st.just("ready"), st.booleans()),
    st.tuples(st.just("crash"), st.integers(0, 3)),
    st.tuples(st.just("action"), st.sampled_from([*ACTIONS, "bogus"])),
    st.tuples(st.just("spec"), st.tuples(st.sampled_from(IMAGES), st.sampled_from([1, 3, 4]))),
)


def routed(table: RoutingTable | None) -> set[str]:
    if table is None:
        return set()
    names = {table.stable.revision}
    names |= {r.revision for r in (table.canary, table.shadow) if r is not None}
    return names


def check(d: Driver, result: Plan, before: RoutingTable | None, ready_before: dict[str, int]) -> None:
    status = d.status
    table = result.routing
    # The entry Service and the routing table's stable are always the status' stable revision.
    entry = next(m for m in result.manifests if m["kind"] == "Service" and m["metadata"]["name"] == "iris")
    assert entry["spec"]["selector"][REVISION_LABEL] == status.stable_revision
    assert table.stable.revision == status.stable_revision
    # New-revision traffic only during a rollout, never above the current step's weight.
    if status.canary_revision is None:
        assert table.canary is None and table.shadow is None
        assert status.traffic.canary_weight == 0 and status.traffic.shadow_percent == 0
    else:
        assert status.current_step is not None
        limit = step_traffic(d.spec.rollout.steps, status.current_step).canary_weight
        weight = table.canary.weight if table.canary else 0
        assert weight == status.traffic.canary_weight <= limit
        for route in (table.canary, table.shadow):
            assert route is None or route.revision == status.canary_revision
    # More traffic for the new revision only once the pods sized for it are ready.
    grew = (table.canary.weight if table.canary else 0) > (
        before.canary.weight if before and before.canary else 0
    )
    grew |= (table.shadow.percent if table.shadow else 0) > (
        before.shadow.percent if before and before.shadow else 0
    )
    if grew:
        assert status.canary_revision is not None and status.current_step is not None
        need = new_revision_replicas(d.spec.rollout.steps, status.current_step, d.spec.replicas)
        assert ready_before.get(status.canary_revision, 0) >= need
    # A rollback call sends nothing to the rolled-back revision.
    if {e.reason for e in result.events} & {"RolledBack", "RolloutFailed"}:
        assert table.canary is None and table.shadow is None
    # Pods are never removed from a revision that a routing table (applied or new) still names.
    names = routed(before) | routed(table)
    for ref in result.delete:
        if ref.kind == "Deployment":
            assert ref.name.removeprefix("iris-") not in names
    for change in result.scale:
        assert change.replicas > 0 or change.revision not in names
    for manifest in result.manifests:
        if manifest["kind"] == "Deployment" and manifest["spec"]["replicas"] == 0:
            assert manifest["metadata"]["labels"][REVISION_LABEL] not in names
        if manifest["kind"] == "Deployment":
            assert manifest["spec"]["replicas"] <= d.spec.replicas
    # A revision the spec still asks for after a rollback is not rolled out again by itself.
    if status.aborted_revision is not None:
        assert status.canary_revision != status.aborted_revision


def tick(d: Driver) -> None:
    before = d.cluster.routing
    ready_before = {r: dep.ready for r, dep in d.cluster.deployments.items()}
    result = d.tick()
    check(d, result, before, ready_before)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(operations, min_size=1, max_size=30))
def test_invariants_hold_for_any_history(ops: list[Op]) -> None:
    d = Driver()
    tick(d)
    for n, (kind, arg) in enumerate(ops):
        if kind == "advance":
            every = max(5, arg // 4)
            for _ in range(arg // every):
                d.now += timedelta(seconds=every)
                tick(d)
        elif kind == "verdict":
            d.next_verdict = arg
        elif kind == "ready":
            d.cluster.auto_ready = arg
        elif kind == "crash":
            revisions = sorted(d.cluster.deployments)
            if revisions:
                d.cluster.set_ready(revisions[arg % len(revisions)], 0)
        elif kind == "action":
            d.action(f"{arg}@{n}")
            d.now += timedelta(seconds=1)
            tick(d)
        else:
            image, replicas = arg
            d.change_spec(make_spec(image, replicas=replicas))
            d.now += timedelta(seconds=1)
            tick(d)
    assert len(d.status.history) <= 20
