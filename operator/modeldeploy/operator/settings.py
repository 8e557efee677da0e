"""Operator settings, from environment variables (the Helm chart sets them) or CLI flags."""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class OperatorSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sidecar_image: str = Field(
        "ghcr.io/modeldeploy/modeldeploy-sidecar:0.1.0",
        description="Image of the modeldeploy sidecar container injected into every serving pod "
        "(the Rust binary's own image, sidecar/Dockerfile).",
    )
    sidecar_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="imagePullPolicy of the sidecar container."
    )
    sidecar_resources: dict[str, Any] | None = Field(
        None,
        description=(
            "Resources of the sidecar container (JSON in MODELDEPLOY_SIDECAR_RESOURCES); "
            "None keeps the planner's defaults."
        ),
    )
    namespaces: tuple[str, ...] = Field((), description="Namespaces to watch; empty means cluster-wide.")
    metrics_port: int = Field(8000, ge=0, le=65535, description="Port of the operator's /metrics (0 = off).")
    peering: str | None = Field(
        None, description="kopf peering object name for HA (several replicas, one active); None = standalone."
    )
    peering_priority: int | None = Field(
        None,
        ge=0,
        description=(
            "kopf peering priority; the highest live one works, the others stand by. None with peering: "
            "earlier-started processes rank higher (random tie-break), so replicas never tie (tied peers "
            "all pause) and a joining replica never takes the work from a live one."
        ),
    )
    default_prometheus_url: str = Field(
        "http://prometheus-server.monitoring:9090",
        description="Prometheus used when a ModelDeployment names none.",
    )
    resync_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest time between two reconciles of a ModelDeployment that is not rolling out.",
    )
    log_level: str = Field("INFO", description="Python log level.")
    analysis_min_window_seconds: float = Field(
        30.0, gt=0, description="Shortest PromQL window of an analysis run (at least two scrape intervals)."
    )
    http_proxy: str | None = Field(
        None,
        description=(
            "HTTP proxy for the operator's own requests to revision Services (golden requests); "
            "unset: direct, through cluster DNS."
        ),
    )
    analysis_override: Literal["pass", "fail", "inconclusive"] | None = Field(
        None,
        description="Testing only: skip Prometheus; every analysis run yields this verdict.",
    )

    @field_validator("sidecar_resources", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else None
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc}") from None
        return value

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(ns.strip() for ns in value.split(",") if ns.strip())
        return value


ENV_PREFIX = "MODELDEPLOY_"


def settings_from_env(environ: dict[str, str] | None = None, **overrides: object) -> OperatorSettings:
    """Read MODELDEPLOY_<FIELD> variables (e.g. MODELDEPLOY_SIDECAR_IMAGE); flags override them."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name in OperatorSettings.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = env[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return OperatorSettings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"modeldeploy-operator: invalid settings: {problems}") from None
