"""The real node of the local cluster: containerd, kubelet, kube-proxy, CoreDNS and the CNI bridge.

Start order (tests/cluster/localcluster.py calls `prepare` before the API server, `start` after the
scheduler): claim the machine's one real-node slot (and clean up what a crashed run left), create the
node CA and certificates and the Pod network (its gateway address is the node IP, which the API
server binds too), then containerd, the node's images, CoreDNS, kube-proxy and the kubelet, and wait
for a Ready node and a ready DNS.

Stop order: kubelet; every Pod sandbox removed through the CRI (`controlplane node-reset`: containers,
shims, CNI teardown of veths and leases, network namespaces); kube-proxy, CoreDNS, containerd;
`kube-proxy --cleanup`; then a sweep for anything left (shims, mounts under the node's folders, our
network namespaces, the bridge, portmap chains, CNI cache entries, the kubelet's `kubepods` cgroups).

Only one real node can run on a machine (kube-proxy's chains and the `kubepods` cgroups are
host-wide): `/run/modeldeploy/node.json` records the running node; a second start waits for it to
stop (up to `wait` seconds), and a record whose processes are all gone is a crashed run, cleaned up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import cni, kubeproxy
from tests.cluster.containerd import Containerd
from tests.cluster.dns import DNS_USER, CoreDNS, rbac_manifests
from tests.cluster.kubeconfig import write_kubeconfig
from tests.cluster.kubelet import NODE_NAME, kubelet_component, kubelet_config
from tests.cluster.node_images import ImageArchive, pause_archive, project_image_archives, testbox_archive
from tests.cluster.pki import NodePKI
from tests.cluster.processes import ClusterError, Component, free_port, pid_alive, stop_pid_group, wait_until

SLOT_DIR = Path("/run/modeldeploy")
SLOT = SLOT_DIR / "node.json"
SLOT_LOCK = SLOT_DIR / "node.lock"
CGROUP_ROOT = Path("/sys/fs/cgroup")
FRONT_PROXY_CN = "front-proxy-client"
STOP_ORDER = ("kubelet", "kube-proxy", "coredns", "containerd")
# host-wide sysctls the kubelet sets at start (its "kernel tunables"); restored at stop
KUBELET_SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    return {name: _sysctl_path(name).read_text().strip() for name in KUBELET_SYSCTLS}


def restore_sysctls(saved: dict[str, str]) -> None:
    for name, value in saved.items():
        path = _sysctl_path(name)
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value)


@contextlib.contextmanager
def _slot_lock() -> Iterator[None]:
    SLOT_DIR.mkdir(parents=True, exist_ok=True)
    with open(SLOT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_slot() -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(SLOT.read_text())
    except (OSError, ValueError):
        return None
    return data


def _slot_in_use(slot: dict[str, Any]) -> bool:
    """A node is in use while the process that started it lives, or, once detached from it
    (`make cluster-up`, owner 0), while any of its components runs. A node whose owner died (a
    killed test session) is orphaned: the next start cleans it up."""
    owner = int(slot.get("owner", 0))
    if owner > 0 and owner != os.getpid():
        return pid_alive(owner)
    return any(pid_alive(int(p)) for p in slot.get("pids", {}).values())


@dataclass
class NodePaths:
    """Where a node's files are; recorded in the slot so a later process can clean up after it."""

    node_dir: Path
    containerd_root: Path
    log_dir: Path

    def as_json(self) -> dict[str, str]:
        return {
            "node_dir": str(self.node_dir),
            "containerd_root": str(self.containerd_root),
            "log_dir": str(self.log_dir),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodePaths:
        return cls(Path(data["node_dir"]), Path(data["containerd_root"]), Path(data["log_dir"]))


class RealNode:
    def __init__(self, workdir: Path, cache: Path, bin_dir: Path, log_dir: Path) -> None:
        self.paths = NodePaths(workdir / "node", cache / "cluster" / "node" / "containerd", log_dir)
        self.bin = bin_dir
        self.controlplane = bin_dir / "controlplane"
        self.dir = self.paths.node_dir
        self.containerd = Containerd(self.dir / "containerd", self.paths.containerd_root, log_dir)
        self.pki = NodePKI(self.dir / "pki")
        self.tokens = {
            "kubelet": secrets.token_hex(16),
            "kube-proxy": secrets.token_hex(16),
            "coredns": secrets.token_hex(16),
        }
        self.components: dict[str, Component] = {}
        self.saved_sysctls: dict[str, str] = {}
        # the cluster's etcd, API server, ...: stopped too if the owner dies and a later start recovers
        self.control_plane_pids: dict[str, int] = {}
        self.imported: list[str] = []
        self.started_in = 0.0
        self.claimed = False

    ip = cni.NODE_IP
    name = NODE_NAME

    # ---- before the API server ----------------------------------------------------------------
    def claim(self, wait: float) -> None:
        """Take the machine's real-node slot, waiting up to `wait` s for a running node to stop."""
        deadline = time.monotonic() + wait
        while True:
            with _slot_lock():
                slot = _read_slot()
                if slot is None or not _slot_in_use(slot):
                    if slot is not None:
                        recover(slot, self.controlplane)
                    else:  # leftovers of a run that never recorded itself
                        sweep(None, self.controlplane, self.paths.log_dir)
                    self.saved_sysctls = read_sysctls()  # after a crashed run's were restored
                    self._write_slot()
                    self.claimed = True
                    return
            if int(slot.get("owner", 0)) == os.getpid():
                raise ClusterError(
                    "this process already runs a real node (only one per machine): share it, or stop it first"
                )
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"another real node is running on this machine (pids {slot.get('pids')}, owner "
                    f"{slot.get('owner')}, files in {slot.get('node_dir')}); stop it (`make cluster-down`) "
                    "or wait for its test session to end"
                )
            time.sleep(2)

    def _write_slot(self) -> None:
        pids = {name: c.pid for name, c in self.components.items() if c.proc is not None}
        SLOT.write_text(
            json.dumps(
                {
                    "owner": os.getpid(),
                    "pids": pids,
                    "control_plane": self.control_plane_pids,
                    "sysctls": self.saved_sysctls,
                    **self.paths.as_json(),
                }
            )
        )

    def detach(self) -> None:
        """The starting process exits and leaves the node running (`make cluster-up`)."""
        with _slot_lock():
            slot = _read_slot() or {}
            slot["owner"] = 0
            SLOT.write_text(json.dumps(slot))

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.paths.log_dir.mkdir(parents=True, exist_ok=True)
        self.pki.create_ca()
        self.kubelet_serving = self.pki.issue("kubelet-serving", f"/CN={NODE_NAME}", server_ip=cni.NODE_IP)
        self.apiserver_client = self.pki.issue(
            "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client"
        )
        # the aggregation layer's client certificate (API server -> metrics-server); the API server
        # takes request headers only from this CN, so the other certificates of this CA cannot
        self.front_proxy_client = self.pki.issue("front-proxy-client", f"/CN={FRONT_PROXY_CN}")
        cni.create_network(self.containerd.cni_conf_dir, self.dir / "cni-ipam")

    def token_lines(self) -> list[str]:
        """Lines for the API server's token file: the node's identities."""
        return [
            f'{self.tokens["kubelet"]},system:node:{NODE_NAME},kubelet-uid,"system:nodes"',
            f"{self.tokens['kube-proxy']},system:kube-proxy,kube-proxy-uid",
            f"{self.tokens['coredns']},{DNS_USER},coredns-uid",
        ]

    def apiserver_args(self) -> list[str]:
        return [
            # the node's identity is limited to its own node and Pods (with --authorization-mode=Node,RBAC)
            "--enable-admission-plugins=NodeRestriction",
            # `kubectl logs/exec`: reach the kubelet at its node IP (not the VM's hostname), verify
            # its serving certificate, present a client certificate the kubelet trusts
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-certificate-authority={self.pki.ca.cert}",
            f"--kubelet-client-certificate={self.apiserver_client.cert}",
            f"--kubelet-client-key={self.apiserver_client.key}",
            # the aggregation layer, for metrics.k8s.io (tests/cluster/metrics_server.py): the API
            # server proxies to an APIService's endpoints (the host) with the user in headers
            f"--requestheader-client-ca-file={self.pki.ca.cert}",
            f"--requestheader-allowed-names={FRONT_PROXY_CN}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={self.front_proxy_client.cert}",
            f"--proxy-client-key-file={self.front_proxy_client.key}",
            "--enable-aggregator-routing=true",
        ]

    # ---- after the scheduler ------------------------------------------------------------------
    def images(self, cache: Path) -> list[ImageArchive]:
        return [pause_archive(cache), testbox_archive(cache), *project_image_archives(cache)]

    def start(self, *, server: str, ca_file: Path, cache: Path, kubectl: Any, deadline: float) -> None:
        started = time.monotonic()
        images = self.images(cache)  # built (or found in the cache) before anything runs
        self._add(self.containerd.component)
        self.containerd.start(deadline)
        self._write_slot()
        self.imported = self.containerd.import_images(images)

        kubeconfigs = {
            name: write_kubeconfig(
                self.dir / f"{name}.kubeconfig", server=server, ca_file=ca_file, user=name, token=token
            )
            for name, token in self.tokens.items()
        }
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac_manifests()))
        dns = CoreDNS(
            self.bin / "coredns",
            self.dir / "coredns",
            self.paths.log_dir,
            kubeconfigs["coredns"],
            free_port(),
            free_port(),
        )
        self._add(dns.component)
        dns.start()
        proxy = kubeproxy.proxy_component(
            binary=self.controlplane,
            run_dir=self.dir / "kube-proxy",
            log_dir=self.paths.log_dir,
            config=kubeproxy.proxy_config(kubeconfigs["kube-proxy"], free_port(), free_port()),
        )
        self._add(proxy)
        proxy.start()
        kubelet_dir = self.dir / "kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        kubelet = kubelet_component(
            binary=self.controlplane,
            run_dir=kubelet_dir,
            log_dir=self.paths.log_dir,
            kubeconfig=kubeconfigs["kubelet"],
            config=kubelet_config(
                run_dir=kubelet_dir,
                runtime_endpoint=self.containerd.endpoint,
                serving=self.kubelet_serving,
                client_ca=self.pki.ca.cert,
                port=free_port(),
                healthz_port=free_port(),
                cluster_dns=cni.NODE_IP,
            ),
        )
        self._add(kubelet)
        kubelet.start()
        self._write_slot()

        def node_ready() -> bool:
            out = kubectl(
                "get",
                "node",
                NODE_NAME,
                "-o",
                'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
                check=False,
            )
            return bool(out.stdout.strip() == "True")

        wait_until(
            node_ready,
            deadline,
            kubelet,
            f"node {NODE_NAME} did not become Ready",
            watch=list(self.components.values()),
            interval=0.3,
        )
        dns.wait_ready(deadline)
        self.started_in = time.monotonic() - started

    def _add(self, component: Component) -> None:
        self.components[component.name] = component

    def check_alive(self) -> None:
        for component in self.components.values():
            component.check_alive()

    # ---- stop -----------------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """Stop everything and remove what the node made; returns what the sweep had to remove."""
        if not self.claimed:
            return []
        errors: list[str] = []
        with _slot_lock():
            kubelet = self.components.get("kubelet")
            if kubelet is not None:
                kubelet.stop()
            if self.containerd.component.running():
                try:
                    node_reset(self.controlplane, self.containerd.endpoint, self.paths.log_dir)
                except ClusterError as exc:  # the sweep below still removes what it can
                    errors.append(str(exc))
            for name in STOP_ORDER[1:]:
                component = self.components.get(name)
                if component is not None:
                    component.stop()
            removed = sweep(self.paths, self.controlplane, self.paths.log_dir)
            restore_sysctls(self.saved_sysctls)
            with contextlib.suppress(FileNotFoundError):
                SLOT.unlink()
            self.claimed = False
        if errors:
            raise ClusterError("; ".join(errors))
        return removed


