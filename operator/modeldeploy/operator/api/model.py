"""`spec.model`: the serving container of every revision (image, port, args, env, resources, probes).

Everything here is pod-template relevant: changing any of it makes a new revision (see revision.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from modeldeploy.operator.api.cel import ApiModel, CelRule, Matches, SchemaExtra
from modeldeploy.operator.api.fields import ENV_NAME_PATTERN, Name, Quantity, bounded

_ENV_NAME = Matches(
    ENV_NAME_PATTERN, "must consist of letters, digits, '_', '-' or '.' and not start with a digit"
)
MAX_ENV = 64
MAX_ARGS = 64


class KeySelector(ApiModel):
    """Selects a key of a ConfigMap or Secret in the ModelDeployment's namespace."""

    name: Name = Field(description="Name of the ConfigMap or Secret.")
    key: Annotated[str, bounded(253, 1)] = Field(description="Key within it.")
    optional: bool | None = Field(
        default=None, description="Whether the container may start when the object or key is missing."
    )


class FieldSelector(ApiModel):
    """Selects a field of the pod, e.g. metadata.name, metadata.namespace, status.podIP."""

    field_path: Annotated[str, bounded(256, 1)] = Field(description="Path of the field, e.g. status.podIP.")
    api_version: Annotated[str, bounded(64)] | None = Field(
        default=None, description="Schema version the fieldPath is written in (default v1)."
    )


class ResourceFieldSelector(ApiModel):
    """Selects a resource request or limit of the model container, e.g. limits.memory."""

    resource: Annotated[str, bounded(128, 1)] = Field(description="Resource, e.g. limits.cpu.")
    divisor: Quantity | None = Field(default=None, description="Unit the value is expressed in (default 1).")


_ONE_SOURCE = "valueFrom must set exactly one of secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef"


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from; exactly one source is set."""

    __cel_rules__ = (
        CelRule(
            "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef),"
            " has(self.resourceFieldRef)].exists_one(x, x)",
            _ONE_SOURCE,
        ),
    )

    secret_key_ref: KeySelector | None = Field(default=None, description="A key of a Secret.")
    config_map_key_ref: KeySelector | None = Field(default=None, description="A key of a ConfigMap.")
    field_ref: FieldSelector | None = Field(default=None, description="A field of the pod.")
    resource_field_ref: ResourceFieldSelector | None = Field(
        default=None, description="A resource request or limit of the model container."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        chosen = [
            self.secret_key_ref,
            self.config_map_key_ref,
            self.field_ref,
            self.resource_field_ref,
        ]
        if sum(source is not None for source in chosen) != 1:
            raise ValueError(_ONE_SOURCE)
        return self


class EnvVar(ApiModel):
    """An environment variable of the model container (same shape as a Pod's env entry)."""

    __cel_rules__ = (
        CelRule("!(has(self.value) && has(self.valueFrom))", "env var may set value or valueFrom, not both"),
    )

    name: Annotated[str, StringConstraints(min_length=1, max_length=128), _ENV_NAME] = Field(
        description="Variable name (letters, digits, '_', '-', '.'; not starting with a digit)."
    )
    value: Annotated[str, bounded(32768)] | None = Field(
        default=None, description="Literal value; $(OTHER) references earlier variables as in a Pod."
    )
    value_from: EnvVarSource | None = Field(
        default=None, description="Take the value from a Secret, ConfigMap or pod field instead."
    )

    @model_validator(mode="after")
    def _value_or_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"env var {self.name}: may set value or valueFrom, not both")
        return self


ResourceList = Annotated[dict[Annotated[str, bounded(128, 1)], Quantity], SchemaExtra({"maxProperties": 16})]


class Resources(ApiModel):
    """Compute resources of the model container (requests and limits, as in a Pod)."""

    requests: ResourceList | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 500m, memory: 1Gi}; used for scheduling."
    )
    limits: ResourceList | None = Field(
        default=None, description="Maximum resources, e.g. {memory: 2Gi, nvidia.com/gpu: 1}."
    )


class HttpGet(ApiModel):
    """An HTTP GET check against the model container."""

    path: Annotated[
        str, StringConstraints(min_length=1, max_length=1024), Matches("^/", "must start with /")
    ] = Field(description="Request path, e.g. /readyz.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Port; defaults to spec.model.port.")
    scheme: Literal["HTTP", "HTTPS"] = Field(default="HTTP", description="HTTP or HTTPS.")


class Probe(ApiModel):
    """A health check of the model container (the subset of a Pod probe that applies to a model server)."""

    http_get: HttpGet = Field(description="The HTTP request that must answer 2xx or 3xx.")
    initial_delay_seconds: int = Field(
        default=0, ge=0, le=3600, description="Seconds after start before the first check."
    )
    period_seconds: int = Field(default=10, ge=1, le=3600, description="Seconds between checks.")
    timeout_seconds: int = Field(default=1, ge=1, le=3600, description="Seconds a check may take.")
    success_threshold: int = Field(
        default=1, ge=1, le=100, description="Consecutive successes to be considered healthy again."
    )
    failure_threshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures to be considered unhealthy."
    )


class ModelSpec(ApiModel):
    """The model server container run for every revision (BentoML by default)."""

    image: Annotated[str, bounded(512, 1)] = Field(
        description="Container image of the model server, e.g. registry.example.com/iris:2.0."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None,
        description="When the kubelet pulls the image; default as for Pods (Always for :latest).",
    )
    port: int = Field(default=3000, ge=1, le=65535, description="Port the model server listens on.")
    command: Annotated[list[Annotated[str, bounded(4096)]], Field(max_length=MAX_ARGS)] | None = Field(
        default=None, description="Entrypoint override; the image's ENTRYPOINT when unset."
    )
    args: Annotated[list[Annotated[str, bounded(4096)]], Field(max_length=MAX_ARGS)] | None = Field(
        default=None, description="Arguments to the entrypoint; the image's CMD when unset."
    )
    env: Annotated[
        list[EnvVar],
        Field(max_length=MAX_ENV),
        SchemaExtra({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    ] = Field(default_factory=list, description="Environment variables of the model container.")
    resources: Resources | None = Field(
        default=None, description="CPU, memory and accelerator requests and limits of the model container."
    )
    readiness_probe: Probe | None = Field(
        default=None,
        description="When a pod may receive traffic. Default: HTTP GET /readyz on the model port.",
    )
    liveness_probe: Probe | None = Field(
        default=None,
        description="When the container is restarted. Default: HTTP GET /livez on the model port.",
    )

    @model_validator(mode="after")
    def _unique_env(self) -> ModelSpec:
        seen: set[str] = set()
        for var in self.env:
            if var.name in seen:
                raise ValueError(f"env var {var.name} is defined twice")
            seen.add(var.name)
        return self
