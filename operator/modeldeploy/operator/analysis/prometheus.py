"""A small asyncio client for Prometheus' instant-query API (`GET /api/v1/query`).

Timeouts, a couple of retries with exponential backoff for transient failures (connection errors,
timeouts, HTTP 5xx), and typed errors whose messages say what went wrong and where:

- `PrometheusUnreachable`: no answer (connection refused, DNS, timeout) after every attempt;
- `PrometheusQueryError`: Prometheus rejected or could not evaluate the query (its own error text);
- `PrometheusHTTPError`: any other unexpected HTTP status or a body that is not the API's JSON.

Results are parsed into `QueryResult`: one float per label set (`Sample`), NaN and ±Inf kept as
floats; `value()` gives the single number of a one-series result, None for an empty result.

Shared answers (`share_answers_for` seconds, the operator's clients: `SHARE_ANSWERS_FOR`): the
analysis sends the same all-models queries for every ModelDeployment (`analysis.queries`), so a
client answers a query it sent at most that long ago from memory, and a query already on its way
waits for that answer instead of sending it again. Prometheus then evaluates each query at most once
per `share_answers_for`, whatever the number of ModelDeployments. Failures are never kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

log = logging.getLogger("modeldeploy.analysis.prometheus")

QUERY_PATH = "/api/v1/query"

SHARE_ANSWERS_FOR = 1.0
"""Seconds the operator's clients (`PrometheusClients`) reuse an answer: well under any scrape
interval (the data behind it is a scrape interval old anyway), and it bounds what the analysis of
any number of ModelDeployments sends to `interval / SHARE_ANSWERS_FOR` evaluations of each query."""


class PrometheusError(Exception):
    """Any failure to get a usable answer from Prometheus."""

    def __init__(self, url: str, query: str, message: str) -> None:
        super().__init__(message)
        self.url = url
        self.query = query
        self.message = message


class PrometheusUnreachable(PrometheusError):
    """No HTTP answer from Prometheus (after retries)."""


class PrometheusQueryError(PrometheusError):
    """Prometheus answered with an error for this query (bad PromQL, evaluation error)."""

    def __init__(self, url: str, query: str, message: str, error_type: str, status: int) -> None:
        super().__init__(url, query, message)
        self.error_type = error_type
        self.status = status


class PrometheusHTTPError(PrometheusError):
    """An unexpected HTTP status or a body that is not Prometheus' API JSON."""

    def __init__(self, url: str, query: str, message: str, status: int) -> None:
        super().__init__(url, query, message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class QueryResult:
    """An instant query's result: a vector (any number of samples) or a scalar (one sample, no labels)."""

    query: str
    result_type: str
    samples: tuple[Sample, ...]

    def value(self) -> float | None:
        """The number of a single-series result; None when empty; ValueError for several series."""
        if not self.samples:
            return None
        if len(self.samples) > 1:
            shown = ", ".join(_labels_text(s.labels) for s in self.samples[:3])
            raise ValueError(
                f"query returned {len(self.samples)} series where one number was expected "
                f"(aggregate it, e.g. with sum()): {shown}"
            )
        return self.samples[0].value

    def finite_value(self) -> float | None:
        """Like `value()`, but NaN (e.g. 0/0 when there was no traffic) is reported as None."""
        value = self.value()
        return None if value is None or math.isnan(value) else value

    def by_label(self, label: str) -> dict[str, float]:
        """{label value: sample value}; series without the label are keyed by ""."""
        return {s.labels.get(label, ""): s.value for s in self.samples}


def _labels_text(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _parse_number(raw: Any, query: str) -> float:
    if not isinstance(raw, list | tuple) or len(raw) != 2 or not isinstance(raw[1], str):
        raise ValueError(f"malformed sample {raw!r} for query {query!r}")
    return float(raw[1])  # Prometheus writes "NaN", "+Inf", "-Inf" as float() reads them


def parse_query_response(query: str, payload: Any) -> QueryResult:
    """Parse a successful `/api/v1/query` JSON body; ValueError with the reason if it is not one."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        raise ValueError(f"not a successful Prometheus API response: {str(payload)[:300]}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ValueError("Prometheus API response has no data object")
    result_type = data.get("resultType")
    result = data.get("result")
    if result_type == "vector":
        if not isinstance(result, list):
            raise ValueError("vector result is not a list")
        samples = []
        for item in result:
            if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
                raise ValueError(f"malformed vector element {str(item)[:200]}")
            samples.append(Sample(dict(item["metric"]), _parse_number(item.get("value"), query)))
        return QueryResult(query, "vector", tuple(samples))
    if result_type == "scalar":
        return QueryResult(query, "scalar", (Sample({}, _parse_number(result, query)),))
    raise ValueError(
        f"query returned a {result_type} where an instant vector or a scalar was expected "
        "(a range selector like [5m] needs a function such as rate() or increase())"
    )


class PrometheusClient:
    """Instant queries against one Prometheus server. Create and use it inside the event loop.

    `timeout`: seconds per attempt (also sent as Prometheus' own evaluation timeout);
    `retries`: extra attempts after a transient failure, waiting `backoff`, 2*`backoff`, ...;
    `share_answers_for`: seconds an answer is reused for the same query (0: never; see above).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.25,
        headers: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        share_answers_for: float = 0.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus URL must start with http:// or https://, got {url!r}")
        if timeout <= 0 or retries < 0 or backoff < 0 or share_answers_for < 0:
            raise ValueError("timeout must be positive, retries, backoff and share_answers_for not negative")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._headers = dict(headers or {})
        self._session = session
        self._owns_session = session is None
        self.share_answers_for = share_answers_for
        self._answers: dict[str, tuple[float, QueryResult]] = {}  # query -> (sent at, answer)
        self._on_the_way: dict[str, asyncio.Future[QueryResult]] = {}

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers)
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> PrometheusClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def query(self, promql: str) -> QueryResult:
        """Evaluate `promql` now (or answer it from a recent evaluation, see `share_answers_for`).

        Raises a PrometheusError subclass when no usable answer comes.
        """
        if self.share_answers_for <= 0:
            return await self._query(promql)
        sent = time.monotonic()
        kept = self._answers.get(promql)
        if kept is not None and sent - kept[0] <= self.share_answers_for:
            return kept[1]
        waiting = self._on_the_way.get(promql)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future = asyncio.ensure_future(self._query(promql))
        self._on_the_way[promql] = future
        try:
            answer = await asyncio.shield(future)
        finally:
            self._on_the_way.pop(promql, None)
        self._answers = {q: a for q, a in self._answers.items() if sent - a[0] <= self.share_answers_for}
        self._answers[promql] = (sent, answer)
        return answer

    async def _query(self, promql: str) -> QueryResult:
        endpoint = self.url + QUERY_PATH
        last: PrometheusError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return await self._query_once(endpoint, promql)
            except (PrometheusUnreachable, PrometheusHTTPError) as exc:
                if isinstance(exc, PrometheusHTTPError) and exc.status < 500:
                    raise
                last = exc
                log.debug("Prometheus attempt %d/%d failed: %s", attempt + 1, self.retries + 1, exc)
        assert last is not None
        if self.retries:
            last.message = f"{last.message} (after {self.retries + 1} attempts)"
            last.args = (last.message,)
        raise last

    async def _query_once(self, endpoint: str, promql: str) -> QueryResult:
        params = {"query": promql, "timeout": f"{self.timeout:g}s"}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self._client_session().get(endpoint, params=params, timeout=timeout) as response:
                status = response.status
                body = await response.read()
        except TimeoutError as exc:
            raise PrometheusUnreachable(
                self.url, promql, f"Prometheus unreachable at {self.url}: no answer within {self.timeout:g}s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise PrometheusUnreachable(
                self.url, promql, f"Prometheus unreachable at {self.url}: {exc or type(exc).__name__}"
            ) from exc
        return self._interpret(promql, status, body)

    def _interpret(self, promql: str, status: int, body: bytes) -> QueryResult:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("status") == "error":
            error_type = str(payload.get("errorType", "error"))
            text = str(payload.get("error", "no error text"))
            if status in (400, 422):  # bad_data / execution: the query is at fault, retrying won't help
                message = f"Prometheus rejected query {promql!r}: {error_type}: {text}"
                raise PrometheusQueryError(self.url, promql, message, error_type, status)
            raise PrometheusHTTPError(
                self.url, promql, f"Prometheus at {self.url} answered {status} ({error_type}: {text})", status
            )
        if status != 200:
            snippet = body[:200].decode(errors="replace")
            raise PrometheusHTTPError(
                self.url, promql, f"Prometheus at {self.url} answered HTTP {status}: {snippet}", status
            )
        try:
            return parse_query_response(promql, payload)
        except ValueError as exc:
            message = f"unexpected answer from Prometheus at {self.url}: {exc}"
            raise PrometheusHTTPError(self.url, promql, message, status) from exc


class PrometheusClients:
    """One client per Prometheus URL, kept for the operator's lifetime (connection reuse)."""

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.25,
        share_answers_for: float = SHARE_ANSWERS_FOR,
    ) -> None:
        self._timeout, self._retries, self._backoff = timeout, retries, backoff
        self._share_answers_for = share_answers_for
        self._clients: dict[str, PrometheusClient] = {}

    def get(self, url: str) -> PrometheusClient:
        key = url.rstrip("/")
        client = self._clients.get(key)
        if client is None:
            client = PrometheusClient(
                key,
                timeout=self._timeout,
                retries=self._retries,
                backoff=self._backoff,
                share_answers_for=self._share_answers_for,
            )
            self._clients[key] = client
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
