"""leaderElection: several operator replicas in one kopf peering, exactly one active."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.chart.helm import CHART
from tests.cluster.localcluster import LocalCluster
from tests.support.mdep import Mdep, manifest, wait_for
from tests.support.operator_process import OperatorProcess, install_crd, running_operator
from tests.support.readiness import model_pods_ready

pytestmark = pytest.mark.cluster


@pytest.fixture
def peered_namespace(cluster: LocalCluster, k8s: ApiClient) -> Iterator[str]:
    install_crd(cluster)
    cluster.kubectl("apply", "--server-side", "-f", str(CHART / "crds" / "kopf-peering.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev")
    ns = f"peer-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        "kopf.dev", "v1", ns, "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "modeldeploy"}},
    )  # fmt: skip
    yield ns
    core.delete_namespace(ns)


def priority(op: OperatorProcess) -> int:
    found = re.search(r"peering 'modeldeploy' with priority (\d+)", op.logs())
    assert found, "the operator logs its peering priority"
    return int(found.group(1))


def test_two_peered_replicas_one_works_the_other_takes_over(
    cluster: LocalCluster, k8s: ApiClient, peered_namespace: str, tmp_path: Path
) -> None:
    """As the chart runs them with leaderElection: same peering, no priority given. kopf pauses
    every peer when the highest priority is shared, so each process must pick its own."""
    ns = peered_namespace
    md = Mdep(cluster, k8s, ns, "peered")
    args = ("--analysis-override", "pass", "--peering", "modeldeploy")
    steps: list[dict[str, Any]] = [{"canary": {"weight": 50, "duration": "1s"}}]
    with (
        model_pods_ready(k8s, ns),
        running_operator(cluster, ns, tmp_path, args) as one,
        running_operator(cluster, ns, tmp_path, args) as two,
    ):
        md.apply(manifest("peered", "registry.invalid/iris:1", steps))
        wait_for(
            lambda: md.status().get("phase") == "Succeeded", 90, "Succeeded with two peered replicas", one
        )
        # Each process logs its priority. The standby may be resumed by kopf for a moment before
        # it sees its senior peer, but the start-up grace keeps it from acting: it never reconciled.
        active, standby = sorted((one, two), key=priority, reverse=True)
        assert active.reconciles() > 0
        assert standby.reconciles() == 0, "the standby replica acted"
        assert "conflicting operators with the same priority" not in one.logs() + two.logs()

        active.stop()  # graceful: kopf leaves the peering at once
        md.set_image("registry.invalid/iris:2")
        wait_for(
            lambda: (
                md.status().get("phase") == "Succeeded"
                and md.status()["stableImage"] == "registry.invalid/iris:2"
            ),
            90,
            "the standby promoting the next revision",
            standby,
        )
        cluster.kubectl("delete", "modeldeployment", "peered", "-n", ns, "--wait=true", "--timeout=60s")
