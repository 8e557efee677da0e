"""Sidecar configuration from environment and flags (modeldeploy.serving.settings)."""

from __future__ import annotations

import pytest

from modeldeploy.serving.main import main
from modeldeploy.serving.settings import SettingsError, load_settings

BASE = {
    "MODELDEPLOY_MODEL": "iris",
    "MODELDEPLOY_NAMESPACE": "ml",
    "MODELDEPLOY_REVISION": "aaaa",
    "MODELDEPLOY_UPSTREAM": "http://127.0.0.1:3000",
    "MODELDEPLOY_ROUTING_CONFIGMAP": "iris-routing",
}


def test_environment_as_the_operator_sets_it() -> None:
    s = load_settings([], BASE | {"MODELDEPLOY_BACKEND_OVERRIDES": '{"bbbb": "http://127.0.0.1:9001/"}'})
    assert (s.model, s.namespace, s.revision, s.port, s.metrics_port) == ("iris", "ml", "aaaa", 8080, 9090)
    assert s.backend_url("bbbb", "http://iris-bbbb.ml.svc:8080") == "http://127.0.0.1:9001"
    assert s.backend_url("cccc", "http://iris-cccc.ml.svc:8080") == "http://iris-cccc.ml.svc:8080"
    assert "POST" not in s.retry_methods


def test_flags_override_environment() -> None:
    s = load_settings(["--port", "18080", "--retry-methods", "get, post"], BASE | {"MODELDEPLOY_PORT": "1"})
    assert s.port == 18080
    assert s.retry_methods == frozenset({"GET", "POST"})


def test_every_problem_is_named_with_its_variable() -> None:
    env = {"MODELDEPLOY_UPSTREAM": "127.0.0.1:3000", "MODELDEPLOY_PORT": "http"}
    with pytest.raises(SettingsError) as info:
        load_settings([], env)
    text = str(info.value)
    for expected in (
        "MODELDEPLOY_MODEL: Field required",
        "MODELDEPLOY_REVISION: Field required",
        "MODELDEPLOY_UPSTREAM: upstream must be an http:// or https:// URL",
        "MODELDEPLOY_PORT: Input should be a valid integer",
    ):
        assert expected in text


def test_exactly_one_routing_source() -> None:
    both = BASE | {"MODELDEPLOY_ROUTING_FILE": "/tmp/r.json"}
    with pytest.raises(SettingsError, match="exactly one routing source"):
        load_settings([], both)
    neither = {k: v for k, v in BASE.items() if k != "MODELDEPLOY_ROUTING_CONFIGMAP"}
    with pytest.raises(SettingsError, match="exactly one routing source"):
        load_settings([], neither)


def test_overrides_must_be_json_of_urls() -> None:
    with pytest.raises(SettingsError, match="MODELDEPLOY_BACKEND_OVERRIDES: not valid JSON"):
        load_settings([], BASE | {"MODELDEPLOY_BACKEND_OVERRIDES": "{bbbb: 1"})
    with pytest.raises(SettingsError, match=r"backend_overrides\['bbbb'\] must be an http"):
        load_settings([], BASE | {"MODELDEPLOY_BACKEND_OVERRIDES": '{"bbbb": "127.0.0.1:1"}'})


def test_main_exits_2_with_the_reasons(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in BASE:
        monkeypatch.delenv(name, raising=False)
    assert main(["--model", "iris"]) == 2
    err = capsys.readouterr().err
    assert "invalid sidecar configuration" in err
    assert "MODELDEPLOY_NAMESPACE: Field required" in err
