"""Sidecar defaults from the operator's environment (the Helm chart's `sidecar.*` values)."""

from __future__ import annotations

import pytest

from modeldeploy.operator.planner.inputs import PlannerConfig
from modeldeploy.operator.reconcile import planner_config
from modeldeploy.operator.settings import settings_from_env


def test_sidecar_pull_policy_and_resources_reach_the_planner() -> None:
    settings = settings_from_env(
        {
            "MODELDEPLOY_SIDECAR_IMAGE": "registry.example/modeldeploy:1.2.3",
            "MODELDEPLOY_SIDECAR_IMAGE_PULL_POLICY": "Always",
            "MODELDEPLOY_SIDECAR_RESOURCES": '{"requests": {"cpu": "10m"}, "limits": {"memory": "99Mi"}}',
        }
    )
    config = planner_config(settings)
    assert config.sidecar_image == "registry.example/modeldeploy:1.2.3"
    assert config.sidecar_image_pull_policy == "Always"
    assert dict(config.sidecar_resources) == {"requests": {"cpu": "10m"}, "limits": {"memory": "99Mi"}}


def test_without_sidecar_resources_the_planner_defaults_stay() -> None:
    config = planner_config(settings_from_env({}))
    assert dict(config.sidecar_resources) == dict(PlannerConfig(sidecar_image="x").sidecar_resources)
    assert config.sidecar_image_pull_policy == "IfNotPresent"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("MODELDEPLOY_SIDECAR_RESOURCES", "{cpu: 1", "MODELDEPLOY_SIDECAR_RESOURCES"),
        ("MODELDEPLOY_SIDECAR_IMAGE_PULL_POLICY", "Sometimes", "MODELDEPLOY_SIDECAR_IMAGE_PULL_POLICY"),
    ],
)
def test_bad_sidecar_settings_are_named(key: str, value: str, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        settings_from_env({key: value})
