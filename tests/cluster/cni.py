"""The real node's Pod network: one Linux bridge, CNI `bridge` + `host-local` IPAM + `portmap`.

The harness creates the bridge itself before anything else and gives it the gateway address: that
address is the node's IP (the kubelet refuses a loopback node IP, and the VM's own interface is off
limits), the address the API server binds for Pods and the kubelet, and CoreDNS's address. The CNI
`bridge` plugin (run by containerd's CRI for each Pod sandbox) finds the bridge and attaches a veth
per Pod; `host-local` leases addresses from POD_SUBNET, keeping its state under the run folder.

Only one real node runs on a machine at a time (tests/cluster/node.py enforces it), so the names
below are fixed and cleanup can find what a crashed run left behind.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
from pathlib import Path

from tests.cluster.processes import ClusterError

BRIDGE = "mdnode0"
NETWORK_NAME = "modeldeploy-node"
POD_SUBNET = "10.213.0.0/24"
NODE_IP = "10.213.0.1"
BRIDGE_MAC = "02:6d:64:d5:00:01"
"""The bridge's own, fixed address (locally administered). A bridge created without one takes
the lowest address of its ports and changes it as Pods' veths come and go; each change flushes
the host's neighbour entries on the bridge, and a connection to a Pod opened at that moment can
fail with "No route to host" (seen once in an e2e rollout, when the canary's Pod joined the
bridge). Docker's bridge and the CNI plugin's own bridges set an address for the same reason."""
SERVICE_CIDR = "10.96.0.0/16"
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_CACHE_DIR = Path("/var/lib/cni/results")  # libcni's cache (containerd 1.6 does not move it)
NETNS_DIR = Path("/run/netns")  # where containerd 1.6's CRI mounts Pod network namespaces
PORTMAP_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise ClusterError(f"node network: `{' '.join(argv)}` failed: {out.stderr.strip()}")
    return out


def write_sysctl(name: str, value: str) -> None:
    path = Path("/proc/sys") / name.replace(".", "/")
    try:
        if path.read_text().strip() != value:
            path.write_text(value)
    except OSError as exc:
        raise ClusterError(f"node network: cannot set sysctl {name}={value}: {exc}") from exc


def conflist(ipam_dir: Path) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # no masquerading: Pods only talk to each other, to Services and to the host
                "ipMasq": False,
                # a Pod reaching itself through its own Service (kube-proxy masquerades that case)
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def create_network(conf_dir: Path, ipam_dir: Path) -> None:
    """Create the bridge with the node IP, route the Service range through it, write the CNI config."""
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        if not (CNI_BIN_DIR / plugin).exists():
            raise ClusterError(f"CNI plugin {CNI_BIN_DIR / plugin} is missing: `make install` installs it")
    # br_netfilter's hook lets kube-proxy's rules see Pod-to-Service traffic between two Pods of
    # the bridge; forwarding is enabled for packets arriving on our bridge only.
    write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
    run("ip", "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge")
    run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    write_sysctl(f"net.ipv4.conf.{BRIDGE}.forwarding", "1")
    # The host reaches ClusterIPs from the node IP (kube-proxy DNATs them to Pod IPs on the bridge),
    # not from the VM's own address through its default route.
    run("ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE, "src", NODE_IP)
    conf_dir.mkdir(parents=True, exist_ok=True)
    ipam_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "10-modeldeploy-node.conflist").write_text(json.dumps(conflist(ipam_dir), indent=2))


def our_netns() -> list[str]:
    """Network namespaces under /run/netns holding an address of POD_SUBNET (Pods of this node)."""
    if not NETNS_DIR.is_dir():
        return []
    prefix = NODE_IP.rsplit(".", 1)[0] + "."
    found = []
    for ns in sorted(p.name for p in NETNS_DIR.iterdir()):
        out = run("ip", "-n", ns, "-o", "-4", "addr", "show", check=False)
        if f"inet {prefix}" in out.stdout:
            found.append(ns)
    return found


def bridge_exists() -> bool:
    return run("ip", "link", "show", BRIDGE, check=False).returncode == 0


def veths_on_bridge() -> list[str]:
    out = run("ip", "-o", "link", "show", "master", BRIDGE, check=False)
    return re.findall(r"^\d+: ([^:@]+)", out.stdout, re.M)


def remove_network() -> list[str]:
    """Remove whatever of the Pod network is left (after a clean stop: the bridge and the config
    of the portmap plugin; after a crash also Pod namespaces, veths and CNI cache entries).
    Returns what it removed, for the log."""
    removed: list[str] = []
    for ns in our_netns():
        run("ip", "netns", "delete", ns, check=False)
        removed.append(f"netns {ns}")
    if bridge_exists():
        for veth in veths_on_bridge():
            run("ip", "link", "delete", veth, check=False)
            removed.append(f"veth {veth}")
        run("ip", "link", "delete", BRIDGE)
        removed.append(f"bridge {BRIDGE}")
    if CNI_CACHE_DIR.is_dir():
        for entry in CNI_CACHE_DIR.glob(f"{NETWORK_NAME}-*"):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(f"CNI cache {entry.name}")
    removed += remove_idle_portmap_chains()
    return removed


def remove_idle_portmap_chains() -> list[str]:
    """The portmap plugin leaves its shared nat chains behind, empty, after the last Pod with a
    hostPort is gone; remove them (with the jumps to them) when no Pod's rules are in them."""
    save = run("iptables-save", "-t", "nat", check=False).stdout
    present = [c for c in PORTMAP_CHAINS if re.search(rf"^:{c} ", save, re.M)]
    if not present or re.search(r"-j CNI-DN-", save):
        return []
    for line in save.splitlines():
        m = re.match(r"^-A (PREROUTING|OUTPUT|POSTROUTING) (.*-j (CNI-HOSTPORT-\S+).*)$", line)
        if m:
            run("iptables", "-t", "nat", "-D", m.group(1), *shlex.split(m.group(2)), check=False)
    for chain in present:
        run("iptables", "-t", "nat", "-F", chain, check=False)
    for chain in present:
        run("iptables", "-t", "nat", "-X", chain, check=False)
    return [f"iptables nat chain {c}" for c in present]
