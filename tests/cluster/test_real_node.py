"""The real node: containerd, kubelet, kube-proxy, CoreDNS and the CNI bridge run real Pods.

One real node for the module (only one can run on a machine); the last tests stop it and check
that nothing is left, and that a crashed run is cleaned up by the next start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client import ApiClient

from tests.cluster import cni
from tests.cluster.localcluster import BIN, CACHE, ROOT, LocalCluster, running_cluster
from tests.cluster.node import NodePaths, RealNode, import_into_running_node, leftovers
from tests.cluster.node_images import TESTBOX_IMAGE
from tests.cluster.oci_image import ImageFile, write_oci_archive

pytestmark = pytest.mark.cluster

KUBE_VERSION = (ROOT / "tests" / "cluster" / "controlplane" / "KUBE_VERSION").read_text().strip()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def node_cluster() -> Iterator[LocalCluster]:
    with running_cluster(node="real") as c:
        yield c


@pytest.fixture(scope="module")
def api(node_cluster: LocalCluster) -> Iterator[ApiClient]:
    api_client = config.new_client_from_config(config_file=str(node_cluster.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def ns(node_cluster: LocalCluster, api: ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"node-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # the ServiceAccount controller creates `default` shortly after the namespace
    wait_for(lambda: bool(core.list_namespaced_service_account(name).items), 30, "the default ServiceAccount")
    yield name
    if node_cluster.processes:  # not after the stop test
        core.delete_namespace(name, grace_period_seconds=0)


def busybox_pod(name: str, script: str, **spec: object) -> client.V1Pod:
    """A Pod of the node's busybox image running `script` with /bin/sh."""
    container = client.V1Container(
        name="main",
        image=TESTBOX_IMAGE,
        image_pull_policy="Never",
        command=["/bin/sh", "-c", script],
        **{k: v for k, v in spec.items() if k in {"readiness_probe", "lifecycle", "ports", "volume_mounts"}},
    )
    pod_spec = {
        k: v for k, v in spec.items() if k not in {"readiness_probe", "lifecycle", "ports", "volume_mounts"}
    }
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(containers=[container], **pod_spec),
    )


def pod_ready(core: client.CoreV1Api, ns: str, name: str) -> bool:
    pod = core.read_namespaced_pod(name, ns)
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


WEB_SCRIPT = (
    "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec busybox httpd -f -p 8080 -h /www"
)


def test_node_is_ready_with_its_own_ip_and_versions(node_cluster: LocalCluster, api: ApiClient) -> None:
    node = client.CoreV1Api(api).read_node("modeldeploy-node")
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == cni.NODE_IP, "the node IP is the bridge's gateway, not the VM's"
    assert node.status.node_info.kubelet_version == KUBE_VERSION
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    assert node_cluster.server == f"https://{cni.NODE_IP}:{node_cluster.apiserver_port}"


def test_pod_serves_through_its_cluster_ip_from_the_host_and_from_a_pod(
    node_cluster: LocalCluster, api: ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    probe = client.V1Probe(
        http_get=client.V1HTTPGetAction(path="/index.html", port=8080), period_seconds=1, failure_threshold=3
    )
    core.create_namespaced_pod(
        ns,
        busybox_pod(
            "web", WEB_SCRIPT, readiness_probe=probe, ports=[client.V1ContainerPort(container_port=8080)]
        ),
    )
    core.create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(
                selector={"app": "web"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
            ),
        ),
    )
    wait_for(lambda: pod_ready(core, ns, "web"), 90, "the web Pod to pass its readiness probe")
    pod = core.read_namespaced_pod("web", ns)
    prefix = cni.NODE_IP.rsplit(".", 1)[0] + "."
    assert pod.status.pod_ip.startswith(prefix) and pod.status.pod_ip != cni.NODE_IP

    cluster_ip = core.read_namespaced_service("web", ns).spec.cluster_ip
    assert cluster_ip.startswith("10.96.")

    def from_host() -> str:
        with urllib.request.urlopen(f"http://{cluster_ip}/index.html", timeout=3) as r:
            return str(r.read().decode().strip())

    wait_for(lambda: _succeeds(from_host), 30, "kube-proxy to program the ClusterIP")
    assert from_host() == "hello-from-web"

    # another Pod: the Service's DNS name through CoreDNS, then the ClusterIP through kube-proxy
    core.create_namespaced_pod(ns, busybox_pod("client", "exec sleep 3600"))
    wait_for(lambda: core.read_namespaced_pod("client", ns).status.phase == "Running", 60, "the client Pod")
    got = _kubectl_exec(
        node_cluster, ns, "client", "wget", "-q", "-O-", f"http://web.{ns}.svc.cluster.local/index.html"
    )
    assert got.strip() == "hello-from-web"
    short = _kubectl_exec(node_cluster, ns, "client", "wget", "-q", "-O-", "http://web/index.html")
    assert short.strip() == "hello-from-web", "the namespace's search domain resolves the short name"
    # a Pod reaching itself through its own Service (hairpin); the full name, as the short one is
    # the Pod's own hostname in its /etc/hosts
    url = f"http://web.{ns}.svc.cluster.local/index.html"
    assert _kubectl_exec(node_cluster, ns, "web", "wget", "-q", "-O-", url).strip() == "hello-from-web"


