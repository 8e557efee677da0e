"""Fault injection for the e2e environment: operator kills, peered replicas, Prometheus and API
server outages, lost pods, a hand-edited routing ConfigMap (used by tests/e2e/test_faults.py).

Faults are injected from the test thread; `Watch` polls a ModelDeployment and remembers every
status it saw, so a test can assert what never happened (no promotion while pods were missing,
no step skipped) and not only where the rollout ended.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.chart.helm import CHART
from tests.serving.processes import start_prometheus
from tests.support.e2e_env import E2EEnv
from tests.support.operator_process import OperatorProcess
from tests.support.podrunner import RunningPod

Status = dict[str, Any]


@dataclass
class Watch:
    """Polls one ModelDeployment's status (and the API server's view of its new revision's pods)."""

    env: E2EEnv
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


def restart_operator(env: E2EEnv, sig: int = signal.SIGKILL) -> OperatorProcess:
    """Kill the operator (SIGKILL: no cleanup at all) and start a fresh process."""
    assert env.operator is not None
    env.operator.kill(sig)
    return env.start_operator()


def restart_prometheus(env: E2EEnv) -> None:
    """Start Prometheus again on the port (and with the data) of the stopped one."""
    assert env.prometheus is not None
    port = env.prometheus.port
    env.prometheus = start_prometheus(
        env.workdir / "prometheus",
        file_sd=env.workdir / "targets.json",
        scrape_interval=env.scrape_interval,
        port=port,
    )


def duplicate_history(status: Status) -> list[tuple[str, str]]:
    """(revision, outcome) pairs that occur more than once in status.history."""
    pairs = Counter((h["revision"], h["outcome"]) for h in status.get("history") or [])
    return [pair for pair, count in pairs.items() if count > 1]


def event_reasons(env: E2EEnv, name: str, revision: str) -> Counter[str]:
    """Reasons of the model's Events that name `revision`."""
    return Counter(reason for _, reason, message in env.events(name) if revision in message)


def pods_of(env: E2EEnv, revision: str) -> list[RunningPod]:
    assert env.runner is not None
    return [p for p in list(env.runner.pods.values()) if p.revision == revision and p.ready]


def sidecar_metric(pod: RunningPod, metric: str) -> float:
    """Sum of a sidecar's samples named `metric` (its /metrics port)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{pod.ports.metrics}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == metric
    )


def deployment_replicas(env: E2EEnv, name: str, revision: str) -> int | None:
    """spec.replicas of a revision's Deployment; None when there is no such Deployment."""
    try:
        deployment = client.AppsV1Api(env.api).read_namespaced_deployment(f"{name}-{revision}", env.namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return int(deployment.spec.replicas or 0)


@dataclass
class PeeredOperators:
    """Several operator processes of one kopf peering in the env's namespace."""

    env: E2EEnv
    count: int = 2
    processes: list[OperatorProcess] = field(default_factory=list)

    def start(self) -> PeeredOperators:
        env = self.env
        env.cluster.kubectl("apply", "--server-side", "-f", str(CHART / "crds" / "kopf-peering.yaml"))
        env.cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev"
        )
        peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "modeldeploy"}}
        env.custom.create_namespaced_custom_object("kopf.dev", "v1", env.namespace, "kopfpeerings", peering)
        for i in range(self.count):
            self.processes.append(
                OperatorProcess(
                    env.cluster,
                    env.namespace,
                    env.workdir / f"operator-peer{i}-{int(time.time())}.log",
                    ("--analysis-min-window", str(env.min_window_seconds), "--peering", "modeldeploy"),
                ).start()
            )
        return self

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.env.custom.delete_namespaced_custom_object(
            "kopf.dev", "v1", self.env.namespace, "kopfpeerings", "modeldeploy"
        )

    def logs(self) -> str:
        return "\n".join(p.logs()[-2000:] for p in self.processes)
