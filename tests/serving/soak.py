"""Sustained load on the stable sidecar with a 100% shadow and a failing canary (soak).

Used by tests/serving/test_soak.py (about a minute, in CI) and bench/soak.py (minutes, for
docs/benchmarks.md). The setup is the serving topology (tests/serving/topology.py): stable,
canary and shadow iris servers, each behind a real sidecar; the stable sidecar retries failed
POSTs locally (MODELDEPLOY_RETRY_METHODS), as a sidecar in front of an idempotent model should.

- The load is open loop: a constant request rate, every request is accounted for as answered
  (2xx, or another HTTP status) or a transport failure (no HTTP answer: reset, timeout).
- The canary answers 50% of requests with HTTP 500. The fast guard trips after a few of them
  and latches; to keep the guard and the retries busy for the whole run, the routing table
  names a new canary revision (from a small fixed set, so metric label sets stay bounded) every
  `rotate_every` seconds, which starts a fresh guard.
- The stable sidecar's RSS and open file descriptors are sampled from /proc throughout.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from modeldeploy.contract.routing import Comparison, GuardSettings
from tests.serving.topology import Topology
from tests.serving.traffic import IRIS_ROWS, percentile
from tests.support.proc_stats import ProcSample, ProcSampler, rss_slope, sample

CANARY_FAIL_RATE = 0.5
CANARY_WEIGHT = 20.0
SOAK_GUARD = GuardSettings(window=20, max_error_ratio=0.3, min_requests=5)
CANARY_REVISIONS = ("dddd000001", "dddd000002", "dddd000003")
RETRY_ENV = {"MODELDEPLOY_RETRY_METHODS": "GET,HEAD,OPTIONS,POST"}
"""Environment of the stable sidecar in a soak: POST /predict_proba is safe to retry."""
MAX_IN_FLIGHT = 256
"""The load generator's own limit; a request it cannot start is counted as `not_sent`."""


@dataclass
class LoadCounts:
    """Client-side accounting of an open-loop run: every scheduled request lands in one bucket."""

    scheduled: int = 0
    sent: int = 0
    not_sent: int = 0  # the generator had MAX_IN_FLIGHT requests open already
    answered: int = 0  # an HTTP response arrived (any status)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_failures: Counter[str] = field(default_factory=Counter)  # exception type -> count
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests

    @property
    def non_2xx(self) -> int:
        return sum(n for code, n in self.statuses.items() if not 200 <= code < 300)

    @property
    def failed(self) -> int:
        return sum(self.transport_failures.values())

    def percentile_ms(self, q: float) -> float:
        return 1000 * percentile(self.latencies, q) if self.latencies else float("nan")


async def _open_loop(url: str, rate: float, seconds: float, request_timeout: float) -> LoadCounts:
    counts = LoadCounts()
    body = IRIS_ROWS
    in_flight = 0
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=request_timeout)
    ) as session:

        async def one() -> None:
            nonlocal in_flight
            started = time.perf_counter()
            try:
                async with session.post(url, json=body) as response:
                    await response.read()
                    counts.answered += 1
                    counts.statuses[response.status] += 1
                    counts.latencies.append(time.perf_counter() - started)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                counts.transport_failures[type(exc).__name__] += 1
            finally:
                in_flight -= 1

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            counts.scheduled += 1
            if in_flight >= MAX_IN_FLIGHT:
                counts.not_sent += 1
                continue
            in_flight += 1
            counts.sent += 1
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    return counts


def open_loop(url: str, rate: float, seconds: float, request_timeout: float = 30.0) -> LoadCounts:
    """POST iris rows to `url` at a constant `rate` for `seconds`; waits for every answer."""
    return asyncio.run(_open_loop(url, rate, seconds, request_timeout))


