"""Guardrail documents kept in ConfigMaps: which ones a spec refers to, and resolving them (pure).

``spec.guardrails.contract.configMapRef`` and ``spec.guardrails.goldenRequests.configMapRef`` name a
key of a ConfigMap in the model's namespace holding JSON. Reconcile reads the referenced ConfigMaps
(``referenced_configmaps``) into ``ObservedChildren.documents``; the functions here turn those texts
into the settings the sidecars get, or raise ``GuardrailConfigError`` with a message a user can act on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from modeldeploy.contract.routing import check_json_schema
from modeldeploy.operator.api import ConfigMapKeyRef, GoldenRequest, ModelDeploymentSpec

Documents = Mapping[str, Mapping[str, str] | None]
"""ConfigMap name -> its data (None when the ConfigMap does not exist)."""

_GOLDEN_LIST = TypeAdapter(list[GoldenRequest])


class GuardrailConfigError(ValueError):
    """A guardrail's document is missing or invalid; the message names the ConfigMap and key."""


def referenced_configmaps(spec: ModelDeploymentSpec) -> tuple[str, ...]:
    """Names of the ConfigMaps the guardrails refer to, sorted, without repeats."""
    guardrails = spec.guardrails
    refs = [
        guardrails.contract.config_map_ref if guardrails.contract else None,
        guardrails.golden_requests.config_map_ref if guardrails.golden_requests else None,
    ]
    return tuple(sorted({ref.name for ref in refs if ref is not None}))


def _document(ref: ConfigMapKeyRef, documents: Documents, what: str) -> Any:
    where = f"ConfigMap {ref.name} key {ref.key}"
    data = documents.get(ref.name)
    if data is None:
        raise GuardrailConfigError(f"{what}: ConfigMap {ref.name} not found")
    text = data.get(ref.key)
    if text is None:
        keys = ", ".join(sorted(data)) or "none"
        raise GuardrailConfigError(f"{what}: {where} not found (keys: {keys})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GuardrailConfigError(
            f"{what}: {where} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def contract_schema(spec: ModelDeploymentSpec, documents: Documents) -> dict[str, Any] | None:
    """The contract's JSON Schema (inline or from its ConfigMap), checked to be a valid schema."""
    contract = spec.guardrails.contract
    if contract is None:
        return None
    what = "contract schema"
    if contract.config_map_ref is not None:
        schema = _document(contract.config_map_ref, documents, what)
    else:
        schema = contract.json_schema
    if not isinstance(schema, dict):
        raise GuardrailConfigError(f"{what}: must be a JSON object, got {type(schema).__name__}")
    try:
        check_json_schema(schema)  # the sidecars' rule (their routing table refuses such a schema)
    except ValueError as exc:
        raise GuardrailConfigError(f"{what}: {exc}") from exc
    return schema


def golden_requests(spec: ModelDeploymentSpec, documents: Documents) -> tuple[GoldenRequest, ...]:
    """The golden requests (inline or from their ConfigMap); empty when none are configured."""
    golden = spec.guardrails.golden_requests
    if golden is None:
        return ()
    if golden.requests is not None:
        return tuple(golden.requests)
    assert golden.config_map_ref is not None  # the spec type guarantees one of the two
    what = "golden requests"
    raw = _document(golden.config_map_ref, documents, what)
    if not isinstance(raw, list) or not raw:
        raise GuardrailConfigError(f"{what}: must be a non-empty JSON list of requests")
    try:
        requests = _GOLDEN_LIST.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first["loc"])
        raise GuardrailConfigError(f"{what}: item {at}: {first['msg']}") from exc
    names = [r.name for r in requests]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise GuardrailConfigError(f"{what}: names must be unique, repeated: {', '.join(repeated)}")
    return tuple(requests)
