"""The data contract: request bodies checked against a JSON Schema before the model sees them.

The schema is compiled once when a routing table brings it (the routing table's model has already
refused a schema that is not valid JSON Schema), then every body the sidecar serves
locally is checked with the compiled validator. The dialect is the schema's `$schema`, draft
2020-12 when absent; `format` is an annotation only (as the draft specifies); remote `$ref`s are
never fetched. Of several errors, jsonschema's `best_match` is reported: its instance path as a
JSON pointer ("/" for the body itself), its message, and the schema keyword that failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import best_match

from modeldeploy.contract.json_pointer import to_pattern, to_pointer
from modeldeploy.contract.routing import ContractSettings

MESSAGE_LIMIT = 300
"""Characters of a schema error message kept (jsonschema quotes the failing value, which may be big)."""

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Requests of other methods (GET, HEAD, DELETE, OPTIONS) carry no body to check."""


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a body broke the contract."""

    path: str  # JSON pointer of the failing instance, "/" for the whole body
    field: str  # the same with array indices as `*`: the metric label
    message: str
    schema_path: str  # JSON pointer of the failing keyword in the schema ("" when not JSON at all)

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "schemaPath": self.schema_path}


class NotJson:
    """Marker for a body that is not a JSON document (see `parse_body`)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def parse_body(body: bytes) -> Any:
    """The parsed JSON body, or a NotJson with the reason."""
    if not body.strip():
        return NotJson("request body is empty, the data contract expects a JSON document")
    try:
        return json.loads(body.decode("utf-8"))  # JSON over HTTP is UTF-8 (RFC 8259)
    except UnicodeDecodeError:
        return NotJson("request body is not UTF-8 text, the data contract expects a JSON document")
    except RecursionError:
        return NotJson("request body is nested too deeply to check against the data contract")
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        where = f" at position {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        return NotJson(f"request body is not valid JSON ({reason}{where})")


def shorten(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Contract:
    """A compiled contract: `check(document)` returns None or the Violation to report."""

    def __init__(self, settings: ContractSettings) -> None:
        self.settings = settings
        self.policy = settings.policy
        schema = settings.json_schema
        cls = validators.validator_for(schema, default=Draft202012Validator)
        self._validator = cls(schema)

    def check(self, document: Any) -> Violation | None:
        """None when `document` (a parsed body or NotJson) satisfies the schema."""
        if isinstance(document, NotJson):
            return Violation(path="/", field="/", message=document.reason, schema_path="")
        try:
            error = best_match(self._validator.iter_errors(document))
        except RecursionError:
            reason = "request body is nested too deeply to check against the data contract"
            return Violation(path="/", field="/", message=reason, schema_path="")
        if error is None:
            return None
        path = list(error.absolute_path)
        schema_path = to_pointer(error.absolute_schema_path)
        return Violation(
            path=to_pointer(path),
            field=to_pattern(path),
            message=shorten(error.message),
            schema_path="" if schema_path == "/" else schema_path,
        )
