"""Client traffic for the serving tests: many iris predictions, concurrently, with what came back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

IRIS_ROWS = {"features": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [6.7, 3.0, 5.2, 2.3]]}
REVISION_HEADER = "x-modeldeploy-revision"


@dataclass(frozen=True)
class Reply:
    index: int
    status: int
    revision: str | None
    latency: float
    finished: float  # time.monotonic() when the response was complete
    body: bytes


def revisions(replies: Sequence[Reply]) -> Counter[str | None]:
    return Counter(r.revision for r in replies)


def statuses(replies: Sequence[Reply]) -> Counter[int]:
    return Counter(r.status for r in replies)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def send(
    base_url: str,
    n: int,
    *,
    concurrency: int = 8,
    path: str = "/predict_proba",
    payload: object = IRIS_ROWS,
    headers: Callable[[int], Mapping[str, str]] | None = None,
    request_timeout: float = 30.0,
) -> list[Reply]:
    """POST `payload` n times with at most `concurrency` in flight; replies in request order."""
    replies: list[Reply | None] = [None] * n
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=request_timeout)
    ) as session:

        async def worker() -> None:
            nonlocal next_index
            while next_index < n:
                i = next_index
                next_index += 1
                started = time.monotonic()
                async with session.post(
                    base_url + path, json=payload, headers=dict(headers(i)) if headers else None
                ) as response:
                    body = await response.read()
                    finished = time.monotonic()
                    replies[i] = Reply(
                        i,
                        response.status,
                        response.headers.get(REVISION_HEADER),
                        finished - started,
                        finished,
                        body,
                    )

        await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return [r for r in replies if r is not None]


def send_sync(base_url: str, n: int, **kwargs: object) -> list[Reply]:
    """`send` for synchronous tests."""
    return asyncio.run(send(base_url, n, **kwargs))  # type: ignore[arg-type]
