"""`spec.guardrails`: golden requests, the request data contract, prediction logging, input drift.

Every part is optional; a part left out is off. Arbitrary JSON (a golden request's body, the
expected body, the contract's JSON Schema) is kept as it is (`x-kubernetes-preserve-unknown-fields`).
Large documents can live in a ConfigMap instead (`configMapRef`), which the operator reads and
resolves before it hands the settings to the sidecars.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from modeldeploy.operator.api.cel import ApiModel, CelRule, Matches, SchemaExtra
from modeldeploy.operator.api.fields import HEADER_PATTERN, NAME_PATTERN, Name, PositiveDuration, bounded

MAX_GOLDEN_REQUESTS = 64
MAX_FEATURES = 8
"""With up to 16 custom metrics and the built-in checks, status keeps every result (MAX_RESULTS)."""
MAX_FEATURE_NAME = 54
"""`inputPSI/<name>` must fit a status result's metric name (63 characters)."""
MAX_BUCKETS = 64
MAX_REDACT = 64
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_NAME = Matches(
    NAME_PATTERN, "must be lowercase letters, digits and '-', starting and ending with a letter or digit"
)
_PATH = Matches("^/", "must start with /")
_HEADER = Matches(HEADER_PATTERN, "must be an HTTP header name such as x-request-id (no spaces)")
_ANY_JSON = SchemaExtra({"x-kubernetes-preserve-unknown-fields": True})
_ONE_SOURCE_REQUESTS = "goldenRequests must set exactly one of requests or configMapRef"
_ONE_SOURCE_SCHEMA = "contract must set exactly one of schema or configMapRef"
_UNIQUE_NAMES = "golden request names must be unique"
_FILE_PATH = "predictionLog.path is required when sink is file"
_INCREASING = "buckets must be strictly increasing"
_UNIQUE_FEATURES = "drift feature names must be unique"


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the ModelDeployment's namespace, holding a JSON document."""

    name: Name = Field(description="Name of the ConfigMap.")
    key: Annotated[str, bounded(253, 1)] = Field(description="Key within it; its value is JSON.")


class GoldenExpectation(ApiModel):
    """What a golden request must get back."""

    status: int = Field(default=200, ge=100, le=599, description="Expected HTTP status code.")
    body: Annotated[Any, _ANY_JSON] = Field(
        default=None,
        description=(
            "Expected JSON response body; numbers compare within the tolerance. Only the status is "
            "checked when unset."
        ),
    )


