"""The Argo CD Lua scripts, run by Argo CD's own Lua engine (tests/argocd/engine.py), against the live
operator: freshly captured objects get the expected health, and the resource actions, applied as
Argo CD applies them (the merge patch its API server sends), steer a real rollout."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from modeldeploy.operator.planner.actions import ACTION_ANNOTATION
from tests.argocd.capture import capture
from tests.argocd.engine import ArgoCDLua, build
from tests.cluster.localcluster import LocalCluster
from tests.support.mdep import Mdep, manifest, wait_for
from tests.support.operator_process import OperatorProcess, install_crd, running_operator
from tests.support.readiness import model_pods_ready

pytestmark = pytest.mark.cluster

SAMPLES_DIR = Path(__file__).with_name("samples")


@pytest.fixture(scope="module")
def argocd() -> ArgoCDLua:
    return ArgoCDLua(build())


def wait_promoted(md: Mdep, op: OperatorProcess) -> None:
    """Until the rollout in progress is promoted (Succeeded, nothing being rolled out)."""
    wait_for(
        lambda: md.status().get("phase") == "Succeeded" and not md.status().get("canaryRevision"),
        60,
        "promoted",
        op,
    )


def test_fresh_capture_gets_the_expected_health_and_matches_the_committed_samples(
    cluster: LocalCluster, k8s: ApiClient, tmp_path: Path, argocd: ArgoCDLua
) -> None:
    fresh = {sample.name: sample for sample in capture(cluster, k8s, tmp_path)}
    committed = {p.stem: json.loads(p.read_text()) for p in SAMPLES_DIR.glob("*.json")}
    assert set(fresh) == set(committed), "recapture: python -m tests.argocd.capture"
    for name, sample in fresh.items():
        health = argocd.health(sample.object)
        assert health["status"] == sample.health, (name, health)
        assert committed[name]["expectedHealth"] == sample.health
        # The operator still writes the same fields in this state (values such as times differ).
        assert set(sample.object["status"]) == set(committed[name]["object"]["status"]), name


@pytest.fixture
def rollout(cluster: LocalCluster, k8s: ApiClient, tmp_path: Path) -> Iterator[tuple[Mdep, OperatorProcess]]:
    install_crd(cluster)
    ns = f"argo-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    md = Mdep(cluster, k8s, ns, "iris")
    with (
        model_pods_ready(k8s, ns),
        running_operator(cluster, ns, tmp_path, ("--analysis-override", "pass")) as op,
    ):
        try:
            yield md, op
        finally:
            cluster.kubectl("delete", "modeldeployments", "--all", "-n", ns, "--wait=true", "--timeout=60s")
    core.delete_namespace(ns)


def argocd_action(md: Mdep, name: str, op: OperatorProcess, argocd: ArgoCDLua) -> dict[str, Any]:
    """As Argo CD: discovery must offer the action; the merge patch Argo CD's API server computes
    from the script's result is applied; then the operator's acknowledgement is awaited."""
    live = md.get()
    offered = argocd.discovery(live)
    phase = live["status"].get("phase")
    assert not offered[name].get("disabled", False), f"{name} not offered in phase {phase}"
    result = argocd.action(name, live)
    value = result.merge_patch["metadata"]["annotations"][ACTION_ANNOTATION]
    md.custom.patch_namespaced_custom_object(
        "modeldeploy.io", "v1alpha1", md.namespace, "modeldeployments", md.name, result.merge_patch
    )
    last: dict[str, Any] = wait_for(
        lambda: (md.status().get("lastAction") or {}).get("id") == value and md.status()["lastAction"],
        30,
        f"{name} acknowledged",
        op,
    )
    assert last["result"] == "Applied", last
    return last


def health(md: Mdep, argocd: ArgoCDLua) -> str:
    return argocd.health(md.get())["status"]


def test_argocd_actions_steer_a_rollout(rollout: tuple[Mdep, OperatorProcess], argocd: ArgoCDLua) -> None:
    md, op = rollout
    steps: list[dict[str, Any]] = [{"canary": {"weight": 30, "duration": "10m"}}, {"pause": {}}]
    md.apply(manifest("iris", "registry.example.com/iris:1", steps))
    wait_for(lambda: md.status().get("phase") == "Succeeded", 60, "first revision", op)
    assert health(md, argocd) == "Healthy"

    md.set_image("registry.example.com/iris:2")
    wait_for(
        lambda: md.status().get("stepStartedAt") and md.status().get("currentStep") == 0, 60, "canary", op
    )
    assert health(md, argocd) == "Progressing"
    argocd_action(md, "pause", op, argocd)
    assert md.status()["pauseReason"] == "UserPaused" and health(md, argocd) == "Suspended"
    argocd_action(md, "resume", op, argocd)
    assert md.status()["phase"] == "Progressing"
    argocd_action(md, "promote", op, argocd)
    wait_for(
        lambda: md.status().get("currentStep") == 1 and md.status().get("phase") == "Paused", 30, "pause", op
    )
    assert health(md, argocd) == "Suspended"
    argocd_action(md, "promote", op, argocd)
    wait_promoted(md, op)
    assert health(md, argocd) == "Healthy"

    md.set_image("registry.example.com/iris:3")
    wait_for(lambda: md.status().get("canaryRevision"), 60, "third revision rolling out", op)
    argocd_action(md, "abort", op, argocd)
    wait_for(lambda: md.status().get("phase") == "RolledBack", 30, "rolled back", op)
    assert health(md, argocd) == "Degraded"
    argocd_action(md, "retry", op, argocd)
    wait_for(lambda: md.status().get("canaryRevision"), 30, "retried", op)
    argocd_action(md, "promote-full", op, argocd)
    wait_promoted(md, op)
    assert health(md, argocd) == "Healthy"
    outcomes = [entry["outcome"] for entry in md.status()["history"]]
    assert outcomes[-3:] == ["Promoted", "RolledBack", "Promoted"], outcomes
