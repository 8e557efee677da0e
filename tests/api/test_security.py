"""Security on the real API server: serving pods under the restricted Pod Security Standard, and
RBAC that cannot read Secrets.

- The operator's pods for a ModelDeployment are admitted in a namespace that enforces
  `restricted` (the ReplicaSet creates them); the same pod template without its security
  context is refused there (the check can fail). The operator's own pod under `restricted` is
  covered by tests/chart/test_install.py.
- The rules in modeldeploy/operator/rbac.py, bound to a fresh ServiceAccount, cannot get, list or
  watch Secrets: real requests with the account's token are answered 403 and
  SelfSubjectAccessReview says no, while the same token may list ConfigMaps. The sidecar's rules
  reach only the model's routing ConfigMap. (tests/chart checks the chart's rendering of the same
  rules with `kubectl auth can-i`.)
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client import ApiClient

from modeldeploy.operator.api import ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.operator.planner import ModelDeploymentMeta, ObservedChildren, PlannerConfig, plan
from modeldeploy.operator.rbac import OPERATOR_RULES, sidecar_rules
from tests.chart.access import service_account_kubeconfig
from tests.cluster.localcluster import LocalCluster
from tests.support.mdep import Mdep, manifest, wait_for
from tests.support.operator_process import install_crd, running_operator
from tests.support.readiness import model_pods_ready

pytestmark = pytest.mark.cluster

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@pytest.fixture(scope="module")
def restricted_namespace(cluster: LocalCluster, k8s: ApiClient) -> Iterator[str]:
    install_crd(cluster)
    name = f"restricted-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=RESTRICTED)))
    try:
        with model_pods_ready(k8s, name):
            yield name
    finally:
        core.delete_namespace(name)


def test_serving_pods_are_admitted_under_the_restricted_standard(
    cluster: LocalCluster, k8s: ApiClient, restricted_namespace: str, tmp_path: Path
) -> None:
    md = Mdep(cluster, k8s, restricted_namespace, "iris")
    core = client.CoreV1Api(k8s)
    with running_operator(cluster, restricted_namespace, tmp_path, ("--analysis-override", "pass")) as op:
        md.apply(manifest("iris", "registry.invalid/iris:1", [{"canary": {"weight": 50, "duration": "1s"}}]))
        wait_for(lambda: md.status().get("phase") == "Succeeded", 60, "phase Succeeded", op)

        def pods() -> list[client.V1Pod]:
            items = core.list_namespaced_pod(
                restricted_namespace, label_selector="modeldeploy.io/model=iris"
            ).items
            return items if len(items) == 2 else []

        for pod in wait_for(pods, 30, "the 2 pods admitted and created", op):
            for container in pod.spec.containers:
                assert container.security_context.read_only_root_filesystem is True
                assert container.security_context.allow_privilege_escalation is False
        cluster.kubectl(
            "delete", "-n", restricted_namespace, "modeldeployment/iris", "--wait=true", "--timeout=60s"
        )


def planner_pod(namespace: str) -> dict[str, Any]:
    spec = ModelDeploymentSpec.model_validate(
        manifest("probe", "registry.invalid/iris:1", [{"canary": {"weight": 50, "duration": "1s"}}])["spec"]
    )
    meta = ModelDeploymentMeta("probe", namespace, "uid-probe", 1)
    result = plan(
        meta,
        spec,
        ModelDeploymentStatus(),
        ObservedChildren(),
        datetime.now(UTC),
        PlannerConfig(sidecar_image="modeldeploy/modeldeploy:test"),
    )
    [deployment] = [m for m in result.manifests if m["kind"] == "Deployment"]
    template = copy.deepcopy(deployment["spec"]["template"])
    template["spec"].pop("serviceAccountName", None)  # not created here; admission would refuse it first
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", **template["metadata"]},
        "spec": template["spec"],
    }


def test_the_planners_pod_without_its_security_context_is_refused(
    k8s: ApiClient, restricted_namespace: str
) -> None:
    core = client.CoreV1Api(k8s)
    pod = planner_pod(restricted_namespace)
    core.create_namespaced_pod(restricted_namespace, pod, dry_run="All")  # as rendered: admitted
    for container in pod["spec"]["containers"]:
        del container["securityContext"]
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod(restricted_namespace, pod, dry_run="All")
    assert refused.value.status == 403 and "violates PodSecurity" in str(refused.value.body)
    assert "allowPrivilegeEscalation" in str(refused.value.body)


# RBAC ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def operator_account(
    cluster: LocalCluster, k8s: ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ApiClient]]:
    """A ServiceAccount bound cluster-wide to exactly OPERATOR_RULES, and a client using its token."""
    suffix = uuid.uuid4().hex[:6]
    namespace, name = f"rbac-{suffix}", "probe-operator"
    core, rbac = client.CoreV1Api(k8s), client.RbacAuthorizationV1Api(k8s)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="token"), string_data={"k": "v"})
    )
    role = f"probe-operator-{suffix}"
    rbac.create_cluster_role({"metadata": {"name": role}, "rules": OPERATOR_RULES})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
    )
    kubeconfig = service_account_kubeconfig(
        cluster, namespace, name, tmp_path_factory.mktemp("rbac") / "kubeconfig"
    )
    as_operator = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield namespace, as_operator
    finally:
        as_operator.close()
        rbac.delete_cluster_role_binding(role)
        rbac.delete_cluster_role(role)
        core.delete_namespace(namespace)


def status_of(call: Any) -> int:
    try:
        call()
    except client.ApiException as exc:
        return int(exc.status)
    return 200


def test_operator_rules_cannot_get_list_or_watch_secrets(operator_account: tuple[str, ApiClient]) -> None:
    namespace, as_operator = operator_account
    core = client.CoreV1Api(as_operator)
    assert status_of(lambda: core.list_namespaced_config_map(namespace)) == 200, "the token works"
    assert status_of(lambda: core.read_namespaced_secret("token", namespace)) == 403
    assert status_of(lambda: core.list_namespaced_secret(namespace)) == 403
    assert status_of(lambda: core.list_secret_for_all_namespaces()) == 403
    assert (
        status_of(
            lambda: core.list_namespaced_secret(
                namespace, watch=True, timeout_seconds=1, _preload_content=False
            )
        )
        == 403
    )
    authz = client.AuthorizationV1Api(as_operator)
    for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
        for ns in (namespace, None):
            review = authz.create_self_subject_access_review(
                {"spec": {"resourceAttributes": {"verb": verb, "resource": "secrets", "namespace": ns}}}
            )
            assert review.status.allowed is False, (verb, ns)


def test_sidecar_rules_reach_only_the_routing_configmap(
    cluster: LocalCluster, k8s: ApiClient, operator_account: tuple[str, ApiClient], tmp_path: Path
) -> None:
    namespace, _ = operator_account
    core, rbac = client.CoreV1Api(k8s), client.RbacAuthorizationV1Api(k8s)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="iris-sidecar"))
    )
    rbac.create_namespaced_role(
        namespace, {"metadata": {"name": "iris-sidecar"}, "rules": sidecar_rules("iris")}
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "iris-sidecar"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "iris-sidecar"},
            "subjects": [{"kind": "ServiceAccount", "name": "iris-sidecar", "namespace": namespace}],
        },
    )
    for cm in ("iris-routing", "other-routing"):
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=cm), data={"routing.json": "{}"})
        )
    kubeconfig = service_account_kubeconfig(cluster, namespace, "iris-sidecar", tmp_path / "kubeconfig")
    with config.new_client_from_config(config_file=str(kubeconfig)) as as_sidecar:
        sidecar = client.CoreV1Api(as_sidecar)
        assert status_of(lambda: sidecar.read_namespaced_config_map("iris-routing", namespace)) == 200
        assert status_of(lambda: sidecar.read_namespaced_config_map("other-routing", namespace)) == 403
        assert (
            status_of(lambda: sidecar.list_namespaced_config_map(namespace)) == 403
        )  # only by field selector
        assert status_of(lambda: sidecar.read_namespaced_secret("token", namespace)) == 403
        assert status_of(lambda: sidecar.list_namespaced_secret(namespace)) == 403
        assert (
            status_of(
                lambda: sidecar.patch_namespaced_config_map("iris-routing", namespace, {"data": {"x": "1"}})
            )
            == 403
        )
