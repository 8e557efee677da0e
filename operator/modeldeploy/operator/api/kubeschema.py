"""Extract `spec.template`'s schema from Kubernetes' own OpenAPI v3 definitions, as a structural schema.

    python -m modeldeploy.operator.api.kubeschema            # regenerate pod_template.schema.json
    python -m modeldeploy.operator.api.kubeschema --check    # exit 1 if it is stale

Source: `api/openapi-spec/v3/api__v1_openapi.json` of the `k8s.io/kubernetes` module pinned in
`tests/cluster/controlplane/KUBE_VERSION` (in the Go module cache `make install` fills, so this
needs no network). The output, `pod_template.schema.json` next to this file, is committed: `make
crds` reads it and works offline; a unit test regenerates it and fails when it differs.

What the conversion does (a CRD needs a *structural* schema, and must stay small):

- `$ref` (and `allOf: [$ref]`) inlined; Kubernetes' field descriptions kept, trimmed to their first
  sentence below the first level of the pod spec and of a container (as Argo Rollouts trims its
  Pod template), so the CRD stays well inside the size limits.
- `Quantity` and `IntOrString` become `x-kubernetes-int-or-string` (Quantity with the pattern every
  kubebuilder CRD uses); list and map markers (`x-kubernetes-list-type`, `-list-map-keys`,
  `-map-type`) kept, strategic-merge-patch markers dropped (CRDs do not take them).
- Enums: the committed v3 files leave them out, but the API server serves them (from
  `pkg/generated/openapi/zz_generated.openapi.go` of the same module, read here for the `Enum:`
  of each core/v1 field); they become `enum`, so a bad value gets Kubernetes' own `Unsupported
  value: "X": supported values: ...` (tests/api compares them with the live server's /openapi/v3).
- Defaults: zero values (`""`, `0`, `false`, `{}`) are dropped (they would hide a missing required
  field and clutter every object) except on keys of list maps, which a CRD requires to be defaulted;
  other defaults (a container port's `protocol: TCP`) are kept, so the API server applies them.
- `template.metadata` (and an ephemeral volume's claim template's) is labels and annotations
  only; `template.spec` leaves out the fields in `LEFT_OUT` (docs/api.md says why), and
  `containers` is optional (the model container comes from `spec.model`).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from modeldeploy.contract.generated_file import settle
from modeldeploy.operator.api.pod_template import SCHEMA_FILE

Schema = dict[str, Any]

ROOT = Path(__file__).resolve().parents[4]
KUBE_VERSION_FILE = ROOT / "tests" / "cluster" / "controlplane" / "KUBE_VERSION"
OUTPUT = SCHEMA_FILE
SOURCE_FILE = "api/openapi-spec/v3/api__v1_openapi.json"
ENUM_SOURCE_FILE = "pkg/generated/openapi/zz_generated.openapi.go"
PREFIX = "#/components/schemas/"
POD_TEMPLATE = "io.k8s.api.core.v1.PodTemplateSpec"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

LEFT_OUT: dict[str, str] = {
    "activeDeadlineSeconds": "Deployments refuse it (pods of a Deployment run until replaced)",
    "automountServiceAccountToken": "the sidecar needs the ServiceAccount token to watch its routing table",
    "ephemeralContainers": "cannot be set when a Pod is created (kubectl debug adds them)",
    "hostIPC": "host namespaces break the restricted Pod Security Standard the pods are built for",
    "hostNetwork": "every pod would bind the sidecar's ports 8080/9090 on its node: two pods of a model "
    "could not share a node",
    "hostPID": "host namespaces break the restricted Pod Security Standard the pods are built for",
    "hostname": "every replica would get the same hostname (needs a headless Service the operator "
    "does not make)",
    "hostnameOverride": "every replica would get the same hostname",
    "nodeName": "bypasses the scheduler (resources, taints); use nodeSelector or affinity",
    "overhead": "set by the RuntimeClass admission from runtimeClassName; a Pod that sets it otherwise "
    "is refused",
    "preemptionPolicy": "set by the Priority admission from priorityClassName",
    "priority": "set by the Priority admission from priorityClassName; a Pod that sets it is refused",
    "restartPolicy": "Deployments take Always only",
    "serviceAccount": "deprecated alias of serviceAccountName",
    "setHostnameAsFQDN": "only meaningful with hostname and subdomain, which are left out",
    "subdomain": "needs a headless Service the operator does not make",
}
"""PodSpec fields `spec.template.spec` does not take, and why (rendered into docs/api.md)."""

METADATA_FIELDS = ("labels", "annotations")
FULL_DESCRIPTION_DEPTH = 1
"""Levels below `template.spec` (and below a container) whose descriptions are kept whole."""

_DROPPED_KEYS = {
    "x-kubernetes-patch-strategy",
    "x-kubernetes-patch-merge-key",
    "x-kubernetes-unions",
}
_KEPT_KEYS = {
    "description",
    "type",
    "format",
    "enum",
    "default",
    "pattern",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
}
_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "pattern",
    "anyOf",
    "x-kubernetes-int-or-string",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
)
_GO_FUNC = re.compile(r"^func schema_k8sio_api_core_v1_(\w+)\(", re.MULTILINE)
_GO_PROPERTY = re.compile(r'^\t{5}"(\w+)": \{$', re.MULTILINE)
_GO_ENUM = re.compile(r"^\t+Enum: +\[\]interface\{\}\{(.*)\},$", re.MULTILINE)
_ZERO_VALUES: tuple[Any, ...] = ("", 0, False, {}, [])


class KubeSchemaError(ValueError):
    """Kubernetes' definitions hold something this conversion cannot express."""


