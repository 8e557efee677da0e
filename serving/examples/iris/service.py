"""Iris classifier served with BentoML 1.4 — the example model for tests, benchmarks and the demo.

The model is a scikit-learn logistic regression trained at start-up on the iris data that ships
inside scikit-learn (no download, well under a second). Fault switches make it slow or failing,
so a "bad revision" can be played without a second image:

    IRIS_VARIANT     "a" (default) or any other string: a different regularisation, so
                     probabilities differ slightly (class predictions almost never do)
    IRIS_LATENCY_MS  extra latency added to every prediction (default 0)
    IRIS_FAIL_RATE   fraction 0..1 of predictions answered with HTTP 500 (default 0)
    IRIS_FAIL_SPREAD "1": those failures are spread evenly instead of drawn at random (prediction k
                     fails when floor((k + 1) * rate) > floor(k * rate)), so no run of predictions
                     fails more often than the rate allows (by at most one); default "0"
    IRIS_ACCESS_LOG  "0" turns BentoML's per-request log lines off (benchmarks), default "1"

The switches can also be changed while running: POST /faults {"latency_ms": 200, "fail_rate": 0.3};
POST /faults {} returns the values in force without changing them.

    bentoml serve service:Iris --working-dir serving/examples/iris --port 3000
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from collections.abc import AsyncGenerator
from http import HTTPStatus
from typing import Any

import bentoml
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


class PredictionFailure(bentoml.exceptions.BentoMLException):
    """An injected failure (IRIS_FAIL_RATE); BentoML answers it with HTTP 500."""

    error_code = HTTPStatus.INTERNAL_SERVER_ERROR


def _env_float(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if not low <= value <= high:
        raise ValueError(f"{name} must be within [{low}, {high}], got {value}")
    return value


def train(variant: str) -> LogisticRegression:
    """Fit the classifier; variant "a" is the reference, anything else is regularised differently."""
    data = load_iris()
    strength = 1.0 if variant == "a" else 0.7
    model = LogisticRegression(C=strength, max_iter=1000)
    model.fit(data.data, data.target)
    return model


@bentoml.service(
    workers=1,
    traffic={"timeout": 60},
    logging={"access": {"enabled": os.environ.get("IRIS_ACCESS_LOG", "1") != "0"}},
)
class Iris:
    def __init__(self) -> None:
        self.variant = os.environ.get("IRIS_VARIANT", "a") or "a"
        self.latency_ms = _env_float("IRIS_LATENCY_MS", 0.0, 0.0, 600_000.0)
        self.fail_rate = _env_float("IRIS_FAIL_RATE", 0.0, 0.0, 1.0)
        self.model = train(self.variant)
        self.names = [str(n) for n in load_iris().target_names]
        self.rng = random.Random()
        self.fail_spread = os.environ.get("IRIS_FAIL_SPREAD", "0") == "1"
        self.predictions = 0

    async def _faults(self) -> None:
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000.0)
        k, self.predictions = self.predictions, self.predictions + 1
        if self.fail_spread:
            fails = math.floor((k + 1) * self.fail_rate) > math.floor(k * self.fail_rate)
        else:
            fails = self.fail_rate > 0 and self.rng.random() < self.fail_rate
        if fails:
            raise PredictionFailure(f"injected failure (IRIS_FAIL_RATE={self.fail_rate})")

    @staticmethod
    def _matrix(features: list[list[float]]) -> np.ndarray[Any, Any]:
        matrix = np.asarray(features, dtype=float)
        if matrix.ndim != 2 or matrix.shape[1] != 4:
            raise bentoml.exceptions.InvalidArgument(
                f"features must be rows of 4 numbers (sepal/petal length/width), got shape {matrix.shape}"
            )
        return matrix

    @bentoml.api  # type: ignore[untyped-decorator]
    async def classify(self, features: list[list[float]]) -> list[str]:
        """Class name for each row of 4 measurements."""
        matrix = self._matrix(features)
        await self._faults()
        return [self.names[int(i)] for i in self.model.predict(matrix)]

    @bentoml.api  # type: ignore[untyped-decorator]
    async def predict_proba(self, features: list[list[float]]) -> list[list[float]]:
        """Class probabilities for each row (what shadow comparison with a tolerance is made for)."""
        matrix = self._matrix(features)
        await self._faults()
        return [[float(p) for p in row] for row in self.model.predict_proba(matrix)]

    @bentoml.api  # type: ignore[untyped-decorator]
    async def classify_stream(self, features: list[list[float]]) -> AsyncGenerator[str, None]:
        """One line per row, streamed as each is classified (a chunked response, no length)."""
        matrix = self._matrix(features)
        await self._faults()
        for label in self.model.predict(matrix):
            yield self.names[int(label)] + "\n"
            await asyncio.sleep(0.01)

    @bentoml.api  # type: ignore[untyped-decorator]
    async def faults(self, latency_ms: float | None = None, fail_rate: float | None = None) -> dict[str, Any]:
        """Change the fault switches at run time; returns the values now in force."""
        if latency_ms is not None:
            if not 0 <= latency_ms <= 600_000:
                raise bentoml.exceptions.InvalidArgument(f"latency_ms must be in [0, 600000]: {latency_ms}")
            self.latency_ms = float(latency_ms)
        if fail_rate is not None:
            if not 0 <= fail_rate <= 1:
                raise bentoml.exceptions.InvalidArgument(f"fail_rate must be in [0, 1], got {fail_rate}")
            self.fail_rate = float(fail_rate)
        return {"variant": self.variant, "latency_ms": self.latency_ms, "fail_rate": self.fail_rate}
