"""The chart on the real API server: server-side dry-run of every ci/ values file, a real
`helm install` (the operator's Pod checked), and the operator run with ONLY the chart's RBAC
through a rollout, cluster-wide and namespace-scoped."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from modeldeploy.operator.rbac import OPERATOR_RULES
from tests.chart.access import can_i, granted, service_account_kubeconfig, service_account_user
from tests.chart.helm import CHART, CI_VALUES, helm, template_text
from tests.cluster.localcluster import LocalCluster
from tests.support.mdep import Mdep, manifest, wait_for
from tests.support.operator_process import install_crd, running_operator
from tests.support.readiness import model_pods_ready

pytestmark = pytest.mark.cluster

STUB_CRDS = Path(__file__).with_name("monitoring_crds_stub.yaml")


def create_namespace(k8s: ApiClient, name: str) -> None:
    core = client.CoreV1Api(k8s)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except client.ApiException as exc:
        if exc.status != 409:
            raise


@pytest.fixture(scope="module")
def crds(cluster: LocalCluster) -> None:
    install_crd(cluster)
    cluster.kubectl("apply", "--server-side", "-f", str(CHART / "crds" / "kopf-peering.yaml"))
    cluster.kubectl("apply", "--server-side", "-f", str(STUB_CRDS))
    for crd in ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev", "podmonitors.monitoring.coreos.com"):
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd}")


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_server_side_dry_run_accepts_every_values_file(
    cluster: LocalCluster, k8s: ApiClient, crds: None, values: Path
) -> None:
    release_ns = f"dry-{uuid.uuid4().hex[:6]}"
    watched = yaml.safe_load(values.read_text()) or {}
    for ns in [release_ns, *watched.get("watchNamespaces", [])]:
        create_namespace(k8s, ns)
    rendered = template_text(values, release=f"dry{uuid.uuid4().hex[:4]}", namespace=release_ns)
    out = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager=chart-test", "-f", "-",
        input=rendered, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    applied = [line for line in out.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len([d for d in yaml.safe_load_all(rendered) if d]), out.stdout


def test_server_side_dry_run_rejects_a_broken_render(cluster: LocalCluster, crds: None) -> None:
    """The dry-run is a real check: a wrong field in a rendered Deployment is refused."""
    rendered = template_text(release="broken", namespace="default").replace(
        "revisionHistoryLimit: 5", "revisionHistoryLimit: five"
    )
    out = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=rendered, check=False
    )
    assert out.returncode != 0
    assert "revisionHistoryLimit" in out.stderr


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    fullname: str
    kubeconfig: Path
    """Authenticates as the chart's ServiceAccount (nothing but the chart's RBAC)."""

    @property
    def user(self) -> str:
        return service_account_user(self.namespace, self.fullname)


@contextlib.contextmanager
def installed(
    cluster: LocalCluster, k8s: ApiClient, workdir: Path, prefix: str, sets: tuple[str, ...] = ()
) -> Iterator[Release]:
    """`helm install` (waiting for the operator Deployment), then `helm uninstall` and cleanup."""
    suffix = uuid.uuid4().hex[:6]
    release, namespace = f"{prefix}{suffix}", f"mdsys-{suffix}"
    # The restricted Pod Security Standard is enforced where the operator runs: its pod must pass.
    client.CoreV1Api(k8s).create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=namespace, labels={"pod-security.kubernetes.io/enforce": "restricted"}
            )
        )
    )
    args = ["install", release, str(CHART), "--namespace", namespace]
    args += ["--wait", "--timeout", "120s", "--set", "image.tag=test"]
    for item in sets:
        args += ["--set", item]
    helm(*args, kubeconfig=cluster.kubeconfig)
    try:
        fullname = f"{release}-modeldeploy"
        kubeconfig = service_account_kubeconfig(
            cluster, namespace, fullname, workdir / f"{release}.kubeconfig"
        )
        yield Release(release, namespace, fullname, kubeconfig)
    finally:
        helm("uninstall", release, "--namespace", namespace, "--wait", kubeconfig=cluster.kubeconfig)
        client.CoreV1Api(k8s).delete_namespace(namespace)


@pytest.fixture(scope="module")
def clusterwide(
    cluster: LocalCluster, k8s: ApiClient, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    with installed(cluster, k8s, tmp_path_factory.mktemp("cw"), "cw") as release:
        yield release


@pytest.fixture(scope="module")
def team_namespace(k8s: ApiClient) -> Iterator[str]:
    name = f"team-{uuid.uuid4().hex[:6]}"
    create_namespace(k8s, name)
    yield name
    client.CoreV1Api(k8s).delete_namespace(name)


@pytest.fixture(scope="module")
def namespaced(
    cluster: LocalCluster,
    k8s: ApiClient,
    crds: None,
    team_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    sets = (f"watchNamespaces={{{team_namespace}}}",)
    with installed(cluster, k8s, tmp_path_factory.mktemp("ns"), "ns", sets) as release:
        yield release


def test_install_runs_the_operator_pod_as_the_chart_says(
    cluster: LocalCluster, k8s: ApiClient, clusterwide: Release
) -> None:
    status = helm(
        "status", clusterwide.name, "-n", clusterwide.namespace, "-o", "json", kubeconfig=cluster.kubeconfig
    )
    assert yaml.safe_load(status.stdout)["info"]["status"] == "deployed"
    pods = (
        client.CoreV1Api(k8s)
        .list_namespaced_pod(
            clusterwide.namespace, label_selector=f"app.kubernetes.io/instance={clusterwide.name}"
        )
        .items
    )
    assert len(pods) == 1
    pod = pods[0]
    assert pod.spec.service_account_name == clusterwide.fullname
    assert pod.spec.security_context.run_as_non_root is True
    assert pod.spec.security_context.run_as_user == 65532
    assert pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
    [container] = pod.spec.containers
    assert container.image == "ghcr.io/modeldeploy/modeldeploy:test"
    assert container.command == ["modeldeploy-operator"]
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    env = {e.name: e for e in container.env}
    # The sidecar's own image, of the chart's version (image.tag pins the operator's image only).
    assert env["MODELDEPLOY_SIDECAR_IMAGE"].value == "ghcr.io/modeldeploy/modeldeploy-sidecar:0.1.0"
    assert env["MODELDEPLOY_NAMESPACES"].value in ("", None)
    assert env["POD_ID"].value_from.field_ref.field_path == "metadata.name"
    assert {p.name: p.container_port for p in container.ports} == {"metrics": 8000, "health": 8080}
    assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)

    role = client.RbacAuthorizationV1Api(k8s).read_cluster_role(clusterwide.fullname)
    stored = [k8s.sanitize_for_serialization(rule) for rule in role.rules]
    assert stored == OPERATOR_RULES


# What the chart's ServiceAccount may do in any namespace, as `kubectl auth can-i --list` shows it.
# Written out by hand on purpose: a change in rbac.py must be seen here too.
EVERY_AUTHENTICATED_USER = {
    "selfsubjectreviews.authentication.k8s.io": {"create"},
    "selfsubjectaccessreviews.authorization.k8s.io": {"create"},
    "selfsubjectrulesreviews.authorization.k8s.io": {"create"},
}
CHART_GRANTS_CLUSTER_WIDE = {
    "modeldeployments.modeldeploy.io": {"get", "list", "watch", "patch"},
    "modeldeployments.modeldeploy.io/status": {"get", "patch", "update"},
    "deployments.apps": {"get", "list", "watch", "create", "patch", "update", "delete"},
    "services": {"get", "list", "watch", "create", "patch", "update", "delete"},
    "configmaps": {"get", "list", "watch", "create", "patch", "update", "delete"},
    "poddisruptionbudgets.policy": {"get", "list", "watch", "create", "patch", "update", "delete"},
    "serviceaccounts": {"get", "list", "watch", "create", "patch", "update", "delete"},
    "roles.rbac.authorization.k8s.io": {"get", "list", "watch", "create", "patch", "update", "delete"},
    "rolebindings.rbac.authorization.k8s.io": {"get", "list", "watch", "create", "patch", "update", "delete"},
    "events": {"create", "patch"},
    "events.events.k8s.io": {"create", "patch"},
    "customresourcedefinitions.apiextensions.k8s.io": {"get", "list", "watch"},
    "namespaces": {"get", "list", "watch"},
    "clusterkopfpeerings.kopf.dev": {"get", "list", "watch", "patch"},
    "kopfpeerings.kopf.dev": {"get", "list", "watch", "patch"},
}


def test_chart_rbac_grants_exactly_this_list(
    cluster: LocalCluster, k8s: ApiClient, clusterwide: Release
) -> None:
    create_namespace(k8s, "rbac-probe")
    assert (
        granted(cluster, clusterwide.user, "rbac-probe")
        == CHART_GRANTS_CLUSTER_WIDE | EVERY_AUTHENTICATED_USER
    )


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("get", "secrets", False),
        ("list", "secrets", False),
        ("create", "pods", False),
        ("create", "pods/exec", False),
        ("get", "pods/log", False),
        ("delete", "namespaces", False),
        ("create", "clusterroles.rbac.authorization.k8s.io", False),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", False),
        ("escalate", "roles.rbac.authorization.k8s.io", False),
        ("bind", "roles.rbac.authorization.k8s.io", False),
        ("impersonate", "serviceaccounts", False),
        ("update", "modeldeployments.modeldeploy.io", False),
        ("delete", "modeldeployments.modeldeploy.io", False),
        ("create", "deployments.apps", True),
        ("patch", "modeldeployments.modeldeploy.io/status", True),
    ],
)
def test_chart_service_account_can_and_cannot(
    cluster: LocalCluster, clusterwide: Release, verb: str, resource: str, allowed: bool
) -> None:
    assert can_i(cluster, clusterwide.user, verb, resource) is allowed
    assert can_i(cluster, clusterwide.user, verb, resource, namespace="default") is allowed


def run_rollout_as_chart_service_account(
    cluster: LocalCluster,
    k8s: ApiClient,
    release: Release,
    workload_namespace: str,
    operator_namespace: str | None,
    log_dir: Path,
) -> None:
    """The operator authenticates with the chart's ServiceAccount only: first revision, then a
    second one walked through its canary step and promoted; no request was forbidden."""
    md = Mdep(cluster, k8s, workload_namespace, "rbac")
    args = ("--analysis-override", "pass")
    with (
        model_pods_ready(k8s, workload_namespace),
        running_operator(cluster, operator_namespace, log_dir, args, kubeconfig=release.kubeconfig) as op,
    ):
        md.apply(manifest("rbac", "registry.invalid/iris:1", [{"canary": {"weight": 50, "duration": "1s"}}]))
        first = wait_for(
            lambda: md.status().get("phase") == "Succeeded" and md.status()["stableRevision"],
            90,
            "Succeeded",
            op,
        )
        md.set_image("registry.invalid/iris:2")
        wait_for(
            lambda: md.status().get("phase") == "Succeeded" and md.status().get("stableRevision") != first,
            90,
            "the second revision promoted",
            op,
        )
        outcomes = [h["outcome"] for h in md.status().get("history", [])]
        assert outcomes.count("Promoted") == 2, outcomes
        # The operator created the sidecars' ServiceAccount, Role and RoleBinding with its own rights.
        rbac = client.RbacAuthorizationV1Api(k8s)
        role = rbac.read_namespaced_role("rbac-sidecar", workload_namespace)
        assert [r.resource_names for r in role.rules] == [["rbac-routing"]]
        cluster.kubectl(
            "delete", "-n", workload_namespace, "modeldeployment/rbac", "--wait=true", "--timeout=60s"
        )
        logs = op.logs()
    assert "Forbidden" not in logs and " 403" not in logs, logs[-4000:]


def test_operator_runs_a_rollout_with_only_the_cluster_wide_chart_rbac(
    cluster: LocalCluster, k8s: ApiClient, clusterwide: Release, tmp_path: Path
) -> None:
    workload = f"ml-{uuid.uuid4().hex[:6]}"
    create_namespace(k8s, workload)
    try:
        run_rollout_as_chart_service_account(cluster, k8s, clusterwide, workload, None, tmp_path)
    finally:
        client.CoreV1Api(k8s).delete_namespace(workload)


def test_namespaced_release_reaches_only_its_namespaces(
    cluster: LocalCluster, namespaced: Release, team_namespace: str
) -> None:
    user = namespaced.user
    assert can_i(cluster, user, "create", "deployments.apps", namespace=team_namespace)
    assert can_i(cluster, user, "patch", "modeldeployments.modeldeploy.io/status", namespace=team_namespace)
    assert not can_i(cluster, user, "create", "deployments.apps", namespace="default")
    assert not can_i(cluster, user, "list", "modeldeployments.modeldeploy.io", namespace="default")
    assert not can_i(cluster, user, "get", "secrets", namespace=team_namespace)
    assert not can_i(cluster, user, "create", "deployments.apps")  # not cluster-wide


def test_operator_runs_a_rollout_with_only_the_namespaced_chart_rbac(
    cluster: LocalCluster, k8s: ApiClient, namespaced: Release, team_namespace: str, tmp_path: Path
) -> None:
    run_rollout_as_chart_service_account(cluster, k8s, namespaced, team_namespace, team_namespace, tmp_path)
