"""spec.guardrails -> the routing table's dataPath; ConfigMap documents resolved or reported."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modeldeploy.contract.routing import ROUTING_KEY, RoutingTable
from modeldeploy.operator.api import ModelDeploymentStatus
from modeldeploy.operator.planner import ModelDeploymentMeta, ObservedChildren, Plan, plan
from modeldeploy.operator.planner.data_path import GUARDRAILS_READY
from modeldeploy.operator.planner.guardrail_documents import (
    GuardrailConfigError,
    contract_schema,
    golden_requests,
    referenced_configmaps,
)
from tests.unit.planner.harness import CONFIG, T0, make_spec

META = ModelDeploymentMeta("iris", "ml", "uid-iris", 1)
SCHEMA = {"type": "object", "required": ["features"]}
GOLDEN = [{"name": "setosa", "path": "/classify", "body": {"features": [[5.1, 3.5, 1.4, 0.2]]}}]


def run(guardrails: dict[str, Any], documents: dict[str, Any] | None = None, **kw: Any) -> Plan:
    spec = make_spec(guardrails=guardrails)
    observed = ObservedChildren(documents=documents or {}, **kw)
    return plan(META, spec, ModelDeploymentStatus(), observed, T0, CONFIG)


def configmap_table(result: Plan) -> RoutingTable:
    configmap = next(m for m in result.manifests if m["kind"] == "ConfigMap")
    return RoutingTable.from_json(configmap["data"][ROUTING_KEY])


def condition(result: Plan) -> tuple[str, str] | None:
    found = next((c for c in result.status.conditions if c.type == GUARDRAILS_READY), None)
    return None if found is None else (found.status, found.message or "")


def test_no_guardrails_means_an_empty_data_path_and_no_condition() -> None:
    result = run({})
    assert configmap_table(result).data_path.model_dump() == {
        "contract": None,
        "prediction_log": None,
        "drift": None,
    }
    assert condition(result) is None


def test_inline_settings_reach_the_sidecars() -> None:
    result = run(
        {
            "contract": {"schema": SCHEMA, "policy": "reject"},
            "predictionLog": {"sampleRate": 0.25, "redact": ["ssn"], "maxBodyBytes": 100},
            "drift": {"features": [{"name": "sl", "path": "/features/*/0", "buckets": [4, 5, 6]}]},
        }
    )
    data_path = configmap_table(result).data_path
    assert data_path.contract is not None
    assert data_path.contract.json_schema == SCHEMA and data_path.contract.policy == "reject"
    assert data_path.prediction_log is not None
    assert (data_path.prediction_log.sample_rate, data_path.prediction_log.redact) == (0.25, ("ssn",))
    assert data_path.prediction_log.max_body_bytes == 100
    assert data_path.drift is not None
    assert [(f.name, f.path, f.buckets) for f in data_path.drift.features] == [
        ("sl", "/features/*/0", (4.0, 5.0, 6.0))
    ]
    assert condition(result) == ("True", "guardrail settings are in force")


def test_contract_from_a_configmap_is_resolved() -> None:
    ref = {"configMapRef": {"name": "iris-guardrails", "key": "contract.json"}}
    result = run({"contract": ref}, {"iris-guardrails": {"contract.json": json.dumps(SCHEMA)}})
    contract = configmap_table(result).data_path.contract
    assert contract is not None and contract.json_schema == SCHEMA and contract.policy == "observe"


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ({}, "contract schema: ConfigMap g not found"),
        ({"g": {"other": "{}"}}, "contract schema: ConfigMap g key c.json not found (keys: other)"),
        ({"g": {"c.json": "{not json"}}, "contract schema: ConfigMap g key c.json is not JSON"),
        ({"g": {"c.json": "[1]"}}, "contract schema: must be a JSON object, got list"),
        ({"g": {"c.json": '{"type": "objekt"}'}}, "contract schema: not a valid JSON Schema at /type"),
    ],
)
def test_a_bad_contract_document_keeps_the_last_good_contract_and_says_why(
    documents: dict[str, Any], message: str
) -> None:
    last_good = run({"contract": {"schema": SCHEMA, "policy": "reject"}})
    result = run(
        {"contract": {"configMapRef": {"name": "g", "key": "c.json"}, "policy": "reject"}},
        documents,
        routing=last_good.routing,
    )
    contract = configmap_table(result).data_path.contract
    assert contract is not None and contract.json_schema == SCHEMA  # the sidecars keep what worked
    found = condition(result)
    assert found is not None and found[0] == "False" and message in found[1]
    assert [(e.type, e.reason) for e in result.events if e.reason == "GuardrailConfigInvalid"] == [
        ("Warning", "GuardrailConfigInvalid")
    ]


def test_a_drift_path_the_sidecars_would_refuse_keeps_the_last_good_histograms_and_says_why() -> None:
    good = {"features": [{"name": "sl", "path": "/features/*/0", "buckets": [4, 5]}]}
    last_good = run({"drift": good})
    # The CRD only asks for a leading "/"; "~2" is no JSON pointer escape, so the routing table
    # model (and every sidecar) refuses it: the operator keeps the table loadable and reports it.
    bad = {"features": [{"name": "sl", "path": "/features/~2", "buckets": [4, 5]}]}
    result = run({"drift": bad}, routing=last_good.routing)
    drift = configmap_table(result).data_path.drift
    assert drift is not None and drift.features[0].path == "/features/*/0"
    found = condition(result)
    assert found is not None and found[0] == "False"
    assert "drift feature 'sl': path: JSON pointer '/features/~2': '~' must be followed by 0 or 1" in found[1]


def test_the_warning_is_posted_once_while_the_problem_lasts() -> None:
    spec = make_spec(guardrails={"contract": {"configMapRef": {"name": "g", "key": "c.json"}}})
    first = plan(META, spec, ModelDeploymentStatus(), ObservedChildren(), T0, CONFIG)
    again = plan(META, spec, first.status, ObservedChildren(routing=first.routing), T0, CONFIG)
    assert any(e.reason == "GuardrailConfigInvalid" for e in first.events)
    assert not any(e.reason == "GuardrailConfigInvalid" for e in again.events)


def test_golden_requests_from_a_configmap() -> None:
    spec = make_spec(guardrails={"goldenRequests": {"configMapRef": {"name": "g", "key": "golden.json"}}})
    assert referenced_configmaps(spec) == ("g",)
    requests = golden_requests(spec, {"g": {"golden.json": json.dumps(GOLDEN)}})
    assert [(r.name, r.method, r.path, r.expect.status) for r in requests] == [
        ("setosa", "POST", "/classify", 200)
    ]
    with pytest.raises(GuardrailConfigError, match=r"golden requests: item 0\.path: Field required"):
        golden_requests(spec, {"g": {"golden.json": '[{"name": "x"}]'}})
    with pytest.raises(GuardrailConfigError, match="repeated: setosa"):
        golden_requests(spec, {"g": {"golden.json": json.dumps(GOLDEN * 2)}})
    with pytest.raises(GuardrailConfigError, match="must be a non-empty JSON list"):
        golden_requests(spec, {"g": {"golden.json": "{}"}})


def test_inline_documents_need_no_configmap() -> None:
    spec = make_spec(guardrails={"goldenRequests": {"requests": GOLDEN}, "contract": {"schema": SCHEMA}})
    assert referenced_configmaps(spec) == ()
    assert contract_schema(spec, {}) == SCHEMA
    assert [r.name for r in golden_requests(spec, {})] == ["setosa"]