class GoldenRequest(ApiModel):
    """One known request and the response the new revision must give."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=63), _NAME] = Field(
        description="Name shown in status and Events when this request fails."
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(
        default="POST", description="HTTP method."
    )
    path: Annotated[str, StringConstraints(min_length=1, max_length=1024), _PATH] = Field(
        description="Request path, e.g. /classify."
    )
    headers: (
        Annotated[
            dict[
                Annotated[str, StringConstraints(min_length=1, max_length=128), _HEADER],
                Annotated[str, bounded(4096)],
            ],
            SchemaExtra({"maxProperties": 32}),
        ]
        | None
    ) = Field(default=None, description="Extra request headers.")
    body: Annotated[Any, _ANY_JSON] = Field(default=None, description="JSON request body (any JSON value).")
    expect: GoldenExpectation = Field(
        default_factory=GoldenExpectation, description="The expected response (status 200 when unset)."
    )


class PeriodicGolden(ApiModel):
    """Replay the golden requests against the stable revision on a schedule."""

    interval: PositiveDuration = Field(description="Time between replays, e.g. 5m.")


class GoldenRequestsSpec(ApiModel):
    """Known requests a new revision must answer as expected before it gets any traffic."""

    __cel_rules__ = (
        CelRule("[has(self.requests), has(self.configMapRef)].exists_one(x, x)", _ONE_SOURCE_REQUESTS),
    )

    requests: (
        Annotated[
            list[GoldenRequest],
            Field(min_length=1, max_length=MAX_GOLDEN_REQUESTS),
            CelRule("self.all(r, self.exists_one(o, o.name == r.name))", _UNIQUE_NAMES),
        ]
        | None
    ) = Field(default=None, description="The golden requests, inline.")
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="A ConfigMap key holding the golden requests as a JSON list (same fields)."
    )
    tolerance: float = Field(
        default=1e-6, ge=0, le=1e9, description="Absolute tolerance for numbers in the expected body."
    )
    timeout: PositiveDuration = Field(default="10s", description="Timeout of each golden request.")
    periodic: PeriodicGolden | None = Field(
        default=None, description="Also replay the requests against the stable revision at this interval."
    )

    @model_validator(mode="after")
    def _one_source(self) -> GoldenRequestsSpec:
        if (self.requests is None) == (self.config_map_ref is None):
            raise ValueError(_ONE_SOURCE_REQUESTS)
        if self.requests is not None:
            names = [r.name for r in self.requests]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{_UNIQUE_NAMES}, repeated: {', '.join(duplicates)}")
        return self


class ContractSpec(ApiModel):
    """A JSON Schema every request body must satisfy, checked by the sidecar before the model sees it."""

    __cel_rules__ = (
        CelRule("[has(self.schema), has(self.configMapRef)].exists_one(x, x)", _ONE_SOURCE_SCHEMA),
    )

    json_schema: Annotated[dict[str, Any], _ANY_JSON] | None = Field(
        default=None,
        alias="schema",
        description="JSON Schema (draft 2020-12) of request bodies, inline.",
        json_schema_extra={"type": "object"},
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="A ConfigMap key holding the JSON Schema."
    )
    policy: Literal["reject", "observe"] = Field(
        default="observe",
        description=(
            "reject: answer 422 with the schema error and never call the model; observe: pass the request "
            "on and count the violation (modeldeploy_contract_violations_total)."
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> ContractSpec:
        if (self.json_schema is None) == (self.config_map_ref is None):
            raise ValueError(_ONE_SOURCE_SCHEMA)
        return self


class PredictionLogSpec(ApiModel):
    """Sampled JSON lines with request, response, revision, latency and trace id."""

    __cel_rules__ = (CelRule("self.sink != 'file' || has(self.path)", _FILE_PATH),)

    sample_rate: float = Field(ge=0, le=1, description="Fraction (0-1) of client requests logged.")
    sink: Literal["stdout", "file"] = Field(default="stdout", description="Where the lines go.")
    path: Annotated[str, StringConstraints(min_length=1, max_length=1024), _PATH] | None = Field(
        default=None, description="File the sidecar appends to when sink is file."
    )
    max_body_bytes: int = Field(
        default=4096, ge=0, le=1048576, description="Request and response bodies longer than this are cut."
    )
    redact: Annotated[list[Annotated[str, bounded(128, 1)]], Field(max_length=MAX_REDACT)] | None = Field(
        default=None, description='JSON field names whose values are logged as "[REDACTED]", at any depth.'
    )

    @model_validator(mode="after")
    def _file_needs_path(self) -> PredictionLogSpec:
        if self.sink == "file" and not self.path:
            raise ValueError(_FILE_PATH)
        return self


class DriftFeature(ApiModel):
    """A numeric input feature whose distribution is compared between the new and the stable revision."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_FEATURE_NAME), _NAME] = Field(
        description="Feature name (the `feature` label of modeldeploy_input_feature_value)."
    )
    path: Annotated[str, StringConstraints(min_length=1, max_length=512), _PATH] = Field(
        description=(
            "JSON pointer to the value(s) in the request body; a `*` segment means every item of an "
            "array, e.g. /features/*/0."
        )
    )
    buckets: Annotated[
        list[float],
        Field(min_length=1, max_length=MAX_BUCKETS),
        CelRule("self.isSorted() && self.all(b, self.exists_one(o, o == b))", _INCREASING),
    ] = Field(description="Histogram upper bounds, strictly increasing (+Inf is implied).")

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"{_INCREASING}, got {value}")
        return value


class DriftSpec(ApiModel):
    """Per-feature input histograms in the sidecars and an optional PSI gate in the analysis."""

    features: Annotated[
        list[DriftFeature],
        Field(min_length=1, max_length=MAX_FEATURES),
        CelRule("self.all(f, self.exists_one(o, o.name == f.name))", _UNIQUE_FEATURES),
    ] = Field(description="Numeric input features to histogram.")
    max_input_psi: float | None = Field(
        default=None,
        ge=0,
        le=100,
        alias="maxInputPSI",
        description=(
            "Fail an analysis interval when the population stability index of the new revision's inputs "
            "against stable's exceeds this for any feature (0.1 = minor shift, 0.25 = major); "
            "no gate when unset."
        ),
    )

    @model_validator(mode="after")
    def _unique(self) -> DriftSpec:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"{_UNIQUE_FEATURES}, got {names}")
        return self


class GuardrailsSpec(ApiModel):
    """Safety checks around the model's data; each one is off when left out."""

    golden_requests: GoldenRequestsSpec | None = Field(
        default=None, description="Known requests checked on every new revision before it gets traffic."
    )
    contract: ContractSpec | None = Field(default=None, description="JSON Schema of request bodies.")
    prediction_log: PredictionLogSpec | None = Field(default=None, description="Sampled prediction logging.")
    drift: DriftSpec | None = Field(default=None, description="Input drift histograms and the PSI gate.")
