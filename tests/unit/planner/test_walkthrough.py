"""A whole rollout with a fixed clock: first deploy → new revision → shadow → canary steps → pause
→ promote → drain → scale-down, checking status, routing, children and events at each stop."""

from __future__ import annotations

from datetime import timedelta

from modeldeploy.contract.labels import REVISION_LABEL
from tests.unit.planner.harness import T0, Driver, make_spec, rev

V1 = "registry.example.com/iris:1"
V2 = "registry.example.com/iris:2"
R1, R2 = rev(V1), rev(V2)


def entry_selector(d: Driver) -> str:
    return str(d.cluster.objects[("Service", "iris")]["spec"]["selector"][REVISION_LABEL])


def replicas(d: Driver) -> dict[str, int]:
    return {r: dep.replicas for r, dep in d.cluster.deployments.items()}


def test_first_revision_goes_straight_to_stable() -> None:
    d = Driver()
    d.cluster.auto_ready = False
    first = d.tick()
    status = d.status
    assert status.stable_revision == R1
    assert status.canary_revision is None
    assert status.phase == "Progressing"
    assert [e.reason for e in first.events] == ["Deploying"]
    assert replicas(d) == {R1: 4}
    assert entry_selector(d) == R1
    assert d.cluster.routing is not None and d.cluster.routing.stable.revision == R1
    assert d.cluster.routing.canary is None and d.cluster.routing.shadow is None
    assert first.requeue_after == 300.0  # the progress deadline is the only timer

    d.cluster.set_ready(R1, 3)
    d.now += timedelta(seconds=10)
    d.tick()
    assert d.status.phase == "Progressing"

    d.cluster.set_ready(R1)
    d.now += timedelta(seconds=10)
    ready = d.tick()
    status = d.status
    assert status.phase == "Succeeded"
    assert [e.reason for e in ready.events] == ["Available"]
    assert [(h.revision, h.outcome) for h in status.history] == [(R1, "Promoted")]
    assert {c.type: c.status for c in status.conditions} == {
        "Ready": "True",
        "Progressing": "False",
        "RolledBack": "False",
    }
    assert ready.requeue_after is None


