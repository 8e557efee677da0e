from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy.operator.api import ModelDeploymentSpec, revision_hash
from modeldeploy.operator.api.revision import model_fingerprint
from tests.support.modeldeployment_specs import valid_manifest

Change = Callable[[dict[str, Any]], None]


def spec_dict() -> dict[str, Any]:
    spec: dict[str, Any] = valid_manifest()["spec"]
    spec["model"]["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    spec["model"]["args"] = ["serve", "--port", "3000"]
    return spec


def rev(spec: dict[str, Any]) -> str:
    return revision_hash(ModelDeploymentSpec.model_validate(spec))


def changed(change: Change) -> str:
    spec = spec_dict()
    change(spec)
    return rev(spec)


# The hash of spec_dict(). If this changes, every running ModelDeployment would start a new rollout
# when the operator is upgraded: change the canonical form only on purpose.
PINNED = "224fd05370"


def test_hash_is_ten_hex_characters_and_pinned() -> None:
    value = rev(spec_dict())
    assert re.fullmatch(r"[0-9a-f]{10}", value)
    assert value == PINNED


def test_hash_is_the_same_in_another_interpreter() -> None:
    code = (
        "from modeldeploy.operator.api import ModelDeploymentSpec, revision_hash\n"
        "from tests.unit.api.test_revision import spec_dict\n"
        "print(revision_hash(ModelDeploymentSpec.model_validate(spec_dict())))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == rev(spec_dict())


def _set(path: str, value: Any) -> Change:
    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = copy.deepcopy(value)

    return change


NOT_POD_TEMPLATE = {
    "replicas": _set("replicas", 7),
    "steps": _set("rollout.steps", [{"canary": {"weight": 100, "duration": "1m"}}]),
    "analysis": _set("rollout.analysis", {"interval": "1m", "failureLimit": 5}),
    "prometheus": _set("prometheus", {"url": "http://other:9090"}),
    "traffic": _set("traffic", {"stickyHeader": "x-user"}),
    "progressDeadline": _set("progressDeadline", "1h"),
    "drainPeriod": _set("drainPeriod", "0s"),
}

POD_TEMPLATE = {
    "image": _set("model.image", "registry.example.com/iris:2.1"),
    "port": _set("model.port", 8000),
    "command": _set("model.command", ["python"]),
    "args": _set("model.args", ["serve", "--port", "3001"]),
    "env value": _set("model.env", [{"name": "A", "value": "2"}]),
    "env added": _set("model.env", [{"name": "A", "value": "1"}, {"name": "B", "value": "1"}]),
    "env from secret": _set(
        "model.env", [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    ),
    "resources": _set("model.resources.limits", {"memory": "4Gi"}),
    "readinessProbe": _set("model.readinessProbe", {"httpGet": {"path": "/healthz"}}),
    "livenessProbe": _set("model.livenessProbe", {"httpGet": {"path": "/livez"}, "periodSeconds": 5}),
    "imagePullPolicy": _set("model.imagePullPolicy", "Always"),
}


@pytest.mark.parametrize("change", NOT_POD_TEMPLATE.values(), ids=NOT_POD_TEMPLATE.keys())
def test_fields_outside_the_pod_template_keep_the_revision(change: Change) -> None:
    assert changed(change) == rev(spec_dict())


@pytest.mark.parametrize("change", POD_TEMPLATE.values(), ids=POD_TEMPLATE.keys())
def test_pod_template_fields_make_a_new_revision(change: Change) -> None:
    assert changed(change) != rev(spec_dict())


def test_every_pod_template_change_gives_a_different_revision() -> None:
    values = [changed(change) for change in POD_TEMPLATE.values()]
    assert len(set(values)) == len(values)


def test_defaults_written_out_give_the_same_revision() -> None:
    """The API server fills in defaults; the hash must not depend on who filled them in."""
    explicit = _set("model.port", 3000)
    probe_default = _set("model.readinessProbe", {"httpGet": {"path": "/r"}})
    probe_explicit = _set(
        "model.readinessProbe",
        {
            "httpGet": {"path": "/r", "scheme": "HTTP"},
            "initialDelaySeconds": 0,
            "periodSeconds": 10,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
    )
    assert changed(explicit) == rev(spec_dict())
    assert changed(probe_default) == changed(probe_explicit)


def test_map_key_order_does_not_matter_but_list_order_does() -> None:
    reordered = _set("model.resources.requests", {"memory": "1Gi", "cpu": "500m"})
    assert changed(reordered) == rev(spec_dict())
    two = [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)"}]
    assert changed(_set("model.env", two)) != changed(_set("model.env", list(reversed(two))))
    assert changed(_set("model.args", ["a", "b"])) != changed(_set("model.args", ["b", "a"]))


def test_numeric_quantity_equals_its_string_form() -> None:
    assert changed(_set("model.resources.limits", {"cpu": 2})) == changed(
        _set("model.resources.limits", {"cpu": "2"})
    )


def test_fingerprint_is_canonical_camel_case_json() -> None:
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"image": "x", "imagePullPolicy": "Always"}, "rollout": {"steps": [{"pause": {}}]}}
    )
    assert model_fingerprint(spec.model) == '{"image":"x","imagePullPolicy":"Always"}'


# --- spec.template -------------------------------------------------------------------------------

TEMPLATE_CHANGES = {
    "nodeSelector": _set("template.spec.nodeSelector", {"gpu": "a100"}),
    "tolerations": _set("template.spec.tolerations", [{"key": "gpu", "operator": "Exists"}]),
    "affinity": _set(
        "template.spec.affinity",
        {
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
            "nodeAffinity": {"x": 1},
        },
    ),
    "serviceAccountName": _set("template.spec.serviceAccountName", "reader"),
    "imagePullSecrets": _set("template.spec.imagePullSecrets", [{"name": "registry"}]),
    "volumes": _set("template.spec.volumes", [{"name": "cache", "emptyDir": {}}]),
    "initContainers": _set("template.spec.initContainers", [{"name": "fetch", "image": "busybox"}]),
    "extra container": _set("template.spec.containers", [{"name": "exporter", "image": "exporter:1"}]),
    "model volumeMounts": _set(
        "template.spec.containers", [{"name": "model", "volumeMounts": [{"name": "c", "mountPath": "/c"}]}]
    ),
    "pod securityContext": _set("template.spec.securityContext", {"fsGroup": 2000}),
    "runtimeClassName": _set("template.spec.runtimeClassName", "nvidia"),
    "terminationGracePeriodSeconds": _set("template.spec.terminationGracePeriodSeconds", 90),
    "label": _set("template.metadata.labels", {"team": "vision"}),
    "annotation": _set("template.metadata.annotations", {"sidecar.istio.io/inject": "false"}),
}


@pytest.mark.parametrize("change", TEMPLATE_CHANGES.values(), ids=TEMPLATE_CHANGES.keys())
def test_template_changes_make_a_new_revision(change: Change) -> None:
    assert changed(change) != rev(spec_dict())


def test_every_template_change_gives_a_different_revision() -> None:
    values = [changed(change) for change in TEMPLATE_CHANGES.values()]
    assert len(set(values)) == len(values)


@pytest.mark.parametrize(
    "empty",
    [
        {},
        {"metadata": {}, "spec": {}},
        {"metadata": {"labels": {}, "annotations": {}}, "spec": {"volumes": [], "nodeSelector": {}}},
    ],
    ids=["empty", "empty parts", "empty maps and lists"],
)
def test_a_template_that_says_nothing_keeps_the_revision(empty: dict[str, Any]) -> None:
    """Adding an empty template (or the API server storing one) must not start a rollout."""
    assert changed(_set("template", empty)) == PINNED


def test_template_map_order_does_not_matter_but_list_order_does() -> None:
    one = _set("template.spec.nodeSelector", {"a": "1", "b": "2"})
    other = _set("template.spec.nodeSelector", {"b": "2", "a": "1"})
    assert changed(one) == changed(other)
    volumes = [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}]
    assert changed(_set("template.spec.volumes", volumes)) != changed(
        _set("template.spec.volumes", list(reversed(volumes)))
    )


def test_scaling_keeps_the_revision_with_a_template() -> None:
    """The scale subresource (kubectl scale, an HPA) changes replicas only: no rollout."""
    with_template = _set("template.spec.nodeSelector", {"gpu": "a100"})
    scaled = spec_dict()
    with_template(scaled)
    before = rev(scaled)
    scaled["replicas"] = 9
    assert rev(scaled) == before
