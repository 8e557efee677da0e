"""The operator's HA pieces that need no cluster: peering priorities and stoppable loop sleeps."""

from __future__ import annotations

import asyncio
import time

from modeldeploy.operator.handlers import wakeups
from modeldeploy.operator.main import seniority_priority


def test_an_earlier_started_replica_always_outranks_a_later_one() -> None:
    now = 1_795_000_000.0
    for _ in range(50):
        assert seniority_priority(now) > seniority_priority(now + 0.001)
    assert seniority_priority(now) > 0


def test_replicas_started_in_the_same_millisecond_rarely_tie() -> None:
    priorities = {seniority_priority(1_795_000_000.0) for _ in range(20)}
    assert len(priorities) > 1


async def test_a_loop_sleep_ends_when_the_loop_is_stopped() -> None:
    wakeup = wakeups.Wakeup()
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = time.monotonic()
    await wakeups.sleep(wakeup, 30.0, stop.wait())
    assert time.monotonic() - started < 5.0


async def test_a_loop_sleep_ends_when_poked() -> None:
    key = ("ns", "poked")
    loops = wakeups.Wakeups()
    wakeup = loops.register(key)
    try:
        asyncio.get_running_loop().call_later(0.05, loops.poke, key)
        started = time.monotonic()
        await wakeups.sleep(wakeup, 30.0)
        assert time.monotonic() - started < 5.0
        assert not wakeup.event.is_set(), "the poke is consumed"
    finally:
        loops.unregister(key)
