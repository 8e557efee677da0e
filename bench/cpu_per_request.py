"""CPU per request at a steady rate: paced wrk on each target in turn, CPU time from /proc.

About RATE requests/s (CONNECTIONS keep-alive connections, each pausing PAUSE_MS after every
answer; bench/wrk.py) on each target for `seconds`, `rounds` times, interleaved. The target's CPU
time (user + system from /proc: all threads of a process, or a process tree for nginx's master and
workers) over the rounds divided by the requests answered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.wrk import wrk

RATE = 1000
CONNECTIONS = 40
PAUSE_MS = 39
"""40 connections pausing 39 ms: 1,000 requests/s at 1 ms latency, still 800 at 10 ms (busy machine)."""


@dataclass(frozen=True)
class CpuRun:
    requests: int
    seconds: float  # load time
    cpu_seconds: float
    errors: int

    @property
    def us_per_request(self) -> float:
        return 1e6 * self.cpu_seconds / self.requests if self.requests else math.nan

    @property
    def achieved_rate(self) -> float:
        return self.requests / self.seconds if self.seconds else math.nan


@dataclass(frozen=True)
class CpuTarget:
    url: str
    pid: int
    cpu: Callable[[int], float]  # CPU seconds of pid so far (bench/proc_cpu.py)


def cpu_rounds(targets: dict[str, CpuTarget], script: Path, rounds: int, seconds: float) -> dict[str, CpuRun]:
    """`script` must be written with `pause_ms=PAUSE_MS` (bench/wrk.write_script)."""
    for target in targets.values():
        wrk(target.url, script, CONNECTIONS, 1)
    totals = {name: CpuRun(0, 0.0, 0.0, 0) for name in targets}
    for _ in range(rounds):
        for name, target in targets.items():
            before = target.cpu(target.pid)
            result = wrk(target.url, script, CONNECTIONS, seconds)
            used = target.cpu(target.pid) - before
            total = totals[name]
            totals[name] = CpuRun(
                requests=total.requests + result.requests,
                seconds=total.seconds + result.requests / result.rps,
                cpu_seconds=total.cpu_seconds + used,
                errors=total.errors + result.errors,
            )
    return totals
