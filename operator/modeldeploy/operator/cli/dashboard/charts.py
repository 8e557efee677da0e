"""The Prometheus charts of one ModelDeployment: one series per revision over a time range.

The queries read the sidecar metrics the operator's analysis reads (names from
modeldeploy.contract.metrics, documented in docs/serving.md) and count each request once, where
it was served (`route="local"`).
They are range queries (`/api/v1/query_range`), so the charts show the rollout from before the
dashboard started.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import aiohttp

from modeldeploy.contract.metrics import (
    COMPARED_RESULTS,
    DURATION,
    ERROR_CODES,
    GUARD,
    REQUESTS,
    SHADOW,
    promql_string,
)

MAX_POINTS = 240
"""Points per series: the step is the range divided by this (at least one second)."""


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    unit: str
    """`ratio` (drawn as %), `seconds`, `per_second` or `flag` (0/1)."""
    query: str


def charts(namespace: str, model: str, window: str) -> list[Chart]:
    """The charts of ModelDeployment `namespace/model`, each a PromQL `sum by (revision)` over `window`."""
    base = f"namespace={promql_string(namespace)},model={promql_string(model)}"
    served = base + ',route="local"'
    errors = f"{served},code=~{promql_string(ERROR_CODES)}"
    compared = f"{base},result=~{promql_string('|'.join(COMPARED_RESULTS))}"
    matched = f'{base},result="match"'

    def rate(metric: str, matchers: str) -> str:
        return f"sum by (revision) (rate({metric}{{{matchers}}}[{window}]))"

    return [
        Chart("requests", "Requests per second", "per_second", rate(REQUESTS, served)),
        Chart("errors", "Error ratio (5xx)", "ratio", f"{rate(REQUESTS, errors)} / {rate(REQUESTS, served)}"),
        Chart(
            "latency",
            "Latency p99",
            "seconds",
            "histogram_quantile(0.99, sum by (revision, le) "
            f"(rate({DURATION}_bucket{{{served}}}[{window}])))",
        ),
        Chart(
            "shadow",
            "Shadow agreement",
            "ratio",
            f"{rate(SHADOW, matched)} / {rate(SHADOW, compared)}",
        ),
        Chart("guard", "Fast guard tripped", "flag", f"max by (revision) ({GUARD}{{{base}}})"),
    ]


class ChartError(Exception):
    """Prometheus gave no usable answer (the message says why, for the page)."""


def _series(payload: Any) -> list[dict[str, Any]]:
    """`{revision, points: [[unix seconds, value], ...]}` per series of a matrix answer (NaN/Inf left out)."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error") if isinstance(payload, dict) else None
        raise ChartError(str(error or "Prometheus answered without data"))
    data = payload.get("data") or {}
    if data.get("resultType") != "matrix":
        raise ChartError(f"expected a matrix, got {data.get('resultType')!r}")
    series = []
    for item in data.get("result") or []:
        points = []
        for at, raw in item.get("values") or []:
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                points.append([float(at), value])
        revision = str((item.get("metric") or {}).get("revision", ""))
        series.append({"revision": revision, "points": points})
    return sorted(series, key=lambda s: s["revision"])


async def query_range(
    session: aiohttp.ClientSession, url: str, query: str, start: float, end: float
) -> list[dict[str, Any]]:
    step = max(1.0, (end - start) / MAX_POINTS)
    params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    try:
        async with session.get(url.rstrip("/") + "/api/v1/query_range", params=params) as response:
            payload = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ChartError(f"Prometheus at {url} unreachable: {exc or type(exc).__name__}") from None
    return _series(payload)


async def chart_data(
    session: aiohttp.ClientSession,
    url: str,
    namespace: str,
    model: str,
    window: str,
    start: float,
    end: float,
) -> list[dict[str, Any]]:
    """Every chart of the ModelDeployment with its series, or the error that kept it empty."""
    wanted = charts(namespace, model, window)
    answers = await asyncio.gather(
        *(query_range(session, url, chart.query, start, end) for chart in wanted), return_exceptions=True
    )
    result = []
    for chart, answer in zip(wanted, answers, strict=True):
        entry: dict[str, Any] = {
            "id": chart.id,
            "title": chart.title,
            "unit": chart.unit,
            "query": chart.query,
        }
        if isinstance(answer, ChartError):
            entry.update(series=[], error=str(answer))
        elif isinstance(answer, BaseException):
            raise answer
        else:
            entry.update(series=answer, error=None)
        result.append(entry)
    return result
