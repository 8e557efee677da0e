"""The Argo CD health check and resource actions, run as Argo CD runs them (tests/argocd/engine.py:
gopher-lua with the libraries Argo CD opens) on ModelDeployment objects captured from the operator
(tests/argocd/samples), from the chart's argocd-cm patch as a user installs it."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.operator.api import PHASES, ModelDeploymentStatus
from modeldeploy.operator.chartgen import ARGOCD_ACTIONS, ARGOCD_KEY
from modeldeploy.operator.planner.actions import ACTION_ANNOTATION, ACTIONS, parse_action
from tests.argocd.engine import CM_PATCH, LUA_DIR, ArgoCDLua, ArgoCDLuaError, build

SAMPLES_DIR = Path(__file__).with_name("samples")
SAMPLES = {path.stem: json.loads(path.read_text()) for path in sorted(SAMPLES_DIR.glob("*.json"))}
HEALTH = LUA_DIR / "health.lua"
DISCOVERY = LUA_DIR / "actions" / "discovery.lua"

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


@pytest.fixture(scope="module")
def argocd() -> ArgoCDLua:
    return ArgoCDLua(build())


def action_script(name: str) -> Path:
    return LUA_DIR / "actions" / name / "action.lua"


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


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_health_of_captured_samples(argocd: ArgoCDLua, name: str) -> None:
    sample = SAMPLES[name]
    health = argocd.health(sample["object"])
    assert health["status"] == sample["expectedHealth"], health
    status = sample["object"]["status"]
    assert health["message"]
    if health["status"] == "Degraded" and status.get("rollbackReason"):
        assert health["message"] == f"{status['phase']}: {status['rollbackReason']}"
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
def test_health_of_edge_cases(
    argocd: ArgoCDLua, mutate: Callable[[dict[str, Any]], object], status: str, message: str
) -> None:
    obj = copy.deepcopy(SAMPLES["succeeded"]["object"])
    mutate(obj)
    health = argocd.health(obj)
    assert health["status"] == status and message in health["message"], health


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_discovery_offers_the_actions_that_apply(argocd: ArgoCDLua, name: str) -> None:
    actions = argocd.discovery(SAMPLES[name]["object"])
    assert set(actions) == set(ARGOCD_ACTIONS)
    enabled = {action for action, settings in actions.items() if not settings.get("disabled", False)}
    assert enabled == EXPECTED_ACTIONS[name]
    assert all(settings["iconClass"].startswith("fa ") for settings in actions.values())


def test_every_action_the_operator_knows_has_a_script() -> None:
    assert set(ARGOCD_ACTIONS) == set(ACTIONS)
    for action in ARGOCD_ACTIONS:
        assert action_script(action).is_file()


@pytest.mark.parametrize("action", ARGOCD_ACTIONS)
def test_action_writes_only_the_request_annotation(argocd: ArgoCDLua, action: str) -> None:
    original = SAMPLES["progressing-canary"]["object"]
    result = argocd.action(action, original)
    assert result.operation == "patch"
    value = result.object["metadata"]["annotations"][ACTION_ANNOTATION]
    assert re.fullmatch(rf"{re.escape(action)}@\d{{8}}T\d{{6}}Z-rv4242", value), value
    request = parse_action(value)
    assert request.action == action and request.request_id
    # What the Argo CD API server sends: the annotation and nothing else (Argo CD turns the
    # empty tables Lua returns back into the object's empty maps before diffing).
    assert result.merge_patch == {"metadata": {"annotations": {ACTION_ANNOTATION: value}}}
    expected = copy.deepcopy(original)
    expected["metadata"]["annotations"][ACTION_ANNOTATION] = value
    assert result.object == expected


def test_action_creates_the_annotations_map_when_absent(argocd: ArgoCDLua) -> None:
    obj = copy.deepcopy(SAMPLES["paused-by-user"]["object"])
    obj["metadata"].pop("annotations", None)
    result = argocd.action("resume", obj)
    value = result.merge_patch["metadata"]["annotations"][ACTION_ANNOTATION]
    assert parse_action(value).action == "resume"
    assert result.merge_patch == {"metadata": {"annotations": {ACTION_ANNOTATION: value}}}


def test_an_action_argocd_does_not_define_is_refused(argocd: ArgoCDLua) -> None:
    with pytest.raises(ArgoCDLuaError, match="rollback"):
        argocd.action("rollback", SAMPLES["progressing-canary"]["object"])


def test_a_script_using_a_library_argocd_does_not_open_fails(argocd: ArgoCDLua, tmp_path: Path) -> None:
    """The engine has Argo CD's libraries: `string`, `io`, `math` and a global `os` are absent for
    argocd-cm scripts (stock Lua has them), so a script that needs them fails here as in Argo CD.
    (The action scripts once called `os.date` without `local os = require("os")`: this caught it.)"""
    patch = yaml.safe_load(CM_PATCH.read_text())
    for library_call in ("string.upper(obj.status.phase)", "io.write('x')", "math.floor(1)", "os.date()"):
        patch["data"][f"resource.customizations.health.{ARGOCD_KEY}"] = (
            f"return {{status = 'Healthy', message = {library_call}}}\n"
        )
        broken = tmp_path / "argocd-cm-patch.yaml"
        broken.write_text(yaml.safe_dump(patch))
        with pytest.raises(ArgoCDLuaError, match="attempt to index a non-table object"):
            ArgoCDLua(argocd.binary, broken).health(SAMPLES["succeeded"]["object"])


def test_argocd_cm_patch_carries_the_scripts() -> None:
    patch = yaml.safe_load(CM_PATCH.read_text())["data"]
    assert patch[f"resource.customizations.health.{ARGOCD_KEY}"] == HEALTH.read_text()
    actions = yaml.safe_load(patch[f"resource.customizations.actions.{ARGOCD_KEY}"])
    assert actions["discovery.lua"] == DISCOVERY.read_text()
    assert [d["name"] for d in actions["definitions"]] == list(ARGOCD_ACTIONS)
    for definition in actions["definitions"]:
        assert definition["action.lua"] == action_script(definition["name"]).read_text()
