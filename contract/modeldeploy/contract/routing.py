"""The routing table: which revision gets live traffic, canary weight, shadow copies, guard limits.

The operator's planner writes it as JSON under key `routing.json` in ConfigMap `<model>-routing`;
every sidecar of the model watches that ConfigMap and applies changes within about a second.
Field names are camelCase on the wire (the ConfigMap) and snake_case in Python; both are accepted
when constructing a table.

This model is the one definition of a valid table: its JSON Schema is generated into
`contract/routing-table.schema.json` (`make contract`) and the tables in `contract/vectors/` (valid,
and invalid with the field at fault) are loaded by the Python and the Rust tests alike. Rules the
JSON Schema cannot express (a canary that is the stable revision, minRequests > window, header
names, JSON pointer syntax, a contract schema that is not JSON Schema, feature names used twice)
live in the validators below and in the invalid vectors.
"""

from __future__ import annotations

import math
from typing import Any, Literal
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, SchemaError, validators
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from modeldeploy.contract.json_pointer import PointerError, parse_pointer, to_pointer

ROUTING_KEY = "routing.json"
"""ConfigMap data key holding the routing table as JSON."""


def routing_configmap_name(model: str) -> str:
    """Name of the ConfigMap that holds the routing table of ModelDeployment `model`."""
    if not model:
        raise ValueError("model name must not be empty")
    return f"{model}-routing"


