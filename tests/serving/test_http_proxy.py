"""Canary and shadow traffic through an HTTP proxy (MODELDEPLOY_HTTP_PROXY), local traffic direct.

The proxy is the e2e harness's stand-in for Service networking (tests/support/service_proxy.py):
it resolves `http://<service>.<namespace>.svc:8080` to a pod's loopback address. The table names
the canary and shadow by cluster DNS names that only the proxy can resolve.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy.contract.routing import Comparison
from tests.serving.processes import Processes, SidecarProc, free_port, start_sidecar
from tests.serving.topology import CANARY, SHADOW, STABLE, IrisTrio, Topology, start_topology
from tests.serving.traffic import revisions, send_sync, statuses
from tests.support.service_proxy import Endpoints, ServiceProxy

pytestmark = [pytest.mark.serving, pytest.mark.slow]


class ProxyThread:
    """The ServiceProxy on its own event loop in a thread, for the test's duration."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._proxy = ServiceProxy(endpoints, self.port)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._proxy.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._proxy.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def proxied(
    iris_servers: IrisTrio, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Topology, SidecarProc]]:
    """The usual topology, plus a stable sidecar that reaches canary and shadow only via the proxy."""
    workdir = Path(tmp_path_factory.mktemp("http-proxy"))
    endpoints = Endpoints()
    with Processes() as procs, ProxyThread(endpoints) as proxy:
        topo = start_topology(workdir, iris_servers, procs)
        endpoints.set(f"iris-{CANARY}.ml", [f"127.0.0.1:{topo.canary.port}"])
        endpoints.set(f"iris-{SHADOW}.ml", [f"127.0.0.1:{topo.shadow.port}"])
        via_proxy = procs.add(
            start_sidecar(
                workdir,
                name="sidecar-stable-via-proxy",
                revision=STABLE,
                upstream=iris_servers.stable.url,
                routing_file=topo.routing_file,
                env={"MODELDEPLOY_HTTP_PROXY": f"http://127.0.0.1:{proxy.port}"},
            )
        )
        yield topo, via_proxy


def test_canary_and_shadow_reached_through_the_proxy(
    proxied: tuple[Topology, SidecarProc], iris: IrisTrio
) -> None:
    topo, via_proxy = proxied
    topo.publish(weight=100)
    via_proxy.wait_generation(topo.generation)
    replies = send_sync(via_proxy.url, 30, concurrency=2)
    assert statuses(replies) == {200: 30} and revisions(replies) == {CANARY: 30}

    topo.publish(weight=0, percent=100, comparison=Comparison(tolerance=0.2))
    via_proxy.wait_generation(topo.generation)
    shadow_served = topo.shadow.metric("modeldeploy_requests_total", route="local")
    replies = send_sync(via_proxy.url, 30, concurrency=1)
    # Local traffic never goes through the proxy (it knows no endpoint for the local model).
    assert statuses(replies) == {200: 30} and revisions(replies) == {STABLE: 30}
    deadline = time.monotonic() + 5
    while via_proxy.metric("modeldeploy_shadow_requests_total", result="match") < 30:
        assert time.monotonic() < deadline, via_proxy.samples()
        time.sleep(0.05)
    assert topo.shadow.metric("modeldeploy_requests_total", route="local") - shadow_served == 30
