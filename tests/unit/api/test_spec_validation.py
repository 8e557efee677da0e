from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modeldeploy.operator.api import (
    CanaryStep,
    CustomMetric,
    ModelDeployment,
    ModelDeploymentSpec,
    PauseStep,
    RolloutSpec,
    ShadowStep,
    crdgen,
)
from modeldeploy.operator.api.rollout import STEP_KINDS
from tests.support.modeldeployment_specs import INVALID_SPECS, InvalidSpec, valid_manifest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
LOCAL_CASES = [case for case in INVALID_SPECS if case.local_message is not None]


def test_valid_manifest_parses() -> None:
    md = ModelDeployment.model_validate(valid_manifest())
    assert md.spec.replicas == 2
    assert [step.kind for step in md.spec.rollout.steps] == ["shadow", "canary", "canary", "pause"]


@pytest.mark.parametrize("case", LOCAL_CASES, ids=[case.id for case in LOCAL_CASES])
def test_invalid_spec_is_rejected_by_the_model(case: InvalidSpec) -> None:
    with pytest.raises(ValidationError) as err:
        ModelDeployment.model_validate(case.manifest("x"))
    assert case.local_message is not None
    assert case.local_message in str(err.value)


def test_defaults_match_the_documented_ones() -> None:
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"image": "x"}, "rollout": {"steps": [{"canary": {"weight": 10, "duration": "1m"}}]}}
    )
    assert spec.replicas == 1
    assert spec.model.port == 3000
    assert spec.progress_deadline == "10m"
    assert spec.drain_period == "30s"
    assert spec.prometheus is None
    analysis = spec.rollout.analysis
    assert (analysis.interval, analysis.failure_limit, analysis.inconclusive_limit) == ("30s", 2, 10)
    assert (analysis.on_inconclusive, analysis.min_requests, analysis.confidence) == ("Pause", 50, 0.95)
    assert analysis.slo.error_rate == 0.01
    assert (analysis.method, analysis.tolerance, analysis.slo.max_slow_share_delta_to_stable) == (
        "fixed",
        None,
        None,
    )
    assert analysis.slo.latency_p99 is None
    assert spec.traffic.shadow_comparison.mode == "numeric"


def test_steps_parse_into_their_own_types() -> None:
    rollout = RolloutSpec.model_validate(
        {
            "steps": [
                {"shadow": {"percent": 50, "duration": "1m"}},
                {"canary": {"weight": 10, "duration": "2m"}},
                {"pause": {"duration": "5m"}},
                {"pause": {}},
            ]
        }
    )
    shadow, canary, timed, manual = rollout.steps
    assert isinstance(shadow, ShadowStep) and shadow.shadow.percent == 50 and shadow.duration == "1m"
    assert isinstance(canary, CanaryStep) and canary.canary.weight == 10 and canary.duration == "2m"
    assert isinstance(timed, PauseStep) and timed.duration == "5m"
    assert isinstance(manual, PauseStep) and manual.duration is None
    assert tuple(step.kind for step in rollout.steps[:3]) == STEP_KINDS


def test_steps_accept_model_instances_and_snake_case_names() -> None:
    step = CanaryStep.model_validate({"canary": {"weight": 5, "duration": "1m"}})
    analysis = {"failure_limit": 3, "minRequests": 7}
    rollout = RolloutSpec.model_validate({"steps": [step], "analysis": analysis})
    assert rollout.steps[0] == step
    assert rollout.analysis.failure_limit == 3 and rollout.analysis.min_requests == 7


def test_equal_weights_and_pauses_between_canaries_are_fine() -> None:
    steps = [
        {"shadow": {"percent": 100, "duration": "1m"}},
        {"pause": {}},
        {"shadow": {"percent": 10, "duration": "1m"}},
        {"canary": {"weight": 20, "duration": "1m"}},
        {"pause": {}},
        {"canary": {"weight": 20, "duration": "1m"}},
        {"canary": {"weight": 100, "duration": "1m"}},
    ]
    assert len(RolloutSpec.model_validate({"steps": steps}).steps) == 7


def test_dump_uses_camel_case_names() -> None:
    spec = ModelDeploymentSpec.model_validate(valid_manifest()["spec"])
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert "progressDeadline" in dumped and "failureLimit" in dumped["rollout"]["analysis"]
    assert dumped["rollout"]["analysis"]["slo"]["latencyP99"] == "250ms"
    assert ModelDeploymentSpec.model_validate(dumped) == spec


