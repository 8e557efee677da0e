"""One golden check: send each request to a revision's Service, compare with what is expected.

The first request whose status or JSON body differs (numbers within the tolerance) fails the check;
its name, what was expected and what came back (truncated) go into the outcome. A request that cannot
be made (connection refused, timeout) fails it too: a revision that cannot answer is not ready.

One exception: a connection that cannot be established at all (refused, no route) is tried again for
`CONNECT_GRACE_SECONDS`. The check runs as soon as the revision's Pods are Ready, and kube-proxy
programs the revision Service's route a moment later (EndpointSlice, then its own sync): until then
the node refuses the connection although the model is up. A timeout or any answer is never retried.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from modeldeploy.contract.comparison import json_equal
from modeldeploy.operator.api import GoldenRequest
from modeldeploy.operator.planner.golden import GoldenCheckRequest
from modeldeploy.operator.planner.inputs import GoldenOutcome

CONNECT_GRACE_SECONDS = 10.0
"""How long a refused connection to a just-Ready revision's Service is tried again (see above)."""
CONNECT_RETRY_SECONDS = 0.5

SHOWN = 300
"""Characters of an expected or received body shown in status and Events."""


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


def judge(request: GoldenRequest, status: int, body: bytes, tolerance: float) -> str | None:
    """Why the response differs from the expectation; None when it is as expected."""
    expect = request.expect
    got: Any
    try:
        got = json.loads(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        got = body.decode("utf-8", "replace")
    if status != expect.status:
        return f"expected status {expect.status}, got {status} with body {_shown(got)}"
    if expect.body is None:
        return None
    if isinstance(got, str) and not isinstance(expect.body, str):
        return f"expected JSON body {_shown(expect.body)}, got non-JSON {_shown(got)}"
    if not json_equal(expect.body, got, "numeric", tolerance):
        return f"expected body {_shown(expect.body)} (tolerance {tolerance:g}), got {_shown(got)}"
    return None


async def run_check(
    check: GoldenCheckRequest,
    requests: Sequence[GoldenRequest],
    base_url: str,
    *,
    tolerance: float,
    request_timeout: float,
    proxy: str | None = None,
    connect_grace: float = CONNECT_GRACE_SECONDS,
) -> GoldenOutcome:
    """Send `requests` in order to `base_url` (the revision's Service); stop at the first failure."""
    sent = 0
    limits = aiohttp.ClientTimeout(total=request_timeout)
    async with aiohttp.ClientSession(timeout=limits) as session:
        for request in requests:
            sent += 1
            url = base_url.rstrip("/") + request.path
            payload = None if request.body is None else json.dumps(request.body).encode()
            headers = dict(request.headers or {})
            if payload is not None:
                headers.setdefault("content-type", "application/json")
            unanswered = False
            connect_deadline = time.monotonic() + connect_grace
            while True:
                try:
                    async with session.request(
                        request.method, url, data=payload, headers=headers, proxy=proxy
                    ) as response:
                        body = await response.read()
                        problem = judge(request, response.status, body, tolerance)
                except aiohttp.ClientConnectorError as exc:
                    if time.monotonic() < connect_deadline:
                        await asyncio.sleep(CONNECT_RETRY_SECONDS)
                        continue
                    problem = f"no answer from {url}: {type(exc).__name__} {exc}".rstrip()
                    unanswered = True
                except (TimeoutError, aiohttp.ClientError) as exc:
                    problem = f"no answer from {url}: {type(exc).__name__} {exc}".rstrip()
                    unanswered = True
                break
            if problem is not None:
                at = datetime.now(UTC)
                return GoldenOutcome(
                    check.revision, check.target, False, at, sent, request.name, problem, unanswered
                )
    return GoldenOutcome(check.revision, check.target, True, datetime.now(UTC), sent)


def unavailable(check: GoldenCheckRequest, reason: str) -> GoldenOutcome:
    """The outcome when the golden requests themselves cannot be had (e.g. their ConfigMap is missing)."""
    return GoldenOutcome(check.revision, check.target, False, datetime.now(UTC), 0, None, reason, True)
