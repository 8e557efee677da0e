"""Where and with what a benchmark ran: CPU, memory, kernel, tool versions."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import threading
from collections.abc import Sequence


def machine() -> str:
    """One line describing where the numbers were measured."""
    cpu = "unknown CPU"
    memory = "unknown RAM"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
                break
    system = f"Linux {platform.release()}, Python {platform.python_version()}"
    return f"{cpu}, {os.cpu_count()} CPUs, {memory}, {system}"


def tool_version(argv: Sequence[str]) -> str:
    """First line a tool prints for its version flag (stdout or stderr), or "not installed"."""
    if shutil.which(argv[0]) is None:
        return "not installed"
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return lines[0].strip() if lines else "unknown"


class LoadSampler:
    """The machine's 1-minute load average while a `with` block runs, sampled every `period` s.

    The machine is shared with other work; the load during a measurement says how far its
    absolute figures can be trusted (the ratios within one section are measured in interleaved
    rounds, so load from elsewhere falls on every target alike).
    """

    def __init__(self, period: float = 5.0) -> None:
        self.period = period
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loadavg", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.period + 1)
        self.samples.append(os.getloadavg()[0])

    def describe(self) -> str:
        """E.g. "1-minute load average 3.2 at the start, 5.1 at the end, 2.9 to 6.0 (median 4.4)"."""
        s = self.samples
        if not s:
            return "load average not sampled"
        return (
            f"1-minute load average {s[0]:.1f} at the start, {s[-1]:.1f} at the end, "
            f"{min(s):.1f} to {max(s):.1f} (median {statistics.median(s):.1f}) sampled every "
            f"{self.period:.0f} s, on {os.cpu_count()} CPUs"
        )
