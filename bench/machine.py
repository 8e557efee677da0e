"""Where and with what a benchmark ran: CPU, memory, kernel, tool versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
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
