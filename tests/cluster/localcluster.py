"""A real Kubernetes control plane, with a real node or a KWOK fake node, for tests and the demo.

Processes (all from the binaries `tests/cluster/build.sh` builds from upstream Go modules):
embedded etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and one node of a kind:

- `node="kwok"`: KWOK plays the kubelet for one fake Node, so Pods become Running and Ready without
  containers (the API server on loopback);
- `node="real"`: containerd, kubelet, kube-proxy, CoreDNS and a CNI bridge run real Pods
  (tests/cluster/node.py; the API server on the node IP, the bridge's gateway address).

Admin access is a static token in the `system:masters` group, written into a kubeconfig.

    with LocalCluster.start(node="real") as cluster:   # waits for /readyz and a Ready node
        print(cluster.kubeconfig)

CLI (used by `make cluster-up` / `make cluster-down` / `make node-import`):

    python -m tests.cluster.localcluster up [--node real|kwok]  # in the background; prints KUBECONFIG=...
    python -m tests.cluster.localcluster import IMAGE.tar        # an OCI/docker archive into the node
    python -m tests.cluster.localcluster down
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.kubeconfig import write_kubeconfig
from tests.cluster.node import RealNode, import_into_running_node, stop_detached_node
from tests.cluster.processes import ClusterError, free_port

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MODELDEPLOY_CACHE", ROOT / ".cache"))
BIN = CACHE / "cluster" / "bin"
STATE_DIR = CACHE / "cluster" / "run"
FAKE_NODE = "kwok-node-0"
SERVICE_CIDR = "10.96.0.0/16"
CONTROL_PLANE_CLIENT_RATE = ("--kube-api-qps=200", "--kube-api-burst=400")
"""The controller-manager's and scheduler's own request rate to the API server. Their defaults
(20/s, burst 30; scheduler 50/100) made the controller-manager, not the operator, the limit of the
operator scale benchmark: each ModelDeployment's Deployment costs it about 25 requests (ReplicaSet,
Pod, status updates, endpoints, events), so 1,000 objects took it over 1,000 s. Clusters run for
many objects raise these the same way (the Kubernetes scalability tests use 100 and more)."""
POD_CIDR = "10.244.0.0/16"
NODE_KINDS = ("kwok", "real")
__all__ = ["ClusterError", "LocalCluster", "free_port", "running_cluster"]


def build(quiet: bool = False) -> None:
    """Build the binaries, or reuse the cached build (tests/cluster/build.sh decides)."""
    out = subprocess.run(
        ["bash", str(ROOT / "tests" / "cluster" / "build.sh")],
        capture_output=quiet,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise ClusterError(f"control-plane build failed (exit {out.returncode}):\n{out.stdout}{out.stderr}")


@dataclass
class LocalCluster:
    workdir: Path
    etcd_port: int
    apiserver_port: int
    token: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    argvs: dict[str, list[str]] = field(default_factory=dict)
    owns_workdir: bool = False
    node_kind: str = "kwok"
    host: str = "127.0.0.1"
    real_node: RealNode | None = None

    # ---- paths and addresses -------------------------------------------------------------
    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "apiserver.crt"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the kubectl built with the control plane (matching minor version) against this cluster."""
        return subprocess.run(
            [str(BIN / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=check,
            input=input,
        )

    # ---- lifecycle -----------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        workdir: Path | None = None,
        *,
        timeout: float = 120.0,
        apiserver_args: Sequence[str] = (),
        node: str = "kwok",
        node_wait: float = 900.0,
    ) -> LocalCluster:
        """Boot the control plane and one node of the kind `node` ("kwok" or "real");
        `apiserver_args` are added to kube-apiserver's flags (e.g. audit). A real node waits up to
        `node_wait` s for another real node on this machine to stop (only one can run)."""
        if node not in NODE_KINDS:
            raise ClusterError(f"node kind {node!r}: expected one of {', '.join(NODE_KINDS)}")
        for binary in ("controlplane", "kwok") if node == "kwok" else ("controlplane", "coredns"):
            if not (BIN / binary).exists():
                raise ClusterError(f"{BIN / binary} is missing: run `make cluster-build` first")
        owns = workdir is None
        wd = Path(tempfile.mkdtemp(prefix="modeldeploy-cluster-")) if workdir is None else workdir
        wd.mkdir(parents=True, exist_ok=True)
        cluster = cls(
            workdir=wd,
            etcd_port=free_port(),
            apiserver_port=free_port(),
            token=secrets.token_hex(16),
            owns_workdir=owns,
            node_kind=node,
        )
        try:
            if node == "real":
                cluster.real_node = RealNode(wd, CACHE, BIN, cluster.log_dir)
                cluster.real_node.claim(node_wait)
            cluster._boot(timeout, tuple(apiserver_args))
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _boot(self, timeout: float, apiserver_args: tuple[str, ...] = ()) -> None:
        started = time.monotonic()
        deadline = started + timeout
        self.log_dir.mkdir(exist_ok=True)
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        sa_key = pki / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)
        tokens = self.workdir / "tokens.csv"
        token_lines = [f'{self.token},admin,admin-uid,"system:masters"']
        node_apiserver_args: list[str] = []
        if self.real_node is not None:
            self.real_node.prepare()  # the node IP exists from here on: the API server binds it
            self.host = self.real_node.ip
            token_lines += self.real_node.token_lines()
            node_apiserver_args = self.real_node.apiserver_args()
        tokens.write_text("\n".join(token_lines) + "\n")
        tokens.chmod(0o600)

        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self._spawn(
            "etcd",
            [
                str(BIN / "controlplane"),
                "etcd",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client={etcd_url}",
                f"--listen-peer=http://127.0.0.1:{free_port()}",
            ],
        )
        self._wait(f"{etcd_url}/health", deadline, "etcd", auth=False)

        self._spawn(
            "kube-apiserver",
            [
                str(BIN / "controlplane"),
                "kube-apiserver",
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.host}",
                f"--advertise-address={self.host}",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={pki}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=Node,RBAC"
                if self.real_node is not None
                else "--authorization-mode=RBAC",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--enable-priority-and-fairness=false",
                "--event-ttl=1h",
                *node_apiserver_args,
                *apiserver_args,
            ],
        )
        self._wait(f"{self.server}/readyz", deadline, "kube-apiserver", auth=True)
        self._write_kubeconfig()

        self._spawn(
            "kube-controller-manager",
            [
                str(BIN / "controlplane"),
                "kube-controller-manager",
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={self.ca_file}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=false",
                "--controllers=*,-csrsigning,-nodeipam",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-gc-syncs=20",
                *CONTROL_PLANE_CLIENT_RATE,
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(BIN / "controlplane"),
                "kube-scheduler",
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                *CONTROL_PLANE_CLIENT_RATE,
            ],
        )
        if self.real_node is not None:
            self.real_node.control_plane_pids = {name: proc.pid for name, proc in self.processes.items()}
            self.real_node.start(
                server=self.server, ca_file=self.ca_file, cache=CACHE, kubectl=self.kubectl, deadline=deadline
            )
            self.started_in = time.monotonic() - started
            return
        self._spawn(
            "kwok",
            [
                str(BIN / "kwok"),
                f"--config={self._kwok_stages()}",
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(fake_node_manifest()))
        self._wait_node_ready(deadline)
        self.started_in = time.monotonic() - started

    def _kwok_stages(self) -> Path:
        """KWOK's own stages, except that modeldeploy's Pods start NotReady (see harness_stages)."""
        stages = harness_stages(list(yaml.safe_load_all((BIN / "kwok-stages.yaml").read_text())))
        path = self.workdir / "kwok-stages.yaml"
        path.write_text(yaml.safe_dump_all(stages))
        return path

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.argvs[name] = argv
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                log = self.log_dir / f"{name}.log"
                tail = log.read_text(errors="replace")[-3000:]
                raise ClusterError(
                    f"{name} exited with {proc.returncode} (log: {log}); last log lines:\n{tail}"
                )
        if self.real_node is not None:
            self.real_node.check_alive()

    def _wait(self, url: str, deadline: float, what: str, *, auth: bool) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the serving cert does not exist until the server has started
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            req = urllib.request.Request(url)
            if auth:
                req.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(
                    req, timeout=2, context=ctx if url.startswith("https") else None
                ) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ClusterError(f"{what} not ready at {url} before the deadline ({last})")

    def _wait_node_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            out = self.kubectl(
                "get",
                "node",
                FAKE_NODE,
                "-o",
                'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
                check=False,
            )
            if out.stdout.strip() == "True":
                return
            time.sleep(0.3)
        raise ClusterError(f"node {FAKE_NODE} did not become Ready (is KWOK running? see {self.log_dir})")

    def _write_kubeconfig(self) -> None:
        write_kubeconfig(
            self.kubeconfig, server=self.server, ca_file=self.ca_file, user="admin", token=self.token
        )

    def restart_apiserver(
        self, sig: int = signal.SIGKILL, downtime: float = 0.0, timeout: float = 90.0
    ) -> None:
        """Stop kube-apiserver (SIGKILL by default: a crash, and much faster than its graceful
        shutdown), stay down `downtime` more seconds, start it again on the same port with the same
        certificates and etcd data, and wait for /readyz. The other components and every client
        reconnect on their own, as they must after a control-plane crash or upgrade."""
        proc = self.processes["kube-apiserver"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        time.sleep(downtime)  # the outage itself is the point: nothing to poll for
        self._spawn("kube-apiserver", self.argvs["kube-apiserver"])
        self._wait(f"{self.server}/readyz", time.monotonic() + timeout, "kube-apiserver", auth=True)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the node (a real node removes its Pods, network and mounts), then the control plane
        in reverse start order; SIGTERM first, SIGKILL after `grace` seconds."""
        try:
            if self.real_node is not None:
                self.real_node.stop()
        finally:
            self._stop_control_plane(grace)

    def _stop_control_plane(self, grace: float) -> None:
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.processes.clear()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


HARNESS_READINESS_LABEL = "app.kubernetes.io/managed-by"
HARNESS_READINESS_VALUE = "modeldeploy"


def harness_stages(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make Pods of modeldeploy's Deployments start Running but NotReady.

    KWOK's `pod-ready` stage marks every Pod Ready at once. Tests on the fake node decide when a
    modeldeploy Pod is Ready themselves (tests/support/readiness.py), as a kubelet's readiness
    probe would; until then the operator must not send it traffic. Other Pods keep KWOK's
    behaviour.
    """
    out: list[dict[str, Any]] = []
    selector_key = f'.metadata.labels["{HARNESS_READINESS_LABEL}"]'
    for stage in stages:
        if not stage:
            continue
        if stage.get("metadata", {}).get("name") != "pod-ready":
            out.append(stage)
            continue
        others = copy.deepcopy(stage)
        others["spec"]["selector"]["matchExpressions"].append(
            {"key": selector_key, "operator": "NotIn", "values": [HARNESS_READINESS_VALUE]}
        )
        ours = copy.deepcopy(stage)
        ours["metadata"]["name"] = "modeldeploy-pod-running-unready"
        ours["spec"]["selector"]["matchExpressions"].append(
            {"key": selector_key, "operator": "In", "values": [HARNESS_READINESS_VALUE]}
        )
        template, flipped = re.subn(
            r'status: "True"(\s+)type: (Ready|ContainersReady)\b',
            r'status: "False"\1type: \2',
            ours["spec"]["next"]["statusTemplate"],
        )
        if flipped != 2:
            raise ClusterError("KWOK's pod-ready stage changed shape; update harness_stages()")
        ours["spec"]["next"]["statusTemplate"] = template.replace("ready: true", "ready: false")
        out += [others, ours]
    return out


def fake_node_manifest() -> dict[str, Any]:
    """One Node that KWOK manages (it heartbeats it and marks its Pods Running/Ready).

    Its capacity is above what the scale benchmark runs at once: 1,000 model Pods plus a
    rollout's new revision, each sidecar requesting 50m CPU and 64Mi. With room for exactly
    1,000 Pods the rolled-out revision's Pod stayed Pending and the N=1,000 rollout never left
    its first step."""
    capacity = {"cpu": "256", "memory": "1Ti", "pods": "5000"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": FAKE_NODE,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": FAKE_NODE, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {"allocatable": capacity, "capacity": capacity},
    }


@contextlib.contextmanager
def running_cluster(apiserver_args: Sequence[str] = (), node: str = "kwok") -> Iterator[LocalCluster]:
    build(quiet=True)
    cluster = LocalCluster.start(
        apiserver_args=apiserver_args, node=node, timeout=300 if node == "real" else 120
    )
    try:
        yield cluster
    finally:
        cluster.stop()


# ---- CLI for people: make cluster-up / cluster-down / node-import ---------------------------
def _cmd_up(node: str) -> int:
    if (STATE_DIR / "state.json").exists():
        print(
            f"a cluster is already up (state in {STATE_DIR}); run `make cluster-down` first", file=sys.stderr
        )
        return 1
    build()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster.start(STATE_DIR, node=node, timeout=300 if node == "real" else 120, node_wait=0)
    state = {name: proc.pid for name, proc in cluster.processes.items()}
    (STATE_DIR / "state.json").write_text(json.dumps({"pids": state, "server": cluster.server, "node": node}))
    if cluster.real_node is not None:
        cluster.real_node.detach()
        real = cluster.real_node
        print(f"real node {real.name} Ready in {real.started_in:.1f}s at {real.ip}")
        print(f"images imported: {', '.join(real.imported) or 'none (all were there already)'}")
        print("import your own image: make node-import IMAGE=path/to/image.tar (OCI or docker archive)")
    print(f"cluster up in {cluster.started_in:.1f}s at {cluster.server}; logs in {cluster.log_dir}")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"kubectl: {BIN / 'kubectl'} (matches the server's minor version)")
    return 0


def _cmd_down() -> int:
    state_file = STATE_DIR / "state.json"
    if not state_file.exists():
        print("no local cluster is up")
        return 0
    left = stop_detached_node(BIN / "controlplane")
    if left:
        print(f"real node stopped; cleaned up: {', '.join(left)}")
    pids: dict[str, int] = json.loads(state_file.read_text())["pids"]
    for name, pid in reversed(list(pids.items())):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
            for _ in range(100):
                os.killpg(pid, 0)
                time.sleep(0.1)
            print(f"{name} did not stop after 10s, killing", file=sys.stderr)
            os.killpg(pid, signal.SIGKILL)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    print("local cluster stopped")
    return 0


def _cmd_import(archive: Path) -> int:
    imported = import_into_running_node(archive)
    print(f"imported into the real node: {', '.join(imported)}")
    print("use it in a Pod with `imagePullPolicy: IfNotPresent` (or Never): the node pulls from no registry")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="start the cluster in the background")
    up.add_argument("--node", choices=NODE_KINDS, default="real", help="the node's kind (default: real)")
    sub.add_parser("down", help="stop the cluster started by `up`")
    sub.add_parser("build", help="build (or reuse) the binaries")
    imp = sub.add_parser("import", help="import an OCI or docker image archive into the running real node")
    imp.add_argument("archive", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            build()
            return 0
        if args.action == "import":
            return _cmd_import(args.archive)
        return _cmd_up(args.node) if args.action == "up" else _cmd_down()
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
