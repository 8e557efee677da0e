"""The sidecar follows its routing ConfigMap on the real API server (watch, reconnects, least RBAC)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from modeldeploy.contract.routing import (
    ROUTING_KEY,
    Backend,
    CanaryRoute,
    RoutingTable,
    routing_configmap_name,
)
from tests.cluster.localcluster import LocalCluster
from tests.serving.processes import Processes, SidecarProc, free_port, start_sidecar

pytestmark = [pytest.mark.serving, pytest.mark.cluster, pytest.mark.slow]

NAMESPACE = "ml-watch"
MODEL = "iris"
REVISION = "aaaa111111"
CONFIGMAP = routing_configmap_name(MODEL)


def table(generation: int, weight: float = 10) -> RoutingTable:
    return RoutingTable(
        model=MODEL,
        namespace=NAMESPACE,
        stable=Backend(revision=REVISION, url=f"http://iris-{REVISION}.{NAMESPACE}.svc:8080"),
        canary=CanaryRoute(
            revision="bbbb222222", url=f"http://iris-bbbb222222.{NAMESPACE}.svc:8080", weight=weight
        ),
        generation=generation,
    )


def put_table(core: client.CoreV1Api, data: str) -> None:
    core.patch_namespaced_config_map(CONFIGMAP, NAMESPACE, {"data": {ROUTING_KEY: data}})


@pytest.fixture(scope="module")
def core(k8s: ApiClient) -> Iterator[client.CoreV1Api]:
    api = client.CoreV1Api(k8s)
    api.create_namespace({"metadata": {"name": NAMESPACE}})
    api.create_namespaced_config_map(
        NAMESPACE, {"metadata": {"name": CONFIGMAP}, "data": {ROUTING_KEY: table(1).to_json()}}
    )
    try:
        yield api
    finally:
        api.delete_namespace(NAMESPACE)


def restricted_kubeconfig(cluster: LocalCluster, workdir: Path) -> Path:
    """A kubeconfig for a ServiceAccount that may only get/list/watch the one routing ConfigMap."""
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "iris-sidecar", "namespace": NAMESPACE},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "iris-routing-reader", "namespace": NAMESPACE},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": [CONFIGMAP],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "iris-routing-reader", "namespace": NAMESPACE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "iris-routing-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "iris-sidecar", "namespace": NAMESPACE}],
        },
    ]
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(m) for m in manifests))
    token = cluster.kubectl(
        "create", "token", "iris-sidecar", "-n", NAMESPACE, "--duration=1h"
    ).stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    path = workdir / "sidecar-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def start_watching_sidecar(workdir: Path, kubeconfig: Path, procs: Processes) -> SidecarProc:
    return procs.add(
        start_sidecar(
            workdir,
            revision=REVISION,
            upstream=f"http://127.0.0.1:{free_port()}",  # the model is not needed here
            model=MODEL,
            namespace=NAMESPACE,
            routing_configmap=CONFIGMAP,
            env={
                "MODELDEPLOY_KUBECONFIG": str(kubeconfig),
                "MODELDEPLOY_WATCH_TIMEOUT": "2",
                "MODELDEPLOY_LOG_LEVEL": "DEBUG",
            },
            wait_ready=False,
        )
    )


def edits_apply_quickly(core: client.CoreV1Api, sidecar: SidecarProc, first_generation: int) -> list[float]:
    """Edit the ConfigMap a few times, spaced so the 2 s watches end and reconnect in between."""
    delays = []
    for generation in range(first_generation, first_generation + 3):
        time.sleep(2.5)
        put_table(core, table(generation, weight=generation % 100).to_json())
        delays.append(sidecar.wait_generation(generation, timeout=5))
    return delays


def test_configmap_edits_apply_within_a_second_across_watch_reconnects(
    cluster: LocalCluster, core: client.CoreV1Api, tmp_path: Path
) -> None:
    with Processes() as procs:
        sidecar = start_watching_sidecar(tmp_path, cluster.kubeconfig, procs)
        sidecar.wait_generation(1, timeout=10)
        delays = edits_apply_quickly(core, sidecar, 2)
        assert max(delays) < 1.0, delays
        # The 2 s server-side watch timeout made the sidecar list and watch again several times.
        log = sidecar.log_path.read_text()
        assert log.count("watching ConfigMap ml-watch/iris-routing") >= 4, log
        state = sidecar.routing_state()
        assert state["isStable"] is True and state["table"]["canary"]["weight"] == 4

        # An invalid table is rejected and counted; the last good one stays in force.
        errors_before = sidecar.metric("modeldeploy_routing_errors_total")
        put_table(core, '{"model": "iris"}')
        deadline = time.monotonic() + 5
        while sidecar.metric("modeldeploy_routing_errors_total") == errors_before:
            assert time.monotonic() < deadline, "invalid table not reported"
            time.sleep(0.05)
        assert sidecar.routing_state()["table"]["generation"] == 4
        assert "routing table from ConfigMap ml-watch/iris-routing (watch) rejected" in sidecar.log_tail(80)
        put_table(core, table(5).to_json())
        sidecar.wait_generation(5, timeout=2)


def test_sidecar_needs_only_the_one_configmap(
    cluster: LocalCluster, core: client.CoreV1Api, tmp_path: Path
) -> None:
    kubeconfig = restricted_kubeconfig(cluster, tmp_path)
    # The account really is restricted: it cannot list the namespace's other ConfigMaps.
    denied = cluster.kubectl(
        "--kubeconfig", str(kubeconfig), "get", "configmaps", "-n", NAMESPACE, check=False
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    put_table(core, table(10).to_json())
    with Processes() as procs:
        sidecar = start_watching_sidecar(tmp_path, kubeconfig, procs)
        sidecar.wait_generation(10, timeout=10)
        delays = edits_apply_quickly(core, sidecar, 11)
        assert max(delays) < 1.0, delays
        assert sidecar.metric("modeldeploy_routing_errors_total") == 0, sidecar.log_tail()
