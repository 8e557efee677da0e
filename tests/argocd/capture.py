"""Capture ModelDeployment objects in every phase from the real operator on the local control plane.

The samples feed the Argo CD Lua health check and resource actions (tests/argocd) and the kubectl
plugin's status view. They are what the operator really writes, not hand-made status blocks:

    python -m tests.argocd.capture tests/argocd/samples     # starts its own local control plane

The API-layer test tests/argocd/test_live_samples.py runs the same capture and checks the Lua
health of each fresh sample, so the committed samples cannot drift from the operator.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client import ApiClient

from modeldeploy.operator.planner.actions import ACTION_ANNOTATION, action_value
from tests.cluster.localcluster import LocalCluster, running_cluster
from tests.support.mdep import Mdep, manifest, wait_for
from tests.support.operator_process import install_crd, running_operator
from tests.support.readiness import mark_ready_once, model_pods_ready

SAMPLES = Path(__file__).with_name("samples")
CAPTURED_BY = "tests/argocd/capture.py (modeldeploy-operator on the local control plane)"


@dataclass(frozen=True)
class Sample:
    name: str
    description: str
    health: str
    """The Argo CD health this object must get: Healthy, Progressing, Suspended or Degraded."""
    object: dict[str, Any]

    def to_json(self, captured_at: str) -> str:
        body = {
            "capturedBy": CAPTURED_BY,
            "capturedAt": captured_at,
            "description": self.description,
            "expectedHealth": self.health,
            "object": self.object,
        }
        return json.dumps(body, indent=2, sort_keys=False) + "\n"


def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without server bookkeeping; namespace `ml` and a fixed resourceVersion."""
    meta = dict(obj["metadata"])
    for key in ("managedFields", "uid", "resourceVersion", "creationTimestamp"):
        meta.pop(key, None)
    # Only the user's action request; kopf's bookkeeping and kubectl's last-applied are noise here.
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k == ACTION_ANNOTATION}
    meta["annotations"] = annotations
    meta["namespace"] = "ml"
    meta["resourceVersion"] = "4242"  # Argo CD actions read it; a fixed value keeps samples stable
    return {**obj, "metadata": meta}


class Recorder:
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def take(self, md: Mdep, name: str, health: str, description: str) -> None:
        self.samples.append(Sample(name, description, health, clean(md.get())))


def act(md: Mdep, action: str) -> None:
    value = action_value(action, uuid.uuid4().hex[:8])
    md.custom.patch_namespaced_custom_object(
        "modeldeploy.io", "v1alpha1", md.namespace, "modeldeployments", md.name,
        {"metadata": {"annotations": {ACTION_ANNOTATION: value}}},
    )  # fmt: skip
    wait_for(lambda: (md.status().get("lastAction") or {}).get("id") == value, 30, f"{action} acknowledged")


def phase_is(md: Mdep, phase: str, **fields: Any) -> Callable[[], bool]:
    def check() -> bool:
        status = md.status()
        return status.get("phase") == phase and all(status.get(k) == v for k, v in fields.items())

    return check


@contextlib.contextmanager
def namespaces(k8s: ApiClient, *names: str) -> Iterator[None]:
    core = client.CoreV1Api(k8s)
    for name in names:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield
    finally:
        for name in names:
            with contextlib.suppress(client.ApiException):
                core.delete_namespace(name)


def delete_all(cluster: LocalCluster, namespace: str) -> None:
    """Delete the ModelDeployments while their operator still runs (it removes its finalizer)."""
    cluster.kubectl("delete", "modeldeployments", "--all", "-n", namespace, "--wait=true", "--timeout=60s")


def capture_rollout(cluster: LocalCluster, k8s: ApiClient, ns: str, log_dir: Path, rec: Recorder) -> None:
    """One ModelDeployment through first revision, steps, pauses, abort, retry and promotion."""
    md = Mdep(cluster, k8s, ns, "iris")
    steps: list[dict[str, Any]] = [
        {"shadow": {"percent": 50, "duration": "3s"}},
        {"canary": {"weight": 40, "duration": "10m"}},
        {"pause": {}},
    ]
    args = ("--analysis-override", "pass")
    with model_pods_ready(k8s, ns):
        with running_operator(cluster, ns, log_dir, args) as op:
            md.apply(manifest("iris", "registry.example.com/iris:1.0", steps))
            wait_for(phase_is(md, "Succeeded"), 60, "first revision Succeeded", op)
            rec.take(md, "succeeded", "Healthy", "First revision available; nothing rolling out.")
        # The operator is stopped: the spec change is not observed yet.
        md.set_image("registry.example.com/iris:2.0")
        rec.take(
            md, "generation-not-observed", "Progressing",
            "A new image was applied; the operator has not reconciled the new generation yet.",
        )  # fmt: skip
        with running_operator(cluster, ns, log_dir, args) as op:
            wait_for(
                lambda: md.status().get("currentStep") == 0 and md.status().get("stepStartedAt"),
                60,
                "shadow",
                op,
            )
            rec.take(
                md, "progressing-shadow", "Progressing", "Step 1: shadow 50% of requests to the new revision."
            )
            wait_for(
                lambda: md.status().get("currentStep") == 1 and md.status().get("stepStartedAt"),
                60,
                "canary",
                op,
            )
            wait_for(lambda: (md.status().get("analysis") or {}).get("lastRun"), 30, "an analysis run", op)
            rec.take(md, "progressing-canary", "Progressing", "Step 2: canary 40% with passing analysis.")
            act(md, "pause")
            wait_for(phase_is(md, "Paused", pauseReason="UserPaused"), 30, "paused", op)
            rec.take(md, "paused-by-user", "Suspended", "kubectl modeldeploy pause during the canary step.")
            act(md, "resume")
            act(md, "promote")
            wait_for(
                lambda: md.status().get("currentStep") == 2 and md.status().get("phase") == "Paused",
                60,
                "pause step",
                op,
            )
            rec.take(md, "paused-at-pause-step", "Suspended", "Step 3: a pause step waiting for promote.")
            act(md, "abort")
            wait_for(phase_is(md, "RolledBack"), 30, "RolledBack", op)
            rec.take(
                md, "rolled-back-aborted", "Degraded", "kubectl modeldeploy abort: rolled back, not retried."
            )
            act(md, "retry")
            wait_for(lambda: md.status().get("canaryRevision"), 30, "retry", op)
            act(md, "promote-full")
            wait_for(
                lambda: md.status().get("phase") == "Succeeded" and not md.status().get("canaryRevision"),
                60,
                "promoted",
                op,
            )
            rec.take(
                md,
                "succeeded-after-rollouts",
                "Healthy",
                "Retried and promoted; the history holds every outcome.",
            )
            delete_all(cluster, ns)


