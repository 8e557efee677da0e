"""The routing table's ``dataPath`` (contract, prediction log, drift) from ``spec.guardrails``.

Documents kept in ConfigMaps are resolved here from ``ObservedChildren.documents``. When one is
missing or invalid, the sidecars keep the contract they were last given (the observed table's), the
``GuardrailsReady`` condition turns False with the reason, and a Warning Event says so once.
"""

from __future__ import annotations

from pydantic import ValidationError

from modeldeploy.contract.routing import (
    ContractSettings,
    DataPathSettings,
    DriftFeature,
    DriftSettings,
    PredictionLogSettings,
)
from modeldeploy.operator.api import DriftSpec
from modeldeploy.operator.planner.conditions import set_condition
from modeldeploy.operator.planner.context import Tick
from modeldeploy.operator.planner.guardrail_documents import (
    GuardrailConfigError,
    contract_schema,
    golden_requests,
)

GUARDRAILS_READY = "GuardrailsReady"


def data_path(tick: Tick) -> DataPathSettings:
    """The data-path settings every sidecar of the model gets; sets the GuardrailsReady condition."""
    guardrails = tick.spec.guardrails
    observed = tick.observed.routing.data_path if tick.observed.routing is not None else DataPathSettings()
    problems: list[str] = []

    contract = None
    if guardrails.contract is not None:
        try:
            schema = contract_schema(tick.spec, tick.observed.documents)
            assert schema is not None
            contract = ContractSettings(json_schema=schema, policy=guardrails.contract.policy)
        except GuardrailConfigError as exc:
            problems.append(str(exc))
            contract = observed.contract  # keep the last good contract
    try:
        golden_requests(tick.spec, tick.observed.documents)
    except GuardrailConfigError as exc:
        problems.append(str(exc))

    log = guardrails.prediction_log
    prediction_log = (
        None
        if log is None
        else PredictionLogSettings(
            sample_rate=log.sample_rate,
            sink=log.sink,
            path=log.path,
            max_body_bytes=log.max_body_bytes,
            redact=tuple(log.redact or ()),
        )
    )
    drift = None
    if guardrails.drift is not None:
        try:
            drift = _drift(guardrails.drift)
        except ValueError as exc:  # e.g. a path the CRD's pattern lets through: "/a~2"
            problems.append(str(exc))
            drift = observed.drift  # keep the last good histograms
    _report(tick, problems)
    return DataPathSettings(contract=contract, prediction_log=prediction_log, drift=drift)


def _drift(spec: DriftSpec) -> DriftSettings:
    """The sidecars' drift settings; ValueError naming the feature the routing table would refuse."""
    features = []
    for feature in spec.features:
        try:
            buckets = tuple(feature.buckets)
            features.append(DriftFeature(name=feature.name, path=feature.path, buckets=buckets))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            raise ValueError(f"drift feature {feature.name!r}: {where}: {message}") from None
    return DriftSettings(features=tuple(features))


def _report(tick: Tick, problems: list[str]) -> None:
    guardrails = tick.spec.guardrails
    parts = (guardrails.contract, guardrails.golden_requests, guardrails.prediction_log, guardrails.drift)
    configured = any(part is not None for part in parts)
    current = next((c for c in tick.status.conditions if c.type == GUARDRAILS_READY), None)
    if problems:
        message = "; ".join(problems)
        if current is None or current.status != "False" or current.message != message:
            tick.warning("GuardrailConfigInvalid", message)
        set_condition(tick, GUARDRAILS_READY, "False", "ConfigInvalid", message)
    elif configured:
        set_condition(tick, GUARDRAILS_READY, "True", "Resolved", "guardrail settings are in force")
    elif current is not None:
        tick.status.conditions = [c for c in tick.status.conditions if c.type != GUARDRAILS_READY]
