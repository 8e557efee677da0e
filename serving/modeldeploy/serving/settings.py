"""Sidecar configuration from environment variables and command-line flags, validated by pydantic.

Every setting has an environment variable (what the operator sets in the pod template) and a flag
(for local runs); a flag wins over the environment. `load_settings` raises `SettingsError` with one
line per problem, naming the variable or flag, so a misconfigured pod says why it did not start.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "MODELDEPLOY_"
DEFAULT_RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class SettingsError(ValueError):
    """The sidecar configuration is invalid; the message lists every problem."""


def _http_url(value: str, what: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{what} must be an http:// or https:// URL, got {value!r}")
    if not urlsplit(value).hostname:
        raise ValueError(f"{what} must name a host, got {value!r}")
    return value.rstrip("/")


class SidecarSettings(BaseModel):
    """Everything the sidecar needs to start. Field `x` is env `MODELDEPLOY_X` and flag `--x`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="ModelDeployment name (metric label `model`).")
    namespace: str = Field(min_length=1, description="Namespace (metric label `namespace`).")
    revision: str = Field(min_length=1, description="This pod's revision hash.")
    upstream: str = Field(description="URL of the local BentoML server, e.g. http://127.0.0.1:3000.")
    routing_configmap: str | None = Field(default=None, description="ConfigMap holding the routing table.")
    routing_file: Path | None = Field(default=None, description="Routing table file (local runs, tests).")
    listen_host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535, description="Traffic port.")
    metrics_port: int = Field(default=9090, ge=1, le=65535, description="Port of /metrics.")
    backend_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="revision -> URL replacing the table's URL (local runs without cluster DNS).",
    )
    http_proxy: str | None = Field(
        default=None, description="HTTP proxy for canary/shadow traffic (never for the local upstream)."
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1, description="Larger request bodies get 413.")
    body_timeout: float = Field(
        default=60.0, gt=0, description="Seconds a client may take to send a request body (then 408)."
    )
    idle_timeout: float = Field(
        default=75.0,
        gt=0,
        description="Seconds a client connection may go without a complete request (idle keep-alive, "
        "or request headers still arriving) before it is closed.",
    )
    upstream_timeout: float = Field(default=30.0, gt=0, description="Seconds per upstream request (504).")
    connect_timeout: float = Field(default=2.0, gt=0, description="Seconds to connect upstream (503).")
    pool_size: int = Field(default=256, ge=1, description="Pooled upstream connections.")
    retry_methods: frozenset[str] = Field(
        default=DEFAULT_RETRY_METHODS,
        description="Methods retried on the local revision when the canary fails.",
    )
    shadow_concurrency: int = Field(default=8, ge=1, description="Shadow requests in flight at most.")
    shadow_queue: int = Field(default=64, ge=0, description="Shadow copies waiting; more are dropped.")
    shadow_timeout: float = Field(default=10.0, gt=0, description="Seconds per shadow request.")
    prediction_log_queue: int = Field(
        default=1024, ge=1, description="Sampled log lines waiting for the writer; more are dropped."
    )
    compare_max_bytes: int = Field(default=1024 * 1024, ge=0, description="Largest body compared.")
    drain_delay: float = Field(default=0.0, ge=0, description="Seconds to keep serving after SIGTERM.")
    drain_timeout: float = Field(default=25.0, ge=0, description="Seconds to let in-flight requests end.")
    watch_timeout: int = Field(default=300, ge=1, description="Server-side timeout of one ConfigMap watch.")
    file_poll_interval: float = Field(default=0.2, gt=0, description="Routing file check period (s).")
    kubeconfig: Path | None = Field(default=None, description="Kubeconfig outside a cluster.")
    log_level: str = "INFO"

    @field_validator("upstream")
    @classmethod
    def _upstream_url(cls, value: str) -> str:
        return _http_url(value, "upstream")

    @field_validator("http_proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "http_proxy")

    @field_validator("backend_overrides")
    @classmethod
    def _override_urls(cls, value: dict[str, str]) -> dict[str, str]:
        return {rev: _http_url(url, f"backend_overrides[{rev!r}]") for rev, url in value.items()}

    @field_validator("retry_methods", mode="before")
    @classmethod
    def _methods(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [m for m in value.replace(" ", ",").split(",") if m]
        if isinstance(value, list | set | frozenset | tuple):
            return frozenset(str(m).upper() for m in value)
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"log_level must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
        return level

    @model_validator(mode="after")
    def _one_routing_source(self) -> SidecarSettings:
        if (self.routing_configmap is None) == (self.routing_file is None):
            raise ValueError(
                "exactly one routing source is required: MODELDEPLOY_ROUTING_CONFIGMAP (in a cluster) "
                "or MODELDEPLOY_ROUTING_FILE (local runs)"
            )
        if self.port == self.metrics_port:
            raise ValueError(f"port and metrics_port must differ (both {self.port})")
        return self

    def backend_url(self, revision: str, url: str) -> str:
        """The URL to reach `revision`: the override if one is configured, else the table's URL."""
        return self.backend_overrides.get(revision, url)


_JSON_FIELDS = {"backend_overrides"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeldeploy-sidecar",
        description="modeldeploy serving sidecar: canary split, shadow copies, fast guard, metrics. "
        f"Every flag --x-y can also be given as environment variable {ENV_PREFIX}X_Y.",
    )
    for name, field in SidecarSettings.model_fields.items():
        env = ENV_PREFIX + name.upper()
        hint = f"{field.description or ''} [env {env}]".strip()
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=hint)
    return parser


def _raw_values(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Collect raw strings: environment first, flags over it. Returns (values, origin per field)."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name in SidecarSettings.model_fields:
        env = ENV_PREFIX + name.upper()
        if environ.get(env, "") != "":
            values[name], origin[name] = environ[env], env
    flags = vars(_parser().parse_args(list(argv)))
    for name, value in flags.items():
        if value is not None:
            values[name], origin[name] = value, "--" + name.replace("_", "-")
    for name in _JSON_FIELDS & values.keys():
        try:
            values[name] = json.loads(values[name])
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{origin[name]}: not valid JSON ({exc.msg} at position {exc.pos})") from exc
    return values, origin


def load_settings(argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> SidecarSettings:
    """Settings from `environ` (default os.environ) and flags `argv`; SettingsError lists every problem."""
    values, origin = _raw_values(argv, os.environ if environ is None else environ)
    try:
        return SidecarSettings.model_validate(values)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            where = origin.get(name) or (ENV_PREFIX + name.upper() if name else "configuration")
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message}")
        raise SettingsError("invalid sidecar configuration:\n  " + "\n  ".join(lines)) from None
