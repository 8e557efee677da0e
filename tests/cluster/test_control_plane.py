"""The local control plane is a real Kubernetes: API, controllers, scheduler, kubectl, KWOK."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.cluster.localcluster import BIN, ROOT, LocalCluster

pytestmark = pytest.mark.cluster

KUBE_VERSION = (ROOT / "tests" / "cluster" / "controlplane" / "KUBE_VERSION").read_text().strip()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="registry.invalid/never-pulled:1")]
                ),
            ),
        ),
    )


def test_server_reports_the_pinned_release(cluster: LocalCluster, k8s: ApiClient) -> None:
    info = client.VersionApi(k8s).get_code()
    assert info.git_version == KUBE_VERSION
    assert info.minor == KUBE_VERSION.split(".")[1]


def test_deployment_pods_become_ready_then_are_garbage_collected(k8s: ApiClient) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    ns = f"cp-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    apps.create_namespaced_deployment(ns, deployment("web", replicas=3))

    def ready_pods() -> list[client.V1Pod]:
        pods = core.list_namespaced_pod(ns, label_selector="app=web").items
        return [
            p
            for p in pods
            if p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]

    wait_for(lambda: len(ready_pods()) == 3, 60, "3 Running and Ready pods")
    pods = ready_pods()
    assert {p.spec.node_name for p in pods} == {"kwok-node-0"}, "the scheduler bound them to the fake node"
    assert all(p.status.pod_ip for p in pods), "KWOK assigned pod IPs"
    wait_for(
        lambda: (apps.read_namespaced_deployment_status("web", ns).status.ready_replicas or 0) == 3,
        30,
        "the Deployment to report 3 ready replicas",
    )
    # ReplicaSets are owned by the Deployment, Pods by the ReplicaSet: deleting the Deployment
    # must remove everything through the garbage collector.
    apps.delete_namespaced_deployment("web", ns, propagation_policy="Background")
    wait_for(lambda: not core.list_namespaced_pod(ns).items, 60, "pods to be garbage-collected")
    assert not apps.list_namespaced_replica_set(ns).items
    core.delete_namespace(ns)
    wait_for(
        lambda: ns not in {n.metadata.name for n in core.list_namespace().items},
        60,
        "namespace deletion to finish",
    )


def test_kubectl_uses_the_generated_kubeconfig(cluster: LocalCluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == KUBE_VERSION
    assert version["clientVersion"]["minor"] == version["serverVersion"]["minor"], (
        "kubectl matches the server"
    )
    nodes = cluster.kubectl("get", "nodes", "-o", "name").stdout.split()
    assert nodes == ["node/kwok-node-0"]
    can_i = cluster.kubectl("auth", "can-i", "*", "*", "--all-namespaces").stdout.strip()
    assert can_i == "yes", "the admin token is in system:masters"


def test_a_wrong_token_is_rejected_and_tls_is_verified(cluster: LocalCluster) -> None:
    out = subprocess.run(
        [
            str(BIN / "kubectl"),
            "--kubeconfig",
            "/dev/null",
            "--server",
            cluster.server,
            "--certificate-authority",
            str(cluster.ca_file),
            "--token",
            "not-the-admin-token",
            "get",
            "namespaces",
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode != 0
    assert "Unauthorized" in out.stderr, out.stderr


def test_second_build_reuses_the_cache() -> None:
    binary = BIN / "controlplane"
    before = binary.stat().st_mtime_ns
    out = subprocess.run(
        ["bash", str(Path(ROOT) / "tests" / "cluster" / "build.sh")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "cached build" in out.stdout, out.stdout + out.stderr
    assert binary.stat().st_mtime_ns == before, "the binary was not rebuilt"
