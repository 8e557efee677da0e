"""`kubectl modeldeploy` against the real API server and operator, run the way a person runs it:
kubectl finds `kubectl-modeldeploy` on PATH, KUBECONFIG names the cluster."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.cluster.localcluster import BIN, LocalCluster
from tests.support.mdep import Mdep, manifest, wait_for
from tests.support.operator_process import OperatorProcess, install_crd, running_operator
from tests.support.readiness import model_pods_ready

pytestmark = pytest.mark.cluster

PLUGIN_DIR = Path(sys.executable).parent
"""Where pip put the `kubectl-modeldeploy` entry point (the virtualenv's bin)."""


class Kubectl:
    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.namespace = namespace
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "PATH": f"{PLUGIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def modeldeploy(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        assert (PLUGIN_DIR / "kubectl-modeldeploy").exists(), "pip install -e . installs kubectl-modeldeploy"
        return subprocess.run(
            [str(BIN / "kubectl"), "modeldeploy", *args, "-n", self.namespace],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str) -> str:
        out = self.modeldeploy(*args)
        assert out.returncode == 0, (
            f"kubectl modeldeploy {' '.join(args)} -> {out.returncode}\n{out.stdout}{out.stderr}"
        )
        return out.stdout


@pytest.fixture
def setup(
    cluster: LocalCluster, k8s: ApiClient, tmp_path: Path
) -> Iterator[tuple[Kubectl, Mdep, OperatorProcess]]:
    install_crd(cluster)
    ns = f"plugin-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    with (
        model_pods_ready(k8s, ns),
        running_operator(cluster, ns, tmp_path, ("--analysis-override", "pass")) as op,
    ):
        try:
            yield Kubectl(cluster, ns), Mdep(cluster, k8s, ns, "iris"), op
        finally:
            cluster.kubectl("delete", "modeldeployments", "--all", "-n", ns, "--wait=true", "--timeout=60s")
    core.delete_namespace(ns)


STEPS: list[dict[str, Any]] = [{"canary": {"weight": 30, "duration": "10m"}}, {"pause": {}}]


def test_status_actions_history_and_undo(setup: tuple[Kubectl, Mdep, OperatorProcess]) -> None:
    kubectl, md, op = setup
    md.apply(manifest("iris", "registry.example.com/iris:1", STEPS))
    out = kubectl.modeldeploy("status", "iris", "--watch", "--timeout", "60", "--interval", "0.3")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "✔ Succeeded" in out.stdout.split("\n\n")[-2], "the last frame shows the settled rollout"
    first = md.status()["stableRevision"]

    md.set_image("registry.example.com/iris:2")
    wait_for(
        lambda: md.status().get("stepStartedAt") and md.status().get("currentStep") == 0, 60, "canary", op
    )
    view = kubectl.ok("status", "iris")
    second = md.status()["canaryRevision"]
    assert "Status:         ◌ Progressing" in view
    assert f"Canary:         {second}  registry.example.com/iris:2" in view
    assert "Traffic:        canary 30%, shadow 0%" in view
    assert "Step:           1/2" in view
    assert "  ▶  1  canary 30% for 10m   (running" in view
    assert "  ·  2  pause until promoted" in view
    assert "Progress:       [" in view

    assert "pause: Applied" in kubectl.ok("pause", "iris")
    assert "॥ Paused (UserPaused)" in kubectl.ok("status", "iris")
    again = kubectl.modeldeploy("pause", "iris")
    assert again.returncode == 1 and "pause: Ignored — the rollout is already paused" in again.stdout
    assert "resume: Applied" in kubectl.ok("resume", "iris")
    assert "promote: Applied — skipped step 1/2 (canary 30% for 10m)" in kubectl.ok("promote", "iris")
    wait_for(
        lambda: md.status().get("currentStep") == 1 and md.status().get("phase") == "Paused",
        30,
        "pause step",
        op,
    )
    assert "  ॥  2  pause until promoted" in kubectl.ok("status", "iris")
    kubectl.ok("promote", "iris")
    out = kubectl.modeldeploy("status", "iris", "--watch", "--timeout", "60", "--interval", "0.3")
    assert out.returncode == 0, out.stdout
    assert md.status()["stableRevision"] == second

    history = kubectl.ok("history", "iris")
    assert f"{first}" in history and f"{second} (stable)" in history
    assert history.count("Promoted") == 2

    undo = kubectl.ok("undo", "iris")
    assert "spec.model.image registry.example.com/iris:2 -> registry.example.com/iris:1" in undo
    assert f"revision {first}" in undo and "rolls it out through the steps" in undo
    assert md.get()["spec"]["model"]["image"] == "registry.example.com/iris:1"
    wait_for(lambda: md.status().get("canaryRevision") == first, 60, "the undo rolling out", op)

    assert "abort: Applied — rolled back revision" in kubectl.ok("abort", "iris")
    out = kubectl.modeldeploy("status", "iris", "--watch", "--timeout", "60", "--interval", "0.3")
    assert out.returncode == 1, "a rolled-back rollout ends --watch with exit code 1"
    assert "✖ RolledBack" in out.stdout
    assert "retry: Applied" in kubectl.ok("retry", "iris")
    assert "promote-full: Applied" in kubectl.ok("promote", "iris", "--full")
    assert kubectl.modeldeploy("status", "iris", "--watch", "--timeout", "60").returncode == 0
    assert md.status()["stableRevision"] == first
    outcomes = [h["outcome"] for h in md.status()["history"]]
    assert outcomes[-3:] == ["Promoted", "RolledBack", "Promoted"], outcomes

    status = json.loads(kubectl.ok("status", "iris", "-o", "json"))
    assert status["phase"] == "Succeeded" and status["lastAction"]["name"] == "promote-full"


