"""Steps shared by the e2e tests, `make bench` and `make demo`: deploy, roll out, watch a rollback."""

from __future__ import annotations

import time
from typing import Any

from tests.support.modeldeployments import modeldeployment as build_modeldeployment
from tests.support.real_env import RealNodeEnv


def prom_url(env: RealNodeEnv) -> str:
    assert env.prometheus is not None
    return env.prometheus.url


def deploy_stable(e2e: RealNodeEnv, name: str, **kw: Any) -> str:
    kw.setdefault("model_fields", e2e.model_fields)
    e2e.apply(modeldeployment(name, prom_url(e2e), **kw))
    status = e2e.wait(
        lambda: e2e.status(name) if e2e.status(name).get("phase") == "Succeeded" else None,
        120,
        f"{name} stable",
    )
    revision: str = status["stableRevision"]
    assert e2e.runner is not None
    e2e.runner.wait_ready(revision, 1, timeout=120)
    return revision


def new_revision_spec(e2e: RealNodeEnv, name: str, **kw: Any) -> dict[str, Any]:
    spec: dict[str, Any] = modeldeployment(name, prom_url(e2e), model_fields=e2e.model_fields, **kw)["spec"]
    return {"model": spec["model"]}


def watch_rollback(env: RealNodeEnv, name: str, stable: str, timeout: float) -> dict[str, float]:
    """Poll routing and status until RolledBack; return when traffic reached and left the bad revision.

    The breach starts when the routing table sends the new revision traffic AND one of its pods
    serves (KWOK reports pods Ready at once; the harness knows when the processes really are).
    Each poll reads the status before the routing table: the operator writes the routing table
    first, so a RolledBack status is always read with the cut routing table of the same poll (read
    the other way round, a rollback written between the two reads was seen without its cut).
    """
    marks: dict[str, float] = {}
    assert env.runner is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        rolled_back = env.status(name).get("phase") == "RolledBack"
        routing = env.routing(name)
        routed = [r for r in (routing.get("canary"), routing.get("shadow")) if r and r["revision"] != stable]
        live = any((r.get("weight") or r.get("percent") or 0) > 0 for r in routed)
        serving_since = env.runner.first_ready_at(routed[0]["revision"]) if routed else None
        if live and serving_since is not None and "breach_start" not in marks:
            marks["breach_start"] = max(now, serving_since)
        if "breach_start" in marks and not live and "traffic_cut" not in marks:
            marks["traffic_cut"] = now
        entry = env.core.read_namespaced_service(name, env.namespace).spec.selector["modeldeploy.io/revision"]
        assert entry == stable, "the entry Service must keep pointing at stable"
        if rolled_back:
            assert not live, f"{name} is RolledBack but the routing table still sends it traffic: {routing}"
            marks["rolled_back"] = now
            return marks
        time.sleep(0.1)
    raise AssertionError(f"{name} not rolled back in {timeout}s: {env.status(name)}")


def modeldeployment(
    name: str,
    prometheus_url: str,
    *,
    env: dict[str, str] | None = None,
    variant: str = "a",
    model_fields: dict[str, Any] | None = None,
    steps: list[dict[str, Any]] | None = None,
    analysis: dict[str, Any] | None = None,
    replicas: int = 1,
    extra_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ModelDeployment of the iris example; `env` sets IRIS_* switches (latency, failures).

    `extra_spec` adds top-level spec fields (e.g. traffic, guardrails); `model_fields` adds spec.model
    fields (the real node: the iris image as imported; without them the image is a name nothing pulls).
    """
    model_env = {"IRIS_VARIANT": variant, **(env or {})}
    default_steps = [
        {"shadow": {"percent": 100, "duration": "8s"}},
        {"canary": {"weight": 30, "duration": "8s"}},
        {"canary": {"weight": 60, "duration": "8s"}},
    ]
    default_analysis = {
        "interval": "2s",
        "failureLimit": 2,
        "minRequests": 20,
        # Absolute limits are judged with exact tests on counts; a p99 ratio to stable
        # is not, and a just-started model on a loaded 2-core machine can trip it.
        "slo": {"latencyP99": "500ms", "errorRate": 0.05},
    }
    manifest = build_modeldeployment(
        name,
        f"registry.invalid/iris:{variant}",
        replicas=replicas,
        steps=steps or default_steps,
        analysis=analysis or default_analysis,
        env=model_env,
        prometheus_url=prometheus_url,
        **(extra_spec or {}),
    )
    manifest["spec"]["model"].update(model_fields or {})
    return manifest