def capture_analysis(
    cluster: LocalCluster, k8s: ApiClient, ns: str, log_dir: Path, rec: Recorder, verdict: str
) -> None:
    """A second revision judged by analysis: 'fail' rolls it back, 'inconclusive' pauses it."""
    md = Mdep(cluster, k8s, ns, "iris")
    analysis = {
        "interval": "1s",
        "minRequests": 1,
        "failureLimit": 2,
        "inconclusiveLimit": 2,
        "onInconclusive": "Pause",
    }
    body = manifest("iris", "registry.example.com/iris:1.0", [{"canary": {"weight": 20, "duration": "10m"}}])
    body["spec"]["rollout"]["analysis"] = analysis
    with (
        model_pods_ready(k8s, ns),
        running_operator(cluster, ns, log_dir, ("--analysis-override", verdict)) as op,
    ):
        md.apply(body)
        wait_for(phase_is(md, "Succeeded"), 60, "first revision Succeeded", op)
        md.set_image("registry.example.com/iris:2.0-bad")
        if verdict == "fail":
            wait_for(phase_is(md, "RolledBack"), 60, "rolled back by analysis", op)
            rec.take(
                md, "rolled-back-analysis", "Degraded", "Two failed analysis runs in a row: rolled back."
            )
        else:
            wait_for(phase_is(md, "Paused", pauseReason="InconclusiveAnalysis"), 60, "inconclusive pause", op)
            rec.take(
                md, "paused-inconclusive", "Suspended", "Two inconclusive analysis runs: paused for a person."
            )
        delete_all(cluster, ns)


def capture_unready(cluster: LocalCluster, k8s: ApiClient, ns: str, log_dir: Path, rec: Recorder) -> None:
    """Pods that never get ready: the first revision fails its deadline; a stable one loses its pods."""
    stuck = Mdep(cluster, k8s, ns, "stuck")
    steady = Mdep(cluster, k8s, ns, "steady")
    core = client.CoreV1Api(k8s)
    with running_operator(cluster, ns, log_dir, ("--analysis-override", "pass")) as op:
        stuck.apply(
            manifest(
                "stuck",
                "registry.example.com/iris:1.0",
                [{"canary": {"weight": 50, "duration": "1m"}}],
                progressDeadline="8s",
            )
        )
        wait_for(phase_is(stuck, "Progressing"), 30, "first revision Progressing", op)
        rec.take(stuck, "first-revision-progressing", "Progressing", "First revision waiting for its pods.")
        wait_for(phase_is(stuck, "Failed"), 60, "progress deadline", op)
        rec.take(stuck, "failed-deadline", "Degraded", "Pods never ready within progressDeadline: Failed.")

        steady.apply(
            manifest(
                "steady", "registry.example.com/iris:1.0", [{"canary": {"weight": 50, "duration": "1m"}}]
            )
        )
        wait_for(
            lambda: (
                mark_ready_once(core, ns, "modeldeploy.io/model=steady") >= 0
                and steady.status().get("phase") == "Succeeded"
            ),
            60,
            "Succeeded",
            op,
        )
        core.delete_collection_namespaced_pod(
            ns, label_selector="modeldeploy.io/model=steady", grace_period_seconds=0
        )
        wait_for(phase_is(steady, "Degraded"), 60, "Degraded", op)
        rec.take(steady, "degraded", "Degraded", "The stable revision lost every ready pod.")
        delete_all(cluster, ns)


def capture(cluster: LocalCluster, k8s: ApiClient, log_dir: Path) -> list[Sample]:
    install_crd(cluster)
    rec = Recorder()
    suffix = uuid.uuid4().hex[:6]
    names = [f"cap-{kind}-{suffix}" for kind in ("rollout", "fail", "inconclusive", "unready")]
    with namespaces(k8s, *names):
        capture_rollout(cluster, k8s, names[0], log_dir, rec)
        capture_analysis(cluster, k8s, names[1], log_dir, rec, "fail")
        capture_analysis(cluster, k8s, names[2], log_dir, rec, "inconclusive")
        capture_unready(cluster, k8s, names[3], log_dir, rec)
    return rec.samples


def write(samples: list[Sample], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for old in out.glob("*.json"):
        old.unlink()
    for sample in samples:
        (out / f"{sample.name}.json").write_text(sample.to_json(stamp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=SAMPLES, help="folder for the JSON samples")
    args = parser.parse_args(argv)
    with running_cluster() as cluster:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        try:
            samples = capture(cluster, api, cluster.log_dir)
        finally:
            api.close()
    write(samples, args.out)
    print(f"wrote {len(samples)} samples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
