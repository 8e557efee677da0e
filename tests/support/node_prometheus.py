"""Prometheus (on the host) for the real-node e2e tests: discovery as a user sets it up.

The binary is Prometheus 2.53 built by tests/cluster/prometheus/build.sh (`make cluster-build`) from its Go
module: Debian's package (used by the serving tests) is built without Kubernetes discovery.

It finds the sidecars and the operator through the Kubernetes API (`kubernetes_sd_configs`, role
`pod`), with a kubeconfig holding the token of its own ServiceAccount (list/watch Pods only), and
listens on the node IP so that Pods (the operator's analysis) reach it as `http://10.213.0.1:<port>`.

- job `modeldeploy-sidecars`: containers of Pods labelled `app.kubernetes.io/managed-by=modeldeploy`
  (every model Pod the operator creates), port named `metrics` (the sidecar's /metrics). The
  sidecar's own labels (`model`, `namespace`, `revision`, `route`, ...) are kept as they are
  (`honor_labels`); discovery adds `pod` and `pod_revision` (the Pod's `modeldeploy.io/revision`).
- job `modeldeploy-operator`: the chart's operator Pods (`app.kubernetes.io/name=modeldeploy`,
  port named `metrics`).

docs/e2e.md shows the same configuration for a user's Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.localcluster import BIN
from tests.serving.process_base import ProcessError, spawn
from tests.serving.processes import PrometheusProc

PROMETHEUS = BIN / "prometheus"
SIDECAR_JOB = "modeldeploy-sidecars"
OPERATOR_JOB = "modeldeploy-operator"
MODEL_POD_LABEL = ("app.kubernetes.io/managed-by", "modeldeploy")
OPERATOR_POD_LABEL = ("app.kubernetes.io/name", "modeldeploy")
REVISION_LABEL = "modeldeploy.io/revision"
METRICS_PORT_NAME = "metrics"

DISCOVERY_RBAC = """\
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {namespace}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {name}}}
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {name}}}
subjects: [{{kind: ServiceAccount, name: {name}, namespace: {namespace}}}]
"""
"""What Prometheus needs to discover Pods: a ServiceAccount that may list and watch them."""


def _meta_label(label: str) -> str:
    """`app.kubernetes.io/name` -> `__meta_kubernetes_pod_label_app_kubernetes_io_name`."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)


def pod_job(
    job: str, kubeconfig: Path, namespaces: Sequence[str], label: tuple[str, str], *, honor_labels: bool
) -> dict[str, Any]:
    """A scrape job over the `metrics` port of the Pods carrying `label` in `namespaces`."""
    key, value = label
    return {
        "job_name": job,
        "honor_labels": honor_labels,
        "kubernetes_sd_configs": [
            {"role": "pod", "kubeconfig_file": str(kubeconfig), "namespaces": {"names": list(namespaces)}}
        ],
        "relabel_configs": [
            {"source_labels": [_meta_label(key)], "regex": value, "action": "keep"},
            {
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": METRICS_PORT_NAME,
                "action": "keep",
            },
            # a terminated Pod keeps its IP in the API for a while: scrape only running ones
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": [_meta_label(REVISION_LABEL)], "target_label": "pod_revision"},
        ],
    }


def discovery_config(
    kubeconfig: Path, model_namespaces: Sequence[str], operator_namespace: str, scrape_interval: str
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            pod_job(SIDECAR_JOB, kubeconfig, model_namespaces, MODEL_POD_LABEL, honor_labels=True),
            pod_job(OPERATOR_JOB, kubeconfig, [operator_namespace], OPERATOR_POD_LABEL, honor_labels=False),
        ],
    }


@dataclass
class NodePrometheus(PrometheusProc):
    """A Prometheus listening on `host` (the node IP), reachable from the host and from Pods."""

    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def start_node_prometheus(
    workdir: Path, config: dict[str, Any], host: str, port: int, timeout: float = 30.0
) -> NodePrometheus:
    """Start Prometheus with `config` on host:port (again on the same data after a stop)."""
    if not PROMETHEUS.is_file():
        raise ProcessError(f"{PROMETHEUS} is missing: run `make cluster-build` (tests/cluster/prometheus)")
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(json.dumps(config, indent=2))
    argv = [
        str(PROMETHEUS),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={host}:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    log = workdir / "prometheus.log"
    proc = spawn("prometheus", argv, log, {})
    prom = NodePrometheus(proc.name, proc.popen, proc.log_path, port=port, host=host)
    try:
        prom.wait_http(prom.url + "/-/ready", timeout)
    except ProcessError as exc:
        prom.stop()
        raise ProcessError(f"prometheus did not start (log: {log}): {exc}") from exc
    return prom
