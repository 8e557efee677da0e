"""The end-to-end environment: real control plane, operator, Prometheus, sidecars and BentoML.

    env = E2EEnv(cluster, workdir).start()
    env.apply(modeldeployment_manifest(...))
    env.load.start()                      # steady traffic into the entry Service
    ...
    env.stop()

- The control plane is the local one (tests/cluster); KWOK makes the operator's Pods Ready.
- `PodRunner` runs each Pod's `model` (the iris BentoML service, with the Pod's IRIS_* env) and
  `sidecar` (the real modeldeploy sidecar, watching the routing ConfigMap) on loopback.
- `ServiceProxy` routes `http://<service>.<namespace>.svc:8080` to ready pods of that Service,
  for the load generator and for the sidecars' canary/shadow traffic.
- Prometheus (Debian package) scrapes every sidecar through a file_sd target list, and the
  operator's /metrics (job `modeldeploy-operator`).
- The operator runs as a process with real analysis against that Prometheus.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tests.cluster.localcluster import LocalCluster, free_port
from tests.serving.processes import PrometheusProc, start_prometheus
from tests.support.e2e_objects import GROUP as GROUP  # re-exported: older imports take them from here
from tests.support.e2e_objects import PLURAL as PLURAL
from tests.support.e2e_objects import VERSION as VERSION
from tests.support.e2e_objects import ModelDeploymentObjects
from tests.support.launchers import model_launcher, sidecar_launcher
from tests.support.modeldeployments import modeldeployment as build_modeldeployment
from tests.support.operator_process import OperatorProcess, install_crd
from tests.support.podrunner import Launch, Launcher, PodPorts, PodRunner
from tests.support.service_proxy import Endpoints, ServiceProxy

IRIS_BODY = {"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
OPERATOR_JOB = "modeldeploy-operator"
"""Prometheus job scraping the operator's /metrics."""


@dataclass
class Sample:
    at: float
    status: int
    revision: str


RequestFn = Callable[[int], tuple[Any, dict[str, str]]]
"""Request number -> (JSON body, extra headers), for load whose clients differ (sticky keys, inputs)."""


def iris_request(_: int) -> tuple[Any, dict[str, str]]:
    return IRIS_BODY, {}


@dataclass
class LoadGenerator:
    """Steady traffic into the entry Service (threads, bounded by stop()), through `proxy` (the
    ServiceProxy on KWOK) or, when `proxy` is empty, straight to `url` (a ClusterIP on the real node).

    Every request sends IRIS_BODY unless `request` gives each request's body and extra headers.
    """

    url: str
    proxy: str
    rate: float = 20.0
    threads: int = 2
    request: RequestFn = iris_request
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> LoadGenerator:
        self._stop.clear()
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(15)
        self._workers.clear()

    def _run(self, worker: int) -> None:
        # no proxy: straight to the URL (a ClusterIP on the real node)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": self.proxy} if self.proxy else {})
        )
        period = self.threads / self.rate
        numbers = itertools.count(worker, self.threads)  # request numbers are unique across workers
        while not self._stop.is_set():
            started = time.monotonic()
            payload, headers = self.request(next(numbers))
            request = urllib.request.Request(
                self.url,
                data=json.dumps(payload).encode(),
                method="POST",
                headers={"Content-Type": "application/json", **headers},
            )
            try:
                with opener.open(request, timeout=10) as response:
                    self.samples.append(
                        Sample(
                            time.time(), response.status, response.headers.get("x-modeldeploy-revision", "")
                        )
                    )
            except urllib.error.HTTPError as exc:
                self.samples.append(
                    Sample(time.time(), exc.code, exc.headers.get("x-modeldeploy-revision", ""))
                )
            except OSError:
                self.samples.append(Sample(time.time(), 0, ""))
            self._stop.wait(max(0.0, period - (time.monotonic() - started)))

    def since(self, t: float) -> list[Sample]:
        return [s for s in list(self.samples) if s.at >= t]

    def by_revision(self, t: float = 0.0) -> Counter[str]:
        return Counter(s.revision for s in self.since(t))