def _bridge(attribute: str) -> str:
    return (Path("/sys/class/net") / cni.BRIDGE / attribute).read_text().strip()


NET_ADDR_SET = "3"  # /sys/class/net/*/addr_assign_type: the address was set, the kernel keeps it


def test_the_bridge_keeps_its_address_while_pods_come_and_go(api: ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    assert _bridge("addr_assign_type") == NET_ADDR_SET, "a bridge without a set address takes its ports'"
    assert _bridge("address") == cni.BRIDGE_MAC
    veths_before = len(cni.veths_on_bridge())
    names = [f"churn-{i}" for i in range(3)]
    for name in names:
        core.create_namespaced_pod(ns, busybox_pod(name, "exec sleep 3600"))

    def all_running() -> bool:
        return all(core.read_namespaced_pod(name, ns).status.phase == "Running" for name in names)

    wait_for(all_running, 90, "the Pods to run")
    assert _bridge("address") == cni.BRIDGE_MAC, "Pods joining the bridge do not change its address"
    for name in names:
        core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
    wait_for(lambda: not core.list_namespaced_pod(ns).items, 60, "the Pods to be gone")
    wait_for(lambda: len(cni.veths_on_bridge()) <= veths_before, 30, "their veths to leave the bridge")
    assert _bridge("address") == cni.BRIDGE_MAC, "Pods leaving the bridge do not change its address"


def test_unknown_service_name_does_not_resolve(node_cluster: LocalCluster, api: ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, busybox_pod("client", "exec sleep 3600"))
    wait_for(lambda: core.read_namespaced_pod("client", ns).status.phase == "Running", 60, "the client Pod")
    out = _kubectl(
        node_cluster, "exec", "-n", ns, "client", "--", "nslookup", f"nothing-here.{ns}.svc.cluster.local"
    )
    assert out.returncode != 0
    known = _kubectl(
        node_cluster, "exec", "-n", ns, "client", "--", "nslookup", "kubernetes.default.svc.cluster.local"
    )
    assert known.returncode == 0 and "10.96.0.1" in known.stdout, known.stdout + known.stderr


def test_pods_reach_the_api_server_with_their_service_account_token(
    node_cluster: LocalCluster, api: ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, busybox_pod("client", "exec sleep 3600"))
    wait_for(lambda: core.read_namespaced_pod("client", ns).status.phase == "Running", 60, "the client Pod")
    token = _kubectl_exec(
        node_cluster, ns, "client", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )
    assert token.count(".") == 2, "the kubelet mounted a projected ServiceAccount token"
    # the `kubernetes` Service: CoreDNS resolves it, kube-proxy DNATs it to the API server on the node IP
    script = (
        "wget -q -O- --no-check-certificate --header "
        '"Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)" '
        "https://kubernetes.default.svc/version"
    )
    version = json.loads(_kubectl_exec(node_cluster, ns, "client", "sh", "-c", script))
    assert version["gitVersion"] == KUBE_VERSION


def test_kubelet_restarts_a_crashing_container(node_cluster: LocalCluster, api: ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, busybox_pod("crasher", "echo crashing; exit 3"))

    def backing_off_after_two_restarts() -> bool:
        statuses = core.read_namespaced_pod("crasher", ns).status.container_statuses or []
        # Read `--previous` only while the kubelet waits out its back-off: while it starts the next
        # instance, "previous" moves on and the logs read can belong to a container still starting.
        return bool(statuses) and statuses[0].restart_count >= 2 and statuses[0].state.waiting is not None

    wait_for(backing_off_after_two_restarts, 120, "the kubelet to restart the container twice and back off")
    status = core.read_namespaced_pod("crasher", ns).status.container_statuses[0]
    terminated = status.last_state.terminated
    assert terminated is not None and terminated.exit_code == 3
    logs = _kubectl(node_cluster, "logs", "-n", ns, "crasher", "--previous")
    assert "crashing" in logs.stdout, logs.stderr


def test_prestop_runs_before_sigterm_and_the_grace_period_is_honoured(api: ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    out_dir = Path(tempfile.mkdtemp(prefix="modeldeploy-prestop-"))
    try:
        grace = 5
        pod = busybox_pod(
            "graceful",
            # ignores SIGTERM (records it), so only the grace period's SIGKILL ends it
            "trap 'date +%s > /out/sigterm' TERM; echo up > /out/started; while true; do sleep 0.2; done",
            lifecycle=client.V1Lifecycle(
                pre_stop=client.V1LifecycleHandler(
                    _exec=client.V1ExecAction(
                        command=[
                            "/bin/sh",
                            "-c",
                            "date +%s > /out/prestop-start; sleep 1; date +%s > /out/prestop-end",
                        ]
                    )
                )
            ),
            volume_mounts=[client.V1VolumeMount(name="out", mount_path="/out")],
            volumes=[client.V1Volume(name="out", host_path=client.V1HostPathVolumeSource(path=str(out_dir)))],
            termination_grace_period_seconds=grace,
        )
        core.create_namespaced_pod(ns, pod)
        wait_for(lambda: (out_dir / "started").exists(), 60, "the Pod to start")
        deleted_at = time.monotonic()
        core.delete_namespaced_pod("graceful", ns)

        def gone() -> bool:
            return not any(p.metadata.name == "graceful" for p in core.list_namespaced_pod(ns).items)

        wait_for(gone, 60, "the Pod to be deleted")
        took = time.monotonic() - deleted_at
        prestop_start = int((out_dir / "prestop-start").read_text())
        prestop_end = int((out_dir / "prestop-end").read_text())
        sigterm = int((out_dir / "sigterm").read_text())
        assert prestop_start <= prestop_end <= sigterm, "SIGTERM came after the preStop hook finished"
        assert took >= grace - 1, f"the Pod was gone after {took:.1f}s, before its {grace}s grace period"
    finally:
        subprocess.run(["rm", "-rf", str(out_dir)], check=False)


def test_kubectl_logs_and_exec_reach_the_kubelet(node_cluster: LocalCluster, api: ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, busybox_pod("talker", "echo line-one; echo line-two; exec sleep 3600"))
    wait_for(lambda: core.read_namespaced_pod("talker", ns).status.phase == "Running", 60, "the Pod to run")
    wait_for(
        lambda: "line-two" in _kubectl(node_cluster, "logs", "-n", ns, "talker").stdout, 30, "the Pod's logs"
    )
    assert _kubectl(node_cluster, "logs", "-n", ns, "talker").stdout.split() == ["line-one", "line-two"]
    assert _kubectl_exec(node_cluster, ns, "talker", "cat", "/etc/hostname").strip() == "talker"
    failed = _kubectl(node_cluster, "exec", "-n", ns, "talker", "--", "sh", "-c", "exit 7")
    assert failed.returncode == 7, "exec reports the command's exit code"


def test_a_users_image_archive_is_imported_and_runs(
    node_cluster: LocalCluster, api: ApiClient, ns: str, tmp_path: Path
) -> None:
    ref = f"localhost/someone/their-model:{uuid.uuid4().hex[:6]}"
    archive = tmp_path / "image.tar"
    write_oci_archive(archive, ref, [ImageFile("/bin/busybox", source=Path("/bin/busybox"))], entrypoint=[])
    assert import_into_running_node(archive) == [ref]
    core = client.CoreV1Api(api)
    pod = busybox_pod("theirs", "echo it-is-their-image; exec /bin/busybox sleep 3600")
    pod.spec.containers[0].image = ref
    pod.spec.containers[0].command = [
        "/bin/busybox",
        "sh",
        "-c",
        "echo it-is-their-image; exec /bin/busybox sleep 3600",
    ]
    core.create_namespaced_pod(ns, pod)
    wait_for(lambda: core.read_namespaced_pod("theirs", ns).status.phase == "Running", 60, "the Pod to run")
    wait_for(
        lambda: "it-is-their-image" in _kubectl(node_cluster, "logs", "-n", ns, "theirs").stdout,
        30,
        "its logs",
    )


def test_stop_leaves_nothing_behind(node_cluster: LocalCluster, api: ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    # a Pod with a volume, a hostPort and a Service is running when the node stops
    core.create_namespaced_pod(
        ns,
        busybox_pod("busy", WEB_SCRIPT, ports=[client.V1ContainerPort(container_port=8080, host_port=18080)]),
    )
    wait_for(lambda: core.read_namespaced_pod("busy", ns).status.phase == "Running", 60, "the Pod to run")
    real = node_cluster.real_node
    assert real is not None
    paths = real.paths
    pids = [c.pid for c in real.components.values()]
    assert leftovers(paths), "a running node is found by the leftover check"
    node_cluster.stop()
    assert leftovers(paths) == []
    assert not [p for p in pids if Path(f"/proc/{p}").exists()], "a node process is still running"
    assert not any(
        str(paths.node_dir) in line for line in Path("/proc/self/mountinfo").read_text().splitlines()
    )
    assert (
        subprocess.run(["ip", "link", "show", cni.BRIDGE], capture_output=True, check=False).returncode != 0
    )
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert "KUBE-" not in rules, "kube-proxy's rules are gone"
    assert cni.NODE_IP.rsplit(".", 1)[0] + "." not in rules, "no rule of the Pod network (portmap) is left"


CRASHING_SESSION = """
import os, signal, sys, time
from tests.cluster.localcluster import LocalCluster
c = LocalCluster.start(node="real", timeout=300, node_wait=0)
deadline = time.monotonic() + 60
while c.kubectl("get", "serviceaccount", "default", check=False).returncode != 0:
    assert time.monotonic() < deadline, "no default ServiceAccount"
    time.sleep(0.5)
c.kubectl("run", "left", "--image", sys.argv[1], "--image-pull-policy", "Never", "--", "sleep", "3600")
deadline = time.monotonic() + 90
while c.kubectl("get", "pod", "left", "-o", "jsonpath={.status.phase}").stdout != "Running":
    assert time.monotonic() < deadline, "pod not running"
    time.sleep(0.5)
print("RUNNING", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_crashed_session_is_cleaned_up_by_the_next_start(node_cluster: LocalCluster) -> None:
    assert node_cluster.real_node is None or not node_cluster.real_node.claimed, "runs after the stop test"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_SESSION, TESTBOX_IMAGE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "MODELDEPLOY_CACHE": str(CACHE)},
        check=False,
    )
    assert "RUNNING" in crashed.stdout, crashed.stdout + crashed.stderr
    slot = json.loads(Path("/run/modeldeploy/node.json").read_text())
    paths = NodePaths.from_json(slot)
    assert leftovers(paths), "the killed session left its node running"
    workdir = Path(tempfile.mkdtemp(prefix="modeldeploy-claim-"))
    try:
        successor = RealNode(workdir, CACHE, BIN, workdir / "logs")
        successor.claim(wait=0)  # the owner is dead: its node is orphaned and cleaned up
        assert leftovers(paths) == []
        for pid in [*slot["pids"].values(), *slot["control_plane"].values()]:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), (
                f"process {pid} of the crashed run lives"
            )
        successor.stop()
    finally:
        subprocess.run(["rm", "-rf", str(workdir), str(paths.node_dir.parent)], check=False)
    assert not Path("/run/modeldeploy/node.json").exists()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _succeeds(fn: Callable[[], object]) -> bool:
    try:
        fn()
    except OSError:
        return False
    return True


def _kubectl(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "--request-timeout=30s", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _kubectl_exec(cluster: LocalCluster, ns: str, pod: str, *command: str) -> str:
    out = _kubectl(cluster, "exec", "-n", ns, pod, "--", *command)
    assert out.returncode == 0, f"kubectl exec {pod} {' '.join(command)}: {out.stderr}"
    return out.stdout
