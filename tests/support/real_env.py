"""The end-to-end environment on the real node: every part runs as it would for a user.

    env = RealNodeEnv(real_cluster, workdir).start()
    env.apply(modeldeployment(name, env.prometheus.url, model_fields=env.model_fields))
    load = env.start_load(name)           # straight to the entry Service's ClusterIP (kube-proxy)
    ...
    env.stop()

- The cluster is the local one with a real node (kubelet, containerd, CNI bridge, kube-proxy, CoreDNS;
  tests/cluster), the project images imported into it by `make images` (refs.json).
- The operator is installed by `helm install` of charts/modeldeploy from the operator image, in a
  namespace of its own, watching the scenario's namespace, with the chart's ServiceAccount and RBAC
  (in-cluster config); the sidecar image comes from the chart's `sidecar.image` values. Nothing is
  pulled (`pullPolicy: Never`).
- Model Pods run the iris image (`model_image`, IRIS_* env switches) and the Rust sidecar, which reads
  its routing ConfigMap with its own ServiceAccount token.
- Prometheus (on the host; 2.53 built from its Go module, as Debian's lacks Kubernetes discovery)
  discovers the sidecars and the operator with `kubernetes_sd_configs` (tests/support/node_prometheus.py)
  and listens on the node IP, so the operator Pod's analysis reaches it (`spec.prometheus.url`).

The test-facing API: apply/get/status/patch_spec/routing/events/wait (e2e_objects.py),
start_load, prometheus.url, namespace, runner.wait_ready/first_ready_at, operator.logs().
Every harness failure names the component and the path of its log.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from modeldeploy.contract.labels import REVISION_LABEL
from tests.chart.access import service_account_kubeconfig
from tests.chart.helm import CHART, helm
from tests.cluster import cni
from tests.cluster.images import build
from tests.cluster.localcluster import CACHE, LocalCluster, free_port
from tests.cluster.node_images import ImageArchive, project_image_archives
from tests.support.e2e_objects import ModelDeploymentObjects
from tests.support.load import LoadGenerator, RequestFn, iris_request
from tests.support.node_prometheus import (
    DISCOVERY_RBAC,
    NodePrometheus,
    discovery_config,
    start_node_prometheus,
)

PROMETHEUS_SA = "prometheus"


class HarnessError(AssertionError):
    """A part of the real-node environment failed; the message names it and the path of its log."""


def project_images(cache: Path = CACHE) -> dict[str, ImageArchive]:
    images = {image.name: image for image in project_image_archives(cache)}
    missing = {"operator", "iris", "sidecar"} - set(images)
    if missing:
        raise HarnessError(
            f"images {', '.join(sorted(missing))} are not built ({cache / 'images' / 'refs.json'}): "
            "run `make images`"
        )
    if cache == CACHE:
        _require_current_images()
    return images


@functools.cache
def _require_current_images() -> None:
    """Refuse to run images built from other sources than the working tree's (a test would pass or
    fail for code it does not show); checked once per process, a few seconds."""
    outdated = build.stale()
    if outdated:
        raise HarnessError(f"images older than the sources: {'; '.join(outdated)}: run `make images`")


def _repository_and_tag(ref: str) -> tuple[str, str]:
    repository, _, tag = ref.rpartition(":")
    return repository, tag


def _monotonic_at(moment: datetime) -> float:
    """A wall-clock time from the API (second resolution) on this process' monotonic clock."""
    return time.monotonic() - (time.time() - moment.timestamp())


def model_fields(image: str) -> dict[str, Any]:
    """spec.model fields of every scenario's model: the iris image as imported (never pulled). The
    probes are the operator's defaults (a startup probe lets the model load for minutes)."""
    return {"image": image, "imagePullPolicy": "Never"}