def check_json_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError unless `schema` is a valid JSON Schema of its dialect (`$schema`, else 2020-12)."""
    cls = validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        message = exc.message if len(exc.message) <= 300 else exc.message[:299] + "…"
        raise ValueError(f"not a valid JSON Schema at {to_pointer(exc.absolute_path)}: {message}") from None


def _field_error(model: str, loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """The error of a rule across fields, located at the (wire-named) field it is about."""
    error = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)
    return ValidationError.from_exception_data(model, [error])


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )


class Backend(_Model):
    """One revision and the URL its traffic is sent to (the revision's Service)."""

    revision: str = Field(min_length=1, description="Revision hash of the model deployment.")
    url: str = Field(
        description="Base URL of the revision's Service, e.g. http://iris-1a2b.ml.svc:8080.",
        json_schema_extra={"pattern": "^https?://"},
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {value!r}")
        if not urlsplit(value).hostname:
            raise ValueError(f"url must name a host, got {value!r}")
        return value.rstrip("/")


class CanaryRoute(Backend):
    """The canary revision and the share of live traffic it receives."""

    weight: float = Field(ge=0, le=100, description="Percent (0..100) of live traffic sent to the canary.")


class ShadowRoute(Backend):
    """The shadow revision and the share of live requests copied to it (responses are discarded)."""

    percent: float = Field(ge=0, le=100, description="Percent of live requests copied to the shadow.")


class Comparison(_Model):
    """How a shadow response is compared with the primary response."""

    mode: Literal["exact", "numeric"] = "numeric"
    tolerance: float = Field(default=1e-6, ge=0, description="Absolute tolerance for numbers (numeric mode).")


MAX_GUARD_WINDOW = 10_000
"""A window is outcomes kept in memory per sidecar; larger ones only cost memory (and 2**63 crashed)."""


class GuardSettings(_Model):
    """The sidecar's fast guard on canary errors (the operator still decides the durable rollback)."""

    window: int = Field(
        default=20, ge=1, le=MAX_GUARD_WINDOW, description="Latest canary-forwarded requests considered."
    )
    max_error_ratio: float = Field(
        default=0.5, ge=0, le=1, description="Trip when errors / requests in the window exceeds this."
    )
    min_requests: int = Field(default=5, ge=1, description="Requests needed in the window before tripping.")

    @model_validator(mode="after")
    def _min_within_window(self) -> GuardSettings:
        if self.min_requests > self.window:
            message = f"minRequests ({self.min_requests}) must not exceed window ({self.window})"
            raise _field_error("GuardSettings", ("minRequests",), message, self.min_requests)
        return self


class ContractSettings(_Model):
    """Data contract: a JSON Schema every request body served by a sidecar is checked against."""

    json_schema: dict[str, Any] = Field(
        alias="schema", description="JSON Schema (draft 2020-12) of request bodies, already resolved."
    )
    policy: Literal["reject", "observe"] = Field(
        default="observe", description="reject: answer 422 and never call the model; observe: count only."
    )

    @field_validator("json_schema")
    @classmethod
    def _valid_json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json_schema(value)
        return value


class PredictionLogSettings(_Model):
    """Sampled prediction logging as JSON lines (never on the request's critical path)."""

    sample_rate: float = Field(ge=0, le=1, description="Fraction 0..1 of client requests logged.")
    sink: Literal["stdout", "file"] = "stdout"
    path: str | None = Field(default=None, description="File to append to when sink is file.")
    max_body_bytes: int = Field(default=4096, ge=0, description="Bodies longer than this are truncated.")
    redact: tuple[str, ...] = Field(
        default=(), description='JSON field names whose values are replaced by "[REDACTED]" at any depth.'
    )

    @model_validator(mode="after")
    def _file_needs_path(self) -> PredictionLogSettings:
        if self.sink == "file" and not self.path:
            message = "predictionLog.path is required when sink is file"
            raise _field_error("PredictionLogSettings", ("path",), message, self.path)
        return self


class DriftFeature(_Model):
    """One numeric input feature whose value distribution is kept as a histogram."""

    name: str = Field(min_length=1, description="Feature name (the metric's `feature` label).")
    path: str = Field(
        min_length=1,
        description=(
            "Where the number(s) sit in the JSON request body: a JSON pointer in which a `*` segment "
            "means every item of an array (or value of an object), e.g. /features/*/0."
        ),
        json_schema_extra={"pattern": "^(/([^~/]|~[01])*)+$"},
    )
    buckets: tuple[float, ...] = Field(
        min_length=1, description="Histogram upper bounds, strictly increasing (+Inf is implied)."
    )

    @field_validator("path")
    @classmethod
    def _pointer(cls, value: str) -> str:
        try:
            parse_pointer(value)
        except PointerError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(b) for b in value):
            raise ValueError(f"buckets must be finite numbers (+Inf is implied), got {list(value)}")
        if any(b >= a for a, b in zip(value[1:], value, strict=False)):
            raise ValueError(f"buckets must be strictly increasing, got {list(value)}")
        return value


class DriftSettings(_Model):
    """Per-feature input histograms (the operator computes canary-vs-stable PSI from them)."""

    features: tuple[DriftFeature, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> DriftSettings:
        seen: set[str] = set()
        for index, feature in enumerate(self.features):
            if feature.name in seen:
                message = f"feature name {feature.name!r} appears twice"
                raise _field_error("DriftSettings", ("features", index, "name"), message, feature.name)
            seen.add(feature.name)
        return self


class DataPathSettings(_Model):
    """Guardrails applied by every sidecar of the model; each one is off when unset."""

    contract: ContractSettings | None = None
    prediction_log: PredictionLogSettings | None = None
    drift: DriftSettings | None = None


class RoutingTable(_Model):
    """The whole routing state of one ModelDeployment, as the sidecars see it."""

    model: str = Field(min_length=1)
    namespace: str = Field(min_length=1)
    stable: Backend
    canary: CanaryRoute | None = None
    shadow: ShadowRoute | None = None
    sticky_header: str | None = Field(
        default=None, description="Request header whose value pins a client to one revision."
    )
    comparison: Comparison = Comparison()
    guard: GuardSettings = GuardSettings()
    generation: int = Field(default=0, ge=0, description="Bumped by the operator on every change.")
    data_path: DataPathSettings = Field(
        default_factory=DataPathSettings,
        description="Data contract, prediction logging and drift histograms (resolved by the operator).",
    )

    @field_validator("sticky_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        stripped = value.strip()
        if not stripped or any(c in stripped for c in " :\t\r\n"):
            raise ValueError(f"stickyHeader must be a plain HTTP header name, got {value!r}")
        return stripped.lower()

    @model_validator(mode="after")
    def _distinct_revisions(self) -> RoutingTable:
        if self.canary is not None and self.canary.revision == self.stable.revision:
            message = f"canary revision {self.canary.revision!r} is the stable revision"
            raise _field_error("RoutingTable", ("canary", "revision"), message, self.canary.revision)
        return self

    def to_json(self) -> str:
        """The ConfigMap form: camelCase keys, stable key order."""
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RoutingTable:
        """Parse the ConfigMap form; raises pydantic.ValidationError with field paths on bad input."""
        return cls.model_validate_json(text)
