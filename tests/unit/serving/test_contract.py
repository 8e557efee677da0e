"""The data contract: violation path/message formatting, dialects, non-JSON bodies.

A schema that is not JSON Schema never gets here: the routing table refuses it (tests/unit/contract)."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.contract.routing import ContractSettings
from modeldeploy.serving.contract import MESSAGE_LIMIT, Contract, NotJson, parse_body
from tests.support.iris_contract import IRIS_SCHEMA


def contract(schema: dict[str, Any] = IRIS_SCHEMA) -> Contract:
    return Contract(ContractSettings.model_validate({"schema": schema, "policy": "reject"}))


def test_valid_body_passes() -> None:
    assert contract().check(parse_body(b'{"features": [[5.1, 3.5, 1.4, 0.2]]}')) is None


def test_violation_names_the_instance_path_message_and_keyword() -> None:
    violation = contract().check(parse_body(b'{"features": [[5.1, 3.5, 1.4, 0.2], [1, 2, "x", 4]]}'))
    assert violation is not None
    assert violation.path == "/features/1/2"
    assert violation.field == "/features/*/*"
    assert violation.message == "'x' is not of type 'number'"
    assert violation.schema_path == "/properties/features/items/items/type"
    assert violation.as_json() == {
        "path": "/features/1/2",
        "message": "'x' is not of type 'number'",
        "schemaPath": "/properties/features/items/items/type",
    }


def test_missing_member_is_reported_at_the_root() -> None:
    violation = contract().check(parse_body(b'{"rows": []}'))
    assert violation is not None
    assert (violation.path, violation.field) == ("/", "/")
    assert violation.message == "'features' is a required property"


def test_long_messages_are_shortened() -> None:
    body = b'{"features": "' + b"y" * 5000 + b'"}'
    violation = contract().check(parse_body(body))
    assert violation is not None and violation.path == "/features"
    assert len(violation.message) == MESSAGE_LIMIT and violation.message.endswith("…")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "request body is empty"),
        (b"  \n", "request body is empty"),
        (b"{not json", "request body is not valid JSON (Expecting property name enclosed in double quotes"),
        (b"\xff\xfe", "request body is not UTF-8 text"),
    ],
)
def test_bodies_that_are_not_json_violate_at_the_root(body: bytes, reason: str) -> None:
    parsed = parse_body(body)
    assert isinstance(parsed, NotJson)
    violation = contract().check(parsed)
    assert violation is not None
    assert violation.path == violation.field == "/"
    assert violation.message.startswith(reason)


def test_schema_dialect_follows_dollar_schema() -> None:
    # draft 4: exclusiveMaximum is a boolean modifier of maximum (a number in 2020-12)
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 5, "exclusiveMaximum": True}
    assert contract(draft4).check(5) is not None
    assert contract(draft4).check(4) is None


def test_bodies_too_deep_are_a_violation_not_a_crash() -> None:
    deep = b'{"features": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    violation = contract().check(parse_body(deep))
    assert violation is not None and violation.path == "/"
    assert violation.message.startswith("request body is nested too deeply")