@pytest.mark.parametrize("example", ["minimal.yaml", "full.yaml"])
def test_examples_are_valid(example: str) -> None:
    ModelDeployment.model_validate(yaml.safe_load((EXAMPLES / example).read_text()))


def _schema_paths(node: dict[str, Any], path: str) -> set[str]:
    paths = {path}
    for name, child in node.get("properties", {}).items():
        paths |= _schema_paths(child, f"{path}.{name}")
    if "items" in node:
        paths |= _schema_paths(node["items"], path)
    return paths


def _value_paths(value: Any, path: str) -> set[str]:
    paths = {path}
    if isinstance(value, dict):
        for name, child in value.items():
            paths |= _value_paths(child, f"{path}.{name}")
    elif isinstance(value, list):
        for item in value:
            paths |= _value_paths(item, path)
    return paths


def test_full_example_sets_every_field() -> None:
    """Every field of the spec schema (list items merged) appears somewhere in examples/full.yaml."""
    schema = crdgen.spec_schema()
    full = yaml.safe_load((EXAMPLES / "full.yaml").read_text())
    maps = {".model.resources.requests", ".model.resources.limits"}  # free-form keys
    free_json = {  # any JSON value (x-kubernetes-preserve-unknown-fields)
        ".guardrails.goldenRequests.requests.body",
        ".guardrails.goldenRequests.requests.headers",
        ".guardrails.goldenRequests.requests.expect.body",
        ".guardrails.contract.schema",
    }
    kube = ".template."  # Kubernetes' own PodTemplateSpec (tested in test_pod_template_schema.py)
    free = (*(f"{m}." for m in maps | free_json), kube)
    used = {path for path in _value_paths(full["spec"], "") if not path.startswith(free)}
    assert {".template.metadata.labels", ".template.spec.nodeSelector"} <= set(_value_paths(full["spec"], ""))
    # Alternatives to inline documents (exactly one of the two): examples/guardrails.yaml sets them.
    alternatives = (".guardrails.goldenRequests.configMapRef", ".guardrails.contract.configMapRef")
    alternative_example = yaml.safe_load_all((EXAMPLES / "guardrails.yaml").read_text())
    mdep = next(doc for doc in alternative_example if doc["kind"] == "ModelDeployment")
    alternative_paths = {p for p in _value_paths(mdep["spec"], "") if p.startswith(alternatives)}
    assert {p for p in _schema_paths(schema, "") if p.startswith(alternatives)} == alternative_paths
    used |= alternative_paths
    fields = {path for path in _schema_paths(schema, "") if not path.startswith(kube)}
    assert fields - used == set()
    assert used - fields == set()


@pytest.mark.parametrize(
    "query",
    [
        'sum(rate(x{namespace="{{namespace}}", revision="{{ revision }}"}[{{interval}}]))',
        "avg(y{model='{{model}}'}) / avg(y{revision='{{stableRevision}}'})",
        "up",
        "x{a=~'.{2}'}",
    ],
)
def test_custom_metric_queries_with_known_placeholders(query: str) -> None:
    metric = CustomMetric(name="m", query=query, max=1)
    assert metric.query == query


@pytest.mark.parametrize(
    ("query", "named"),
    [("x{pod='{{pod}}'}", "{{pod}}"), ("x{a='{{{model}}'}", "'{{' out of place"), ("{{Model}}", "{{Model}}")],
)
def test_custom_metric_queries_with_unknown_placeholders(query: str, named: str) -> None:
    with pytest.raises(ValidationError, match="query may only use the placeholders") as err:
        CustomMetric(name="m", query=query, max=1)
    assert f"not {named}" in str(err.value)


def test_a_sequential_analysis_with_tolerance_and_latency_allowance_parses() -> None:
    analysis = RolloutSpec.model_validate(
        {
            "steps": [{"canary": {"weight": 10, "duration": "1m"}}],
            "analysis": {
                "method": "sequential",
                "tolerance": 0.005,
                "slo": {"maxSlowShareDeltaToStable": 0.02},
            },
        }
    ).analysis
    assert (analysis.method, analysis.tolerance) == ("sequential", 0.005)
    assert analysis.slo.max_slow_share_delta_to_stable == 0.02
