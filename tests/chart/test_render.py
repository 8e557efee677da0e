"""The Helm chart rendered by the real Helm client: lint, every ci/ values file, the pod spec, RBAC,
monitoring objects (alert rules checked by promtool) and refused values. No cluster needed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from modeldeploy.operator import metrics as operator_metrics
from modeldeploy.operator.analysis import metrics as analysis_metrics
from modeldeploy.operator.api import ModelDeploymentSpec
from modeldeploy.operator.planner.children import deployment
from modeldeploy.operator.planner.inputs import ModelDeploymentMeta, PlannerConfig
from modeldeploy.operator.rbac import OPERATOR_RULES
from modeldeploy.operator.settings import ENV_PREFIX, OperatorSettings, settings_from_env
from tests.chart.helm import CHART, CI_VALUES, container_env, helm, kinds, only, render
from tests.support import grafana
from tests.support.modeldeployment_specs import valid_manifest

VALUES = {path.name.removesuffix("-values.yaml"): path for path in CI_VALUES}


def rules_of(name: str, docs: list[dict[str, Any]], kind: str = "ClusterRole") -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = only(docs, kind, name)["rules"]
    return rules


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def test_ci_values_files_exist() -> None:
    assert set(VALUES) >= {"default", "namespaced", "monitoring", "scheduling"}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_strict(values: Path) -> None:
    out = helm("lint", "--strict", str(CHART), "--values", str(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_object_is_named_labelled_and_placed(values: Path) -> None:
    docs = render(values)
    assert docs
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    for doc in docs:
        meta = doc["metadata"]
        assert doc["apiVersion"] and meta["name"], doc
        assert meta["labels"]["app.kubernetes.io/instance"] == "r1"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in meta, doc
        else:
            assert meta["namespace"], doc
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "duplicate objects"


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_operator_env_is_understood_by_the_operator(values: Path) -> None:
    """Every MODELDEPLOY_* variable the chart sets is a setting, and together they validate."""
    env = container_env(operator_container(render(values)))
    ours = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    known = {ENV_PREFIX + name.upper() for name in OperatorSettings.model_fields}
    assert set(ours) <= known, set(ours) - known
    settings = settings_from_env(ours)
    assert settings.metrics_port == 8000


def test_default_pod_is_non_root_read_only_and_restricted() -> None:
    docs = render()
    deployment = only(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(docs)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["command"] == ["modeldeploy-operator"]
    assert container["image"] == "ghcr.io/modeldeploy/modeldeploy:0.1.0"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "--liveness-port=8080" in container["args"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert pod["serviceAccountName"] == "r1-modeldeploy"

    env = container_env(container)
    assert env["MODELDEPLOY_NAMESPACES"] == ""
    assert "MODELDEPLOY_PEERING" not in env
    # The sidecar has its own image, of the chart's version, and the operator's default is the same.
    assert env["MODELDEPLOY_SIDECAR_IMAGE"] == "ghcr.io/modeldeploy/modeldeploy-sidecar:0.1.0"
    assert env["MODELDEPLOY_SIDECAR_IMAGE"] == OperatorSettings().sidecar_image
    settings = settings_from_env(env)
    assert settings.namespaces == () and settings.peering is None
    assert settings.sidecar_resources == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    pod_id = [e for e in container["env"] if e["name"] == "POD_ID"]
    assert pod_id[0]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_cluster_wide_rbac_is_exactly_operator_rules() -> None:
    docs = render()
    assert rules_of("r1-modeldeploy", docs) == OPERATOR_RULES
    binding = only(docs, "ClusterRoleBinding", "r1-modeldeploy")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "r1-modeldeploy",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "r1-modeldeploy", "namespace": "mdsys"}]
    assert not kinds(docs, "Role") and not kinds(docs, "RoleBinding")
    assert not kinds(docs, "ClusterKopfPeering")


def test_namespaced_mode_grants_per_namespace_and_peers() -> None:
    docs = render(VALUES["namespaced"])
    roles = kinds(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    operator_resources = {r for rule in OPERATOR_RULES for r in rule["resources"]}
    for role in roles:
        role_resources = {r for rule in role["rules"] for r in rule["resources"]}
        assert role_resources < operator_resources
        assert not role_resources & {"namespaces", "customresourcedefinitions", "clusterkopfpeerings"}
    bindings = kinds(docs, "RoleBinding")
    assert all(b["subjects"][0]["namespace"] == "mdsys" for b in bindings)
    cluster_role = only(docs, "ClusterRole", "r1-modeldeploy-cluster")
    assert all(set(rule["verbs"]) <= {"get", "list", "watch", "patch"} for rule in cluster_role["rules"])
    assert all(
        rule["resources"] == ["clusterkopfpeerings"]
        for rule in cluster_role["rules"]
        if "patch" in rule["verbs"]
    )
    assert [c["metadata"]["name"] for c in kinds(docs, "ClusterRole")].count("r1-modeldeploy") == 0

    peerings = kinds(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    settings = settings_from_env(container_env(operator_container(docs)))
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.peering == "r1-modeldeploy" == peerings[0]["metadata"]["name"]
    assert settings.log_level == "DEBUG"
    assert settings.default_prometheus_url == "http://prometheus.team-a:9090"


def test_cluster_wide_peering_is_a_cluster_kopf_peering() -> None:
    docs = render(sets=("leaderElection.enabled=true", "replicas=3", "leaderElection.name=md"))
    assert only(docs, "ClusterKopfPeering")["metadata"]["name"] == "md"
    assert container_env(operator_container(docs))["MODELDEPLOY_PEERING"] == "md"


def test_scheduling_and_images() -> None:
    docs = render(VALUES["scheduling"])
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert pod["tolerations"][0]["key"] == "node-role.kubernetes.io/control-plane"
    assert "podAntiAffinity" in pod["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["serviceAccountName"] == "modeldeploy-operator"
    assert only(docs, "ServiceAccount")["metadata"]["annotations"] == {"iam.example.com/role": "modeldeploy"}
    container = operator_container(docs)
    assert container["image"] == "registry.example.com/platform/modeldeploy:0.1.0-rc1"
    assert container["imagePullPolicy"] == "Always"
    assert "--log-level=WARNING" in container["args"]
    settings = settings_from_env(container_env(container))
    assert settings.sidecar_image == "registry.example.com/platform/modeldeploy-sidecar:0.1.0-rc1"
    assert settings.sidecar_image_pull_policy == "Always"
    assert settings.sidecar_resources == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert not kinds(docs, "Service"), "metrics.service.enabled=false"
    assert not [c for c in kinds(docs, "ClusterRole") if "aggregate" in c["metadata"]["name"]]
    labels = only(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "ml-platform"
    assert "app.kubernetes.io/managed-by" not in labels, (
        "KWOK and PodMonitors treat managed-by=modeldeploy as a model pod"
    )


def test_monitoring_objects_select_what_exists() -> None:
    docs = render(VALUES["monitoring"])
    service = only(docs, "Service")
    monitor = only(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert (
        service["spec"]["selector"].items()
        <= only(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True  # the operator's namespace/model labels
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in operator_container(docs)["ports"]}

    pod_monitor = only(docs, "PodMonitor")
    assert pod_monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/managed-by": "modeldeploy"}
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_pod_monitor_names_the_sidecar_port_and_labels_the_planner_renders() -> None:
    meta = ModelDeploymentMeta(name="iris", namespace="ml", uid="u", generation=1)
    spec = ModelDeploymentSpec.model_validate(valid_manifest()["spec"])
    rendered = deployment(meta, spec, "abc", 1, PlannerConfig(sidecar_image="md:1"))
    pod = rendered["spec"]["template"]
    monitor = only(render(VALUES["monitoring"]), "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports


def test_pod_monitor_follows_watched_namespaces() -> None:
    docs = render(sets=("metrics.podMonitor.enabled=true", "watchNamespaces={ml,ml-staging}"))
    assert only(docs, "PodMonitor")["spec"]["namespaceSelector"] == {"matchNames": ["ml", "ml-staging"]}


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make install` installs the prometheus Debian package"
    rule = only(render(VALUES["monitoring"]), "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {
        "ModelDeploymentRolledBack",
        "ModelDeploymentAnalysisInconclusive",
        "ModelDeployOperatorDown",
    }
    assert "modeldeploy_operator_rollbacks_total" in alerts["ModelDeploymentRolledBack"]["expr"]
    assert "[30m]" in alerts["ModelDeploymentAnalysisInconclusive"]["expr"]
    assert 'job="r1-modeldeploy-metrics"' in alerts["ModelDeployOperatorDown"]["expr"]
    assert all(r["labels"]["team"] == "ml-platform" for r in alerts.values())
    assert "{{ $labels.model }}" in alerts["ModelDeploymentRolledBack"]["annotations"]["summary"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 3 rules found" in out.stdout


def test_alert_metric_names_exist_in_the_operator() -> None:
    """The alerts query series the operator really exports."""
    assert operator_metrics.ROLLBACKS and analysis_metrics.ANALYSIS_METRICS  # registered on import
    names = {sample.name for family in REGISTRY.collect() for sample in family.samples}
    names |= {family.name + "_total" for family in REGISTRY.collect() if family.type == "counter"}
    assert {"modeldeploy_operator_rollbacks_total", "modeldeploy_analysis_verdicts_total"} <= names


def test_grafana_dashboard_config_map_carries_the_generated_dashboard() -> None:
    """kube-prometheus-stack's Grafana sidecar loads every ConfigMap labelled grafana_dashboard."""
    assert not kinds(render(), "ConfigMap")  # off by default
    config_map = only(render(VALUES["monitoring"]), "ConfigMap", "r1-modeldeploy-dashboard")
    assert config_map["metadata"]["namespace"] == "mdsys"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "ML"}
    assert list(config_map["data"]) == ["modeldeploy.json"]
    assert json.loads(config_map["data"]["modeldeploy.json"]) == grafana.load()

    sets = (
        "grafana.dashboards.enabled=true",
        "grafana.dashboards.namespace=monitoring",
        "grafana.dashboards.label=dashboards",
        "grafana.dashboards.labelValue=modeldeploy",
    )
    moved = only(render(sets=sets), "ConfigMap")
    assert moved["metadata"]["namespace"] == "monitoring"
    assert moved["metadata"]["labels"]["dashboards"] == "modeldeploy"
    assert "grafana_dashboard" not in moved["metadata"]["labels"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("replicas=2",), "replicas > 1 needs leaderElection.enabled=true"),
        (("logLevel=LOUD",), "/logLevel"),
        (("watchNamespaces[0]=Bad_Name",), "/watchNamespaces/0"),
        (("prometheus.url=prometheus:9090",), "/prometheus"),
        (
            ("metrics.serviceMonitor.enabled=true", "metrics.service.enabled=false"),
            "needs metrics.service.enabled",
        ),
        (("serviceAccount.create=false",), "serviceAccount.name is required"),
        (("sidecar.image.pullPolicy=Sometimes",), "/sidecar/image/pullPolicy"),
        (("unknownKey=1",), "unknownKey"),
        (("grafana.dashboards.enabled=true", "grafana.dashboards.label="), "/grafana/dashboards/label"),
        (("grafana.dashboards.label=bad label",), "/grafana/dashboards/label"),
    ],
)
def test_bad_values_are_refused_with_the_reason(sets: tuple[str, ...], message: str) -> None:
    args = ["template", "r1", str(CHART)]
    for item in sets:
        args += ["--set", item]
    out = helm(*args, check=False)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
