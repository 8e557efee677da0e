"""The Argo CD health check and resource actions, run by real Lua interpreters (5.1 as in Argo CD,
and 5.4) on ModelDeployment objects captured from the operator (tests/argocd/samples)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.operator.api import PHASES, ModelDeploymentStatus
from modeldeploy.operator.chartgen import ARGOCD_ACTIONS, ARGOCD_KEY
from modeldeploy.operator.planner.actions import ACTION_ANNOTATION, ACTIONS, parse_action
from tests.argocd.lua import DISCOVERY, HEALTH, INTERPRETERS, LUA_DIR, action_script, empty_to_none, run

SAMPLES_DIR = Path(__file__).with_name("samples")
SAMPLES = {path.stem: json.loads(path.read_text()) for path in sorted(SAMPLES_DIR.glob("*.json"))}

# Which actions Argo CD offers (enabled) for each captured state.
DURING_ROLLOUT = {"promote", "promote-full", "abort", "pause"}
WHILE_PAUSED = {"promote", "promote-full", "abort", "resume"}
EXPECTED_ACTIONS = {
    "succeeded": set(),
    "succeeded-after-rollouts": set(),
    "generation-not-observed": set(),
    "first-revision-progressing": set(),
    "degraded": set(),
    "progressing-shadow": DURING_ROLLOUT,
    "progressing-canary": DURING_ROLLOUT,
    "paused-at-pause-step": DURING_ROLLOUT,  # a pause step ends with promote; pause still holds it
    "paused-by-user": WHILE_PAUSED,
    "paused-inconclusive": WHILE_PAUSED,
    "rolled-back-aborted": {"retry"},
    "rolled-back-analysis": {"retry"},
    "failed-deadline": set(),  # a first revision: nothing to retry, it recovers once its pods are ready
}


def test_samples_were_captured_from_the_operator_and_cover_every_phase() -> None:
    assert set(SAMPLES) == set(EXPECTED_ACTIONS)
    phases = set()
    for name, sample in SAMPLES.items():
        assert sample["capturedBy"].startswith("tests/argocd/capture.py"), name
        status = ModelDeploymentStatus.model_validate(sample["object"]["status"])
        phases.add(status.phase)
    assert phases == set(PHASES)
    assert {s["expectedHealth"] for s in SAMPLES.values()} == {
        "Healthy",
        "Progressing",
        "Suspended",
        "Degraded",
    }


@pytest.mark.parametrize("lua", INTERPRETERS)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_health_of_captured_samples(name: str, lua: str) -> None:
    sample = SAMPLES[name]
    health = run(HEALTH, sample["object"], lua)
    assert health["status"] == sample["expectedHealth"], health
    status = sample["object"]["status"]
    assert health["message"]
    if health["status"] == "Degraded" and status.get("rollbackReason"):
        assert status["rollbackReason"] in health["message"]
    elif sample["object"]["metadata"]["generation"] == status["observedGeneration"]:
        assert health["message"] == status["message"]


@pytest.mark.parametrize(
    ("mutate", "status", "message"),
    [
        (lambda o: o.pop("status"), "Progressing", "Waiting for the modeldeploy operator to reconcile"),
        (
            lambda o: o["status"].pop("phase"),
            "Progressing",
            "Waiting for the modeldeploy operator to reconcile",
        ),
        (lambda o: o["status"].pop("observedGeneration"), "Progressing", "observe generation 1"),
        (lambda o: o["status"].update(phase="Exploded"), "Unknown", "unknown phase Exploded"),
        (lambda o: o["status"].update(message=""), "Healthy", "phase Succeeded"),
    ],
)
def test_health_of_edge_cases(mutate: Any, status: str, message: str) -> None:
    obj = copy.deepcopy(SAMPLES["succeeded"]["object"])
    mutate(obj)
    for lua in INTERPRETERS:
        health = run(HEALTH, obj, lua)
        assert health["status"] == status and message in health["message"], health


@pytest.mark.parametrize("lua", INTERPRETERS)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_discovery_offers_the_actions_that_apply(name: str, lua: str) -> None:
    actions = run(DISCOVERY, SAMPLES[name]["object"], lua)
    assert set(actions) == set(ARGOCD_ACTIONS)
    enabled = {action for action, settings in actions.items() if not settings["disabled"]}
    assert enabled == EXPECTED_ACTIONS[name]
    assert all(settings["iconClass"].startswith("fa ") for settings in actions.values())


def test_every_action_the_operator_knows_has_a_script() -> None:
    assert set(ARGOCD_ACTIONS) == set(ACTIONS)
    for action in ARGOCD_ACTIONS:
        assert action_script(action).is_file()


@pytest.mark.parametrize("lua", INTERPRETERS)
@pytest.mark.parametrize("action", ARGOCD_ACTIONS)
def test_action_writes_only_the_request_annotation(action: str, lua: str) -> None:
    original = SAMPLES["progressing-canary"]["object"]
    result = run(action_script(action), original, lua)
    value = result["metadata"]["annotations"][ACTION_ANNOTATION]
    assert re.fullmatch(rf"{re.escape(action)}@\d{{8}}T\d{{6}}Z-rv4242", value), value
    request = parse_action(value)
    assert request.action == action and request.request_id
    expected = copy.deepcopy(original)
    expected["metadata"]["annotations"][ACTION_ANNOTATION] = value
    assert empty_to_none(result) == empty_to_none(expected)


def test_action_creates_the_annotations_map_when_absent() -> None:
    obj = copy.deepcopy(SAMPLES["paused-by-user"]["object"])
    obj["metadata"].pop("annotations", None)
    for lua in INTERPRETERS:
        result = run(action_script("resume"), obj, lua)
        assert parse_action(result["metadata"]["annotations"][ACTION_ANNOTATION]).action == "resume"


def test_argocd_cm_patch_carries_the_scripts() -> None:
    patch = yaml.safe_load((LUA_DIR / "argocd-cm-patch.yaml").read_text())["data"]
    assert patch[f"resource.customizations.health.{ARGOCD_KEY}"] == HEALTH.read_text()
    actions = yaml.safe_load(patch[f"resource.customizations.actions.{ARGOCD_KEY}"])
    assert actions["discovery.lua"] == DISCOVERY.read_text()
    assert [d["name"] for d in actions["definitions"]] == list(ARGOCD_ACTIONS)
    for definition in actions["definitions"]:
        assert definition["action.lua"] == action_script(definition["name"]).read_text()