def kube_version() -> str:
    return KUBE_VERSION_FILE.read_text(encoding="utf-8").strip()


def module_dir(cache: str | None = None) -> Path:
    """The pinned release's k8s.io/kubernetes module in the Go module cache."""
    base = cache or os.environ.get("MODELDEPLOY_CACHE") or str(ROOT / ".cache")
    return Path(base) / "go" / "mod" / "k8s.io" / f"kubernetes@{kube_version()}"


def generate(module: Path) -> str:
    """The text of pod_template.schema.json from the k8s.io/kubernetes module at `module`."""
    definitions = json.loads((module / SOURCE_FILE).read_text(encoding="utf-8"))["components"]["schemas"]
    enums = go_enums((module / ENUM_SOURCE_FILE).read_text(encoding="utf-8"))
    return render(definitions, enums, kube_version())


Enums = dict[tuple[str, str], list[str]]
"""(core/v1 type, field) -> the values Kubernetes declares for it."""


def go_enums(source: str) -> Enums:
    """The `Enum:` lists of core/v1 fields in zz_generated.openapi.go (the definitions the server serves)."""
    enums: Enums = {}
    functions = list(_GO_FUNC.finditer(source))
    for index, function in enumerate(functions):
        end = functions[index + 1].start() if index + 1 < len(functions) else len(source)
        body = source[function.end() : end]
        properties = list(_GO_PROPERTY.finditer(body))
        for enum in _GO_ENUM.finditer(body):
            owner = [p for p in properties if p.start() < enum.start()]
            if owner:
                values = json.loads("[" + enum.group(1) + "]")
                enums[(f"io.k8s.api.core.v1.{function.group(1)}", owner[-1].group(1))] = values
    return enums


def pod_template_schema(definitions: dict[str, Schema], enums: Enums | None = None) -> Schema:
    """The structural schema of `spec.template` from the `components.schemas` of api__v1_openapi.json."""
    definitions = _with_enums(definitions, enums or {})
    converter = _Converter(definitions)
    template = converter.definition(POD_TEMPLATE)
    meta = converter.definition(OBJECT_META)
    pod_spec = converter.definition("io.k8s.api.core.v1.PodSpec")
    unknown = sorted(set(LEFT_OUT) - set(pod_spec["properties"]))
    if unknown:
        raise KubeSchemaError(f"LEFT_OUT names fields PodSpec does not have: {unknown}")
    pod_spec["properties"] = {
        name: field for name, field in pod_spec["properties"].items() if name not in LEFT_OUT
    }
    pod_spec["required"] = [name for name in pod_spec.get("required", []) if name != "containers"]
    if not pod_spec["required"]:
        del pod_spec["required"]
    metadata: Schema = {
        "description": "Labels and annotations of the pods (the operator's own labels are added and win).",
        "type": "object",
        "properties": {name: meta["properties"][name] for name in METADATA_FIELDS},
    }
    result: Schema = {
        "description": _one_line(template["description"]),
        "type": "object",
        "properties": {
            "metadata": metadata,
            "spec": {
                **pod_spec,
                "description": "The pod spec: Kubernetes' PodSpec without the fields listed in docs/api.md.",
            },
        },
    }
    _drop_zero_defaults(result)
    return _finish(result, depth=-1, in_container=False)