def test_undo_to_a_named_revision_and_bad_requests(setup: tuple[Kubectl, Mdep, OperatorProcess]) -> None:
    kubectl, md, op = setup
    md.apply(manifest("iris", "registry.example.com/iris:1", [{"canary": {"weight": 50, "duration": "1s"}}]))
    wait_for(lambda: md.status().get("phase") == "Succeeded", 60, "first", op)
    first = md.status()["stableRevision"]

    def promoted(image: str) -> bool:
        return md.status().get("stableImage") == image and md.status().get("phase") == "Succeeded"

    for image in ("registry.example.com/iris:2", "registry.example.com/iris:3"):
        md.set_image(image)
        wait_for(functools.partial(promoted, image), 60, image, op)

    undo = kubectl.ok("undo", "iris", "--to-revision", first[:6])
    assert "-> registry.example.com/iris:1 (history #1" in undo
    wait_for(
        lambda: md.status().get("stableRevision") == first and md.status().get("phase") == "Succeeded",
        60,
        "undone",
        op,
    )

    bad = kubectl.modeldeploy("undo", "iris", "--to-revision", "ffffffff")
    assert bad.returncode == 1 and "no promoted revision 'ffffffff' in the history" in bad.stderr
    same = kubectl.modeldeploy("undo", "iris", "--to-revision", "1")
    assert same.returncode == 1 and "already runs the image" in same.stderr
    missing = kubectl.modeldeploy("status", "nope")
    assert missing.returncode == 1
    assert f'modeldeployment "nope" not found in namespace "{kubectl.namespace}"' in missing.stderr


def test_action_without_an_operator_reports_no_acknowledgement(cluster: LocalCluster, k8s: ApiClient) -> None:
    install_crd(cluster)
    ns = f"plugin-noop-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        md = Mdep(cluster, k8s, ns, "lonely")
        md.apply(manifest("lonely", "registry.example.com/iris:1", STEPS))
        kubectl = Kubectl(cluster, ns)
        out = kubectl.modeldeploy("promote", "lonely", "--wait", "1")
        assert out.returncode == 3
        assert "has not acknowledged it within 1s" in out.stdout
        annotation = md.get()["metadata"]["annotations"]["modeldeploy.io/action"]
        assert annotation.startswith("promote@")
        view = kubectl.ok("status", "lonely")
        assert "Status:         … Pending" in view
    finally:
        cluster.kubectl("delete", "modeldeployment", "lonely", "-n", ns, "--wait=false")
        core.delete_namespace(ns)
