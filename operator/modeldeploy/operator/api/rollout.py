"""`spec.rollout`: the steps a new revision goes through and how each step is judged."""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, StringConstraints, Tag, model_validator

from modeldeploy.operator.api.cel import ApiModel, CelRule, Matches, SchemaExtra, cel_raw_string
from modeldeploy.operator.api.fields import PositiveDuration, bounded

MAX_STEPS = 32
MAX_METRICS = 16
METRIC_NAME_PATTERN = r"^[a-z]([a-z0-9_-]*[a-z0-9])?$"
_METRIC_NAME = Matches(
    METRIC_NAME_PATTERN,
    "must be lowercase letters, digits, '-' or '_', start with a letter and end with a letter or digit",
)
TEMPLATE_VARIABLES = ("model", "namespace", "revision", "stableRevision", "interval")
"""Placeholders a custom metric's query may use, written {{name}} (spaces inside the braces allowed)."""
PLACEHOLDER_PATTERN = r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}"
_KNOWN_PLACEHOLDER = r"^\{\{\s*(" + "|".join(TEMPLATE_VARIABLES) + r")\s*\}\}$"
# Every "{{" starts a known placeholder. One regular expression: the API server rejects the cheaper-
# to-read findAll(...).all(...) form as too costly for a 4096-character string.
_ONLY_KNOWN_PLACEHOLDERS = r"^([^{]|\{[^{]|\{\{\s*(" + "|".join(TEMPLATE_VARIABLES) + r")\s*\}\})*\{?$"
_PLACEHOLDERS = (
    "query may only use the placeholders "
    + ", ".join("{{" + name + "}}" for name in TEMPLATE_VARIABLES[:-1])
    + " and {{"
    + TEMPLATE_VARIABLES[-1]
    + "}}"
)


class ShadowSettings(ApiModel):
    """Copy live requests to the new revision; its responses are compared, never returned."""

    percent: float = Field(ge=0, le=100, description="Percent (0-100) of live requests copied to the shadow.")
    duration: PositiveDuration = Field(description="How long the step lasts, e.g. 2m.")


class CanarySettings(ApiModel):
    """Send a share of live traffic to the new revision."""

    weight: float = Field(
        ge=0,
        le=100,
        description="Percent (0-100) of live traffic sent to the canary; never lower than earlier steps.",
    )
    duration: PositiveDuration = Field(description="How long the step lasts, e.g. 5m.")


class PauseSettings(ApiModel):
    """Hold the current traffic split until `kubectl modeldeploy promote` (or until duration passes)."""

    duration: PositiveDuration | None = Field(
        default=None, description="Continue by itself after this long; wait for the user when unset."
    )


class ShadowStep(ApiModel):
    """A shadow step: `- shadow: {percent: 100, duration: 2m}`."""

    shadow: ShadowSettings = Field(
        description="Copy live requests to the new revision and compare responses."
    )

    @property
    def kind(self) -> Literal["shadow"]:
        return "shadow"

    @property
    def duration(self) -> str:
        """How long the step lasts (a duration string)."""
        return self.shadow.duration


class CanaryStep(ApiModel):
    """A canary step: `- canary: {weight: 10, duration: 1m}`."""

    canary: CanarySettings = Field(description="Send a share of live traffic to the new revision.")

    @property
    def kind(self) -> Literal["canary"]:
        return "canary"

    @property
    def duration(self) -> str:
        """How long the step lasts (a duration string)."""
        return self.canary.duration


class PauseStep(ApiModel):
    """A pause step: `- pause: {}` waits for promotion, `- pause: {duration: 10m}` waits 10 minutes."""

    pause: PauseSettings = Field(description="Hold the current traffic split.")

    @property
    def kind(self) -> Literal["pause"]:
        return "pause"

    @property
    def duration(self) -> str | None:
        """How long the pause lasts, or None when it waits for the user."""
        return self.pause.duration


STEP_KINDS = ("shadow", "canary", "pause")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, ShadowStep | CanaryStep | PauseStep):
        return value.kind
    if not isinstance(value, dict):
        return None
    present = [kind for kind in STEP_KINDS if kind in value]
    return present[0] if len(present) == 1 else None


Step = Annotated[
    Annotated[ShadowStep, Tag("shadow")]
    | Annotated[CanaryStep, Tag("canary")]
    | Annotated[PauseStep, Tag("pause")],
    Discriminator(
        _step_kind,
        custom_error_type="invalid_step",
        custom_error_message="each step must set exactly one of shadow, canary or pause",
    ),
]
"""One rollout step: a one-key object, `shadow`, `canary` or `pause`."""