def test_full_rollout_walk() -> None:
    d = Driver()
    d.tick()
    d.tick()
    assert d.status.phase == "Succeeded"

    # A new image: a new revision, step 1 (shadow 100 %) sized to its share: 4 of 4 pods.
    d.cluster.auto_ready = False
    d.change_spec(make_spec(V2))
    started = d.tick()
    status = d.status
    assert [e.reason for e in started.events] == ["RolloutStarted"]
    assert (status.canary_revision, status.current_step, status.step_started_at) == (R2, 0, None)
    assert status.waiting_for_pods_since == d.now
    assert replicas(d) == {R1: 4, R2: 4}
    assert d.cluster.routing is not None and d.cluster.routing.shadow is None  # not before pods are ready
    assert entry_selector(d) == R1

    # Pods ready: the shadow copy starts and the step clock with it.
    d.cluster.set_ready(R2)
    d.now += timedelta(seconds=20)
    shadow_started = d.now
    step = d.tick()
    status = d.status
    assert [e.reason for e in step.events] == ["StepStarted"]
    assert status.step_started_at == shadow_started
    assert status.traffic.shadow_percent == 100 and status.traffic.canary_weight == 0
    assert d.cluster.routing.shadow is not None and d.cluster.routing.shadow.revision == R2
    assert d.cluster.routing.shadow.url == f"http://iris-{R2}.ml.svc:8080"
    assert d.cluster.routing.canary is None
    assert step.requeue_after == 30.0  # the first analysis run of the step
    assert status.phase == "Progressing"

    # Analysis every 30 s; the shadow step lasts 2 minutes and needs a passing run within it.
    d.cluster.auto_ready = True
    d.advance(115)
    assert d.status.current_step == 0
    d.advance(5)
    status = d.status
    assert status.current_step == 1
    assert status.step_started_at == shadow_started + timedelta(minutes=2)
    assert status.traffic.canary_weight == 10 and status.traffic.shadow_percent == 0
    assert replicas(d) == {R1: 4, R2: 1}  # ceil(4 x 10 %) = 1: a small canary stays small
    assert d.cluster.routing.canary is not None and d.cluster.routing.canary.weight == 10
    assert d.cluster.routing.shadow is None
    assert entry_selector(d) == R1

    # canary 10 % for 1 minute, then canary 50 %: scaled to 2 pods first, traffic once they are ready.
    d.advance(60)
    status = d.status
    assert status.current_step == 2
    assert status.traffic.canary_weight == 10 and status.step_started_at is None
    assert replicas(d) == {R1: 4, R2: 2}
    d.advance(5)
    assert d.status.traffic.canary_weight == 50

    # canary 50 % for 2 minutes, then the pause step holds the split and waits for the user.
    d.advance(120)
    status = d.status
    assert status.current_step == 3
    assert status.phase == "Paused"
    assert status.traffic.canary_weight == 50
    assert "until promoted" in status.message
    d.advance(600, every=60)
    assert d.status.current_step == 3 and d.status.phase == "Paused"
    assert d.plans[-1].requeue_after == 30.0  # analysis keeps running during the pause

    # promote: past the pause, the canary is scaled to full size before it takes over.
    d.cluster.auto_ready = False
    d.action("promote@1")
    d.now += timedelta(seconds=1)
    promoting = d.tick()
    status = d.status
    assert [e.reason for e in promoting.events] == ["ActionApplied", "Promoting"]
    assert status.last_action is not None and status.last_action.result == "Applied"
    assert status.current_step == 4 and status.step_started_at is None
    assert replicas(d) == {R1: 4, R2: 4}
    assert status.traffic.canary_weight == 50  # unchanged until the switch
    assert entry_selector(d) == R1

    d.cluster.set_ready(R2)
    d.now += timedelta(seconds=5)
    switch_at = d.now
    switched = d.tick()
    status = d.status
    assert [e.reason for e in switched.events] == ["Promoted"]
    assert (status.stable_revision, status.canary_revision, status.phase) == (R2, None, "Succeeded")
    assert entry_selector(d) == R2
    assert d.cluster.routing.stable.revision == R2 and d.cluster.routing.canary is None
    assert [(x.revision, x.since) for x in status.draining] == [(R1, switch_at)]
    assert replicas(d) == {R1: 4, R2: 4}  # the old stable keeps its pods while it drains
    assert switched.requeue_after == 30.0
    assert {c.type: (c.status, c.reason) for c in status.conditions}["Progressing"] == ("True", "Draining")

    # After the drain period the old revision is removed (Deployment, Service, PDB).
    d.cluster.auto_ready = True
    d.advance(25)
    assert R1 in d.cluster.deployments
    d.advance(5)
    status = d.status
    assert R1 not in d.cluster.deployments
    assert ("Service", f"iris-{R1}") not in d.cluster.objects
    assert ("PodDisruptionBudget", f"iris-{R1}") not in d.cluster.objects
    assert ("PodDisruptionBudget", f"iris-{R2}") in d.cluster.objects
    assert status.draining == [] and status.phase == "Succeeded"
    assert [(h.revision, h.outcome) for h in status.history] == [(R1, "Promoted"), (R2, "Promoted")]
    assert d.reasons().count("ScaledDown") == 1

    # Quiet afterwards: nothing timed, nothing new, no status write needed.
    d.advance(60, every=30)
    assert d.plans[-1].events == () and d.plans[-1].requeue_after is None
    assert not d.plans[-1].status_changed
    assert d.plans[-3].status_changed


def test_every_routing_change_keeps_stable_and_grows_weight_monotonically() -> None:
    d = Driver()
    d.tick()
    d.tick()
    d.change_spec(make_spec(V2))
    d.run_until(lambda x: x.status.current_step == 3)
    weights = [t.canary.weight if t.canary else 0 for t in d.cluster.applied_routing]
    shadows = [t.shadow.percent if t.shadow else 0 for t in d.cluster.applied_routing]
    assert weights == [0, 0, 10, 50]
    assert shadows == [0, 100, 0, 0]
    assert all(t.stable.revision == R1 for t in d.cluster.applied_routing)
    generations = [t.generation for t in d.cluster.applied_routing]
    assert generations == sorted(set(generations))


def test_durations_come_from_status_timestamps() -> None:
    """A step that started long ago (per status) ends at the first call after its end."""
    d = Driver()
    d.tick()
    d.tick()
    d.change_spec(make_spec(V2))
    d.tick()
    d.now = T0 + timedelta(seconds=1)
    d.tick()
    assert d.status.current_step == 0
    # The operator was away for an hour; one analysis run (due long ago) passes.
    d.now = T0 + timedelta(hours=1)
    d.tick()
    assert d.status.current_step == 1


def test_stable_without_ready_pods_is_degraded_until_they_recover() -> None:
    d = Driver()
    d.tick()
    d.tick()
    d.cluster.auto_ready = False
    d.cluster.set_ready(R1, 1)
    d.advance(5)
    assert d.status.phase == "Succeeded"
    assert [(c.status, c.reason) for c in d.status.conditions if c.type == "Ready"] == [
        ("False", "PodsNotReady")
    ]
    d.cluster.set_ready(R1, 0)
    d.advance(10)
    assert d.status_json["phase"] == "Degraded"
    assert d.reasons().count("Degraded") == 1
    d.cluster.set_ready(R1)
    d.advance(5)
    assert d.status.phase == "Succeeded"
    assert [c.status for c in d.status.conditions if c.type == "Ready"] == ["True"]
