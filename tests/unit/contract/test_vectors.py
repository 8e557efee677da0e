"""The shared test vectors (contract/vectors/) against the routing table's model.

The Rust sidecar's tests load the same folder: a valid table is accepted by both, an invalid one is
refused by both, at the field the vector names (dotted wire path, array items by index): the first
error reported is at that field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from modeldeploy.contract.routing import RoutingTable
from tests.cluster.localcluster import ROOT

VECTORS = ROOT / "contract" / "vectors"
SCHEMA = json.loads((ROOT / "contract" / "routing-table.schema.json").read_text(encoding="utf-8"))
VALID = sorted((VECTORS / "valid").glob("*.json"))
INVALID = sorted((VECTORS / "invalid").glob("*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def error_fields(error: ValidationError) -> list[str]:
    return [".".join(str(part) for part in e["loc"]) for e in error.errors()]


def test_both_folders_hold_vectors() -> None:
    assert len(VALID) >= 5 and len(INVALID) >= 20


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_table_is_accepted_and_round_trips(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    table = RoutingTable.from_json(text)
    assert RoutingTable.from_json(table.to_json()) == table
    Draft202012Validator(SCHEMA).validate(load(path))
    Draft202012Validator(SCHEMA).validate(json.loads(table.to_json()))


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_table_is_refused_at_the_named_field(path: Path) -> None:
    vector = load(path)
    assert sorted(vector) == ["errorField", "table", "why"], "a vector is {table, errorField, why}"
    assert vector["why"].strip()
    with pytest.raises(ValidationError) as refused:
        RoutingTable.from_json(json.dumps(vector["table"]))
    fields = error_fields(refused.value)
    field = vector["errorField"]
    assert fields[0] == field, refused.value
    # pydantic may add a consequence on an enclosing object (an item failed, so a list is short)
    assert all(field == f or field.startswith(f + ".") for f in fields), refused.value
