"""The Prometheus client against a small in-process HTTP server speaking the query API's JSON."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from modeldeploy.operator.analysis.prometheus import (
    PrometheusClient,
    PrometheusClients,
    PrometheusHTTPError,
    PrometheusQueryError,
    PrometheusUnreachable,
    parse_query_response,
)


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, Any]:
    result = [{"metric": labels, "value": [1700000000.0, value]} for labels, value in samples]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@dataclass
class FakeApi:
    """Answers /api/v1/query from a queue of (status, body) or callables; records the queries."""

    answers: list[tuple[int, Any] | Callable[[], Any]] = field(default_factory=list)
    seen: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.query))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if callable(answer):
            answer = await answer()
        status, body = answer
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=status, text=text, content_type="application/json")


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_get("/api/v1/query", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_vector_and_scalar_results(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.answers = [
        (200, vector(({"le": "0.5"}, "12"), ({"le": "+Inf"}, "NaN"))),
        (200, {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "+Inf"]}}),
        (200, vector()),
    ]
    async with PrometheusClient(url + "/", timeout=2) as prom:
        buckets = await prom.query("sum by (le) (x)")
        assert buckets.by_label("le")["0.5"] == 12.0 and math.isnan(buckets.by_label("le")["+Inf"])
        with pytest.raises(ValueError, match="2 series where one number was expected"):
            buckets.value()
        assert (await prom.query("1/0")).value() == math.inf
        empty = await prom.query("absent_thing")
        assert empty.value() is None and empty.finite_value() is None
    assert fake.seen[0] == {"query": "sum by (le) (x)", "timeout": "2s"}


async def test_bad_query_carries_prometheus_error_text_and_is_not_retried(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    error = {"status": "error", "errorType": "bad_data", "error": '1:5: parse error: unexpected "}"'}
    fake.answers = [(400, error)]
    async with PrometheusClient(url, retries=3, backoff=0) as prom:
        with pytest.raises(PrometheusQueryError) as caught:
            await prom.query("sum(}")
    assert caught.value.error_type == "bad_data" and caught.value.status == 400
    assert (
        str(caught.value) == "Prometheus rejected query 'sum(}': bad_data: 1:5: parse error: unexpected \"}\""
    )
    assert len(fake.seen) == 1


async def test_server_errors_are_retried_then_reported(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.answers = [(503, "overloaded"), (200, vector(({}, "7")))]
    async with PrometheusClient(url, retries=2, backoff=0.01) as prom:
        assert (await prom.query("x")).value() == 7.0
    assert len(fake.seen) == 2

    fake.seen.clear()
    fake.answers = [(500, "boom")]
    async with PrometheusClient(url, retries=2, backoff=0.01) as prom:
        with pytest.raises(PrometheusHTTPError, match=r"answered HTTP 500: boom \(after 3 attempts\)"):
            await prom.query("x")
    assert len(fake.seen) == 3


async def test_not_found_is_not_retried(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    async with PrometheusClient(url + "/wrong-prefix", retries=2, backoff=0) as prom:
        with pytest.raises(PrometheusHTTPError, match="answered HTTP 404") as caught:
            await prom.query("x")
    assert caught.value.status == 404 and fake.seen == []


async def test_timeouts_and_refused_connections_are_unreachable(api: tuple[FakeApi, str]) -> None:
    fake, url = api

    async def slow() -> tuple[int, Any]:
        await asyncio.sleep(1.0)
        return 200, vector()

    fake.answers = [slow]
    async with PrometheusClient(url, timeout=0.2, retries=1, backoff=0) as prom:
        with pytest.raises(
            PrometheusUnreachable, match=r"unreachable at .*: no answer within 0.2s \(after 2"
        ):
            await prom.query("x")

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    async with PrometheusClient(f"http://127.0.0.1:{closed}", retries=0) as prom:
        with pytest.raises(
            PrometheusUnreachable, match=rf"^Prometheus unreachable at http://127.0.0.1:{closed}: "
        ):
            await prom.query("x")


async def test_non_json_and_wrong_result_types(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.answers = [(200, "<html>proxy login</html>")]
    async with PrometheusClient(url, retries=0) as prom:
        with pytest.raises(PrometheusHTTPError, match="unexpected answer"):
            await prom.query("x")
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    with pytest.raises(ValueError, match="a matrix where an instant vector or a scalar was expected"):
        parse_query_response("x[5m]", matrix)


async def test_client_pool_reuses_one_client_per_url() -> None:
    pool = PrometheusClients(timeout=1)
    assert pool.get("http://p:9090/") is pool.get("http://p:9090")
    assert pool.get("http://p:9090").timeout == 1
    await pool.close()


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="must start with http"):
        PrometheusClient("prometheus:9090")
    with pytest.raises(ValueError):
        PrometheusClient("http://p", timeout=0)


async def test_shared_answers_send_each_query_once_while_it_is_fresh(api: tuple[FakeApi, str]) -> None:
    fake, url = api

    async def slow() -> tuple[int, Any]:
        await asyncio.sleep(0.2)
        return 200, vector(({"revision": "a"}, "1"))

    fake.answers = [slow]
    async with PrometheusClient(url, share_answers_for=60) as prom:
        # three runs ask at once: one query on the way, the others wait for its answer
        first = await asyncio.gather(*(prom.query("up") for _ in range(3)))
        later = await prom.query("up")  # answered from memory
        other = await prom.query("other")
    assert [r.by_label("revision") for r in (*first, later)] == [{"a": 1.0}] * 4
    assert other.by_label("revision") == {"a": 1.0}
    assert [x["query"] for x in fake.seen] == ["up", "other"]


async def test_shared_answers_expire_and_failures_are_never_kept(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.answers = [(503, "busy"), (200, vector(({}, "1"))), (200, vector(({}, "2")))]
    async with PrometheusClient(url, retries=0, share_answers_for=0.05) as prom:
        with pytest.raises(PrometheusHTTPError):
            await prom.query("up")
        assert (await prom.query("up")).value() == 1  # the failure was not kept
        await asyncio.sleep(0.2)
        assert (await prom.query("up")).value() == 2  # older than share_answers_for: asked again
    assert len(fake.seen) == 3


async def test_answers_are_not_shared_by_default(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.answers = [(200, vector(({}, "1")))]
    async with PrometheusClient(url) as prom:
        await asyncio.gather(prom.query("up"), prom.query("up"))
    assert len(fake.seen) == 2
    with pytest.raises(ValueError, match="share_answers_for"):
        PrometheusClient(url, share_answers_for=-1)
