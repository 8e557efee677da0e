"""spec.template's schema: Kubernetes' own PodTemplateSpec, made structural (api/kubeschema.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.operator.api import kubeschema
from modeldeploy.operator.api.pod_template import POD_SPEC_RULES, load_schema

ROOT = Path(__file__).resolve().parents[3]
MODULE = kubeschema.module_dir(os.environ.get("MODELDEPLOY_CACHE"))
needs_module = pytest.mark.skipif(
    not (MODULE / kubeschema.SOURCE_FILE).exists(),
    reason=f"k8s.io/kubernetes is not in the Go module cache ({MODULE}); `make cluster-build` fetches it",
)


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}[*]")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / "modeldeployment.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    result: dict[str, Any] = spec["properties"]["template"]
    return result


@needs_module
def test_committed_schema_is_current() -> None:
    assert kubeschema.OUTPUT.read_text(encoding="utf-8") == kubeschema.generate(MODULE), (
        "pod_template.schema.json is stale: run `make kube-schema` and commit the result"
    )


@needs_module
def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert kubeschema.main(["--output", str(target)]) == 0
    assert kubeschema.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text().replace("nodeSelector", "nodeSelectr"))
    assert kubeschema.main(["--check", "--output", str(target)]) == 1


def test_the_crd_carries_the_committed_schema(template: dict[str, Any]) -> None:
    committed = load_schema()
    pod = committed["properties"]["spec"]
    pod["x-kubernetes-validations"] = list(POD_SPEC_RULES)
    # The lists the CEL rules walk are bounded (the API server estimates the rules' cost).
    for field, bound in (("containers", 32), ("initContainers", 32), ("volumes", 128)):
        pod["properties"][field]["maxItems"] = bound
        pod["properties"][field]["items"]["properties"]["name"]["maxLength"] = 63
    assert template["properties"] == committed["properties"]


def test_structural(template: dict[str, Any]) -> None:
    for path, node in _walk(template):
        assert not {"$ref", "oneOf", "allOf", "title", "nullable", "x-kubernetes-patch-strategy"} & set(
            node
        ), path
        assert node.get("type") or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []) or "default" in item["properties"][key], (path, key)
        if "default" in node:
            assert node["default"] not in ("", 0, False, {}, []) or path.endswith(".name"), path


def test_pod_spec_fields(template: dict[str, Any]) -> None:
    pod = template["properties"]["spec"]
    fields = set(pod["properties"])
    wanted = {
        "nodeSelector",
        "tolerations",
        "affinity",
        "topologySpreadConstraints",
        "priorityClassName",
        "serviceAccountName",
        "imagePullSecrets",
        "volumes",
        "initContainers",
        "containers",
        "securityContext",
        "runtimeClassName",
        "terminationGracePeriodSeconds",
        "dnsPolicy",
        "dnsConfig",
    }
    assert wanted <= fields
    assert not set(kubeschema.LEFT_OUT) & fields
    assert "containers" not in pod.get("required", [])
    assert set(template["properties"]["metadata"]["properties"]) == {"labels", "annotations"}
    container = pod["properties"]["containers"]["items"]["properties"]
    assert {"volumeMounts", "envFrom", "ports", "lifecycle", "securityContext", "startupProbe"} <= set(
        container
    )


def test_kubernetes_markers_and_enums_are_kept(template: dict[str, Any]) -> None:
    pod = template["properties"]["spec"]["properties"]
    containers = pod["containers"]
    assert (containers["x-kubernetes-list-type"], containers["x-kubernetes-list-map-keys"]) == (
        "map",
        ["name"],
    )
    ports = containers["items"]["properties"]["ports"]
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert ports["items"]["properties"]["protocol"]["default"] == "TCP"
    assert pod["nodeSelector"]["x-kubernetes-map-type"] == "atomic"
    assert pod["dnsPolicy"]["enum"] == ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
    assert pod["tolerations"]["items"]["properties"]["operator"]["enum"] == ["Equal", "Exists"]
    limits = containers["items"]["properties"]["resources"]["properties"]["limits"]["additionalProperties"]
    assert limits["x-kubernetes-int-or-string"] is True
    assert limits["pattern"] == kubeschema.QUANTITY_PATTERN


def test_descriptions_are_trimmed_below_the_first_level(template: dict[str, Any]) -> None:
    pod = template["properties"]["spec"]["properties"]
    assert "Possible enum values" not in pod["dnsPolicy"]["description"]
    assert pod["nodeSelector"]["description"].startswith("NodeSelector is a selector which must be true")
    deep = pod["affinity"]["properties"]["nodeAffinity"]["properties"]
    for field in deep.values():
        description = field["description"]
        assert description.count(". ") == 0, description


def test_go_enums_reads_the_generated_definitions() -> None:
    source = (
        "func schema_k8sio_api_core_v1_Toleration(ref common.ReferenceCallback) common.OpenAPIDefinition {\n"
        '\t\t\t\t\t"operator": {\n'
        "\t\t\t\t\t\tSchemaProps: spec.SchemaProps{\n"
        '\t\t\t\t\t\t\tEnum:        []interface{}{"Equal", "Exists"},\n'
        "\t\t\t\t\t\t},\n"
        "func schema_k8sio_api_core_v1_Other(ref common.ReferenceCallback) common.OpenAPIDefinition {\n"
    )
    assert kubeschema.go_enums(source) == {("io.k8s.api.core.v1.Toleration", "operator"): ["Equal", "Exists"]}


def test_a_recursive_definition_is_refused() -> None:
    definitions = {
        kubeschema.POD_TEMPLATE: {
            "type": "object",
            "properties": {"x": {"$ref": "#/components/schemas/" + kubeschema.POD_TEMPLATE}},
        }
    }
    with pytest.raises(kubeschema.KubeSchemaError, match="recursive definition"):
        kubeschema.pod_template_schema(definitions)


def test_docs_name_every_field_left_out() -> None:
    docs = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    table = docs[docs.index("**Fields left out**") : docs.index("## Scaling")]
    for field in kubeschema.LEFT_OUT:
        assert f"`{field}`" in table, field


def test_crd_fits_a_client_side_apply_annotation() -> None:
    """kubectl apply (client-side) stores the object in an annotation, at most 256 KiB."""
    crd = yaml.safe_load((ROOT / "crds" / "modeldeployment.yaml").read_text())
    assert len(json.dumps(crd, separators=(",", ":"))) < 256 * 1024
