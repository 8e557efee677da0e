"""Resource use of a running process from /proc: resident memory, open file descriptors, CPU time.

`ProcSampler` samples one process every `period` seconds in a background thread while its block
runs; the soak test, the soak benchmark (sidecar) and the scale benchmark (operator) read their
figures from it.

    with ProcSampler(pid, period=2.0) as sampler:
        ...                                   # load
    print(sampler.samples[-1].rss_bytes, rss_slope(sampler.second_half()))
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


@dataclass(frozen=True)
class ProcSample:
    at: float  # time.monotonic()
    rss_bytes: int
    fds: int
    cpu_seconds: float  # user + system since the process started


def sample(pid: int) -> ProcSample:
    """One reading of `pid` (ProcessLookupError once it has exited)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # Fields after the command name (which may contain spaces) start at field 3 (state).
            fields = stat.read().rsplit(")", 1)[1].split()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, StopIteration) as exc:
        raise ProcessLookupError(f"process {pid} is gone") from exc
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)
    return ProcSample(time.monotonic(), rss_kib * 1024, fds, cpu)


def rss_slope(samples: Sequence[ProcSample]) -> float:
    """Least-squares slope of RSS over time, in bytes per second (0 with fewer than two samples)."""
    if len(samples) < 2:
        return 0.0
    xs = [s.at for s in samples]
    ys = [float(s.rss_bytes) for s in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


class ProcSampler:
    """Samples a process every `period` seconds while the `with` block runs (and once at each end)."""

    def __init__(self, pid: int, period: float = 2.0) -> None:
        self.pid = pid
        self.period = period
        self.samples: list[ProcSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"procstats-{pid}", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.samples.append(sample(self.pid))
            except ProcessLookupError:
                return

    def __enter__(self) -> ProcSampler:
        self.samples.append(sample(self.pid))
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(self.period + 5)
        try:
            self.samples.append(sample(self.pid))
        except ProcessLookupError:
            if kind is None:
                raise

    def between(self, start: float, end: float) -> list[ProcSample]:
        """Samples taken in [start, end] (time.monotonic() values)."""
        return [s for s in self.samples if start <= s.at <= end]

    def max_rss(self) -> int:
        return max(s.rss_bytes for s in self.samples)

    def cpu_share(self, start: float, end: float) -> float:
        """CPU seconds used per wall second between the samples nearest to `start` and `end`."""
        window = self.between(start, end)
        if len(window) < 2 or window[-1].at == window[0].at:
            return 0.0
        return (window[-1].cpu_seconds - window[0].cpu_seconds) / (window[-1].at - window[0].at)