class Slo(ApiModel):
    """Service-level objectives the new revision must meet during canary steps (unset = not checked)."""

    latency_p99: PositiveDuration | None = Field(
        default=None, description="Maximum 99th-percentile request latency of the canary, e.g. 250ms."
    )
    error_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Maximum share (0-1) of canary requests answered with 5xx; 1 turns the check off.",
    )
    max_latency_ratio_to_stable: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="Maximum canary p99 latency divided by stable p99 latency in one window, e.g. 1.5.",
    )
    max_error_rate_delta_to_stable: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "Maximum amount (0-1) by which the canary's error rate may exceed the stable's, judged with a "
            "statistical test at analysis.confidence."
        ),
    )
    max_slow_share_delta_to_stable: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "Only with analysis.method sequential: maximum amount (0-1) by which the share of canary "
            "requests slower than any latency histogram bound may exceed stable's share (the latency "
            "distribution test; 0 means not slower at all)."
        ),
    )


class CustomMetric(ApiModel):
    """An extra PromQL query judged at every analysis run."""

    __cel_rules__ = (
        CelRule("has(self.min) || has(self.max)", "a custom metric needs a min or a max threshold"),
        CelRule(
            "!has(self.min) || !has(self.max) || self.min <= self.max",
            "min must not be greater than max",
        ),
    )

    name: Annotated[str, StringConstraints(min_length=1, max_length=63), _METRIC_NAME] = Field(
        description="Name shown in status and events (lowercase letters, digits, '-', '_')."
    )
    query: Annotated[
        str,
        bounded(4096, 1),
        CelRule(
            f"self.matches({cel_raw_string(_ONLY_KNOWN_PLACEHOLDERS)})",
            _PLACEHOLDERS,
        ),
    ] = Field(
        description=(
            "PromQL returning one number. Placeholders {{model}}, {{namespace}}, {{revision}} (the canary), "
            "{{stableRevision}} and {{interval}} are replaced before the query runs."
        )
    )
    min: float | None = Field(default=None, description="The result fails when below this.")
    max: float | None = Field(default=None, description="The result fails when above this.")
    min_requests: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description=(
            "Requests the canary must serve in the window for this metric's verdict; fewer is inconclusive "
            "(e.g. 2000 for a p99.9). Unset: no gate (for metrics not about requests, e.g. memory)."
        ),
    )
    unit: Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=r"^\S+$")] | None = Field(
        default=None, description="Unit printed after the value and thresholds in messages, e.g. s, bytes, %."
    )

    @model_validator(mode="after")
    def _thresholds(self) -> CustomMetric:
        if self.min is None and self.max is None:
            raise ValueError(f"metric {self.name}: a custom metric needs a min or a max threshold")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"metric {self.name}: min must not be greater than max")
        if not re.match(_ONLY_KNOWN_PLACEHOLDERS, self.query, flags=re.DOTALL):
            found = re.findall(PLACEHOLDER_PATTERN, self.query)
            unknown = [p for p in found if not re.match(_KNOWN_PLACEHOLDER, p)] or ["'{{' out of place"]
            raise ValueError(f"metric {self.name}: {_PLACEHOLDERS}, not {', '.join(unknown)}")
        return self


_CONFIDENCE = "confidence must be at least 0.5 and below 1, e.g. 0.95"
# A CEL rule rather than minimum/maximum: the API server prints fractional bounds rounded (as "0").
_CONFIDENCE_RULE = "self >= 0.5 && self < 1.0"


def _check_confidence(value: float) -> float:
    if not 0.5 <= value < 1:
        raise ValueError(f"{_CONFIDENCE}, got {value}")
    return value


Confidence = Annotated[float, AfterValidator(_check_confidence), CelRule(_CONFIDENCE_RULE, _CONFIDENCE)]


_SLOW_SHARE_NEEDS_SEQUENTIAL = (
    "slo.maxSlowShareDeltaToStable needs method: sequential (the latency distribution test is sequential "
    "only); set method: sequential or remove it"
)
_TOLERANCE_NEEDS_SEQUENTIAL = "tolerance needs method: sequential; set method: sequential or remove tolerance"
_TOLERANCE_NEEDS_COMPARISON = (
    "tolerance needs slo.maxErrorRateDeltaToStable or slo.maxSlowShareDeltaToStable: it is shown on the "
    "comparison with stable"
)
_SEQUENTIAL = "has(self.method) && self.method == 'sequential'"