class _Converter:
    def __init__(self, definitions: dict[str, Schema]) -> None:
        self.definitions = definitions

    def definition(self, name: str, stack: tuple[str, ...] = ()) -> Schema:
        if name in stack:
            raise KubeSchemaError(f"recursive definition {' -> '.join((*stack, name))}")
        if name not in self.definitions:
            raise KubeSchemaError(f"unknown definition {name}")
        if name == QUANTITY:
            return {
                "description": "A quantity such as 500m, 2, 1.5, 512Mi or 1Gi.",
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "x-kubernetes-int-or-string": True,
                "pattern": QUANTITY_PATTERN,
            }
        if name == INT_OR_STRING:
            return {
                "description": "An integer or a string (e.g. a port number or name).",
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "x-kubernetes-int-or-string": True,
            }
        node = self.node(self.definitions[name], (*stack, name))
        if name == OBJECT_META:
            # In a template (the pod's, an ephemeral volume's claim) only these are taken.
            node["properties"] = {field: node["properties"][field] for field in METADATA_FIELDS}
        return node

    def node(self, raw: Schema, stack: tuple[str, ...]) -> Schema:
        node = dict(raw)
        all_of = node.pop("allOf", None)
        if all_of is not None:
            if len(all_of) != 1:
                raise KubeSchemaError(f"{stack[-1]}: allOf with {len(all_of)} members")
            node = {**all_of[0], **node}
        ref = node.pop("$ref", None)
        if ref is not None:
            inner = self.definition(ref.removeprefix(PREFIX), stack)
            node = {**inner, **{k: v for k, v in node.items() if k != "description"}, **_described(node)}
        for key in _DROPPED_KEYS:
            node.pop(key, None)
        unknown = set(node) - _KEPT_KEYS
        if unknown:
            raise KubeSchemaError(f"{stack[-1]}: cannot express {sorted(unknown)} in a CRD schema")
        if "properties" in node:
            node["properties"] = {name: self.node(field, stack) for name, field in node["properties"].items()}
            for name in node.get("required", []):
                node["properties"][name].pop("default", None)
        if "items" in node:
            node["items"] = self.node(node["items"], stack)
            node["items"].pop("default", None)
            item = node["items"]
            for key in node.get("x-kubernetes-list-map-keys", []):
                if key not in item.get("required", []) and "default" not in item["properties"][key]:
                    raise KubeSchemaError(
                        f"{stack[-1]}: list map key {key} is neither required nor defaulted"
                    )
        if isinstance(node.get("additionalProperties"), dict):
            node["additionalProperties"] = self.node(node["additionalProperties"], stack)
            node["additionalProperties"].pop("default", None)
        if "type" not in node and not node.get("x-kubernetes-int-or-string"):
            raise KubeSchemaError(f"{stack[-1]}: a node without a type")
        return node


def _drop_zero_defaults(node: Schema, keep: frozenset[str] = frozenset()) -> None:
    """Remove zero-valued defaults, except on the properties named in `keep` (keys of a list map)."""
    for name, field in node.get("properties", {}).items():
        if field.get("default", None) in _ZERO_VALUES and name not in keep and "default" in field:
            del field["default"]
        _drop_zero_defaults(field)
    items = node.get("items")
    if isinstance(items, dict):
        _drop_zero_defaults(items, frozenset(node.get("x-kubernetes-list-map-keys", [])))
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        _drop_zero_defaults(additional)


def _with_enums(definitions: dict[str, Schema], enums: Enums) -> dict[str, Schema]:
    definitions = copy.deepcopy(definitions)
    for (name, field), values in enums.items():
        node = definitions.get(name, {}).get("properties", {}).get(field)
        if node is None:
            continue
        target = node.get("items", node) if node.get("type") == "array" else node
        if target.get("type") == "string":
            target["enum"] = values
    return definitions


def _described(node: Schema) -> Schema:
    return {"description": node["description"]} if "description" in node else {}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _first_sentence(text: str) -> str:
    text = _one_line(text.split("Possible enum values:")[0])
    match = re.search(r"(?<=[a-z0-9)\]`'\"])\.\s", text)
    return text if match is None else text[: match.start() + 1]


def _finish(node: Schema, depth: int, in_container: bool) -> Schema:
    """Keys in a fixed order; descriptions whole near the top, first sentences deeper down."""
    out = {key: node[key] for key in _ORDER if key in node}
    if "description" in out:
        whole = depth <= FULL_DESCRIPTION_DEPTH
        out["description"] = _one_line(out["description"]) if whole else _first_sentence(out["description"])
    if "properties" in out:
        out["properties"] = {
            name: _finish(field, depth + 1, in_container) for name, field in out["properties"].items()
        }
    for key in ("items", "additionalProperties"):
        child = out.get(key)
        if isinstance(child, dict):
            container = not in_container and "image" in child.get("properties", {})
            # A container's own fields count from zero again: they are what users write most.
            out[key] = _finish(child, 0 if container else depth, in_container or container)
    return out


def render(definitions: dict[str, Schema], enums: Enums, version: str) -> str:
    document = {
        "$comment": f"Generated by `python -m modeldeploy.operator.api.kubeschema` from Kubernetes {version} "
        f"({SOURCE_FILE} and {ENUM_SOURCE_FILE} of k8s.io/kubernetes). Do not edit by hand.",
        "kubernetesVersion": version,
        "schema": pod_template_schema(definitions, enums),
    }
    return json.dumps(document, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Extract spec.template's schema from Kubernetes' OpenAPI.")
    parser.add_argument(
        "--module", type=Path, help="the k8s.io/kubernetes module (default: the Go module cache)"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="only check the file is current (exit 1 if not)")
    args = parser.parse_args(argv)
    module = args.module or module_dir()
    if not (module / SOURCE_FILE).exists():
        print(
            f"{module} is missing: run `make cluster-build` (it downloads k8s.io/kubernetes)", file=sys.stderr
        )
        return 2
    return settle(args.output, generate(module), check=args.check, make_target="kube-schema")


if __name__ == "__main__":
    sys.exit(main())
