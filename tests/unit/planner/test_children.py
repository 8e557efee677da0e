"""The manifests: Deployment (model + sidecar), Services, PDB, routing ConfigMap, RBAC; parsing."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from modeldeploy.contract.routing import RoutingTable
from modeldeploy.operator.api import ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.operator.planner import (
    ModelDeploymentMeta,
    ObservedChildren,
    ObservedRevision,
    PlannerConfig,
    model_selector,
    plan,
    routing_from_configmap,
)
from tests.support.sidecar_binary import sidecar_binary
from tests.unit.planner.harness import CONFIG, T0, make_spec, rev

META = ModelDeploymentMeta("iris", "ml", "uid-iris", 3)
V1 = "registry.example.com/iris:1"
R1 = rev(V1)


def first_plan(
    spec: ModelDeploymentSpec | None = None, config: PlannerConfig = CONFIG
) -> dict[tuple[str, str], Any]:
    result = plan(META, spec or make_spec(V1), ModelDeploymentStatus(), ObservedChildren(), T0, config)
    return {(m["kind"], m["metadata"]["name"]): m for m in result.manifests}


def test_every_child_is_owned_and_labelled() -> None:
    children = first_plan()
    assert set(children) == {
        ("ConfigMap", "iris-routing"),
        ("ServiceAccount", "iris-sidecar"),
        ("Role", "iris-sidecar"),
        ("RoleBinding", "iris-sidecar"),
        ("Service", "iris"),
        ("Deployment", f"iris-{R1}"),
        ("Service", f"iris-{R1}"),
        ("PodDisruptionBudget", f"iris-{R1}"),
    }
    for manifest in children.values():
        meta = manifest["metadata"]
        assert meta["namespace"] == "ml"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "modeldeploy.io/v1alpha1",
                "kind": "ModelDeployment",
                "name": "iris",
                "uid": "uid-iris",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy"
        assert meta["labels"]["modeldeploy.io/model"] == "iris"
    assert model_selector("iris") == "modeldeploy.io/model=iris,app.kubernetes.io/managed-by=modeldeploy"


def test_deployment_pod_has_model_and_sidecar_containers() -> None:
    spec = make_spec(
        V1,
        model={
            "image": V1,
            "port": 3100,
            "args": ["serve", "service:Iris"],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ],
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        },
    )
    deployment = first_plan(spec)[("Deployment", f"iris-{rev_of(spec)}")]
    assert deployment["spec"]["replicas"] == 4
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "modeldeploy.io/model": "iris",
        "modeldeploy.io/revision": rev_of(spec),
    }
    assert deployment["spec"]["progressDeadlineSeconds"] == 300
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["modeldeploy.io/revision"] == rev_of(spec)
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }
    pod = template["spec"]
    assert pod["serviceAccountName"] == "iris-sidecar"
    assert pod["securityContext"]["runAsNonRoot"] is True
    model, sidecar = pod["containers"]
    assert model["name"] == "model" and sidecar["name"] == "sidecar"

    assert model["image"] == V1
    assert model["args"] == ["serve", "service:Iris"]
    assert model["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "BENTOML_HOME", "value": "/tmp/bentoml"},  # writable: the root filesystem is not
    ]
    assert model["ports"] == [{"name": "model", "containerPort": 3100, "protocol": "TCP"}]
    assert model["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    assert model["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 3100, "scheme": "HTTP"}
    assert model["livenessProbe"]["httpGet"]["path"] == "/livez"

    assert sidecar["image"] == CONFIG.sidecar_image
    assert sidecar["command"] == ["modeldeploy-sidecar"]
    assert {p["name"]: p["containerPort"] for p in sidecar["ports"]} == {"http": 8080, "metrics": 9090}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "scheme": "HTTP"}
    for container in (model, sidecar):
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]

    # The sidecar's environment is exactly what the sidecar binary accepts.
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["MODELDEPLOY_UPSTREAM"] == "http://127.0.0.1:3100"
    assert env["MODELDEPLOY_ROUTING_CONFIGMAP"] == "iris-routing"
    settings = sidecar_settings(env)
    assert (settings["model"], settings["namespace"], settings["revision"]) == ("iris", "ml", rev_of(spec))
    assert (settings["port"], settings["metrics_port"]) == (8080, 9090)
    assert (settings["upstream"], settings["routing_configmap"]) == ("http://127.0.0.1:3100", "iris-routing")


def sidecar_settings(env: dict[str, str]) -> dict[str, Any]:
    """The settings the Rust sidecar puts in force with exactly `env` (`--check-config`)."""
    result = subprocess.run(
        [str(sidecar_binary()), "--check-config"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    settings: dict[str, Any] = json.loads(result.stdout)
    return settings


def rev_of(spec: ModelDeploymentSpec) -> str:
    from modeldeploy.operator.api import revision_hash

    return revision_hash(spec)


def test_custom_probe_keeps_its_settings_and_defaults_its_port() -> None:
    spec = make_spec(
        V1,
        model={"image": V1, "readinessProbe": {"httpGet": {"path": "/ready"}, "initialDelaySeconds": 30}},
    )
    model = first_plan(spec)[("Deployment", f"iris-{rev_of(spec)}")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert model["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 3000, "scheme": "HTTP"}
    assert model["readinessProbe"]["initialDelaySeconds"] == 30


def test_services_select_revisions_and_entry_selects_stable() -> None:
    children = first_plan()
    entry = children[("Service", "iris")]
    assert entry["spec"]["selector"] == {"modeldeploy.io/model": "iris", "modeldeploy.io/revision": R1}
    assert entry["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    per_revision = children[("Service", f"iris-{R1}")]
    assert per_revision["spec"]["selector"] == entry["spec"]["selector"]
    assert [p["name"] for p in per_revision["spec"]["ports"]] == ["http", "metrics"]


def test_pdb_only_with_more_than_one_replica() -> None:
    assert first_plan()[("PodDisruptionBudget", f"iris-{R1}")]["spec"]["maxUnavailable"] == 1
    single = first_plan(make_spec(V1, replicas=1))
    assert not [key for key in single if key[0] == "PodDisruptionBudget"]


def test_pdb_of_a_scaled_in_stable_is_deleted_when_observed() -> None:
    spec = make_spec(V1, replicas=1)
    first = plan(META, make_spec(V1), ModelDeploymentStatus(), ObservedChildren(), T0, CONFIG)
    pdb = next(m for m in first.manifests if m["kind"] == "PodDisruptionBudget")
    observed = ObservedChildren.from_objects(
        [
            {
                "metadata": {"name": f"iris-{R1}", "labels": {"modeldeploy.io/revision": R1}},
                "spec": {"replicas": 4},
            }
        ],
        next(m for m in first.manifests if m["kind"] == "ConfigMap"),
        [pdb, *(m for m in first.manifests if m["kind"] == "Service")],
    )
    result = plan(META, spec, first.status, observed, T0, CONFIG)
    assert [(d.kind, d.name) for d in result.delete] == [("PodDisruptionBudget", f"iris-{R1}")]


def test_routing_configmap_holds_the_table() -> None:
    configmap = first_plan()[("ConfigMap", "iris-routing")]
    table = RoutingTable.from_json(configmap["data"]["routing.json"])
    assert table.model == "iris" and table.namespace == "ml"
    assert table.stable.revision == R1 and table.stable.url == f"http://iris-{R1}.ml.svc:8080"
    assert table.generation == 1
    assert routing_from_configmap(configmap) == table
    assert routing_from_configmap(None) is None
    assert routing_from_configmap({"data": {"routing.json": "{not json"}}) is None


def test_traffic_options_reach_the_routing_table() -> None:
    spec = make_spec(V1, traffic={"stickyHeader": "X-Model-Key", "shadowComparison": {"mode": "exact"}})
    table = RoutingTable.from_json(first_plan(spec)[("ConfigMap", "iris-routing")]["data"]["routing.json"])
    assert table.sticky_header == "x-model-key"
    assert table.comparison.mode == "exact"


def test_rbac_limits_the_sidecar_to_its_configmap_and_can_be_turned_off() -> None:
    role = first_plan()[("Role", "iris-sidecar")]
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["iris-routing"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    without = first_plan(config=PlannerConfig(sidecar_image="x:1", sidecar_rbac=False))
    assert ("Role", "iris-sidecar") not in without
    pod = without[("Deployment", f"iris-{R1}")]["spec"]["template"]["spec"]
    assert "serviceAccountName" not in pod


def test_manifests_are_plain_json() -> None:
    result = plan(META, make_spec(V1), ModelDeploymentStatus(), ObservedChildren(), T0, CONFIG)
    assert json.loads(json.dumps(result.manifests)) == list(result.manifests)
    assert json.loads(json.dumps(result.status_patch)) == result.status_patch


def test_observed_revision_from_a_deployment() -> None:
    observed = ObservedRevision.from_deployment(
        {
            "metadata": {
                "name": "iris-abc",
                "labels": {"modeldeploy.io/revision": "abc"},
                "creationTimestamp": "2026-11-22T10:00:00Z",
            },
            "spec": {"replicas": 3},
            "status": {"readyReplicas": 2},
        }
    )
    assert observed == ObservedRevision("abc", 3, 2)
    fresh = ObservedRevision.from_deployment({"metadata": {"labels": {"modeldeploy.io/revision": "x"}}})
    assert (fresh.replicas, fresh.ready_replicas, fresh.image) == (1, 0, None)
    rendered = first_plan()[("Deployment", f"iris-{R1}")]
    assert ObservedRevision.from_deployment(rendered).image == V1
    del rendered["metadata"]["annotations"]
    assert ObservedRevision.from_deployment(rendered).image == V1  # from the model container
    with pytest.raises(ValueError, match=r"no modeldeploy\.io/revision label"):
        ObservedRevision.from_deployment({"metadata": {"name": "stray"}})


def test_observed_children_reject_two_deployments_of_one_revision() -> None:
    with pytest.raises(ValueError, match="more than one Deployment for revision"):
        ObservedChildren(revisions=(ObservedRevision("a", 1, 1), ObservedRevision("a", 2, 2)))


def test_meta_from_body() -> None:
    body = {
        "metadata": {
            "name": "iris",
            "namespace": "ml",
            "uid": "u1",
            "generation": 4,
            "annotations": {"a": "b"},
        }
    }
    assert ModelDeploymentMeta.from_body(body) == ModelDeploymentMeta("iris", "ml", "u1", 4, {"a": "b"})
    with pytest.raises(ValueError, match="lacks namespace, uid"):
        ModelDeploymentMeta.from_body({"metadata": {"name": "iris"}})


def test_now_must_be_utc() -> None:
    from datetime import datetime

    with pytest.raises(ValueError, match="UTC"):
        plan(META, make_spec(V1), ModelDeploymentStatus(), ObservedChildren(), datetime(2026, 1, 1), CONFIG)


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    """What the restricted profile asks of every container and the pod, and where BentoML writes."""
    pod = first_plan()[("Deployment", f"iris-{R1}")]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert "hostNetwork" not in pod and "hostPID" not in pod and "hostIPC" not in pod
    mounts = {}
    for container in pod["containers"]:
        assert container["securityContext"] == {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        mounts[container["name"]] = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert all(not p.get("hostPort") for p in container["ports"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert all(set(v) == {"name", "emptyDir"} for v in volumes.values()), "only emptyDir volumes"
    assert set(mounts["model"].values()) | set(mounts["sidecar"].values()) == set(volumes)
    model = pod["containers"][0]
    home = {e["name"]: e.get("value") for e in model["env"]}["BENTOML_HOME"]
    assert any(home.startswith(path + "/") for path in mounts["model"]), "BENTOML_HOME is writable"


def test_a_bentoml_home_from_the_spec_is_kept() -> None:
    spec = make_spec(V1, model={"image": V1, "env": [{"name": "BENTOML_HOME", "value": "/tmp/home"}]})
    model = first_plan(spec)[("Deployment", f"iris-{rev_of(spec)}")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert [e for e in model["env"] if e["name"] == "BENTOML_HOME"] == [
        {"name": "BENTOML_HOME", "value": "/tmp/home"}
    ]