class PodWatch:
    """Model Pods as the kubelet runs them: when a revision's Pods are Ready (their probes passed)."""

    def __init__(self, core: client.CoreV1Api, namespace: str, log_dir: Path) -> None:
        self.core = core
        self.namespace = namespace
        self.log_dir = log_dir

    def pods(self, revision: str, terminating: bool = False) -> list[client.V1Pod]:
        """The revision's Pods; those being deleted (Terminating) only when `terminating`."""
        pods: list[client.V1Pod] = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{REVISION_LABEL}={revision}"
        ).items
        return [p for p in pods if terminating or p.metadata.deletion_timestamp is None]

    @staticmethod
    def ready_since(pod: client.V1Pod) -> datetime | None:
        for condition in pod.status.conditions or []:
            if condition.type == "Ready" and condition.status == "True":
                moment: datetime = condition.last_transition_time
                return moment
        return None

    def first_ready_at(self, revision: str) -> float | None:
        """time.monotonic() when the first of the revision's Pods became Ready, or None."""
        moments = [m for m in (self.ready_since(p) for p in self.pods(revision)) if m is not None]
        return _monotonic_at(min(moments)) if moments else None

    def wait_ready(self, revision: str, count: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(self.ready_since(p) is not None for p in self.pods(revision)) >= count:
                return
            time.sleep(0.5)
        raise HarnessError(
            f"{count} Pod(s) of revision {revision} not Ready in {timeout}s:\n{self.describe(revision)}"
        )

    def describe(self, revision: str) -> str:
        """Each Pod's container states, its container logs saved under log_dir (paths given)."""
        lines = []
        for pod in self.pods(revision):
            name = pod.metadata.name
            for status in pod.status.container_statuses or []:
                state = status.state
                detail = (
                    f"waiting ({state.waiting.reason}: {state.waiting.message})"
                    if state.waiting
                    else f"terminated ({state.terminated.reason}, exit {state.terminated.exit_code})"
                    if state.terminated
                    else "running"
                )
                log = self.save_log(name, status.name)
                lines.append(
                    f"  Pod {name} container {status.name}: {detail}, ready={status.ready}, "
                    f"restarts={status.restart_count}; log: {log}"
                )
        return "\n".join(lines) or f"  no Pods of revision {revision} in {self.namespace}"

    def save_log(self, pod: str, container: str) -> Path:
        path = self.log_dir / f"{pod}.{container}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = self.core.read_namespaced_pod_log(pod, self.namespace, container=container)
        except client.ApiException as exc:
            text = f"(no log: {exc.status} {exc.reason})"
        path.write_text(text)
        return path


@dataclass
class OperatorRelease:
    """The operator as the chart installed it: one Deployment in its own namespace."""

    cluster: LocalCluster
    core: client.CoreV1Api
    release: str
    namespace: str
    log: Path

    @property
    def fullname(self) -> str:
        return f"{self.release}-modeldeploy"

    def pods(self) -> list[client.V1Pod]:
        pods: list[client.V1Pod] = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"app.kubernetes.io/instance={self.release}"
        ).items
        return pods

    def metrics_url(self) -> str:
        """The operator's /metrics through the chart's metrics Service (its ClusterIP, kube-proxy)."""
        spec = self.core.read_namespaced_service(f"{self.fullname}-metrics", self.namespace).spec
        return f"http://{spec.cluster_ip}:{spec.ports[0].port}/metrics"

    def alive(self) -> bool:
        return any(PodWatch.ready_since(p) is not None for p in self.pods())

    def logs(self) -> str:
        """The operator Pods' logs (`kubectl logs`), also written to `log`."""
        parts = []
        for pod in self.pods():
            out = self.cluster.kubectl("logs", "-n", self.namespace, pod.metadata.name, check=False)
            parts.append(f"==> Pod {pod.metadata.name}\n{out.stdout}{out.stderr}")
        text = "\n".join(parts)
        self.log.write_text(text)
        return text

    def delete_pod(self) -> str:
        """Delete the running operator Pod (its Deployment starts another); returns its name."""
        pods = [p for p in self.pods() if p.metadata.deletion_timestamp is None]
        if not pods:
            raise HarnessError(f"no operator Pod of release {self.release} in {self.namespace}")
        name: str = pods[0].metadata.name
        self.core.delete_namespaced_pod(name, self.namespace)
        return name


