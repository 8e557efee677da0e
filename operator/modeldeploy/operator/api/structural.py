"""Turn pydantic's JSON Schema into a Kubernetes structural OpenAPI v3 schema.

pydantic emits JSON Schema 2020-12: `$ref`/`$defs`, `anyOf [X, null]` for optional fields, numeric
`exclusiveMinimum`, `oneOf` for tagged unions, titles. A CRD needs a *structural* schema: every node
typed, no references, no type unions (except int-or-string), OpenAPI v3.0 keywords only. This
module does that conversion and refuses what it cannot express, with the path of the offending node:

- `$ref` is inlined; the field's own description wins over the referenced type's docstring.
- `anyOf [X, {type: null}]` becomes X (an optional field is simply left out, never null).
- A union of one-key objects (rollout steps) becomes one object with all keys optional and a CEL
  rule that exactly one is set.
- An optional object field with a default factory gets `default: {}`, so the API server fills in its
  nested defaults (`spec.rollout.analysis.interval` appears even when `analysis` was left out).
- Every property needs a description, every string a maxLength (or enum/format), every list a
  maxItems and every map a maxProperties: the API server bounds the cost of CEL rules with them.
"""

from __future__ import annotations

import copy
from typing import Any

Schema = dict[str, Any]

_KEEP = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "anyOf",
    "nullable",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
)
_RULES = "x-kubernetes-validations"
_UNION = "x-modeldeploy-union"  # internal marker, never emitted
_VERBATIM = "x-modeldeploy-verbatim"  # a schema made structural elsewhere (api/kubeschema.py), kept as is
_DROP = ("title", "propertyNames", "discriminator")


class SchemaError(ValueError):
    """The pydantic schema has a construct a structural schema cannot express, or lacks a bound."""


def to_structural(schema: Schema, *, defaults: bool = True) -> Schema:
    """Convert a pydantic JSON schema (with its `$defs`) into a structural schema.

    `defaults=False` leaves out every `default` (used for `status`, which only the operator writes).
    """
    defs = schema.get("$defs", {})
    body = {key: value for key, value in schema.items() if key != "$defs"}
    return _Converter(defs, defaults).node(body, "")