class AnalysisSpec(ApiModel):
    """How the new revision is judged: Prometheus is queried every interval; each metric passes, fails or is
    inconclusive."""

    __cel_rules__ = (
        CelRule(
            f"!has(self.slo) || !has(self.slo.maxSlowShareDeltaToStable) || ({_SEQUENTIAL})",
            _SLOW_SHARE_NEEDS_SEQUENTIAL,
            ".slo.maxSlowShareDeltaToStable",
        ),
        CelRule(f"!has(self.tolerance) || ({_SEQUENTIAL})", _TOLERANCE_NEEDS_SEQUENTIAL, ".tolerance"),
        CelRule(
            "!has(self.tolerance) || (has(self.slo) && (has(self.slo.maxErrorRateDeltaToStable) || "
            "has(self.slo.maxSlowShareDeltaToStable)))",
            _TOLERANCE_NEEDS_COMPARISON,
            ".tolerance",
        ),
    )

    method: Literal["fixed", "sequential"] = Field(
        default="fixed",
        description=(
            "fixed: each run tests its own window and failureLimit failed runs in a row roll back. "
            "sequential: the error checks (and slo.maxSlowShareDeltaToStable) count every request since "
            "canary traffic began with anytime-valid tests and roll back at once when a regression is "
            "proved at analysis.confidence; the other checks keep failureLimit."
        ),
    )
    tolerance: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description=(
            "Only with method sequential: a step ends only once the canary is shown, at analysis.confidence, "
            "to be within this amount (0-1) of stable (error rate, and slow share at every latency bound); "
            "unset: a step ends after its duration with a passing run."
        ),
    )

    interval: PositiveDuration = Field(
        default="30s", description="Time between analysis runs (and query window)."
    )
    failure_limit: int = Field(
        default=2, ge=1, le=100, description="Consecutive failed runs that roll the new revision back."
    )
    inconclusive_limit: int = Field(
        default=10,
        ge=1,
        le=1000,
        description=(
            "Consecutive inconclusive runs (too little traffic, Prometheus unreachable) before "
            "onInconclusive applies."
        ),
    )
    on_inconclusive: Literal["Pause", "Fail"] = Field(
        default="Pause",
        description="At inconclusiveLimit: Pause (hold the split, wait for the user) or Fail (roll back).",
    )
    min_requests: int = Field(
        default=50,
        ge=0,
        le=1_000_000_000,
        description="Requests the canary must serve in the window for a verdict; fewer is inconclusive.",
    )
    confidence: Confidence = Field(
        default=0.95,
        description="Confidence level (0.5 to below 1) of the statistical test comparing canary and "
        "stable error rates.",
    )
    slo: Slo = Field(default_factory=Slo, description="Latency and error objectives.")
    shadow_agreement_min: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Minimum share (0-1) of shadow responses that must match stable's during shadow steps.",
    )
    metrics: Annotated[
        list[CustomMetric],
        Field(max_length=MAX_METRICS),
        SchemaExtra({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    ] = Field(default_factory=list, description="Extra PromQL metrics with thresholds.")

    @model_validator(mode="after")
    def _unique_metrics(self) -> AnalysisSpec:
        names = [metric.name for metric in self.metrics]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"metric names must be unique: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _sequential_fields(self) -> AnalysisSpec:
        slo = self.slo
        if self.method != "sequential":
            if slo.max_slow_share_delta_to_stable is not None:
                raise ValueError(_SLOW_SHARE_NEEDS_SEQUENTIAL)
            if self.tolerance is not None:
                raise ValueError(_TOLERANCE_NEEDS_SEQUENTIAL)
        if (
            self.tolerance is not None
            and slo.max_error_rate_delta_to_stable is None
            and slo.max_slow_share_delta_to_stable is None
        ):
            raise ValueError(_TOLERANCE_NEEDS_COMPARISON)
        return self


_AT_LEAST_ONE = "rollout.steps must contain at least one step"
_WEIGHTS_RULE = "canary weights must not decrease from one step to the next"
_SHADOW_FIRST = "shadow steps must come before canary steps"


class RolloutSpec(ApiModel):
    """The steps a new revision goes through before it becomes stable, and how it is judged."""

    __cel_rules__ = (
        CelRule("size(self.steps) > 0", _AT_LEAST_ONE, ".steps"),
        CelRule(
            "self.steps.filter(s, has(s.canary)).map(s, s.canary.weight).isSorted()", _WEIGHTS_RULE, ".steps"
        ),
        CelRule(
            "self.steps.filter(s, !has(s.pause)).map(s, has(s.shadow) ? 0 : 1).isSorted()",
            _SHADOW_FIRST,
            ".steps",
        ),
    )

    steps: Annotated[
        list[Step],
        Field(max_length=MAX_STEPS),
    ] = Field(description="Steps in order; after the last one the new revision is promoted to stable.")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="How each step is judged.")

    @model_validator(mode="after")
    def _step_order(self) -> RolloutSpec:
        if not self.steps:
            raise ValueError(_AT_LEAST_ONE)
        weights = [step.canary.weight for step in self.steps if isinstance(step, CanaryStep)]
        if any(later < earlier for earlier, later in itertools.pairwise(weights)):
            raise ValueError(f"{_WEIGHTS_RULE} (got {weights})")
        seen_canary = False
        for step in self.steps:
            if isinstance(step, CanaryStep):
                seen_canary = True
            elif isinstance(step, ShadowStep) and seen_canary:
                raise ValueError(_SHADOW_FIRST)
        return self


__all__ = [
    "AnalysisSpec",
    "CanarySettings",
    "CanaryStep",
    "CustomMetric",
    "PauseSettings",
    "PauseStep",
    "RolloutSpec",
    "ShadowSettings",
    "ShadowStep",
    "Slo",
    "Step",
]
