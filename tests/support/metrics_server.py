"""metrics-server (on the host) for the real-node autoscaling test: the `metrics.k8s.io` API.

A HorizontalPodAutoscaler reads Pod CPU from the resource metrics API, which the API server serves
through its aggregation layer from metrics-server (the binary tests/cluster/metrics-server/build.sh
builds from its Go module, `make cluster-build`). Set up as a user's install does, except that the
process runs on the host instead of in a Pod (no registry, no image of it here):

- its own ServiceAccount with upstream's RBAC (read nodes, node metrics and Pods; delegate
  authentication and authorization to the API server; read the aggregation layer's CA), and a
  kubeconfig with that ServiceAccount's token;
- it scrapes the kubelet's `/metrics/resource` over TLS it verifies (the node CA signs the
  kubelet's serving certificate) as that ServiceAccount (the kubelet asks the API server);
- the API server reaches it through the APIService `v1beta1.metrics.k8s.io` -> Service
  `kube-system/metrics-server`, whose Endpoints name the node IP and its port (the API server runs
  with `--enable-aggregator-routing`, so it dials the endpoint, not a ClusterIP). Its serving
  certificate is self-signed, hence `insecureSkipTLSVerify` on the APIService, as in
  metrics-server's own development set-up.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from tests.chart.access import service_account_kubeconfig
from tests.cluster import cni
from tests.cluster.localcluster import BIN, LocalCluster
from tests.cluster.processes import ClusterError, Component, free_port

METRICS_SERVER = BIN / "metrics-server"
NAMESPACE = "kube-system"
NAME = "metrics-server"
API_SERVICE = "v1beta1.metrics.k8s.io"
RESOLUTION_SECONDS = 10  # metrics-server's minimum; the HPA controller syncs every 15 s

RBAC = f"""\
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {NAME}, namespace: {NAMESPACE}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "system:{NAME}"}}
rules:
  - apiGroups: [""]
    resources: [nodes/metrics]
    verbs: [get]
  - apiGroups: [""]
    resources: [pods, nodes]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "system:{NAME}"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:{NAME}"}}
subjects: [{{kind: ServiceAccount, name: {NAME}, namespace: {NAMESPACE}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "{NAME}:system:auth-delegator"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}}
subjects: [{{kind: ServiceAccount, name: {NAME}, namespace: {NAMESPACE}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: "{NAME}-auth-reader", namespace: {NAMESPACE}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}}
subjects: [{{kind: ServiceAccount, name: {NAME}, namespace: {NAMESPACE}}}]
"""


def _api_objects(port: int) -> str:
    """Service + Endpoints (the host's metrics-server) + the APIService that routes to them."""
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: {NAME}, namespace: {NAMESPACE}}}
spec:
  ports: [{{name: https, port: 443, targetPort: {port}, protocol: TCP}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: {NAME}, namespace: {NAMESPACE}}}
subsets:
  - addresses: [{{ip: "{cni.NODE_IP}"}}]
    ports: [{{name: https, port: {port}, protocol: TCP}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: {API_SERVICE}}}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {{name: {NAME}, namespace: {NAMESPACE}, port: 443}}
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
"""


@dataclass
class MetricsServer:
    cluster: LocalCluster
    component: Component

    def node_cpu_millis(self) -> int | None:
        """The node's CPU use as metrics.k8s.io reports it (None until it has a sample)."""
        out = self.cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes", check=False)
        if out.returncode != 0:
            return None
        items = json.loads(out.stdout).get("items") or []
        if not items:
            return None
        cpu: str = items[0]["usage"]["cpu"]
        return _millicores(cpu)

    def stop(self) -> None:
        self.component.stop()
        for kind, name in (("apiservice", API_SERVICE), ("service", NAME)):
            args = ["delete", kind, name, "--ignore-not-found", "--wait=false"]
            self.cluster.kubectl(*args, *([] if kind == "apiservice" else ["-n", NAMESPACE]), check=False)


def _millicores(quantity: str) -> int:
    """ "250m" -> 250, "1" -> 1000, "123456n" -> 0 (rounded down), "1500u" -> 1."""
    units = {"n": 1e-6, "u": 1e-3, "m": 1.0}
    if quantity[-1] in units:
        return int(float(quantity[:-1]) * units[quantity[-1]])
    return int(float(quantity) * 1000)


def start_metrics_server(cluster: LocalCluster, workdir: Path, timeout: float = 120.0) -> MetricsServer:
    """Start metrics-server on the node IP and wait until the API server serves node metrics."""
    if not METRICS_SERVER.is_file():
        raise ClusterError(
            f"{METRICS_SERVER} is missing: run `make cluster-build` (tests/cluster/metrics-server)"
        )
    node = cluster.real_node
    if node is None:
        raise ClusterError("metrics-server needs the real node (a kubelet to scrape)")
    workdir.mkdir(parents=True, exist_ok=True)
    cluster.kubectl("apply", "-f", "-", input=RBAC)
    kubeconfig = service_account_kubeconfig(cluster, NAMESPACE, NAME, workdir / "metrics-server.kubeconfig")
    port = free_port()
    component = Component(
        NAME,
        [
            str(METRICS_SERVER),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={cni.NODE_IP}",
            f"--secure-port={port}",
            f"--cert-dir={workdir / 'certs'}",
            f"--metric-resolution={RESOLUTION_SECONDS}s",
            # must be below the resolution (metrics-server refuses to start otherwise)
            f"--kubelet-request-timeout={RESOLUTION_SECONDS // 2}s",
            "--kubelet-preferred-address-types=InternalIP",
            # the kubelet listens on a free port (not 10250): take it from the Node's status
            "--kubelet-use-node-status-port",
            f"--kubelet-certificate-authority={node.pki.ca.cert}",
        ],
        workdir / "metrics-server.log",
    )
    component.start()
    server = MetricsServer(cluster, component)
    try:
        cluster.kubectl("apply", "-f", "-", input=_api_objects(port))
        deadline = time.monotonic() + timeout
        while server.node_cpu_millis() is None:
            component.check_alive()
            if time.monotonic() > deadline:
                status = cluster.kubectl("get", "apiservice", API_SERVICE, "-o", "yaml", check=False).stdout
                raise component.failure(
                    f"metrics.k8s.io served no node metrics within {timeout:.0f}s; APIService:\n{status}"
                )
            time.sleep(2)
    except BaseException:
        server.stop()
        raise
    return server