class _Converter:
    def __init__(self, defs: dict[str, Schema], defaults: bool) -> None:
        self.defs = defs
        self.defaults = defaults

    def resolve(self, node: Schema, path: str) -> Schema:
        """Inline `$ref` (and pydantic's `allOf: [$ref]` wrapping); keys beside the reference win."""
        node = dict(node)
        if "allOf" in node and len(node["allOf"]) == 1:
            node = {**node.pop("allOf")[0], **node}
        if "$ref" in node:
            ref = node.pop("$ref")
            name = ref.rsplit("/", 1)[-1]
            if name not in self.defs:
                raise SchemaError(f"{path or '.'}: unknown reference {ref}")
            node = _overlay(self.resolve(copy.deepcopy(self.defs[name]), path), node)
        return node

    def node(self, raw: Schema, path: str) -> Schema:
        node = self.resolve(raw, path)
        node = self._unwrap_optional(node, path)
        if node.pop(_VERBATIM, False):
            if not self.defaults:
                raise SchemaError(f"{path}: a Kubernetes schema (with its defaults) cannot go under status")
            node.pop("title", None)
            if node.get("default", 0) is None:
                node.pop("default")
            return {"description": node.pop("description"), **node}
        if "oneOf" in node or ("anyOf" in node and not node.get("x-kubernetes-int-or-string")):
            node = self._merge_tagged_union(node, path)
        union = bool(node.pop(_UNION, False))
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
        for key in _DROP:
            node.pop(key, None)
        unknown = set(node) - set(_KEEP)
        if unknown:
            raise SchemaError(f"{path or '.'}: cannot express {sorted(unknown)} in a structural schema")
        self._numeric_bounds(node)
        if node.get("minLength") == 0:
            node.pop("minLength")
        if not self.defaults or node.get("default", 0) is None:
            node.pop("default", None)

        kind = node.get("type")
        if kind == "object":
            self._object(node, path, union)
        elif kind == "array":
            if "items" not in node:
                raise SchemaError(f"{path}: a list needs an item type")
            node["items"] = self.node(node["items"], f"{path}[]")
            if "maxItems" not in node:
                raise SchemaError(f"{path}: a list needs maxItems (bounds the cost of CEL rules)")
        elif kind == "string":
            if not ({"maxLength", "enum"} & set(node) or node.get("format") == "date-time"):
                raise SchemaError(f"{path}: a string needs maxLength or enum (bounds the cost of CEL rules)")
        elif kind is None and not (
            node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        ):
            raise SchemaError(f"{path or '.'}: every node of a structural schema needs a type")
        return _ordered(node)

    def _unwrap_optional(self, node: Schema, path: str) -> Schema:
        for key in ("anyOf", "oneOf"):
            options = node.get(key)
            if not options:
                continue
            present = [option for option in options if option.get("type") != "null"]
            if len(present) < len(options):
                node = {k: v for k, v in node.items() if k != key}
                if len(present) == 1:
                    node = _overlay(self.resolve(present[0], path), node)
                else:
                    node[key] = present
        return node

    def _merge_tagged_union(self, node: Schema, path: str) -> Schema:
        key = "oneOf" if "oneOf" in node else "anyOf"
        variants = [self.resolve(option, path) for option in node.pop(key)]
        if not all(variant.get("type") == "object" for variant in variants):
            raise SchemaError(f"{path}: a union of different types is not structural; use one-key objects")
        properties: Schema = {}
        for variant in variants:
            required = variant.get("required", [])
            if len(variant.get("properties", {})) != 1 or len(required) != 1:
                raise SchemaError(f"{path}: union members must be objects with exactly one required key")
            properties.update(variant["properties"])
        names = list(properties)
        listed = ", ".join(names[:-1]) + f" or {names[-1]}"
        merged: Schema = {
            "description": f"Exactly one of {listed}. "
            + " ".join(variant.get("description", "") for variant in variants).strip(),
            "type": "object",
            "properties": properties,
            _RULES: [
                {
                    "rule": "[" + ", ".join(f"has(self.{name})" for name in names) + "].exists_one(x, x)",
                    "message": f"must set exactly one of {listed}",
                }
            ],
            _UNION: True,
        }
        return {**merged, **node}

    def _object(self, node: Schema, path: str, union: bool) -> None:
        properties = node.get("properties")
        additional = node.get("additionalProperties")
        if properties is not None and additional not in (None, False):
            raise SchemaError(f"{path}: an object has either properties or additionalProperties, not both")
        if additional is False or (additional is True and node.get("x-kubernetes-preserve-unknown-fields")):
            node.pop("additionalProperties")
        if properties is not None:
            required = set(node.get("required", []))
            converted = {}
            for name, prop in properties.items():
                child_path = f"{path}.{name}"
                child = self.node(prop, child_path)
                if "description" not in child:
                    raise SchemaError(
                        f"{child_path}: every field needs a description (kubectl explain shows it)"
                    )
                if not union and self._needs_empty_default(prop, child, name in required, child_path):
                    child["default"] = {}
                    child = _ordered(child)
                converted[name] = child
            node["properties"] = converted
            for name in required:
                if name not in converted:
                    raise SchemaError(f"{path}: required field {name} has no schema")
        elif isinstance(additional, dict):
            node["additionalProperties"] = self.node(additional, f"{path}[*]")
            if "maxProperties" not in node:
                raise SchemaError(f"{path}: a map needs maxProperties (bounds the cost of CEL rules)")
        elif not node.get("x-kubernetes-preserve-unknown-fields"):
            raise SchemaError(f"{path}: an object needs properties, additionalProperties or preserve-unknown")

    def _needs_empty_default(self, raw: Schema, child: Schema, required: bool, path: str) -> bool:
        """A non-optional object field that is not required has a default factory: default it to {}."""
        if not self.defaults or required or child.get("type") != "object" or "default" in child:
            return False
        optional = any(option.get("type") == "null" for option in raw.get("anyOf", []))
        if optional or "properties" not in child:
            return False
        if child.get("required"):
            raise SchemaError(f"{path}: a defaulted object cannot have required fields")
        return True

    @staticmethod
    def _numeric_bounds(node: Schema) -> None:
        """JSON Schema 2020 `exclusiveMinimum: 0` is OpenAPI v3.0 `minimum: 0, exclusiveMinimum: true`."""
        for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = node.get(bound)
            if value is not None and not isinstance(value, bool):
                node[flag] = value
                node[bound] = True


def _overlay(inner: Schema, outer: Schema) -> Schema:
    """`outer`'s keys over `inner`'s (a field's description over its type's), CEL rules of both kept."""
    rules = inner.get(_RULES, []) + outer.get(_RULES, [])
    merged = {**inner, **outer}
    if rules:
        merged[_RULES] = rules
    return merged


def _ordered(node: Schema) -> Schema:
    """Keys in a fixed, readable order (description and type first, nested schemas last)."""
    return {key: node[key] for key in _KEEP if key in node}