class E2EEnv(ModelDeploymentObjects):
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
        self.cluster = cluster
        self.workdir = workdir
        self.namespace = namespace or f"e2e-{uuid.uuid4().hex[:6]}"
        self.scrape_interval = scrape_interval
        self.min_window_seconds = min_window_seconds
        self.operator_args = operator_args
        self.model_fields: dict[str, Any] = {}
        """spec.model fields every scenario's model gets: none (the process runner runs any image)."""
        self.api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.endpoints = Endpoints()
        self.proxy_port = free_port()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="service-proxy", daemon=True)
        self.service_proxy = ServiceProxy(self.endpoints, self.proxy_port)
        self.prometheus: PrometheusProc | None = None
        self.runner: PodRunner | None = None
        self.operator: OperatorProcess | None = None
        self.loads: list[LoadGenerator] = []
        self.operator_targets = workdir / "operator-targets.json"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def start(self) -> E2EEnv:
        self.workdir.mkdir(parents=True, exist_ok=True)
        install_crd(self.cluster)
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace)))
        self._loop_thread.start()
        asyncio.run_coroutine_threadsafe(self.service_proxy.start(), self._loop).result(10)
        file_sd = self.workdir / "targets.json"
        file_sd.write_text("[]")
        self.operator_targets.write_text("[]")
        self.prometheus = start_prometheus(
            self.workdir / "prometheus",
            file_sd=file_sd,
            scrape_interval=self.scrape_interval,
            extra_jobs={OPERATOR_JOB: self.operator_targets},
        )
        launchers = {
            "model": model_launcher(self.workdir / "bentoml-home"),
            "sidecar": _fast_drain(sidecar_launcher(self.cluster.kubeconfig, self.proxy_port)),
        }
        self.runner = PodRunner(
            self.api, self.namespace, launchers, self.endpoints, self.workdir / "pods", file_sd
        ).start()
        self.start_operator()
        return self

    def start_operator(self) -> OperatorProcess:
        self.operator = OperatorProcess(
            self.cluster,
            self.namespace,
            self.workdir / f"operator-{int(time.time())}.log",
            ("--analysis-min-window", str(self.min_window_seconds), *self.operator_args),
            env={"MODELDEPLOY_HTTP_PROXY": self.proxy_url},  # golden requests reach Services through it
        ).start()
        # Prometheus scrapes the operator's /metrics too (job OPERATOR_JOB), as a ServiceMonitor would.
        targets = [{"targets": [f"127.0.0.1:{self.operator.metrics_port}"]}]
        tmp = self.operator_targets.with_suffix(".tmp")
        tmp.write_text(json.dumps(targets))
        tmp.replace(self.operator_targets)
        return self.operator

    def start_load(self, name: str, rate: float = 20.0, request: RequestFn = iris_request) -> LoadGenerator:
        """Steady traffic to ModelDeployment `name`'s entry Service; stopped by `stop()` at the latest."""
        load = LoadGenerator(
            url=f"http://{name}.{self.namespace}.svc:8080/classify",
            proxy=self.proxy_url,
            rate=rate,
            request=request,
        ).start()
        self.loads.append(load)
        return load

    def stop(self) -> None:
        for load in self.loads:
            load.stop()
        if self.operator:
            self.operator.stop()
        if self.runner:
            self.runner.stop()
        if self.prometheus:
            self.prometheus.stop()
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.service_proxy.stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(5)
        self.api.close()

    def failure_context(self) -> str:
        tail = self.operator.logs()[-3000:] if self.operator else ""
        return f"operator log ({self.operator.log if self.operator else 'not started'}) tail:\n{tail}"


def _fast_drain(launcher: Launcher) -> Launcher:
    def launch(container: dict[str, Any], ports: PodPorts) -> Launch:
        result = launcher(container, ports)
        result.env["MODELDEPLOY_DRAIN_DELAY"] = "0.2"
        return result

    return launch


def modeldeployment(
    name: str,
    prometheus_url: str,
    *,
    env: dict[str, str] | None = None,
    variant: str = "a",
    model_fields: dict[str, Any] | None = None,
    steps: list[dict[str, Any]] | None = None,
    analysis: dict[str, Any] | None = None,
    replicas: int = 1,
    extra_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ModelDeployment of the iris example; `env` sets IRIS_* switches (latency, failures).

    `extra_spec` adds top-level spec fields (e.g. traffic, guardrails); `model_fields` adds spec.model
    fields (the real node: the iris image and its probes; default image: a name nothing pulls, for
    the process runner).
    """
    model_env = {"IRIS_VARIANT": variant, **(env or {})}
    default_steps = [
        {"shadow": {"percent": 100, "duration": "8s"}},
        {"canary": {"weight": 30, "duration": "8s"}},
        {"canary": {"weight": 60, "duration": "8s"}},
    ]
    default_analysis = {
        "interval": "2s",
        "failureLimit": 2,
        "minRequests": 20,
        # Absolute limits are judged with exact tests on counts; a p99 ratio to stable
        # is not, and a just-started model on a loaded 2-core machine can trip it.
        "slo": {"latencyP99": "500ms", "errorRate": 0.05},
    }
    manifest = build_modeldeployment(
        name,
        f"registry.invalid/iris:{variant}",
        replicas=replicas,
        steps=steps or default_steps,
        analysis=analysis or default_analysis,
        env=model_env,
        prometheus_url=prometheus_url,
        **(extra_spec or {}),
    )
    manifest["spec"]["model"].update(model_fields or {})
    return manifest
