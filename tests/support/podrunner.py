"""Plays the kubelet for the local cluster: runs each modeldeploy Pod's containers as processes.

KWOK marks Pods Running and Ready on a fake Node, but nothing runs. For end-to-end tests and
the demo, `PodRunner` watches the Pods the operator's Deployments create and, for each one,
starts the model server and the sidecar on free loopback ports with the Pod's own container
environment (ports and the upstream address rewritten to loopback). It keeps the
`ServiceProxy` endpoints (Service -> ready pod sidecars) and a Prometheus file_sd target list
current, and stops a Pod's processes when the Pod goes away.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.cluster.localcluster import free_port
from tests.support.service_proxy import Endpoints

MANAGED = "app.kubernetes.io/managed-by=modeldeploy"


@dataclass
class PodPorts:
    model: int
    traffic: int
    metrics: int


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]


# (container spec as a dict, the pod's ports) -> how to run it on loopback
Launcher = Callable[[dict[str, Any], PodPorts], Launch]


@dataclass
class RunningPod:
    name: str
    revision: str
    labels: dict[str, str]
    ports: PodPorts
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ready: bool = False
    ready_at: float | None = None
    """time.monotonic() when the sidecar first answered /readyz (model and sidecar both up)."""

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """Plain `value` env entries of a container (valueFrom is not resolved here)."""
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "value" in e}


class PodRunner:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        launchers: dict[str, Launcher],
        endpoints: Endpoints,
        log_dir: Path,
        file_sd: Path | None = None,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.launchers = launchers
        self.endpoints = endpoints
        self.log_dir = log_dir
        self.file_sd = file_sd
        self.pods: dict[str, RunningPod] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="podrunner", daemon=True)
        self.errors: list[str] = []

    def start(self) -> PodRunner:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for pod in self.pods.values():
            pod.stop()
        self.pods.clear()

    # ---- the loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # keep playing kubelet; tests read `errors`
                self.errors.append(repr(exc))
            self._stop.wait(0.3)

    def sync(self) -> None:
        api_pods = self.core.list_namespaced_pod(self.namespace, label_selector=MANAGED).items
        live = {}
        for pod in api_pods:
            if pod.metadata.deletion_timestamp is None and pod.status.phase == "Running":
                live[pod.metadata.name] = pod
        for name in list(self.pods):
            if name not in live:
                self.pods.pop(name).stop()
        for name, pod in live.items():
            if name not in self.pods:
                self.pods[name] = self._launch(pod)
        for running in self.pods.values():
            if not running.ready:
                running.ready = _http_ok(f"http://127.0.0.1:{running.ports.traffic}/readyz")
                if running.ready:
                    running.ready_at = time.monotonic()
                    self._mark_ready(running.name)
        self._publish_endpoints()
        self._publish_targets()

    def _launch(self, pod: Any) -> RunningPod:
        spec = client.ApiClient().sanitize_for_serialization(pod.spec)
        labels = dict(pod.metadata.labels or {})
        running = RunningPod(
            name=pod.metadata.name,
            revision=labels.get("modeldeploy.io/revision", ""),
            labels=labels,
            ports=PodPorts(model=free_port(), traffic=free_port(), metrics=free_port()),
        )
        for container in spec.get("containers", []):
            launcher = self.launchers.get(container["name"])
            if launcher is None:
                continue
            launch = launcher(container, running.ports)
            log = open(self.log_dir / f"{running.name}.{container['name']}.log", "ab")  # noqa: SIM115
            running.processes.append(
                subprocess.Popen(
                    launch.argv,
                    env={**os.environ, **launch.env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            log.close()
        return running

    def _mark_ready(self, pod: str) -> None:
        """What a kubelet's readiness probe does: the Pod is Ready once its sidecar answers /readyz.

        KWOK starts modeldeploy's Pods NotReady (tests/cluster/localcluster.harness_stages), so
        the operator sends traffic only to revisions whose processes really serve.
        """
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("ContainersReady", "Ready")
        ]
        self.core.patch_namespaced_pod_status(pod, self.namespace, {"status": {"conditions": conditions}})

    def _publish_endpoints(self) -> None:
        services = self.core.list_namespaced_service(self.namespace, label_selector=MANAGED).items
        for svc in services:
            selector = svc.spec.selector or {}
            addresses = sorted(
                f"127.0.0.1:{p.ports.traffic}"
                for p in self.pods.values()
                if p.ready and all(p.labels.get(k) == v for k, v in selector.items())
            )
            self.endpoints.set(f"{svc.metadata.name}.{self.namespace}", addresses)

    def _publish_targets(self) -> None:
        if self.file_sd is None:
            return
        groups = [
            {
                "targets": [f"127.0.0.1:{p.ports.metrics}"],
                "labels": {"pod": p.name, "pod_revision": p.revision},
            }
            for p in sorted(self.pods.values(), key=lambda p: p.name)
        ]
        tmp = self.file_sd.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.file_sd)

    def first_ready_at(self, revision: str) -> float | None:
        times = [p.ready_at for p in list(self.pods.values()) if p.revision == revision and p.ready_at]
        return min(times) if times else None

    def wait_ready(self, revision: str, count: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = [p for p in self.pods.values() if p.revision == revision and p.ready]
            if len(ready) >= count:
                return
            time.sleep(0.3)
        raise AssertionError(f"{count} ready pod(s) of revision {revision} not running after {timeout}s")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False