def node_reset(controlplane: Path, endpoint: str, log_dir: Path) -> None:
    """Remove every Pod sandbox through the CRI (see tests/cluster/controlplane/node_reset.go)."""
    log = log_dir / "node-reset.log"
    with open(log, "ab") as out:
        done = subprocess.run(
            [str(controlplane), "node-reset", f"--runtime-endpoint={endpoint}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=120,
        )
    if done.returncode != 0:
        raise ClusterError(f"node-reset: could not remove every Pod sandbox (log: {log})")


def recover(slot: dict[str, Any], controlplane: Path) -> list[str]:
    """Clean up after a node whose owner died (a crashed test session, or `make cluster-down`)."""
    paths = NodePaths.from_json(slot)
    pids: dict[str, int] = {k: int(v) for k, v in slot.get("pids", {}).items()}
    for name in STOP_ORDER[:-1]:
        if name in pids:
            stop_pid_group(pids[name])
    config = paths.node_dir / "containerd" / "config.toml"
    containerd = Containerd(paths.node_dir / "containerd", paths.containerd_root, paths.log_dir)
    if "containerd" in pids and pid_alive(pids["containerd"]):
        with contextlib.suppress(ClusterError):  # the sweep kills what the CRI could not remove
            node_reset(controlplane, containerd.endpoint, paths.log_dir)
        stop_pid_group(pids["containerd"])
    elif config.exists() and _shims(containerd.socket):
        # containerd died and left its shims: start it again to remove the sandboxes properly
        containerd.component.start()
        try:
            wait_until(
                lambda: containerd.ctr("version", check=False).returncode == 0,
                time.monotonic() + 30,
                containerd.component,
                "did not answer on its socket",
            )
            node_reset(controlplane, containerd.endpoint, paths.log_dir)
        except ClusterError:
            pass  # the sweep kills what the CRI could not remove
        finally:
            containerd.component.stop()
    removed = sweep(paths, controlplane, paths.log_dir)
    restore_sysctls({k: str(v) for k, v in slot.get("sysctls", {}).items()})
    for pid in reversed(list(slot.get("control_plane", {}).values())):
        stop_pid_group(int(pid))
    return removed


def _shims(socket: Path) -> list[int]:
    """containerd shims (and anything else) started with `-address <socket>`."""
    found = []
    needle = f"\0-address\0{socket}\0".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in b"\0" + cmdline:
            found.append(int(proc.name))
    return found


def _kubepods_cgroups() -> list[Path]:
    """The kubelet's `kubepods` cgroup trees in every cgroup v1 controller (deepest first)."""
    found: list[Path] = []
    if not CGROUP_ROOT.is_dir():
        return found
    controllers = {c.resolve() for c in CGROUP_ROOT.iterdir()}  # cpu -> cpu,cpuacct links once
    for controller in sorted(controllers):
        top = controller / "kubepods"
        if top.is_dir():
            found += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            found.append(top)
    return found


def _mounts_under(prefixes: list[Path]) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(p) or point.startswith(f"{p}/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=lambda p: -p.count("/"))


def leftovers(paths: NodePaths | None) -> list[str]:
    """What of a real node is still on the machine (empty after a clean stop)."""
    found: list[str] = []
    if paths is not None:
        socket = paths.node_dir / "containerd" / "state" / "containerd.sock"
        found += [f"process {pid} (containerd shim)" for pid in _shims(socket)]
        found += [f"mount {m}" for m in _mounts_under([paths.node_dir])]
    found += [f"network namespace {ns}" for ns in cni.our_netns()]
    if cni.bridge_exists():
        found.append(f"bridge {cni.BRIDGE}")
    for cgroup in _kubepods_cgroups():
        procs = (cgroup / "cgroup.procs").read_text().split() if (cgroup / "cgroup.procs").exists() else []
        if procs:
            found.append(f"processes {' '.join(procs)} in cgroup {cgroup}")
    if (
        "KUBE-SERVICES"
        in subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    ):
        found.append("kube-proxy iptables rules (KUBE-SERVICES)")
    return found


def sweep(paths: NodePaths | None, controlplane: Path, log_dir: Path) -> list[str]:
    """Remove whatever a node left on the machine; returns what was found (empty after a clean stop)."""
    removed: list[str] = []
    if paths is not None:
        socket = paths.node_dir / "containerd" / "state" / "containerd.sock"
        for pid in _shims(socket):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            removed.append(f"shim process {pid}")
    for cgroup in _kubepods_cgroups():
        procs_file = cgroup / "cgroup.procs"
        for proc in procs_file.read_text().split() if procs_file.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc), signal.SIGKILL)
            removed.append(f"container process {proc}")
    if paths is not None:
        for point in _mounts_under([paths.node_dir]):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
            removed.append(f"mount {point}")
    if controlplane.exists():
        log_dir.mkdir(parents=True, exist_ok=True)
        kubeproxy.cleanup_rules(controlplane, log_dir / "kube-proxy-cleanup.log")
    removed += cni.remove_network()
    deadline = time.monotonic() + 10
    for cgroup in _kubepods_cgroups():
        while True:
            try:
                cgroup.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    removed.append(f"cgroup {cgroup} (could not remove)")
                    break
                time.sleep(0.1)
    return [r for r in removed if not r.startswith("bridge ")]


