"""The scale benchmark's view of the cluster and the operator: many ModelDeployments, counts, metrics.

Everything here talks to the local control plane with the benchmark's own user agent (so the
audit log does not count it as the operator's) or reads the operator's /metrics.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client import ApiClient
from prometheus_client.parser import text_string_to_metric_families

from bench.apiaudit import BENCH_USER_AGENT
from tests.cluster.localcluster import LocalCluster
from tests.support.modeldeployments import modeldeployment

GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
MANAGED = "app.kubernetes.io/managed-by=modeldeploy"
CREATE_CLIENTS = 8
STEPS: list[dict[str, Any]] = [
    {"shadow": {"percent": 100, "duration": "5s"}},
    {"canary": {"weight": 50, "duration": "5s"}},
]


def bench_client(cluster: LocalCluster) -> ApiClient:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    api.user_agent = BENCH_USER_AGENT
    return api


def manifest(name: str, image: str) -> dict[str, Any]:
    return modeldeployment(
        name, image, replicas=1, steps=STEPS, analysis={"interval": "2s", "minRequests": 1}
    )


def name_of(i: int) -> str:
    return f"m-{i:04d}"


class Objects:
    """Creates, reads and changes the benchmark's ModelDeployments in one namespace."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)

    def create(self, n: int, image: str, clients: int = CREATE_CLIENTS) -> None:
        """Create n ModelDeployments, `clients` requests at a time (like several users or a GitOps sync)."""

        def one(i: int) -> None:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, manifest(name_of(i), image)
            )

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(n)))

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return result

    def set_image(self, name: str, image: str) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": {"model": {"image": image}}}
        )

    def phases(self) -> dict[str, str]:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"]
        return {o["metadata"]["name"]: (o.get("status") or {}).get("phase", "") for o in items}

    def children(self) -> dict[str, int]:
        """Owned children by kind (names start with the models' prefix). Raw JSON: cheap on CPU."""
        ns = self.namespace
        raw = {"_preload_content": False}
        deployments = _names(self.apps.list_namespaced_deployment(ns, label_selector=MANAGED, **raw))
        services = [n for n in _names(self.core.list_namespaced_service(ns, **raw)) if n.startswith("m-")]
        configmaps = [
            n for n in _names(self.core.list_namespaced_config_map(ns, **raw)) if n.endswith("-routing")
        ]
        return {"deployments": len(deployments), "services": len(services), "configmaps": len(configmaps)}


def _names(response: Any) -> list[str]:
    return [item["metadata"]["name"] for item in json.loads(response.data)["items"]]


def wait_until(predicate: Callable[[], bool], timeout: float, period: float, what: str) -> float:
    """Poll `predicate` every `period` seconds; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(period)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


@dataclass(frozen=True)
class Step:
    after: float  # seconds since the spec change
    phase: str
    step: int | None
    canary_weight: float
    shadow_percent: float


def step_of(body: dict[str, Any]) -> tuple[str, int | None, float, float]:
    status = body.get("status") or {}
    traffic = status.get("traffic") or {}
    return (
        status.get("phase", ""),
        status.get("currentStep"),
        float(traffic.get("canaryWeight") or 0),
        float(traffic.get("shadowPercent") or 0),
    )


def follow_rollout(
    objects: Objects, name: str, image: str, timeout: float
) -> tuple[list[Step], float | None]:
    """Change `name`'s image and record every status step until a new stable revision serves.

    Returns the steps (first: the first status written for the new generation) and the
    seconds from the change to a Succeeded status naming a new stable revision, or None when
    that did not happen within `timeout` (the steps then show where the rollout stood).
    """
    before = objects.get(name)
    old_stable = (before.get("status") or {}).get("stableRevision")
    changed = time.monotonic()
    objects.set_image(name, image)
    generation = objects.get(name)["metadata"]["generation"]
    steps: list[Step] = []
    last: tuple[str, int | None, float, float] | None = None
    deadline = changed + timeout
    while time.monotonic() < deadline:
        body = objects.get(name)
        status = body.get("status") or {}
        if status.get("observedGeneration") == generation:
            now = step_of(body)
            if now != last:
                steps.append(Step(time.monotonic() - changed, *now))
                last = now
            if status.get("phase") == "Succeeded" and status.get("stableRevision") not in (None, old_stable):
                return steps, time.monotonic() - changed
        time.sleep(0.1)
    return steps, None


@dataclass(frozen=True)
class OperatorMetrics:
    reconciles: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count) of the duration histogram

    def minus(self, earlier: OperatorMetrics) -> OperatorMetrics:
        before = dict(earlier.buckets)
        return OperatorMetrics(
            self.reconciles - earlier.reconciles,
            tuple((le, count - before.get(le, 0.0)) for le, count in self.buckets),
        )

    def quantile(self, q: float) -> float:
        """histogram_quantile() as PromQL computes it (linear within the bucket)."""
        if not self.buckets or self.buckets[-1][1] == 0:
            return float("nan")
        total = self.buckets[-1][1]
        rank = q * total
        lower, below = 0.0, 0.0
        for le, count in self.buckets:
            if count >= rank:
                if le == float("inf"):
                    return lower
                return lower + (le - lower) * ((rank - below) / (count - below) if count > below else 0.0)
            lower, below = le, count
        return lower


def operator_metrics(port: int) -> OperatorMetrics:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    reconciles = 0.0
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "modeldeploy_operator_reconciles_total":
                reconciles += sample.value
            elif sample.name == "modeldeploy_operator_reconcile_duration_seconds_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    return OperatorMetrics(reconciles, tuple(sorted(buckets)))