class CanaryRotation:
    """Publishes a routing table with the next canary revision every `every` seconds (a thread)."""

    def __init__(self, topology: Topology, every: float) -> None:
        self.topology = topology
        self.every = every
        self.published = 0
        self.errors: list[str] = []
        self._names = itertools.cycle(CANARY_REVISIONS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="canary-rotation", daemon=True)

    def publish_next(self) -> None:
        self.topology.publish(
            weight=CANARY_WEIGHT,
            percent=100,
            comparison=Comparison(mode="numeric", tolerance=0.2),
            guard=SOAK_GUARD,
            canary_revision=next(self._names),
            canary_url=self.topology.canary.url,
        )
        self.published += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.publish_next()
            except Exception as exc:  # recorded and asserted on by the caller
                self.errors.append(repr(exc))

    def __enter__(self) -> CanaryRotation:
        self.publish_next()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class SoakResult:
    rate: float
    seconds: float
    load: LoadCounts
    samples: list[ProcSample]
    load_started: float
    load_ended: float
    fd_baseline: int
    fd_after: int
    tables_published: int
    rotation_errors: list[str]
    sidecar: dict[str, float]  # increments of the stable sidecar's counters during the load

    def during_load(self) -> list[ProcSample]:
        return [s for s in self.samples if self.load_started <= s.at <= self.load_ended]

    def second_half(self) -> list[ProcSample]:
        middle = (self.load_started + self.load_ended) / 2
        return [s for s in self.during_load() if s.at >= middle]

    def rss_slope_kib_per_min(self) -> float:
        return rss_slope(self.second_half()) * 60 / 1024

    def second_half_growth_bytes(self) -> int:
        half = self.second_half()
        return half[-1].rss_bytes - half[0].rss_bytes if len(half) >= 2 else 0


def wait_fds_at_most(pid: int, limit: int, timeout: float) -> int:
    """Poll the process's open FD count until it is <= `limit` or `timeout` passes; returns the last."""
    deadline = time.monotonic() + timeout
    fds = sample(pid).fds
    while fds > limit and time.monotonic() < deadline:
        time.sleep(0.25)
        fds = sample(pid).fds
    return fds


def sidecar_counters(topology: Topology) -> dict[str, float]:
    stable = topology.stable
    shadow = {
        f"shadow_{result}": stable.metric("modeldeploy_shadow_requests_total", result=result)
        for result in ("match", "mismatch", "error", "dropped")
    }
    return {
        **shadow,
        "guard_trips": stable.metric("modeldeploy_guard_trips_total"),
        "canary_attempts": stable.metric("modeldeploy_requests_total", route="canary"),
        "canary_failures": stable.metric("modeldeploy_requests_total", route="canary", code="500"),
        "local": stable.metric("modeldeploy_requests_total", route="local"),
    }


def run_soak(
    topology: Topology,
    *,
    rate: float,
    seconds: float,
    sample_period: float,
    rotate_every: float,
    fd_slack: int,
    fd_settle_seconds: float = 15.0,
    warmup_seconds: float = 3.0,
) -> SoakResult:
    """Warm up, take the FD baseline, soak with canary rotation, then wait for FDs to settle.

    The canary iris server must already fail (IRIS_FAIL_RATE or its /faults switch) and the
    stable sidecar must retry POST (RETRY_ENV). `fd_slack` is how far above the baseline the
    FD count may stay after the load, polled for up to `fd_settle_seconds` while connections
    close (idle upstream keep-alive connections close after 30 s).
    """
    url = topology.stable.url + "/predict_proba"
    pid = topology.stable.pid
    with CanaryRotation(topology, rotate_every) as rotation:
        warm = open_loop(url, rate, warmup_seconds)
        if warm.answered != warm.sent:
            raise AssertionError(f"warm-up lost requests: {warm}")
        time.sleep(0.5)  # the warm-up client's connections close on the sidecar's side
        fd_baseline = sample(pid).fds
        before = sidecar_counters(topology)
        with ProcSampler(pid, sample_period) as sampler:
            load_started = time.monotonic()
            load = open_loop(url, rate, seconds)
            load_ended = time.monotonic()
            fd_after = wait_fds_at_most(pid, fd_baseline + fd_slack, fd_settle_seconds)
    return SoakResult(
        rate=rate,
        seconds=seconds,
        load=load,
        samples=sampler.samples,
        load_started=load_started,
        load_ended=load_ended,
        fd_baseline=fd_baseline,
        fd_after=fd_after,
        tables_published=rotation.published,
        rotation_errors=rotation.errors,
        sidecar={k: v - before[k] for k, v in sidecar_counters(topology).items()},
    )
