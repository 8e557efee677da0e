"""The fast guard with a really failing canary: trip, local retries, no 5xx for clients after the trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy.contract.routing import GuardSettings
from tests.serving.processes import Processes, SidecarProc, free_port, start_sidecar
from tests.serving.topology import CANARY, MODEL, NAMESPACE, STABLE, IrisTrio, Topology, start_topology
from tests.serving.traffic import revisions, send, statuses

pytestmark = [pytest.mark.serving, pytest.mark.slow]

GUARD = GuardSettings(window=10, max_error_ratio=0.5, min_requests=5)


@pytest.fixture(scope="module")
def topo(
    iris_servers: IrisTrio, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Topology, SidecarProc]]:
    """The topology with POST retried on stable, plus a second stable sidecar that never retries POST."""
    workdir = Path(tmp_path_factory.mktemp("guard"))
    with Processes() as procs:
        topo = start_topology(
            workdir, iris_servers, procs, stable_env={"MODELDEPLOY_RETRY_METHODS": "GET,HEAD,OPTIONS,POST"}
        )
        no_retry = procs.add(
            start_sidecar(
                workdir,
                name="sidecar-stable-no-retry",
                revision=STABLE,
                upstream=iris_servers.stable.url,
                model=MODEL,
                namespace=NAMESPACE,
                routing_file=topo.routing_file,
                overrides={CANARY: topo.canary.url},
            )
        )
        yield topo, no_retry


def guard_state(sidecar: SidecarProc) -> dict[str, object]:
    state = sidecar.routing_state()["guard"]
    assert isinstance(state, dict)
    return state


async def test_failing_canary_trips_guard_and_post_is_retried_locally(
    topo: tuple[Topology, SidecarProc], iris: IrisTrio
) -> None:
    topology, _ = topo
    iris.canary.set_faults(fail_rate=1.0)
    topology.publish(weight=50, guard=GUARD)
    n = 300
    replies = await send(topology.stable.url, n, concurrency=4)
    # Every failed canary attempt was retried on stable: clients never saw an error.
    assert statuses(replies) == {200: n}
    assert revisions(replies) == {STABLE: n}
    stable = topology.stable
    assert stable.metric("modeldeploy_guard_trips_total", revision=CANARY) == 1
    assert stable.metric("modeldeploy_guard_tripped", revision=CANARY) == 1
    attempts = stable.metric("modeldeploy_requests_total", revision=CANARY, route="canary")
    failed = stable.metric("modeldeploy_requests_total", revision=CANARY, route="canary", code="500")
    # Tripped after min_requests failures; at most the requests already in flight reached it after.
    assert attempts == failed
    assert GUARD.min_requests <= failed <= GUARD.min_requests + 4
    assert guard_state(stable)["tripped"] is True


async def test_without_retry_clients_see_no_5xx_after_the_trip(
    topo: tuple[Topology, SidecarProc], iris: IrisTrio
) -> None:
    topology, no_retry = topo
    iris.canary.set_faults(fail_rate=1.0)
    # A new canary revision name resets the guard (the latch is per canary revision); the table
    # points it straight at the same canary sidecar (no override needed for a loopback URL).
    topology.publish(weight=50, guard=GUARD, canary_revision="bbbb999999", canary_url=topology.canary.url)
    no_retry.wait_generation(topology.generation)
    # Sequential requests: the trip happens at an exact, known request.
    replies = await send(no_retry.url, 200, concurrency=1)
    errors = [r.index for r in replies if r.status >= 500]
    assert len(errors) == GUARD.min_requests, statuses(replies)
    after_trip = replies[errors[-1] + 1 :]
    assert len(after_trip) > 100
    assert statuses(after_trip) == {200: len(after_trip)}
    assert revisions(after_trip) == {STABLE: len(after_trip)}
    assert no_retry.metric("modeldeploy_guard_trips_total", revision="bbbb999999") == 1


async def test_an_unreachable_canary_is_answered_locally_whatever_the_method(
    topo: tuple[Topology, SidecarProc],
) -> None:
    """A canary nobody listens for (its Service not routed yet, its Pods gone) never saw the request:
    even the sidecar that does not retry POST answers it locally. The guard still counts the failures."""
    topology, no_retry = topo
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens: every connect is refused
    topology.publish(weight=50, guard=GUARD, canary_revision="bbbb555555", canary_url=unreachable)
    no_retry.wait_generation(topology.generation)
    replies = await send(no_retry.url, 100, concurrency=1)
    assert statuses(replies) == {200: 100}
    assert revisions(replies) == {STABLE: 100}
    assert no_retry.metric("modeldeploy_guard_trips_total", revision="bbbb555555") == 1


async def test_healthy_canary_never_trips(topo: tuple[Topology, SidecarProc], iris: IrisTrio) -> None:
    topology, _ = topo
    iris.canary.set_faults(fail_rate=0.0)
    topology.publish(weight=50, guard=GUARD, canary_revision="bbbb777777", canary_url=topology.canary.url)
    replies = await send(topology.stable.url, 300, concurrency=4)
    assert statuses(replies) == {200: 300}
    assert revisions(replies)["bbbb777777"] > 100
    assert topology.stable.metric("modeldeploy_guard_trips_total", revision="bbbb777777") == 0
