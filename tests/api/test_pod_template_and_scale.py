"""spec.template and the scale subresource on the real API server (and the real operator).

The invalid template specs (Kubernetes' own messages) are rows of the shared table in
tests/support/modeldeployment_specs.py, run by test_modeldeployment_crd.py; here: explain,
Kubernetes' defaults, the examples, `kubectl scale`, a HorizontalPodAutoscaler reaching the scale
endpoint, and the operator rendering a template into a Deployment the API server accepts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from modeldeploy.operator.api import ModelDeployment, kubeschema, revision_hash
from tests.cluster.localcluster import ROOT, LocalCluster
from tests.support.modeldeployments import modeldeployment
from tests.support.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
EXAMPLES = ROOT / "examples"
SELECTOR = "modeldeploy.io/model={name},app.kubernetes.io/managed-by=modeldeploy"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, logs: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}\n{logs()[-3000:]}")


def minimal(name: str, **spec: Any) -> dict[str, Any]:
    """One canary step; replicas, drainPeriod and analysis left to their defaults unless given."""
    steps = [{"canary": {"weight": 50, "duration": "2s"}}]
    replicas, drain = spec.pop("replicas", None), spec.pop("drainPeriod", None)
    image = "registry.invalid/iris:1"
    return modeldeployment(name, image, replicas=replicas, drain_period=drain, steps=steps, **spec)


def apply(cluster: LocalCluster, namespace: str, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body))


def get(k8s: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return result


def scale_of(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/scale"
    result: dict[str, Any] = json.loads(cluster.kubectl("get", "--raw", path).stdout)
    return result


def test_explain_shows_kubernetes_descriptions(cluster: LocalCluster, namespace: str) -> None:
    def explained() -> str | None:
        out = cluster.kubectl("explain", "modeldeployment.spec.template.spec.nodeSelector", check=False)
        return out.stdout if out.returncode == 0 else None

    text = " ".join(wait_for(explained, 60, "kubectl explain of spec.template").split())
    assert "nodeSelector <map[string]string>" in text
    assert "NodeSelector is a selector which must be true for the pod to fit on a node." in text
    mounts = cluster.kubectl("explain", "mdep.spec.template.spec.containers.volumeMounts.mountPath").stdout
    assert "Path within the container at which the volume should be mounted." in " ".join(mounts.split())
    left_out = cluster.kubectl("explain", "mdep.spec.template.spec.nodeName", check=False)
    assert left_out.returncode != 0 and 'field "nodeName" does not exist' in left_out.stderr


def test_enums_are_the_ones_the_api_server_serves(cluster: LocalCluster) -> None:
    """kubeschema.py reads enums from the Go definitions; the live server serves the same ones."""
    served = json.loads(cluster.kubectl("get", "--raw", "/openapi/v3/api/v1").stdout)["components"]["schemas"]
    live: dict[tuple[str, str], list[str]] = {}
    for name, definition in served.items():
        if not name.startswith("io.k8s.api.core.v1."):
            continue
        for field, prop in (definition.get("properties") or {}).items():
            values = prop.get("enum") or (prop.get("items") or {}).get("enum")
            if values:
                live[(name, field)] = values
    source = kubeschema.module_dir() / kubeschema.ENUM_SOURCE_FILE
    assert live, "the API server serves no enums"
    parsed = kubeschema.go_enums(source.read_text(encoding="utf-8"))
    # Every enum the server serves is read from the Go definitions, with the same values. The Go
    # source also has enums the server does not serve as a property's enum (types inlined into
    # others, e.g. EphemeralContainerCommon; map values); none of them is in the Pod template.
    assert {key: parsed.get(key) for key in live} == live


def test_kubernetes_defaults_are_applied_and_zero_values_are_not(
    cluster: LocalCluster, k8s: ApiClient, namespace: str
) -> None:
    template = {
        "spec": {
            "containers": [{"name": "model", "ports": [{"name": "grpc", "containerPort": 9000}]}],
            "volumes": [{"name": "settings", "configMap": {"name": "model-settings"}}],
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
        }
    }
    apply(cluster, namespace, minimal("defaults", template=template))
    stored = get(k8s, namespace, "defaults")["spec"]["template"]["spec"]
    assert stored["containers"][0]["ports"] == [{"name": "grpc", "containerPort": 9000, "protocol": "TCP"}]
    assert stored["volumes"] == template["spec"]["volumes"]  # no empty strings added
    assert stored["tolerations"] == template["spec"]["tolerations"]


@pytest.mark.parametrize("example", ["gpu.yaml", "autoscaling.yaml"])
def test_examples_are_accepted_unchanged(
    cluster: LocalCluster, k8s: ApiClient, namespace: str, example: str
) -> None:
    path = EXAMPLES / example
    # A server-side dry run first: the HPA of autoscaling.yaml must not act on the real object here.
    out = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert out.returncode == 0, out.stderr
    documents = list(yaml.safe_load_all(path.read_text()))
    mdep = next(d for d in documents if d["kind"] == "ModelDeployment")
    apply(cluster, namespace, mdep)
    stored = get(k8s, namespace, mdep["metadata"]["name"])
    assert stored["spec"].get("template") == mdep["spec"].get("template")  # nothing pruned or added
    local, served = ModelDeployment.model_validate(mdep).spec, ModelDeployment.model_validate(stored).spec
    assert served == local
    assert revision_hash(served) == revision_hash(local)
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, mdep["metadata"]["name"]
    )


def test_kubectl_scale_and_an_hpa_reach_the_scale_subresource(
    cluster: LocalCluster, k8s: ApiClient, namespace: str
) -> None:
    apply(cluster, namespace, minimal("scaled"))
    cluster.kubectl("scale", "-n", namespace, "mdep/scaled", "--replicas=3")
    assert get(k8s, namespace, "scaled")["spec"]["replicas"] == 3
    assert scale_of(cluster, namespace, "scaled")["spec"] == {"replicas": 3}
    refused = cluster.kubectl("scale", "-n", namespace, "mdep/scaled", "--replicas=0", check=False)
    assert refused.returncode != 0 and "spec.replicas: Invalid value: 0" in refused.stderr

    # What the operator writes (no operator runs in this test): the pods and their selector.
    selector = SELECTOR.format(name="scaled")
    status = json.dumps({"status": {"replicas": 3, "selector": selector}})
    cluster.kubectl(
        "patch", "-n", namespace, "mdep/scaled", "--subresource=status", "--type=merge", "-p", status
    )
    assert scale_of(cluster, namespace, "scaled")["status"] == {"replicas": 3, "selector": selector}

    hpa = next(
        d
        for d in yaml.safe_load_all((EXAMPLES / "autoscaling.yaml").read_text())
        if d["kind"] != "ModelDeployment"
    )
    hpa["metadata"]["name"] = "scaled"
    hpa["spec"]["scaleTargetRef"]["name"] = "scaled"
    apply(cluster, namespace, hpa)
    autoscaling = client.AutoscalingV2Api(k8s)

    def able_to_scale() -> dict[str, str] | None:
        found = autoscaling.read_namespaced_horizontal_pod_autoscaler("scaled", namespace)
        for condition in (found.status.conditions or []) if found.status else []:
            if condition.type == "AbleToScale":
                return {"status": condition.status, "reason": condition.reason}
        return None

    # The HPA controller read the scale subresource (no metrics API here, so it cannot compute
    # a size: that part is the e2e layer's, with metrics-server).
    assert wait_for(able_to_scale, 60, "the HPA controller to read the scale subresource") == {
        "status": "True",
        "reason": "SucceededGetScale",
    }
    autoscaling.delete_namespaced_horizontal_pod_autoscaler("scaled", namespace)


def test_operator_renders_the_template_and_follows_the_scale(
    cluster: LocalCluster, k8s: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata={"name": "reader"}))
    template = {
        "metadata": {"labels": {"team": "vision", "modeldeploy.io/revision": "forged"}},
        "spec": {
            "serviceAccountName": "reader",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "volumes": [{"name": "settings", "configMap": {"name": "model-settings", "optional": True}}],
            "containers": [
                {"name": "model", "volumeMounts": [{"name": "settings", "mountPath": "/etc/model"}]},
            ],
        },
    }
    apply(cluster, namespace, minimal("templated", template=template, replicas=2, drainPeriod="1s"))

    def stable() -> dict[str, Any] | None:
        status = get(k8s, namespace, "templated").get("status") or {}
        return status if status.get("phase") == "Succeeded" else None

    status = wait_for(stable, 90, "the first revision to become stable", operator.logs)
    revision = status["stableRevision"]
    assert status["selector"] == SELECTOR.format(name="templated")
    deployment = apps.read_namespaced_deployment(f"templated-{revision}", namespace)
    pod = deployment.spec.template
    assert pod.metadata.labels["team"] == "vision"
    assert pod.metadata.labels["modeldeploy.io/revision"] == revision
    assert pod.spec.service_account_name == "reader"
    assert pod.spec.node_selector == {"kubernetes.io/os": "linux"}
    model = pod.spec.containers[0]
    assert [m.mount_path for m in model.volume_mounts] == ["/tmp", "/etc/model"]
    assert [c.name for c in pod.spec.containers] == ["model", "sidecar"]
    binding = client.RbacAuthorizationV1Api(k8s).read_namespaced_role_binding("templated-sidecar", namespace)
    assert {s.name for s in binding.subjects} == {"templated-sidecar", "reader"}

    cluster.kubectl("scale", "-n", namespace, "mdep/templated", "--replicas=4")

    def scaled() -> bool:
        found = apps.read_namespaced_deployment(f"templated-{revision}", namespace)
        replicas = (get(k8s, namespace, "templated").get("status") or {}).get("replicas")
        return bool(found.spec.replicas == 4 and replicas == 4)

    wait_for(scaled, 60, "the stable Deployment and status.replicas to follow kubectl scale", operator.logs)
    assert get(k8s, namespace, "templated")["status"]["stableRevision"] == revision  # no new revision
    assert scale_of(cluster, namespace, "templated")["status"] == {
        "replicas": 4,
        "selector": SELECTOR.format(name="templated"),
    }


def test_model_startup_probe_default_and_template_override_are_accepted(
    k8s: ApiClient, cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    """The operator's default startupProbe and preStop sleep, and a template's own startupProbe,
    reach the Deployments the API server stores (Kubernetes' own validation accepts them)."""
    apps = client.AppsV1Api(k8s)
    override = {"httpGet": {"path": "/livez", "port": 3000}, "periodSeconds": 2, "failureThreshold": 7}
    template = {"spec": {"containers": [{"name": "model", "startupProbe": override}]}}
    bodies = {"probed": minimal("probed"), "own-probe": minimal("own-probe", template=template)}
    for body in bodies.values():
        apply(cluster, namespace, body)

    stops: dict[str, Any] = {}

    def startup_probe(name: str) -> dict[str, Any] | None:
        revision = revision_hash(ModelDeployment.model_validate(get(k8s, namespace, name)).spec)
        found = apps.list_namespaced_deployment(namespace, field_selector=f"metadata.name={name}-{revision}")
        if not found.items:
            return None
        model = found.items[0].spec.template.spec.containers[0]
        probe: dict[str, Any] = k8s.sanitize_for_serialization(model.startup_probe)
        stops[name] = k8s.sanitize_for_serialization(model.lifecycle)
        return probe

    default = wait_for(lambda: startup_probe("probed"), 60, "the default Deployment", operator.logs)
    assert default["httpGet"] == {"path": "/readyz", "port": 3000, "scheme": "HTTP"}
    assert (default["periodSeconds"], default["timeoutSeconds"], default["failureThreshold"]) == (5, 5, 120)
    assert stops["probed"] == {"preStop": {"sleep": {"seconds": 10}}}
    own = wait_for(lambda: startup_probe("own-probe"), 60, "the overriding Deployment", operator.logs)
    assert own["httpGet"]["path"] == "/livez"
    assert (own["periodSeconds"], own["failureThreshold"]) == (2, 7)
