"""spec.template composed with spec.model and the operator's parts; sizing under the scale subresource."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.operator.api import ModelDeploymentSpec, ModelDeploymentStatus, revision_hash
from modeldeploy.operator.api.pod_template import MODEL_FIELDS_RULE, SIDECAR_RULE, VOLUME_RULE
from modeldeploy.operator.planner import ModelDeploymentMeta, ObservedChildren, plan
from modeldeploy.operator.planner.pod_template import pod_template
from tests.unit.planner.harness import CONFIG, T0, Driver, deployed, make_spec, rev

META = ModelDeploymentMeta("iris", "ml", "uid-iris", 3)
V1 = "registry.example.com/iris:1"
V2 = "registry.example.com/iris:2"

GPU_TEMPLATE: dict[str, Any] = {
    "metadata": {
        "labels": {"team": "vision", "modeldeploy.io/revision": "forged", "app.kubernetes.io/name": "other"},
        "annotations": {"cost-center": "42", "prometheus.io/port": "1234"},
    },
    "spec": {
        "nodeSelector": {"accelerator": "a100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountName": "model-reader",
        "imagePullSecrets": [{"name": "registry"}],
        "securityContext": {"fsGroup": 2000},
        "terminationGracePeriodSeconds": 90,
        "initContainers": [{"name": "fetch-weights", "image": "fetcher:1"}],
        "volumes": [{"name": "model-cache", "persistentVolumeClaim": {"claimName": "cache"}}],
        "containers": [
            {
                "name": "model",
                "volumeMounts": [
                    {"name": "model-cache", "mountPath": "/models"},
                    {"name": "model-cache", "mountPath": "/tmp"},  # the operator's /tmp wins
                ],
                "envFrom": [{"configMapRef": {"name": "model-settings"}}],
                "ports": [
                    {"name": "grpc", "containerPort": 3001, "protocol": "TCP"},
                    {"name": "clash", "containerPort": 3000, "protocol": "TCP"},  # the model port wins
                ],
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "securityContext": {"runAsUser": 1000},
                "startupProbe": {"httpGet": {"path": "/readyz", "port": 3000}, "failureThreshold": 60},
            },
            {"name": "exporter", "image": "exporter:1"},
        ],
    },
}


def spec_with(template: dict[str, Any] | None, **overrides: Any) -> ModelDeploymentSpec:
    spec = make_spec(V1, **overrides)
    return ModelDeploymentSpec.model_validate({**spec.model_dump(by_alias=True), "template": template})


def children(spec: ModelDeploymentSpec) -> dict[tuple[str, str], Any]:
    result = plan(META, spec, ModelDeploymentStatus(), ObservedChildren(), T0, CONFIG)
    return {(m["kind"], m["metadata"]["name"]): m for m in result.manifests}


def pod_of(spec: ModelDeploymentSpec) -> dict[str, Any]:
    deployment = children(spec)[("Deployment", f"iris-{revision_hash(spec)}")]
    template: dict[str, Any] = deployment["spec"]["template"]
    return template


def test_without_a_template_the_pod_is_the_operator_s() -> None:
    assert pod_of(spec_with(None)) == pod_of(spec_with({}))
    pod = pod_of(spec_with(None))["spec"]
    assert [c["name"] for c in pod["containers"]] == ["model", "sidecar"]
    assert [v["name"] for v in pod["volumes"]] == ["model-tmp", "sidecar-tmp"]


def test_operator_labels_and_annotations_win() -> None:
    spec = spec_with(GPU_TEMPLATE)
    metadata = pod_of(spec)["metadata"]
    assert metadata["labels"] == {
        "team": "vision",
        "app.kubernetes.io/name": "iris",
        "app.kubernetes.io/managed-by": "modeldeploy",
        "modeldeploy.io/model": "iris",
        "modeldeploy.io/revision": revision_hash(spec),
    }
    assert metadata["annotations"] == {
        "cost-center": "42",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }


def test_pod_fields_pass_through_and_security_context_is_laid_over_the_operator_s() -> None:
    pod = pod_of(spec_with(GPU_TEMPLATE))["spec"]
    assert pod["nodeSelector"] == {"accelerator": "a100"}
    assert pod["tolerations"] == GPU_TEMPLATE["spec"]["tolerations"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["serviceAccountName"] == "model-reader"
    assert pod["terminationGracePeriodSeconds"] == 90
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroup": 2000,
    }
    assert pod["initContainers"] == [{"name": "fetch-weights", "image": "fetcher:1"}]
    assert [v["name"] for v in pod["volumes"]] == ["model-cache", "model-tmp", "sidecar-tmp"]


def test_the_model_container_merges_spec_model_and_the_template_entry() -> None:
    spec = spec_with(GPU_TEMPLATE)
    containers = pod_of(spec)["spec"]["containers"]
    assert [c["name"] for c in containers] == ["model", "exporter", "sidecar"]
    model = containers[0]
    assert model["image"] == V1
    assert [e["name"] for e in model["env"]] == ["BENTOML_HOME"]
    assert model["envFrom"] == [{"configMapRef": {"name": "model-settings"}}]
    assert model["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert model["startupProbe"]["failureThreshold"] == 60
    assert model["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert model["ports"] == [
        {"name": "model", "containerPort": 3000, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 3001, "protocol": "TCP"},
    ]
    assert model["volumeMounts"] == [
        {"name": "model-tmp", "mountPath": "/tmp"},
        {"name": "model-cache", "mountPath": "/models"},
    ]
    assert model["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "runAsUser": 1000,
    }


def test_the_model_gets_a_default_startup_probe_on_its_readiness_request() -> None:
    """Without one in the template, the model container gets a startupProbe checking what its
    readiness probe checks (spec.model's own path and port when it sets one), generous enough for a
    model that loads for minutes; liveness and readiness keep their own settings."""
    plain = pod_of(spec_with(None))["spec"]["containers"][0]
    assert plain["startupProbe"] == {
        "httpGet": {"path": "/readyz", "port": 3000, "scheme": "HTTP"},
        "periodSeconds": 5,
        "timeoutSeconds": 5,
        "failureThreshold": 120,
    }
    assert plain["livenessProbe"]["timeoutSeconds"] == 5
    # SIGTERM reaches the model after the sidecar's drain delay, so it answers what is forwarded.
    assert plain["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}
    assert plain["readinessProbe"]["timeoutSeconds"] == 5

    custom = spec_with(
        None,
        model={
            "image": V1,
            "port": 3100,
            "readinessProbe": {"httpGet": {"path": "/ready", "scheme": "HTTPS"}, "timeoutSeconds": 9},
        },
    )
    probe = pod_of(custom)["spec"]["containers"][0]
    assert probe["startupProbe"]["httpGet"] == {"path": "/ready", "port": 3100, "scheme": "HTTPS"}
    assert probe["startupProbe"]["failureThreshold"] == 120


def test_the_template_s_startup_probe_and_lifecycle_replace_the_defaults() -> None:
    model = pod_of(spec_with(GPU_TEMPLATE))["spec"]["containers"][0]
    assert model["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert model["startupProbe"] == {"httpGet": {"path": "/readyz", "port": 3000}, "failureThreshold": 60}


def test_the_default_startup_probe_keeps_existing_revision_hashes() -> None:
    """The hash covers the spec, not the rendered Pod: a default the operator adds leaves every
    existing revision's name as it was (docs/api.md says what an operator upgrade does to Pods)."""
    spec = spec_with(None)
    assert revision_hash(spec) == revision_hash(make_spec(V1))
    assert "startupProbe" not in spec.model.model_dump(by_alias=True)


def test_the_sidecar_and_its_volumes_always_win() -> None:
    """Even a template the API server would refuse cannot replace the operator's parts."""
    sidecar = {"name": "sidecar", "image": "evil:1", "volumeMounts": []}
    model = {"name": "model", "image": "x"}
    template = {
        "spec": {
            "containers": [sidecar],
            "volumes": [{"name": "sidecar-tmp", "hostPath": {"path": "/"}}, {"name": "keep", "emptyDir": {}}],
        }
    }
    ours = {"name": "sidecar", "image": "modeldeploy:1"}
    volumes = [{"name": "model-tmp", "emptyDir": {}}, {"name": "sidecar-tmp", "emptyDir": {}}]
    result = pod_template(template, {"a": "b"}, {}, {}, model, ours, volumes)
    assert result["spec"]["containers"] == [model, ours]
    assert result["spec"]["volumes"] == [{"name": "keep", "emptyDir": {}}, *volumes]


def test_the_template_service_account_is_bound_to_the_sidecar_role() -> None:
    binding = children(spec_with(GPU_TEMPLATE))[("RoleBinding", "iris-sidecar")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "iris-sidecar", "namespace": "ml"},
        {"kind": "ServiceAccount", "name": "model-reader", "namespace": "ml"},
    ]
    plain = children(spec_with(None))[("RoleBinding", "iris-sidecar")]
    assert [s["name"] for s in plain["subjects"]] == ["iris-sidecar"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"containers": [{"name": "sidecar", "image": "x"}]}, SIDECAR_RULE),
        ({"initContainers": [{"name": "sidecar", "image": "x"}]}, SIDECAR_RULE),
        ({"volumes": [{"name": "model-tmp", "emptyDir": {}}]}, VOLUME_RULE),
        ({"containers": [{"name": "model", "image": "other:1"}]}, MODEL_FIELDS_RULE),
        ({"containers": [{"name": "model", "env": [{"name": "A", "value": "1"}]}]}, MODEL_FIELDS_RULE),
        ({"containers": [{"name": "model", "resources": {}}]}, MODEL_FIELDS_RULE),
    ],
    ids=[
        "sidecar container",
        "sidecar init container",
        "reserved volume",
        "model image",
        "model env",
        "resources",
    ],
)
def test_composition_rules_refuse_a_clash(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec_with({"spec": spec})


def test_a_template_change_rolls_out_through_the_steps() -> None:
    driver = deployed(Driver(spec=spec_with(None)))
    stable = driver.status.stable_revision
    driver.change_spec(spec_with({"spec": {"nodeSelector": {"accelerator": "a100"}}}))
    driver.tick()
    status = driver.status
    assert status.stable_revision == stable
    assert status.canary_revision == revision_hash(driver.spec) != stable
    assert status.current_step == 0
    assert "RolloutStarted" in driver.reasons()
    driver.tick()  # its pods are ready: the first step starts
    assert driver.status.step_started_at is not None and "StepStarted" in driver.reasons()


# --- the scale subresource ------------------------------------------------------------------------


def _canary_replicas(driver: Driver) -> int:
    canary = driver.status.canary_revision
    assert canary is not None
    return driver.cluster.deployments[canary].replicas


def test_scaling_during_a_canary_step_resizes_without_restarting_or_skipping() -> None:
    driver = deployed(Driver(spec=make_spec(V1)))
    driver.change_spec(make_spec(V2))
    driver.run_until(lambda d: d.status.current_step == 1 and d.status.step_started_at is not None)
    started = driver.status.step_started_at
    canary = driver.status.canary_revision
    assert _canary_replicas(driver) == 1  # ceil(4 x 10 / 100)

    driver.change_spec(make_spec(V2, replicas=20))  # an HPA scales out mid-step
    driver.tick()
    status = driver.status
    assert (status.canary_revision, status.current_step, status.step_started_at) == (canary, 1, started)
    assert _canary_replicas(driver) == 2  # ceil(20 x 10 / 100)
    assert driver.cluster.deployments[status.stable_revision or ""].replicas == 20
    driver.tick()  # status.replicas is what the operator observed: the next reconcile sees 20 + 2
    status = driver.status
    assert (status.current_step, status.step_started_at) == (1, started)
    assert (
        status.replicas == 22
        and status.selector == "modeldeploy.io/model=iris,app.kubernetes.io/managed-by=modeldeploy"
    )

    driver.change_spec(make_spec(V2, replicas=3))  # and back in
    driver.tick()
    assert (driver.status.current_step, driver.status.step_started_at) == (1, started)
    assert _canary_replicas(driver) == 1
    assert driver.cluster.deployments[status.stable_revision or ""].replicas == 3

    driver.run_until(lambda d: d.status.current_step == 2 and d.status.step_started_at is not None)
    assert driver.status.step_started_at is not None and started is not None
    assert driver.status.step_started_at - started >= timedelta(minutes=1)  # the step's full duration
    assert _canary_replicas(driver) == 2  # ceil(3 x 50 / 100)
    assert driver.reasons().count("StepStarted") == 3


def test_pdb_follows_the_stable_revision_across_replicas() -> None:
    driver = deployed(Driver(spec=make_spec(V1)))
    name = f"iris-{rev(V1)}"
    pdb = driver.cluster.objects[("PodDisruptionBudget", name)]
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"modeldeploy.io/model": "iris", "modeldeploy.io/revision": rev(V1)}},
    }
    driver.change_spec(make_spec(V1, replicas=12))
    driver.tick()
    assert driver.cluster.objects[("PodDisruptionBudget", name)] == pdb
    assert driver.cluster.deployments[rev(V1)].replicas == 12
    driver.change_spec(make_spec(V1, replicas=1))
    driver.tick()
    assert ("PodDisruptionBudget", name) not in driver.cluster.objects  # one pod: nothing to budget
