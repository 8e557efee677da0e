"""The committed JSON Schema of the routing table is what `make contract` would write."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from modeldeploy.contract import schemagen
from tests.cluster.localcluster import ROOT

COMMITTED = ROOT / "contract" / "routing-table.schema.json"


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == schemagen.render(), "run `make contract`"


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    target = tmp_path / "routing-table.schema.json"
    assert schemagen.main([str(target)]) == 0
    assert schemagen.main(["--check", str(target)]) == 0
    target.write_text(target.read_text().replace('"generation"', '"generations"', 1))
    assert schemagen.main(["--check", str(target)]) == 1


def test_schema_is_valid_2020_12_with_the_wire_names() -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["model", "namespace", "stable"]
    assert {"stickyHeader", "dataPath", "canary", "shadow", "guard", "comparison"} <= set(
        schema["properties"]
    )
    guard = schema["$defs"]["GuardSettings"]["properties"]
    assert set(guard) == {"window", "maxErrorRatio", "minRequests"}
