"""How many writes per second the local API server accepts, measured in the scale benchmark's run.

The operator's reconcile of a new ModelDeployment is about twenty API requests, two of them
Service creations. On a 2-core machine that also runs etcd, the API server, the controller-manager
and the operator, the API server's own throughput bounds how fast N objects can be reconciled,
whatever the operator does. This probe measures that bound where the benchmark runs, the way the
operator writes: server-side apply through the operator's own `Kube` façade, from as many threads as
the operator's pool (`API_THREADS`), into a namespace of its own (left in place: deleting it would
load the API server during the measurement that follows).

Measured on 2026-12-01 while other tests ran: ConfigMaps about 150 applies/s with 1 thread and the
same with 16 (the machine's CPU, not concurrency, is the limit), Services 30 to 40 per second (a
Service also allocates its ClusterIP, an IPAddress object written through the API server's
loopback client, and wakes the endpoint controllers).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient

from modeldeploy.operator.kube.client import API_THREADS, Kube

PROBE_NAMESPACE = "api-ceiling"
PROBE_OBJECTS = 200


@dataclass(frozen=True)
class Ceiling:
    configmaps_per_second: float
    services_per_second: float

    def floor_seconds(self, services: int, other_requests: int) -> float:
        """Seconds the API server needs, at this ceiling, for `services` Service creations and
        `other_requests` requests costing no more than a ConfigMap apply."""
        return services / self.services_per_second + other_requests / self.configmaps_per_second


def _configmap(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"probe-{i:04d}", "namespace": PROBE_NAMESPACE},
        "data": {"key": "value"},
    }


def _service(i: int) -> dict[str, Any]:
    # No selector: no endpoints follow, only the ClusterIP allocation a Service always costs.
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"probe-{i:04d}", "namespace": PROBE_NAMESPACE},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
    }


def _rate(kube: Kube, manifests: list[dict[str, Any]]) -> float:
    async def apply_all() -> None:
        await asyncio.gather(*(kube.apply(manifest) for manifest in manifests))

    started = time.monotonic()
    asyncio.run(apply_all())
    return len(manifests) / (time.monotonic() - started)


def measure_ceiling(api: ApiClient, objects: int = PROBE_OBJECTS, threads: int = API_THREADS) -> Ceiling:
    """Apply `objects` ConfigMaps, then as many Services, `threads` at a time; their rates."""
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=PROBE_NAMESPACE))
    )
    with ThreadPoolExecutor(threads, thread_name_prefix="api-ceiling") as pool:
        kube = Kube(api, field_manager="api-ceiling", executor=pool)
        return Ceiling(
            configmaps_per_second=_rate(kube, [_configmap(i) for i in range(objects)]),
            services_per_second=_rate(kube, [_service(i) for i in range(objects)]),
        )
