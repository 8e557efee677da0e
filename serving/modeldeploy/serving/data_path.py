"""The routing table's `dataPath` guardrails in force: contract, prediction log, drift histograms.

A table's `dataPath` is put in force in two steps so that a bad one rejects the whole table (the
last good table stays in force, as for any invalid table): `prepare` compiles the contract's
schema and opens the prediction log's sink, raising DataPathError (the table's model has already
refused schemas that are not JSON Schema, bad drift pointers and duplicate feature names);
`apply` then swaps them in. Nothing is recompiled while the section stays the same.

`inspect` is the per-request part for requests served locally: parse the body once, check the
contract, observe the drift features. It returns the Violation that must be answered with 422
(policy reject), or None to go on to the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from modeldeploy.contract.routing import DataPathSettings
from modeldeploy.serving.contract import BODY_METHODS, Contract, Violation, parse_body
from modeldeploy.serving.drift import FeatureHistograms
from modeldeploy.serving.metrics import SidecarMetrics
from modeldeploy.serving.prediction_log import PredictionLog, PredictionLogError, Sink

log = logging.getLogger("modeldeploy.sidecar.datapath")


class DataPathError(ValueError):
    """The table's dataPath section cannot be put in force (bad schema, pointer or log file)."""


@dataclass(frozen=True)
class Prepared:
    settings: DataPathSettings
    contract: Contract | None
    sink: Sink | None


class DataPath:
    def __init__(self, metrics: SidecarMetrics, drift: FeatureHistograms, predictions: PredictionLog) -> None:
        self._metrics = metrics
        self.drift = drift
        self.predictions = predictions
        self.settings = DataPathSettings()
        self.contract: Contract | None = None

    def prepare(self, settings: DataPathSettings) -> Prepared | None:
        """Everything `settings` needs, ready to apply; None when it is the section in force."""
        if settings == self.settings:
            return None
        try:
            contract = self.contract
            if settings.contract is None:
                contract = None
            elif contract is None or contract.settings != settings.contract:
                contract = Contract(settings.contract)
            sink = self.predictions.open_sink(settings.prediction_log)
        except PredictionLogError as exc:
            raise DataPathError(str(exc)) from None
        return Prepared(settings, contract, sink)

    def apply(self, prepared: Prepared | None) -> None:
        if prepared is None:
            return
        settings = prepared.settings
        self.contract = prepared.contract
        self.drift.configure(settings.drift)
        self.predictions.configure(settings.prediction_log, prepared.sink)
        self.settings = settings
        contract, logging_, drift = settings.contract, settings.prediction_log, settings.drift
        log.info(
            "data path in force: contract=%s prediction log=%s drift features=%s",
            contract.policy if contract else "off",
            f"{logging_.sample_rate:g} to {logging_.path or logging_.sink}" if logging_ else "off",
            ",".join(f.name for f in drift.features) if drift else "none",
        )
        if contract is not None:
            self._metrics.announce_contract()

    @property
    def inspects(self) -> bool:
        """Whether requests served locally need their body looked at."""
        return self.contract is not None or self.drift.active

    def inspect(self, method: str, body: bytes) -> Violation | None:
        """Contract check and drift observation of a body served locally; a Violation to reject."""
        if method not in BODY_METHODS:
            return None
        document: Any = parse_body(body)
        contract = self.contract
        if contract is not None:
            violation = contract.check(document)
            self._metrics.observe_contract(None if violation is None else violation.field)
            if violation is not None and contract.policy == "reject":
                return violation
        if self.drift.active:
            self.drift.observe(document)
        return None
