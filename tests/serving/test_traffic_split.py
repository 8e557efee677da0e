"""Canary split through real sidecars in front of real BentoML servers: weight, stickiness, reload."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.processes import Processes, http
from tests.serving.topology import CANARY, STABLE, IrisTrio, Topology, start_topology
from tests.serving.traffic import IRIS_ROWS, revisions, send, send_sync, statuses
from tests.support.sticky_split import on_canary

pytestmark = [pytest.mark.serving, pytest.mark.slow]


@pytest.fixture(scope="module")
def topo(iris_servers: IrisTrio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with Processes() as procs:
        yield start_topology(Path(tmp_path_factory.mktemp("split")), iris_servers, procs)


async def test_weight_20_over_2000_requests_is_within_binomial_tolerance(
    topo: Topology, iris: IrisTrio
) -> None:
    topo.publish(weight=20)
    canary_served_before = topo.canary.metric("modeldeploy_requests_total", route="local")
    n, p = 2000, 0.20
    replies = await send(topo.stable.url, n, concurrency=8)
    assert statuses(replies) == {200: n}
    by_revision = revisions(replies)
    assert set(by_revision) == {STABLE, CANARY}
    hits = by_revision[CANARY]
    tolerance = 4.5 * math.sqrt(n * p * (1 - p))  # a false failure about once in 150,000 runs
    assert abs(hits - n * p) <= tolerance, (
        f"{hits} of {n} went to the canary (expected {n * p}±{tolerance:.0f})"
    )
    # The canary's own sidecar served exactly the forwarded requests.
    canary_served = topo.canary.metric("modeldeploy_requests_total", route="local") - canary_served_before
    assert canary_served == hits
    assert (
        topo.stable.metric("modeldeploy_requests_total", revision=CANARY, route="canary", code="200") >= hits
    )


async def test_sticky_header_keeps_each_key_on_one_revision(topo: Topology, iris: IrisTrio) -> None:
    topo.publish(weight=30, sticky_header="x-modeldeploy-key")
    keys = [f"user-{i}" for i in range(80)]
    replies = await send(
        topo.stable.url,
        len(keys) * 6,
        concurrency=8,
        headers=lambda i: {"X-ModelDeploy-Key": keys[i % len(keys)]},
    )
    seen: dict[str, set[str | None]] = {}
    for reply in replies:
        seen.setdefault(keys[reply.index % len(keys)], set()).add(reply.revision)
    assert all(len(revs) == 1 for revs in seen.values()), {k: v for k, v in seen.items() if len(v) > 1}
    # Every key is exactly where the split's contract (tests/support/sticky_split.py) puts it.
    placed = {key: (CANARY if on_canary(key, 30) else STABLE) for key in keys}
    assert {key: revs.pop() for key, revs in seen.items()} == placed
    on_canary_count = sum(1 for revision in placed.values() if revision == CANARY)
    assert 3 <= on_canary_count <= 45, f"{on_canary_count} of 80 keys on a 30% canary"
    # Requests without the header are still split at random.
    unkeyed = revisions(await send(topo.stable.url, 300, concurrency=8))
    assert unkeyed[CANARY] > 0 and unkeyed[STABLE] > 0


def test_routing_file_edit_applies_within_one_second(topo: Topology, iris: IrisTrio) -> None:
    topo.publish(weight=0)
    assert revisions(send_sync(topo.stable.url, 20)) == {STABLE: 20}
    delays = []
    for weight, expected in ((100, CANARY), (0, STABLE), (100, CANARY)):
        topo.publish(weight=weight, wait=False)
        # Applied = the stable sidecar reports the new generation in force (polled every 20 ms).
        delays.append(topo.stable.wait_generation(topo.generation, timeout=3))
        # ... and from then on every request follows the new table (weights 0/100 are exact).
        status, headers, _ = http("POST", topo.stable.url + "/predict_proba", IRIS_ROWS)
        assert status == 200 and headers["x-modeldeploy-revision"] == expected
    assert max(delays) < 1.0, f"edit-to-effect delays {delays}"
    # The other sidecars follow the same file but never split: they are not the stable revision.
    state = topo.canary.routing_state()
    assert state["table"]["generation"] == topo.generation and state["isStable"] is False


def test_canary_and_shadow_sidecars_serve_locally(topo: Topology, iris: IrisTrio) -> None:
    topo.publish(weight=100, percent=100)
    assert revisions(send_sync(topo.canary.url, 20)) == {CANARY: 20}
    assert revisions(send_sync(topo.stable.url, 20)) == {CANARY: 20}
