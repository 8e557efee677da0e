"""Shadow copies: sent asynchronously, bounded, dropped when saturated, compared with the primary.

At most `concurrency` copies are in flight and at most `queue` more wait for a slot; a copy that
finds both full is dropped at once (`result="dropped"`). The primary path only calls `submit`,
which never waits. A copy is sent as soon as it gets a slot, in parallel with the primary request,
then waits for the primary's (status, body) to compare: `match`, `mismatch`, or `error` when the
shadow failed (no response, timeout, 5xx, body too large to compare). When the primary itself
produced nothing comparable (it failed, or streamed a large body) the copy is not counted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from multidict import CIMultiDict

from modeldeploy.contract.routing import Comparison
from modeldeploy.serving.compare import Verdict, compare_responses
from modeldeploy.serving.metrics import SidecarMetrics
from modeldeploy.serving.router import Target
from modeldeploy.serving.upstream import UpstreamError, Upstreams

log = logging.getLogger("modeldeploy.sidecar.shadow")

PrimaryResult = tuple[int, bytes] | None


def _new_future() -> asyncio.Future[PrimaryResult]:
    return asyncio.get_running_loop().create_future()


@dataclass
class ShadowCopy:
    target: Target
    method: str
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes
    comparison: Comparison
    primary: asyncio.Future[PrimaryResult] = field(default_factory=_new_future)

    def primary_done(self, result: PrimaryResult) -> None:
        if not self.primary.done():
            self.primary.set_result(result)


class ShadowMirror:
    def __init__(
        self,
        upstreams: Upstreams,
        metrics: SidecarMetrics,
        *,
        concurrency: int,
        queue: int,
        primary_wait: float,
        compare_max_bytes: int,
    ) -> None:
        self._upstreams = upstreams
        self._metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._capacity = concurrency + queue
        self._primary_wait = primary_wait
        self._compare_max_bytes = compare_max_bytes
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """Copies in flight or waiting for a slot."""
        return len(self._tasks)

    def submit(self, copy: ShadowCopy) -> bool:
        """Start a copy if there is room, else count it dropped. Never waits."""
        if len(self._tasks) >= self._capacity:
            self._metrics.observe_shadow(copy.target.revision, Verdict.DROPPED)
            return False
        task = asyncio.create_task(self._run(copy), name=f"shadow-{copy.target.revision}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, copy: ShadowCopy) -> None:
        async with self._slots:
            shadow = await self._send(copy)
        if shadow is None:
            self._metrics.observe_shadow(copy.target.revision, Verdict.ERROR)
            return
        try:
            primary = await asyncio.wait_for(asyncio.shield(copy.primary), self._primary_wait)
        except TimeoutError:
            primary = None
        if primary is None:
            log.debug("shadow copy of %s not compared: no comparable primary response", copy.path_qs)
            return
        verdict = compare_responses(primary, shadow, copy.comparison.mode, copy.comparison.tolerance)
        self._metrics.observe_shadow(copy.target.revision, verdict)
        if verdict is Verdict.MISMATCH:
            log.debug("shadow %s mismatch on %s %s", copy.target.revision, copy.method, copy.path_qs)

    async def _send(self, copy: ShadowCopy) -> tuple[int, bytes] | None:
        url = copy.target.url + copy.path_qs
        try:
            response = await self._upstreams.open(
                self._upstreams.shadow,
                copy.method,
                url,
                copy.headers,
                copy.body,
                self._upstreams.proxy_for(copy.target.route),
            )
        except UpstreamError as exc:
            log.debug("shadow %s failed: %s", copy.target.revision, exc.message)
            return None
        async with response:
            if response.status >= 500:
                return None
            if response.content_length is not None and response.content_length > self._compare_max_bytes:
                return None
            try:
                body = await self._upstreams.read_body(response)
            except UpstreamError as exc:
                log.debug("shadow %s failed: %s", copy.target.revision, exc.message)
                return None
            return response.status, body

    async def close(self, grace: float) -> None:
        """Let running copies finish for up to `grace` seconds, then cancel the rest."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
