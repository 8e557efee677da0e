"""The operator as a real process against the real API server (pods made Ready by KWOK).

Analysis is replaced by a constant "pass" at the planner boundary (`--analysis-override pass`),
so these tests exercise reconcile, children, routing, steps, restart and deletion; judging real
metrics is the e2e layer's job.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from tests.cluster.localcluster import LocalCluster
from tests.support.mdep import Mdep, manifest, wait_for
from tests.support.operator_process import OperatorProcess, running_operator

pytestmark = pytest.mark.cluster


def test_first_revision_becomes_stable_with_owned_children(
    cluster: LocalCluster, k8s: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    md = Mdep(cluster, k8s, namespace, "first")
    md.apply(manifest("first", "registry.invalid/iris:1", [{"canary": {"weight": 50, "duration": "2s"}}]))
    status = wait_for(
        lambda: md.status() if md.status().get("phase") == "Succeeded" else None,
        60,
        "phase Succeeded",
        operator,
    )
    rev = status["stableRevision"]
    assert status["observedGeneration"] == md.get()["metadata"]["generation"]
    assert status.get("canaryRevision") in (None, "")
    uid = md.get()["metadata"]["uid"]

    deployment = md.deployments()[f"first-{rev}"]
    assert deployment.spec.replicas == 2
    assert [(o.kind, o.uid, o.controller) for o in deployment.metadata.owner_references] == [
        ("ModelDeployment", uid, True)
    ]
    containers = {c.name: c for c in deployment.spec.template.spec.containers}
    assert set(containers) == {"model", "sidecar"}
    assert containers["model"].image == "registry.invalid/iris:1"

    entry = md.core.read_namespaced_service("first", namespace)
    assert entry.spec.selector["modeldeploy.io/revision"] == rev
    assert entry.metadata.owner_references[0].uid == uid
    assert md.core.read_namespaced_service(f"first-{rev}", namespace).metadata.owner_references[0].uid == uid
    routing = md.routing()
    assert routing["stable"]["revision"] == rev
    assert not routing.get("canary") or routing["canary"]["weight"] == 0

    ready = cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        "--timeout=30s",
        "modeldeployment/first",
        check=False,
    )
    assert ready.returncode == 0, ready.stderr


def test_new_revision_walks_the_steps_and_is_promoted(
    cluster: LocalCluster, k8s: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    md = Mdep(cluster, k8s, namespace, "walk")
    steps = [
        {"shadow": {"percent": 100, "duration": "2s"}},
        {"canary": {"weight": 20, "duration": "2s"}},
        {"canary": {"weight": 60, "duration": "2s"}},
    ]
    md.apply(manifest("walk", "registry.invalid/iris:1", steps))
    first = wait_for(lambda: md.status().get("stableRevision"), 60, "a stable revision", operator)
    wait_for(lambda: md.status().get("phase") == "Succeeded", 60, "first revision Succeeded", operator)

    md.set_image("registry.invalid/iris:2")
    seen_steps: set[int] = set()
    seen_weights: set[float] = set()
    seen_shadow: set[float] = set()
    seen_routing_weights: set[float] = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = md.status()
        if status.get("canaryRevision"):
            seen_steps.add(int(status.get("currentStep") or 0))
            seen_weights.add(float((status.get("traffic") or {}).get("canaryWeight") or 0))
            seen_shadow.add(float((status.get("traffic") or {}).get("shadowPercent") or 0))
            canary = md.routing().get("canary") or {}
            seen_routing_weights.add(float(canary.get("weight") or 0))
        if status.get("stableRevision") not in (None, first) and status.get("phase") == "Succeeded":
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"not promoted; last status {md.status()}\n{operator.logs()[-3000:]}")

    second = md.status()["stableRevision"]
    assert second != first
    assert {0, 1, 2} <= seen_steps, seen_steps
    assert {20.0, 60.0} <= seen_weights, seen_weights
    assert 100.0 in seen_shadow, seen_shadow
    assert {20.0, 60.0} <= seen_routing_weights, "the routing table carried each canary weight"
    assert (
        md.core.read_namespaced_service("walk", namespace).spec.selector["modeldeploy.io/revision"] == second
    )
    # After the drain period the old revision no longer runs.
    wait_for(
        lambda: all(d.spec.replicas == 0 for n, d in md.deployments().items() if n == f"walk-{first}"),
        30,
        "the old revision scaled down or removed",
        operator,
    )
    outcomes = [(h["revision"], h["outcome"]) for h in md.status().get("history", [])]
    assert (second, "Promoted") in outcomes


def test_operator_killed_mid_step_resumes_from_status(
    cluster: LocalCluster, k8s: ApiClient, namespace: str, tmp_path: Path
) -> None:
    md = Mdep(cluster, k8s, namespace, "resume")
    steps = [{"canary": {"weight": 30, "duration": "4s"}}, {"canary": {"weight": 70, "duration": "4s"}}]
    with running_operator(cluster, namespace, tmp_path, ("--analysis-override", "pass")) as op:
        md.apply(manifest("resume", "registry.invalid/iris:1", steps))
        first = wait_for(lambda: md.status().get("stableRevision"), 60, "a stable revision", op)
        wait_for(lambda: md.status().get("phase") == "Succeeded", 60, "Succeeded", op)
        md.set_image("registry.invalid/iris:2")
        wait_for(lambda: md.status().get("currentStep") == 1, 60, "the second step", op)
        op.kill()  # SIGKILL in the middle of step 1
    status_at_kill = md.status()
    assert status_at_kill["phase"] == "Progressing"
    time.sleep(1)
    assert md.status()["currentStep"] == 1, "nothing advances while no operator runs"

    with running_operator(cluster, namespace, tmp_path, ("--analysis-override", "pass")) as op:
        wait_for(
            lambda: md.status().get("phase") == "Succeeded" and md.status().get("stableRevision") != first,
            60,
            "the resumed rollout to finish",
            op,
        )
    status = md.status()
    promoted = [h for h in status.get("history", []) if h["outcome"] == "Promoted"]
    assert [h["revision"] for h in promoted].count(status["stableRevision"]) == 1, status["history"]


def test_deleting_the_modeldeployment_garbage_collects_children(
    cluster: LocalCluster, k8s: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    md = Mdep(cluster, k8s, namespace, "gone")
    md.apply(manifest("gone", "registry.invalid/iris:1", [{"canary": {"weight": 50, "duration": "2s"}}]))
    wait_for(lambda: md.status().get("phase") == "Succeeded", 60, "Succeeded", operator)
    assert md.deployments()
    cluster.kubectl("delete", "-n", namespace, "modeldeployment/gone", "--wait=true", "--timeout=60s")
    wait_for(lambda: not md.deployments(), 60, "Deployments garbage-collected", operator)
    wait_for(
        lambda: (
            not md.core.list_namespaced_service(namespace, label_selector="modeldeploy.io/model=gone").items
        ),
        60,
        "Services garbage-collected",
        operator,
    )
    wait_for(
        lambda: not md.core.list_namespaced_pod(namespace, label_selector="modeldeploy.io/model=gone").items,
        60,
        "Pods garbage-collected",
        operator,
    )
