"""Cluster DNS for the real node: CoreDNS (built from its Go module by tests/cluster/build.sh) on the host.

It listens on the node IP, port 53, and the kubelet gives that address to every Pod (`clusterDNS`),
so `<svc>.<ns>.svc.cluster.local` (and the short forms through the search path) resolve as in any
cluster. It runs as a host process rather than as a Pod behind a `kube-dns` Service: it is up before
the first Pod and costs no image. It reads Services and EndpointSlices with its own token and a
read-only ClusterRole (`modeldeploy:coredns`). Names outside cluster.local get no answer (no
upstream: the machine has no DNS to forward to that tests may use).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster.cni import NODE_IP
from tests.cluster.processes import Component, wait_until

DNS_USER = "modeldeploy:coredns"


def rbac_manifests() -> list[dict[str, Any]]:
    name = "modeldeploy:coredns"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "namespaces", "pods"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": DNS_USER}],
        },
    ]


def corefile(kubeconfig: Path, health_port: int, ready_port: int) -> str:
    return f"""\
.:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
"""


class CoreDNS:
    def __init__(
        self, binary: Path, run_dir: Path, log_dir: Path, kubeconfig: Path, health_port: int, ready_port: int
    ) -> None:
        self.ready_url = f"http://127.0.0.1:{ready_port}/ready"
        conf = run_dir / "Corefile"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(corefile(kubeconfig, health_port, ready_port))
        self.component = Component("coredns", [str(binary), "-conf", str(conf)], log_dir / "coredns.log")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        self.component.start()

    def wait_ready(self, deadline: float) -> None:
        wait_until(self._ready, deadline, self.component, f"not ready at {self.ready_url}")
