"""Real processes on loopback for the serving and end-to-end tests: BentoML iris, sidecar, Prometheus.

Each `start_*` function returns a handle once the process answers, or raises ProcessError with the
tail of its log. Every handle has `stop()` (SIGTERM to its process group, SIGKILL after a grace
period); fixtures call it in `finally`, and `Processes` stops a whole set in reverse order.
A missing tool (bentoml, prometheus) is an error, never a skip. The basics (ports, `http`, `Proc`,
`spawn`, `Processes`) live in tests/serving/process_base.py and are re-exported here.

    with Processes() as procs:
        iris = procs.add(start_iris(tmp / "iris", env={"IRIS_VARIANT": "b"}))
        sidecar = procs.add(start_sidecar(tmp / "sc", revision="aaaa", upstream=iris.url, routing_file=f))
        prom = procs.add(start_prometheus(tmp / "prom", [sidecar.metrics_address]))
        prom.query('sum(modeldeploy_requests_total)')
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.contract.routing import RoutingTable
from tests.serving.process_base import (
    IRIS_DIR,
    PROMETHEUS,
    PYTHON,
    ROOT,
    Proc,
    ProcessError,
    Processes,
    free_port,
    http,
    sidecar_binary,
    spawn,
)

__all__ = [
    "IRIS_DIR",
    "PYTHON",
    "ROOT",
    "IrisServer",
    "Proc",
    "ProcessError",
    "Processes",
    "PrometheusProc",
    "SidecarProc",
    "free_port",
    "http",
    "launch_iris",
    "sidecar_binary",
    "spawn",
    "start_iris",
    "start_prometheus",
    "start_sidecar",
    "write_routing",
]


# BentoML iris --------------------------------------------------------------------------------


@dataclass
class IrisServer(Proc):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_faults(self, latency_ms: float | None = None, fail_rate: float | None = None) -> dict[str, Any]:
        """Change the fault switches of the running service (see serving/examples/iris/service.py)."""
        payload = {
            k: v for k, v in {"latency_ms": latency_ms, "fail_rate": fail_rate}.items() if v is not None
        }
        status, _, body = http("POST", self.url + "/faults", payload)
        if status != 200:
            raise ProcessError(f"{self.name}: POST /faults answered {status}: {body[:300]!r}")
        result: dict[str, Any] = json.loads(body)
        return result

    def wait_ready(self, timeout: float = 90.0) -> None:
        self.wait_http(self.url + "/readyz", timeout)

    def requests_served(self, endpoint: str) -> float:
        """Requests the model server itself handled on `endpoint` (BentoML's own counter, any status)."""
        status, _, body = http("GET", self.url + "/metrics")
        if status != 200:
            raise ProcessError(f"{self.name}: /metrics answered {status}")
        return sum(
            sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.name == "bentoml_service_request_total" and sample.labels.get("endpoint") == endpoint
        )


def launch_iris(
    workdir: Path, *, name: str = "iris", port: int | None = None, env: Mapping[str, str] | None = None
) -> IrisServer:
    """Start `bentoml serve service:Iris` (serving/examples/iris) without waiting for it to be ready."""
    port = port or free_port()
    home = workdir / "bentoml-home"
    home.mkdir(parents=True, exist_ok=True)
    base_env = {
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "IRIS_ACCESS_LOG": "0",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [PYTHON, "-m", "bentoml", "serve", "service:Iris", "--host", "127.0.0.1", "--port", str(port)]
    proc = spawn(name, argv, workdir / f"{name}.log", {**base_env, **(env or {})}, cwd=IRIS_DIR)
    return IrisServer(proc.name, proc.popen, proc.log_path, port=port)


def start_iris(
    workdir: Path,
    *,
    name: str = "iris",
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 90.0,
) -> IrisServer:
    """Start the iris BentoML service (private BENTOML_HOME) and wait until its /readyz answers 200."""
    server = launch_iris(workdir, name=name, port=port, env=env)
    try:
        server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise
    return server


# Sidecar ------------------------------------------------------------------------------------


@dataclass
class SidecarProc(Proc):
    port: int = 0
    metrics_port: int = 0
    revision: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_address(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        status, _, body = http("GET", f"http://{self.metrics_address}/metrics")
        if status != 200:
            raise ProcessError(f"{self.name}: /metrics answered {status}")
        out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                out[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
        return out

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples().items() if n == name and wanted <= ls)

    def routing_state(self) -> dict[str, Any]:
        status, _, body = http("GET", f"http://{self.metrics_address}/routing")
        if status != 200:
            raise ProcessError(f"{self.name}: /routing answered {status}")
        state: dict[str, Any] = json.loads(body)
        return state

    def wait_generation(self, generation: int, timeout: float = 5.0) -> float:
        """Wait until the routing table `generation` is in force; returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            table = self.routing_state()["table"]
            if table is not None and table["generation"] == generation:
                return time.monotonic() - started
            time.sleep(0.02)
        raise ProcessError(
            f"{self.name}: generation {generation} not in force after {timeout}s\n{self.log_tail()}"
        )


def start_sidecar(
    workdir: Path,
    *,
    revision: str,
    upstream: str,
    model: str = "iris",
    namespace: str = "ml",
    routing_file: Path | None = None,
    routing_configmap: str | None = None,
    overrides: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    timeout: float = 20.0,
    wait_ready: bool = True,
) -> SidecarProc:
    """The Rust `modeldeploy-sidecar` on free loopback ports; waits for /healthz (/readyz if wait_ready)."""
    name = name or f"sidecar-{revision}"
    port, metrics_port = free_port(), free_port()
    settings = {
        "MODELDEPLOY_MODEL": model,
        "MODELDEPLOY_NAMESPACE": namespace,
        "MODELDEPLOY_REVISION": revision,
        "MODELDEPLOY_UPSTREAM": upstream,
        "MODELDEPLOY_LISTEN_HOST": "127.0.0.1",
        "MODELDEPLOY_PORT": str(port),
        "MODELDEPLOY_METRICS_PORT": str(metrics_port),
        "MODELDEPLOY_BACKEND_OVERRIDES": json.dumps(dict(overrides or {})),
        "MODELDEPLOY_DRAIN_TIMEOUT": "10",
    }
    if routing_file is not None:
        settings["MODELDEPLOY_ROUTING_FILE"] = str(routing_file)
    if routing_configmap is not None:
        settings["MODELDEPLOY_ROUTING_CONFIGMAP"] = routing_configmap
    argv = [str(sidecar_binary())]
    proc = spawn(name, argv, workdir / f"{name}.log", {**settings, **(env or {})})
    sidecar = SidecarProc(
        proc.name, proc.popen, proc.log_path, port=port, metrics_port=metrics_port, revision=revision
    )
    try:
        sidecar.wait_http(sidecar.url + ("/readyz" if wait_ready else "/healthz"), timeout)
    except BaseException:
        sidecar.stop()
        raise
    return sidecar


def write_routing(path: Path, table: RoutingTable) -> None:
    """Replace the routing file atomically (write + rename), as an editor or a config agent would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(table.to_json())
    tmp.replace(path)


# Prometheus ---------------------------------------------------------------------------------


@dataclass
class PrometheusProc(Proc):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns the `result` vector (raises on a PromQL error)."""
        qs = urllib.parse.urlencode({"query": promql})
        status, _, body = http("GET", f"{self.url}/api/v1/query?{qs}")
        payload = json.loads(body)
        if status != 200 or payload.get("status") != "success":
            raise ProcessError(f"PromQL {promql!r} failed: {status} {payload}")
        result: list[dict[str, Any]] = payload["data"]["result"]
        return result

    def values_by(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def targets_up(self) -> dict[str, bool]:
        _, _, body = http("GET", f"{self.url}/api/v1/targets")
        data = json.loads(body)["data"]["activeTargets"]
        return {t["scrapePool"] + "/" + t["labels"]["instance"]: t["health"] == "up" for t in data}

    def wait_targets_up(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = self.targets_up()
            if up and all(up.values()):
                return
            time.sleep(0.2)
        raise ProcessError(f"prometheus targets not all up after {timeout}s: {self.targets_up()}")

    def scrape_count(self, job: str = "sidecars") -> float:
        """Number of completed scrapes so far (grows by one per target per interval)."""
        result = self.query(f'sum(count_over_time(up{{job="{job}"}}[1h]))')
        return float(result[0]["value"][1]) if result else 0.0

    def wait_fresh_scrape(self, targets: int, job: str = "sidecars", timeout: float = 10.0) -> None:
        """Wait until every target has been scraped again after this call (data now visible)."""
        start = self.scrape_count(job)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.scrape_count(job) >= start + 2 * targets:
                return
            time.sleep(0.2)
        raise ProcessError(f"prometheus did not scrape {targets} targets twice within {timeout}s")


def start_prometheus(
    workdir: Path,
    targets: Sequence[str] = (),
    *,
    file_sd: Path | None = None,
    scrape_interval: str = "1s",
    timeout: float = 30.0,
    port: int | None = None,
    extra_jobs: Mapping[str, Path] | None = None,
) -> PrometheusProc:
    """The Debian prometheus binary with its own config, storage and port (never the system service).

    It scrapes the static `targets`, or the targets listed in the `file_sd` JSON file (re-read every
    second, so a harness can add and remove pods while it runs). `port` restarts one on the port
    (and with the data) of a stopped one. `extra_jobs` adds scrape jobs (job name -> file_sd file),
    e.g. the operator's /metrics apart from the sidecars.
    """
    if not Path(PROMETHEUS).is_file() and shutil.which("prometheus") is None:
        raise ProcessError("prometheus is not installed (Debian package `prometheus`; `make install-system`)")
    binary = PROMETHEUS if Path(PROMETHEUS).is_file() else str(shutil.which("prometheus"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    discovery: dict[str, object] = (
        {"file_sd_configs": [{"files": [str(file_sd)], "refresh_interval": "1s"}]}
        if file_sd is not None
        else {"static_configs": [{"targets": list(targets)}]}
    )
    config = workdir / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
                "scrape_configs": [
                    {"job_name": "sidecars", **discovery},
                    *(
                        {
                            "job_name": job,
                            "file_sd_configs": [{"files": [str(path)], "refresh_interval": "1s"}],
                        }
                        for job, path in (extra_jobs or {}).items()
                    ),
                ],
            }
        )
    )
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    proc = spawn("prometheus", argv, workdir / "prometheus.log", {})
    prom = PrometheusProc(proc.name, proc.popen, proc.log_path, port=port)
    try:
        prom.wait_http(prom.url + "/-/ready", timeout)
    except BaseException:
        prom.stop()
        raise
    return prom