def stop_detached_node(controlplane: Path) -> list[str]:
    """Stop the real node a finished process left running (`make cluster-down`), if any."""
    with _slot_lock():
        slot = _read_slot()
        if slot is None:
            return []
        removed = recover(slot, controlplane)
        SLOT.unlink()
    return removed


def import_into_running_node(archive: Path) -> list[str]:
    """Import an OCI or docker image archive into the running real node; returns the new image names."""
    if not archive.is_file():
        raise ClusterError(f"{archive}: no such image archive")
    slot = _read_slot()
    if slot is None or not _slot_in_use(slot):
        raise ClusterError("no real node is running: start one with `make cluster-up`")
    paths = NodePaths.from_json(slot)
    containerd = Containerd(paths.node_dir / "containerd", paths.containerd_root, paths.log_dir)
    before = containerd.image_digests()
    containerd.ctr("images", "import", "--snapshotter", "overlayfs", str(archive))
    after = containerd.image_digests()
    changed = sorted(name for name, digest in after.items() if before.get(name) != digest)
    named = [name for name in changed if not name.startswith("sha256:")]
    if not named:
        raise ClusterError(
            f"{archive}: imported, but it names no image (or only ones already there): "
            f"images in the node: {', '.join(sorted(after))}"
        )
    return named
