"""Fault injection on the real node (tests/e2e/test_faults.py): the faults an operator team sees.

- the operator Pod deleted (`kubectl delete pod`, a drain, an eviction: SIGTERM, and the chart's
  Deployment starts a replacement Pod at once) or its container SIGKILLed (a crash or the OOM
  killer: no cleanup at all; the kubelet restarts the container in the same Pod);
- `helm upgrade` of the operator (a new image tag, or two peered replicas);
- Prometheus (on the host) stopped and started again on its port and data;
- a model Pod's sidecar read on its own `/metrics` and `kubectl logs`.

Faults are injected from the test thread; `Watch` polls a ModelDeployment and remembers every
status it saw, so a test can assert what never happened (no promotion while pods were missing,
no step skipped) and not only where the rollout ended.
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.chart.helm import CHART, helm
from tests.support.real_env import HarnessError, PodWatch, RealNodeEnv

Status = dict[str, Any]
METRICS_PORT_NAME = "metrics"
"""Port name of the sidecar's and of the operator's /metrics (model Pods and the chart's Pods)."""


@dataclass
class Watch:
    """Polls one ModelDeployment's status and remembers each one."""

    env: RealNodeEnv
    name: str
    seen: list[Status] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    changes: list[str] = field(default_factory=list)
    """Where the rollout was, each time it moved: "12.3s Progressing step=1 running"."""

    def status(self) -> Status:
        status = self.env.status(self.name)
        where = (
            f"{status.get('phase')} step={status.get('currentStep')} "
            f"{'running' if status.get('stepStartedAt') else 'waiting'} stable={status.get('stableRevision')}"
        )
        if not self.changes or not self.changes[-1].endswith(where):
            self.changes.append(f"{time.monotonic() - self.started:.1f}s {where}")
        self.seen.append(status)
        return status

    def until(self, predicate: Callable[[Status], bool], timeout: float, what: str) -> Status:
        def check() -> Status | None:
            status = self.status()
            return status if predicate(status) else None

        found: Status = self.env.wait(check, timeout, what)
        return found

    def stable_revisions(self) -> set[str]:
        return {s["stableRevision"] for s in self.seen if s.get("stableRevision")}


# ---- the operator ---------------------------------------------------------------------------------
def operator_pods(env: RealNodeEnv) -> list[client.V1Pod]:
    """The chart's operator Pods that are not terminating."""
    assert env.operator is not None
    return [p for p in env.operator.pods() if p.metadata.deletion_timestamp is None]


def the_operator_pod(env: RealNodeEnv) -> client.V1Pod:
    pods = operator_pods(env)
    if len(pods) != 1:
        names = [p.metadata.name for p in pods]
        raise HarnessError(
            f"expected one operator Pod, found {names}; log: {env.operator and env.operator.log}"
        )
    return pods[0]


def operator_container(pod: client.V1Pod) -> client.V1ContainerStatus:
    (status,) = [c for c in pod.status.container_statuses or [] if c.name == "operator"]
    return status


def delete_operator_pod(env: RealNodeEnv) -> str:
    """Delete the running operator Pod (SIGTERM, as a drain or `kubectl delete pod` does); the chart's
    Deployment starts a replacement at once. Returns the deleted Pod's name."""
    assert env.operator is not None
    env.wait(lambda: operator_pods(env), 30, "an operator Pod that is not terminating")
    return env.operator.delete_pod()


def kill_operator_container(env: RealNodeEnv) -> tuple[str, int]:
    """SIGKILL the operator container's process through the node's containerd (what the OOM killer
    or a crash does); the kubelet restarts the container in the same Pod. Returns the Pod's name and
    its container's restart count before the kill."""
    assert env.cluster.real_node is not None
    pod = the_operator_pod(env)
    status = operator_container(pod)
    if not status.container_id or not status.state.running:
        raise HarnessError(f"operator Pod {pod.metadata.name} has no running container: {status.state}")
    container_id = status.container_id.removeprefix("containerd://")
    env.cluster.real_node.containerd.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)
    return pod.metadata.name, int(status.restart_count)


def wait_operator_restarted(env: RealNodeEnv, pod: str, restarts: int, timeout: float = 60.0) -> None:
    """Wait until the kubelet has started pod's operator container again (restart count went up)."""

    def restarted() -> bool:
        pods = [p for p in operator_pods(env) if p.metadata.name == pod]
        return bool(pods) and int(operator_container(pods[0]).restart_count) > restarts

    env.wait(restarted, timeout, f"the kubelet to restart the operator container of Pod {pod}")


