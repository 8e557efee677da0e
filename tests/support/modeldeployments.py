"""The one builder of ModelDeployments for tests and benchmarks.

`modeldeployment()` returns a manifest (what `kubectl apply` sends); `spec_of()` the typed spec
the planner takes. Every layer's helper is this builder with its own defaults:
tests/unit/planner/harness.py `make_spec`, tests/support/mdep.py `manifest`,
tests/support/e2e_scenarios.py `modeldeployment`, tests/support/modeldeployment_specs.py
`valid_manifest`, tests/argocd/capture.py `manifest`, bench/scale_cluster.py `manifest`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from modeldeploy.operator.api import GROUP, VERSION, ModelDeploymentSpec

Manifest = dict[str, Any]

STEPS: list[dict[str, Any]] = [
    {"shadow": {"percent": 100, "duration": "2m"}},
    {"canary": {"weight": 10, "duration": "1m"}},
    {"canary": {"weight": 50, "duration": "2m"}},
    {"pause": {}},
]
"""shadow → canary 10% → canary 50% → pause: the default rollout."""


def modeldeployment(
    name: str = "iris",
    image: str = "registry.example.com/iris:1",
    *,
    replicas: int | None = 2,
    steps: list[dict[str, Any]] | None = None,
    analysis: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    drain_period: str | None = "1s",
    prometheus_url: str | None = None,
    **spec: Any,
) -> Manifest:
    """A ModelDeployment manifest (None leaves a field to its default). `env`: the model
    container's variables (sorted by name);
    `spec`: further top-level spec fields by their API names (guardrails, progressDeadline, ...),
    replacing what the arguments set."""
    model: dict[str, Any] = {"image": image}
    if env:
        model["env"] = [{"name": key, "value": value} for key, value in sorted(env.items())]
    body: dict[str, Any] = {"model": model}
    if replicas is not None:
        body["replicas"] = replicas
    if drain_period is not None:
        body["drainPeriod"] = drain_period
    if prometheus_url is not None:
        body["prometheus"] = {"url": prometheus_url}
    rollout: dict[str, Any] = {"steps": list(STEPS if steps is None else steps)}
    if analysis is not None:
        rollout["analysis"] = dict(analysis)
    body["rollout"] = rollout
    body.update(spec)
    manifest = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name}}
    return copy.deepcopy({**manifest, "spec": body})  # callers may edit it in place


def spec_of(manifest: Manifest) -> ModelDeploymentSpec:
    """The typed spec of a manifest (what the operator parses)."""
    return ModelDeploymentSpec.model_validate(manifest["spec"])
