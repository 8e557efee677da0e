"""The committed CRD is the generator's output, and the generator yields a structural schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from modeldeploy.operator.api import crdgen
from modeldeploy.operator.api.cel import ApiModel, CelRule
from modeldeploy.operator.api.structural import SchemaError, to_structural

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "crds" / "modeldeployment.yaml"


def test_committed_crd_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == crdgen.render(), (
        "crds/modeldeployment.yaml is stale: run `make crds` and commit the result"
    )


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    target = tmp_path / "crd.yaml"
    assert crdgen.main([str(target)]) == 0
    assert crdgen.main(["--check", str(target)]) == 0
    target.write_text(target.read_text() + "# edited\n")
    assert crdgen.main(["--check", str(target)]) == 1


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}[*]")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    crd = yaml.safe_load(COMMITTED.read_text())
    version = crd["spec"]["versions"][0]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


TEMPLATE = ".spec.template"
"""Kubernetes' own schema (kubeschema.py): structural, but without our bounds; tested below."""


def test_schema_is_structural_and_documented(schema: dict[str, Any]) -> None:
    for path, node in _walk(schema):
        assert not {"$ref", "oneOf", "allOf", "title", "nullable"} & set(node), path
        if path == ".metadata" or path.startswith(f"{TEMPLATE}."):
            continue
        typed = node.get("type") or node.get("x-kubernetes-int-or-string")
        assert typed or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        assert node.get("description") or path.endswith(("[]", "[*]")), f"{path} has no description"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
        if node.get("type") == "array":
            assert "maxItems" in node, path
        if node.get("type") == "string" and path not in (".apiVersion", ".kind"):
            assert "maxLength" in node or "enum" in node or node.get("format") == "date-time", path


def test_rules_and_defaults_reach_the_schema(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]
    rollout = spec["properties"]["rollout"]
    messages = [rule["message"] for rule in rollout["x-kubernetes-validations"]]
    assert "canary weights must not decrease from one step to the next" in messages
    step = rollout["properties"]["steps"]["items"]
    assert step["x-kubernetes-validations"] == [
        {
            "rule": "[has(self.shadow), has(self.canary), has(self.pause)].exists_one(x, x)",
            "message": "must set exactly one of shadow, canary or pause",
        }
    ]
    assert set(step["properties"]) == {"shadow", "canary", "pause"}
    analysis = rollout["properties"]["analysis"]
    assert analysis["default"] == {}
    assert analysis["properties"]["interval"]["default"] == "30s"
    assert analysis["properties"]["slo"]["default"] == {}
    assert analysis["properties"]["onInconclusive"]["enum"] == ["Pause", "Fail"]
    ratio = analysis["properties"]["slo"]["properties"]["maxLatencyRatioToStable"]
    assert (ratio["minimum"], ratio["exclusiveMinimum"]) == (0, True)
    assert "default" not in spec["properties"]["prometheus"]
    status = schema["properties"]["status"]
    assert not [path for path, node in _walk(status) if "default" in node]
    env = spec["properties"]["model"]["properties"]["env"]
    assert (env["x-kubernetes-list-type"], env["x-kubernetes-list-map-keys"]) == ("map", ["name"])


def test_crd_metadata() -> None:
    crd = crdgen.crd()
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        "ModelDeployment",
        "modeldeployments",
        ["mdep"],
        ["all", "ml"],
    )
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = [column["name"] for column in version["additionalPrinterColumns"] if "priority" not in column]
    assert columns == ["Phase", "Stable", "Canary", "Weight", "Age"]


class _Leaf(ApiModel):
    """A leaf."""

    value: int = Field(description="A number.")


class _Undocumented(ApiModel):
    """Has a field without a description."""

    leaf: _Leaf = Field(description="Documented.")
    bare: int


class _Unbounded(ApiModel):
    """Has a list without maxItems."""

    items: list[int] = Field(description="No bound.")


class _Mixed(BaseModel):
    """A union of different types."""

    either: int | str = Field(description="Int or string.")


class _WithRule(ApiModel):
    """A model with a rule."""

    __cel_rules__ = (CelRule("self.value > 0", "value must be positive"),)

    value: int = Field(description="A number.")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_Undocumented, ".bare: every field needs a description"),
        (_Unbounded, ".items: a list needs maxItems"),
        (_Mixed, ".either: a union of different types is not structural"),
    ],
)
def test_converter_refuses_what_a_crd_cannot_express(model: type[BaseModel], message: str) -> None:
    with pytest.raises(SchemaError, match=message.replace(".", r"\.", 1)):
        to_structural(model.model_json_schema(by_alias=True))


def test_converter_keeps_model_rules() -> None:
    schema = to_structural(_WithRule.model_json_schema(by_alias=True))
    assert schema["x-kubernetes-validations"] == [
        {"rule": "self.value > 0", "message": "value must be positive"}
    ]
    assert schema["description"] == "A model with a rule."
