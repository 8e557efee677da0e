"""Open-loop load at a constant request rate, latency measured from each request's scheduled time.

wrk is closed-loop: when the server slows down, wrk sends less, which hides tail latency
(coordinated omission). At a fixed rate below saturation, this generator shows what a client of a
service under steady load sees — the right view for "does shadowing hurt the primary's p99".
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class OpenLoopResult:
    latencies: list[float]  # seconds, one per request that got a response
    errors: int  # non-2xx responses and failed requests
    late_starts: int  # requests the generator itself could not send within 5 ms of schedule

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return 1000 * ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _constant_rate(url: str, body: bytes, rate: float, seconds: float) -> OpenLoopResult:
    latencies: list[float] = []
    errors = 0
    late = 0
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(scheduled: float) -> None:
            nonlocal errors
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status >= 300:
                        errors += 1
                        return
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
                return
            latencies.append(time.perf_counter() - scheduled)

        tasks = []
        start = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.005:
                late += 1
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
    return OpenLoopResult(latencies, errors, late)


def constant_rate(url: str, body: bytes, rate: float, seconds: float) -> OpenLoopResult:
    """POST `body` to `url` at `rate` requests per second for `seconds`."""
    return asyncio.run(_constant_rate(url, body, rate, seconds))