def metrics_url(pod: client.V1Pod) -> str:
    """`http://<Pod IP>:<port named metrics>/metrics` (the host reaches Pod IPs over the CNI bridge)."""
    for container in pod.spec.containers:
        for port in container.ports or []:
            if port.name == METRICS_PORT_NAME:
                return f"http://{pod.status.pod_ip}:{port.container_port}/metrics"
    raise HarnessError(f"Pod {pod.metadata.name} has no port named {METRICS_PORT_NAME!r}")


def metric_sum(pod: client.V1Pod, sample_name: str) -> float:
    """Sum of the samples named `sample_name` on a Pod's /metrics (sidecar or operator)."""
    with urllib.request.urlopen(metrics_url(pod), timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == sample_name
    )


def operator_reconciles(pod: client.V1Pod) -> float:
    """ModelDeployment reconciles an operator Pod has run (its /metrics), whatever their result."""
    return metric_sum(pod, "modeldeploy_operator_reconciles_total")


def upgrade_operator(env: RealNodeEnv, values: dict[str, Any], what: str, *, wait: bool) -> None:
    """`helm upgrade` of the env's release: its install values with `values` merged on top."""
    merged = env.helm_values()
    for key, value in values.items():
        current = merged.get(key)
        merged[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    file = env.workdir / f"values-{what}.yaml"
    file.write_text(yaml.safe_dump(merged))
    log = env.workdir / f"helm-upgrade-{what}.log"
    args = ["upgrade", env.release, str(CHART), "--namespace", env.system_namespace, "--values", str(file)]
    if wait:
        args += ["--wait", "--timeout", "180s"]
    out = helm(*args, kubeconfig=env.cluster.kubeconfig, check=False)
    log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        assert env.operator is not None
        env.operator.logs()
        raise HarnessError(
            f"helm upgrade ({what}) failed (log: {log}; operator Pod log: {env.operator.log}):\n"
            f"{out.stderr[-2000:]}"
        )


def tag_operator_image(env: RealNodeEnv, suffix: str) -> str:
    """The operator image under a second tag, `<tag><suffix>`, in the node's containerd (the same
    content, as the next release would be under its own tag); returns the new ref."""
    assert env.cluster.real_node is not None
    source = env.images["operator"].ref
    target = source + suffix
    env.cluster.real_node.containerd.ctr("images", "tag", "--force", source, target)
    return target


def untag_operator_image(env: RealNodeEnv, suffix: str) -> None:
    """Remove the operator image's second tag (`<tag><suffix>`) from the node, if it is there."""
    if env.cluster.real_node is None:
        return
    ref = env.images["operator"].ref + suffix
    env.cluster.real_node.containerd.ctr("images", "rm", ref, check=False)


def wait_operator_rolled_out(env: RealNodeEnv, image: str, replicas: int, timeout: float = 180.0) -> None:
    """Wait until exactly `replicas` operator Pods exist, all Ready and running `image`."""

    def rolled_out() -> bool:
        assert env.operator is not None
        pods = env.operator.pods()  # terminating ones too: the old replicas must be gone
        return (
            len(pods) == replicas
            and all(p.spec.containers[0].image == image for p in pods)
            and all(PodWatch.ready_since(p) is not None for p in pods)
        )

    env.wait(rolled_out, timeout, f"{replicas} operator Pod(s) of image {image}, Ready, the old ones gone")


# ---- the rollout's children -----------------------------------------------------------------------
def duplicate_history(status: Status) -> list[tuple[str, str]]:
    """(revision, outcome) pairs that occur more than once in status.history."""
    pairs = Counter((h["revision"], h["outcome"]) for h in status.get("history") or [])
    return [pair for pair, count in pairs.items() if count > 1]


def event_reasons(env: RealNodeEnv, name: str, revision: str) -> Counter[str]:
    """Reasons of the model's Events that name `revision`."""
    return Counter(reason for _, reason, message in env.events(name) if revision in message)


def ready_pods(env: RealNodeEnv, revision: str) -> list[client.V1Pod]:
    """A revision's Pods that are Ready and not terminating."""
    return [p for p in env.runner.pods(revision) if PodWatch.ready_since(p) is not None]


def deployment_replicas(env: RealNodeEnv, name: str, revision: str) -> int | None:
    """spec.replicas of a revision's Deployment; None when there is no such Deployment."""
    try:
        deployment = client.AppsV1Api(env.api).read_namespaced_deployment(f"{name}-{revision}", env.namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return int(deployment.spec.replicas or 0)
