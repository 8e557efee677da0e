"""`spec` of a ModelDeployment: what to serve, how many replicas, how a new revision rolls out."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from modeldeploy.operator.api.cel import ApiModel, CelRule, Matches
from modeldeploy.operator.api.fields import HEADER_PATTERN, Duration, PositiveDuration, bounded
from modeldeploy.operator.api.guardrails import GuardrailsSpec
from modeldeploy.operator.api.model import ModelSpec
from modeldeploy.operator.api.pod_template import PodTemplateSpec
from modeldeploy.operator.api.rollout import RolloutSpec

_HEADER = Matches(HEADER_PATTERN, "must be an HTTP header name such as x-modeldeploy-key (no spaces)")
_URL_RULE = "prometheus.url must start with http:// or https://"


class PrometheusSpec(ApiModel):
    """The Prometheus the analysis queries."""

    url: Annotated[
        str,
        bounded(2048, 1),
        CelRule("self.startsWith('http://') || self.startsWith('https://')", _URL_RULE),
    ] = Field(description="Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{_URL_RULE}, got {url!r}")
        return url


class ShadowComparison(ApiModel):
    """How a shadow response is compared with the response the client got."""

    mode: Literal["exact", "numeric"] = Field(
        default="numeric",
        description="exact: bodies must be equal; numeric: JSON equal with numbers within tolerance.",
    )
    tolerance: float = Field(
        default=1e-6, ge=0, le=1e9, description="Absolute tolerance for numbers in numeric mode."
    )


class TrafficSpec(ApiModel):
    """How live traffic is split between the stable and the new revision."""

    sticky_header: Annotated[str, StringConstraints(min_length=1, max_length=128), _HEADER] | None = Field(
        default=None,
        description=(
            "Request header (e.g. x-modeldeploy-key) whose value pins a client to one revision during "
            "canary steps; random per request when unset."
        ),
    )
    shadow_comparison: ShadowComparison = Field(
        default_factory=ShadowComparison, description="How shadow responses are compared."
    )


class ModelDeploymentSpec(ApiModel):
    """Desired state: the model server to run and how a new revision of it is rolled out."""

    model: ModelSpec = Field(description="The model server container; changing it starts a rollout.")
    template: PodTemplateSpec | None = Field(
        default=None,
        description=(
            "Pod template (Kubernetes' PodTemplateSpec) completed by spec.model and the operator: "
            "scheduling, volumes, ServiceAccount, pull secrets, security contexts, init and extra "
            "containers; the container named model adds to spec.model. Changing it starts a rollout. "
            "See docs/api.md."
        ),
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=1000,
        description=(
            "Pods of the stable revision (the scale subresource: kubectl scale or a HorizontalPodAutoscaler "
            "may set it); canary and shadow pods are sized from it."
        ),
    )
    rollout: RolloutSpec = Field(description="Steps and analysis of a new revision.")
    prometheus: PrometheusSpec | None = Field(
        default=None, description="Prometheus to query; the operator's default when unset."
    )
    traffic: TrafficSpec = Field(default_factory=TrafficSpec, description="Traffic splitting options.")
    progress_deadline: PositiveDuration = Field(
        default="10m",
        description=(
            "Longest a new revision may take to get its pods ready (or a step to make progress) before "
            "the rollout is rolled back."
        ),
    )
    drain_period: Duration = Field(
        default="30s",
        description="After promotion, how long the previous stable revision keeps running before removal.",
    )
    guardrails: GuardrailsSpec = Field(
        default_factory=GuardrailsSpec,
        description="Golden requests, request data contract, prediction logging and input drift checks.",
    )
