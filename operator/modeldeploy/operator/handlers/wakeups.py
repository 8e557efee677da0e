"""Per-ModelDeployment wake-up events: watch events poke the rollout loop of that resource.

Each ModelDeployment has one rollout loop (a kopf daemon). It sleeps until the next
time-based transition or analysis run, or until something relevant changes: the spec or an
action annotation of the ModelDeployment, or the status of one of its Deployments.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field

Key = tuple[str, str]  # (namespace, name)


@dataclass
class Wakeup:
    event: asyncio.Event = field(default_factory=asyncio.Event)
    fingerprint: object = None  # last seen (generation, annotations) of the resource


class Wakeups:
    """The wake-up events of the rollout loops running in this process, by ModelDeployment."""

    def __init__(self) -> None:
        self._loops: dict[Key, Wakeup] = {}

    def register(self, key: Key) -> Wakeup:
        return self._loops.setdefault(key, Wakeup())

    def unregister(self, key: Key) -> None:
        self._loops.pop(key, None)

    def poke(self, key: Key, fingerprint: object = None) -> bool:
        """Wake the loop of `key`. With a fingerprint, only if it differs from the last one seen."""
        wakeup = self._loops.get(key)
        if wakeup is None:
            return False
        if fingerprint is not None:
            if fingerprint == wakeup.fingerprint:
                return False
            wakeup.fingerprint = fingerprint
        wakeup.event.set()
        return True


async def sleep(wakeup: Wakeup, seconds: float, stop: Awaitable[object] | None = None) -> None:
    """Sleep up to `seconds`, returning early when poked or when `stop` completes."""
    waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(wakeup.event.wait())}
    if stop is not None:
        waiters.add(asyncio.ensure_future(stop))
    try:
        await asyncio.wait(waiters, timeout=max(seconds, 0.0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)
    wakeup.event.clear()
