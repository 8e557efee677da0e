"""CPU time of benchmarked processes from /proc: one process (all its threads) or a process tree.

nginx does its work in worker processes forked by the master, so its CPU time is the sum over the
master and its descendants; the sidecar is one process (its threads are counted by the kernel in
the process's own utime/stime, exited threads included).
"""

from __future__ import annotations

import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads) so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far, every core (/proc/stat's first line: user, nice,
    system, irq, softirq and steal; not idle or iowait)."""
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks[:8]) - idle - iowait) / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc/<pid>/task/<tid>/children)."""
    found = [pid]
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as children:
                for child in children.read().split():
                    found += descendants(int(child))
        except FileNotFoundError:
            continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its descendants (processes that exit in between are not counted)."""
    total = 0.0
    for member in descendants(pid):
        try:
            total += cpu_seconds(member)
        except FileNotFoundError:
            continue
    return total


def thread_names(pid: int) -> list[str]:
    """The names (comm) of the threads of `pid`."""
    names = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as comm:
            names.append(comm.read().strip())
    return names
