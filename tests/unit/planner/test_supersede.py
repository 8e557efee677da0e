"""A spec edit during a rollout supersedes the revision in progress."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.planner.harness import Driver, make_spec, rev

V1 = "registry.example.com/iris:1"
V2 = "registry.example.com/iris:2"
V3 = "registry.example.com/iris:3"
R1, R2, R3 = rev(V1), rev(V2), rev(V3)


def rolling_canary() -> Driver:
    d = Driver()
    d.tick()
    d.tick()
    d.change_spec(make_spec(V2))
    d.run_until(lambda x: x.status.current_step == 2 and x.status.step_started_at is not None)
    return d


def test_new_spec_during_a_rollout_supersedes_and_starts_over() -> None:
    d = rolling_canary()
    d.cluster.auto_ready = False
    d.change_spec(make_spec(V3))
    d.now += timedelta(seconds=1)
    result = d.tick()
    status = d.status
    assert [e.reason for e in result.events] == ["Superseded", "RolloutStarted"]
    assert status.canary_revision == R3 and status.current_step == 0
    assert status.stable_revision == R1
    assert status.history[-1].revision == R2 and status.history[-1].outcome == "Superseded"
    assert status.history[-1].image == V2
    # R2's traffic is cut at once; its pods stay for the drain period, R3 has none yet.
    assert result.routing.canary is None and result.routing.shadow is None
    assert [x.revision for x in status.draining] == [R2]
    assert d.cluster.deployments[R2].replicas == 2
    assert not result.delete
    assert status.aborted_revision is None  # superseded is not rolled back

    d.cluster.auto_ready = True
    d.advance(30)
    assert R2 not in d.cluster.deployments
    assert ("Service", f"iris-{R2}") not in d.cluster.objects
    assert d.status.traffic.shadow_percent == 100  # R3's first step is running


def test_spec_reverted_to_stable_cancels_the_rollout() -> None:
    d = rolling_canary()
    d.change_spec(make_spec(V1))
    d.now += timedelta(seconds=1)
    result = d.tick()
    status = d.status
    assert [e.reason for e in result.events] == ["Superseded"]
    assert status.canary_revision is None and status.phase == "Succeeded"
    assert "went back to the stable revision" in status.history[-1].reason
    assert result.routing.canary is None
    d.advance(30)
    assert set(d.cluster.deployments) == {R1}


def test_spec_back_to_a_draining_revision_keeps_it() -> None:
    d = rolling_canary()
    d.change_spec(make_spec(V3))
    d.advance(5)
    assert [x.revision for x in d.status.draining] == [R2]
    d.change_spec(make_spec(V2))  # back to R2 before it was removed
    d.advance(5)
    status = d.status
    assert status.canary_revision == R2
    assert [x.revision for x in status.draining] == [R3]
    d.advance(60)
    assert R2 in d.cluster.deployments and R3 not in d.cluster.deployments


def test_first_revision_that_never_got_ready_is_replaced_directly() -> None:
    d = Driver()
    d.cluster.auto_ready = False
    d.tick()
    d.advance(60, every=30)
    d.change_spec(make_spec(V2))
    d.now += timedelta(seconds=1)
    result = d.tick()
    status = d.status
    assert [e.reason for e in result.events] == ["Deploying"]
    assert status.stable_revision == R2 and status.canary_revision is None
    assert status.history[-1].outcome == "Superseded" and status.history[-1].revision == R1
    assert result.routing.stable.revision == R2
    d.cluster.auto_ready = True
    d.advance(10)
    assert d.status.phase == "Succeeded"
    d.advance(30)
    assert set(d.cluster.deployments) == {R2}


def test_replica_change_without_new_revision_only_resizes() -> None:
    d = rolling_canary()
    d.change_spec(make_spec(V2, replicas=10))
    d.now += timedelta(seconds=1)
    result = d.tick()
    assert d.status.canary_revision == R2 and d.status.current_step == 2
    assert "Superseded" not in [e.reason for e in result.events]
    # The old stable cannot be rendered from the new spec: it is scaled by a patch.
    assert [(s.revision, s.replicas) for s in result.scale] == [(R1, 10)]
    assert d.cluster.deployments[R2].replicas == 5  # ceil(10 x 50 %)


def test_lost_status_adopts_the_serving_revision_instead_of_promoting_the_new_one() -> None:
    d = rolling_canary()
    d.status_json = {}  # status wiped (restored from a backup without status, say)
    d.now += timedelta(seconds=1)
    result = d.tick()
    status = d.status
    assert [e.reason for e in result.events] == ["Adopted", "RolloutStarted"]
    assert status.stable_revision == R1 and status.stable_image == V1
    assert status.canary_revision == R2 and status.current_step == 0
    assert result.routing.stable.revision == R1
    assert R1 in d.cluster.deployments and d.cluster.deployments[R1].replicas == 4