class RealNodeEnv(ModelDeploymentObjects):
    def __init__(
        self,
        cluster: LocalCluster,
        workdir: Path,
        *,
        namespace: str | None = None,
        scrape_interval: str = "1s",
        min_window_seconds: float = 4.0,
        operator_args: tuple[str, ...] = (),
    ) -> None:
        if cluster.node_kind != "real":
            raise HarnessError(f"RealNodeEnv needs a cluster with a real node, not {cluster.node_kind!r}")
        self.cluster = cluster
        self.workdir = workdir
        suffix = uuid.uuid4().hex[:6]
        self.namespace = namespace or f"e2e-{suffix}"
        self.system_namespace = f"mdsys-{suffix}"
        self.release = f"md{suffix}"
        self.scrape_interval = scrape_interval
        self.min_window_seconds = min_window_seconds
        self.operator_args = operator_args
        self.images = project_images()
        self.model_fields = model_fields(self.images["iris"].ref)
        self.api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.runner = PodWatch(self.core, self.namespace, workdir / "pods")
        self.prometheus: NodePrometheus | None = None
        self.prometheus_port = free_port()
        self.operator: OperatorRelease | None = None
        self.loads: list[LoadGenerator] = []
        self.installed = False

    # ---- start and stop ---------------------------------------------------------------------
    def start(self) -> RealNodeEnv:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for ns in (self.namespace, self.system_namespace):
            self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        self.start_prometheus()
        self.install_operator()
        return self

    def start_prometheus(self) -> NodePrometheus:
        """Prometheus with its own ServiceAccount's token, discovering Pods through the API server."""
        kubeconfig = self.workdir / "prometheus.kubeconfig"
        if not kubeconfig.exists():
            rbac = DISCOVERY_RBAC.format(
                name=f"{PROMETHEUS_SA}-{self.release}", namespace=self.system_namespace
            )
            self.cluster.kubectl("apply", "-f", "-", input=rbac)
            service_account_kubeconfig(
                self.cluster, self.system_namespace, f"{PROMETHEUS_SA}-{self.release}", kubeconfig
            )
        settings = discovery_config(kubeconfig, [self.namespace], self.system_namespace, self.scrape_interval)
        self.prometheus = start_node_prometheus(
            self.workdir / "prometheus", settings, cni.NODE_IP, self.prometheus_port
        )
        return self.prometheus

    def helm_values(self) -> dict[str, Any]:
        operator_repo, operator_tag = _repository_and_tag(self.images["operator"].ref)
        sidecar_repo, sidecar_tag = _repository_and_tag(self.images["sidecar"].ref)
        assert self.prometheus is not None
        return {
            "image": {"repository": operator_repo, "tag": operator_tag, "pullPolicy": "Never"},
            "sidecar": {"image": {"repository": sidecar_repo, "tag": sidecar_tag, "pullPolicy": "Never"}},
            "watchNamespaces": [self.namespace],
            "prometheus": {"url": self.prometheus.url},
            "operator": {
                "analysisMinWindowSeconds": self.min_window_seconds,
                "extraArgs": list(self.operator_args),
            },
        }

    def install_operator(self, timeout: str = "180s") -> OperatorRelease:
        values = self.workdir / "values.yaml"
        values.write_text(yaml.safe_dump(self.helm_values()))
        log = self.workdir / "helm-install.log"
        self.operator = OperatorRelease(
            self.cluster, self.core, self.release, self.system_namespace, self.workdir / "operator.log"
        )
        out = helm(
            "install", self.release, str(CHART), "--namespace", self.system_namespace,
            "--values", str(values), "--wait", "--timeout", timeout,
            kubeconfig=self.cluster.kubeconfig, check=False,
        )  # fmt: skip
        log.write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            self.operator.logs()
            raise HarnessError(
                f"helm install of the operator failed (log: {log}; operator Pod log: {self.operator.log}):\n"
                f"{out.stderr[-2000:]}"
            )
        self.installed = True
        return self.operator

    def stop(self) -> None:
        for load in self.loads:
            load.stop()
        if self.operator is not None:
            with contextlib.suppress(Exception):
                self.operator.logs()  # kept in the workdir for a post-mortem
        if self.installed:
            helm(
                "uninstall", self.release, "--namespace", self.system_namespace, "--wait",
                kubeconfig=self.cluster.kubeconfig, check=False,
            )  # fmt: skip
        for ns in (self.namespace, self.system_namespace):
            with contextlib.suppress(client.ApiException):
                self.core.delete_namespace(ns)
        name = f"{PROMETHEUS_SA}-{self.release}"
        self.cluster.kubectl(
            "delete", "clusterrole,clusterrolebinding", name, "--ignore-not-found", check=False
        )
        if self.prometheus is not None:
            self.prometheus.stop()
        self.api.close()

    # ---- traffic and diagnosis --------------------------------------------------------------
    def service_url(self, service: str, path: str = "/classify") -> str:
        """`http://<ClusterIP>:<port><path>` of a Service of the scenario's namespace."""
        spec = self.core.read_namespaced_service(service, self.namespace).spec
        return f"http://{spec.cluster_ip}:{spec.ports[0].port}{path}"

    def wait_routed(self, service: str, timeout: float = 30.0) -> None:
        """Until the node routes `service`'s ClusterIP. kube-proxy programs a Service's rules a moment
        after its Pods turn Ready (EndpointSlice, then its sync); until then the node refuses the
        connection, which is the network converging, not the model. A TCP connect is the probe, so
        no request reaches the model or its metrics."""
        spec = self.core.read_namespaced_service(service, self.namespace).spec
        address = (spec.cluster_ip, spec.ports[0].port)

        def accepts() -> bool:
            try:
                with socket.create_connection(address, timeout=2):
                    return True
            except (ConnectionRefusedError, TimeoutError):
                return False

        self.wait(accepts, timeout, f"kube-proxy to route Service {service} ({address[0]}:{address[1]})")

    def start_load(self, name: str, rate: float = 20.0, request: RequestFn = iris_request) -> LoadGenerator:
        """Steady traffic to ModelDeployment `name`'s entry Service, through kube-proxy (no proxy),
        from the moment the node routes it."""
        self.wait_routed(name)
        load = LoadGenerator(url=self.service_url(name), proxy="", rate=rate, request=request).start()
        self.loads.append(load)
        return load

    def failure_context(self) -> str:
        if self.operator is None:
            return "operator: not installed"
        tail = self.operator.logs()[-3000:]
        prometheus = f"; Prometheus log: {self.prometheus.log_path}" if self.prometheus else ""
        return f"operator Pod log ({self.operator.log}{prometheus}) tail:\n{tail}"
