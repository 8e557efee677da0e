"""The kubelet of the real node (from the multi-call binary), talking CRI to our containerd.

Every setting that differs from the kubelet's defaults is here with its reason; docs/local-cluster.md
repeats them in a table. Anything the kubelet would write to a host-wide path by default (root dir,
Pod logs, volume plugins, certificates) is moved under the run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.cluster.cni import NODE_IP
from tests.cluster.pki import CertKey
from tests.cluster.processes import Component

NODE_NAME = "modeldeploy-node"


def kubelet_config(
    *,
    run_dir: Path,
    runtime_endpoint: str,
    serving: CertKey,
    client_ca: Path,
    port: int,
    healthz_port: int,
    cluster_dns: str,
) -> dict[str, Any]:
    resolv = run_dir / "resolv.conf"
    resolv.write_text("")  # Pods with dnsPolicy ClusterFirst see only the cluster DNS
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # no systemd on this host (cgroups v1): the cgroupfs driver, as containerd's runc options
        "cgroupDriver": "cgroupfs",
        # the VM has no swap today, but a developer's machine may
        "failSwapOn": False,
        "containerRuntimeEndpoint": runtime_endpoint,
        "imageServiceEndpoint": runtime_endpoint,
        # the kubelet API on the node IP only, on a free port (10250 may be taken on a dev machine)
        "address": NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        # only the API server's client certificate (our CA) and tokens the API server vouches for
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local",
        "clusterDNS": [cluster_dns],
        "resolvConf": str(resolv),
        "podLogsDir": str(run_dir / "pod-logs"),
        "volumePluginDir": str(run_dir / "volume-plugins"),
        # the node's images cannot be pulled again: never garbage-collect them, never evict Pods
        # because a busy CI disk is fuller than the kubelet's defaults allow
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        # kube-proxy owns the node's iptables rules; the kubelet adds none
        "makeIPTablesUtilChains": False,
        # status reported promptly (tests wait on Pod and node conditions)
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "shutdownGracePeriod": "0s",
        "serializeImagePulls": False,
    }


def kubelet_component(
    *, binary: Path, run_dir: Path, log_dir: Path, kubeconfig: Path, config: dict[str, Any]
) -> Component:
    config_file = run_dir / "kubelet-config.yaml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(config))
    return Component(
        "kubelet",
        [
            str(binary),
            "kubelet",
            f"--config={config_file}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={run_dir / 'root'}",
            f"--cert-dir={run_dir / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--node-labels=modeldeploy.io/node=real",
            "--v=1",
        ],
        log_dir / "kubelet.log",
    )
