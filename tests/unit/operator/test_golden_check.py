"""The golden check against a real HTTP server on loopback: a refused connection is tried again for
the connect grace (kube-proxy routes a just-Ready revision's Service a moment late), and fails the
check as unanswered once the grace is over; an answer is judged at once."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from modeldeploy.operator.api import GoldenRequest
from modeldeploy.operator.golden.check import run_check
from modeldeploy.operator.planner.golden import GoldenCheckRequest

REQUEST = GoldenRequest.model_validate(
    {"name": "proba", "path": "/predict", "body": {"x": 1}, "expect": {"status": 200, "body": [0.5]}}
)
CHECK = GoldenCheckRequest("rev1", "gate")


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def serve_after(delay: float, port: int, answer: list[float]) -> web.AppRunner:
    await asyncio.sleep(delay)

    async def predict(_: web.Request) -> web.Response:
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/predict", predict)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def test_a_service_that_starts_routing_within_the_grace_is_checked() -> None:
    async def scenario() -> tuple[bool, int, bool]:
        port = unused_port()
        server = asyncio.create_task(serve_after(1.0, port, [0.5]))
        outcome = await run_check(
            CHECK, [REQUEST], f"http://127.0.0.1:{port}", tolerance=1e-6, request_timeout=2, connect_grace=5
        )
        await (await server).cleanup()
        return outcome.passed, outcome.requests, outcome.unanswered

    assert asyncio.run(scenario()) == (True, 1, False)


def test_a_different_answer_after_the_wait_fails_as_answered() -> None:
    async def scenario() -> tuple[bool, bool, str]:
        port = unused_port()
        server = asyncio.create_task(serve_after(0.5, port, [0.9]))
        outcome = await run_check(
            CHECK, [REQUEST], f"http://127.0.0.1:{port}", tolerance=1e-6, request_timeout=2, connect_grace=5
        )
        await (await server).cleanup()
        return outcome.passed, outcome.unanswered, outcome.message

    passed, unanswered, message = asyncio.run(scenario())
    assert (passed, unanswered) == (False, False)
    assert "expected body [0.5]" in message and "got [0.9]" in message, message


def test_nothing_listening_after_the_grace_fails_unanswered() -> None:
    async def scenario() -> tuple[bool, bool, str]:
        port = unused_port()
        outcome = await run_check(
            CHECK, [REQUEST], f"http://127.0.0.1:{port}", tolerance=1e-6, request_timeout=2, connect_grace=0.6
        )
        return outcome.passed, outcome.unanswered, outcome.message

    passed, unanswered, message = asyncio.run(scenario())
    assert (passed, unanswered) == (False, True)
    assert message.startswith("no answer from http://127.0.0.1:") and "ClientConnectorError" in message, (
        message
    )
