"""kube-proxy of the real node (iptables mode), so ClusterIP Services work from Pods and the host.

It authenticates as `system:kube-proxy`, which the API server's default RBAC binds to the
`system:node-proxier` role. `kube-proxy --cleanup` removes every rule it made (used at stop and by the
crash cleanup, tests/cluster/node.py).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.cni import NODE_IP, POD_SUBNET
from tests.cluster.kubelet import NODE_NAME
from tests.cluster.processes import Component


def proxy_config(kubeconfig: Path, healthz_port: int, metrics_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        # traffic from outside the Pod range to a ClusterIP is masqueraded
        "clusterCIDR": POD_SUBNET,
        "detectLocalMode": "ClusterCIDR",
        # loopback ports chosen free (the defaults 10256/10249 may be taken)
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # NodePorts on the node IP only, never on the VM's own interface
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # leave the host's conntrack sysctls as they are
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "0s"},
    }


def proxy_component(*, binary: Path, run_dir: Path, log_dir: Path, config: dict[str, Any]) -> Component:
    config_file = run_dir / "kube-proxy-config.yaml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(config))
    return Component(
        "kube-proxy",
        [str(binary), "kube-proxy", f"--config={config_file}", "--v=1"],
        log_dir / "kube-proxy.log",
    )


def remove_kube_chains() -> None:
    """Remove KUBE-* chains left after kube-proxy's cleanup (the kubelet's KUBE-FIREWALL) and their jumps."""
    for table in ("filter", "nat", "mangle"):
        save = subprocess.run(
            ["iptables-save", "-t", table], capture_output=True, text=True, check=False
        ).stdout
        chains = re.findall(r"^:(KUBE-\S+) ", save, re.M)
        for line in save.splitlines():
            m = re.match(r"^-A (\S+) (.*-j (KUBE-\S+).*)$", line)
            if m and not m.group(1).startswith("KUBE-"):
                subprocess.run(
                    ["iptables", "-t", table, "-D", m.group(1), *shlex.split(m.group(2))], check=False
                )
        for flag in ("-F", "-X"):
            for chain in chains:
                subprocess.run(["iptables", "-t", table, flag, chain], capture_output=True, check=False)


def cleanup_rules(binary: Path, log: Path) -> None:
    """Remove kube-proxy's iptables (and nftables/ipvs) rules; safe when there are none."""
    with open(log, "ab") as out:
        subprocess.run(
            [str(binary), "kube-proxy", "--cleanup", "--v=1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=60,
        )
    remove_kube_chains()
