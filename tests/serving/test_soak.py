"""A one-minute soak of the stable sidecar: 100% shadow, a failing canary, steady open-loop load.

The long version (minutes) is bench/soak.py, which writes its figures to docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.processes import Processes
from tests.serving.soak import CANARY_FAIL_RATE, RETRY_ENV, SoakResult, run_soak
from tests.serving.topology import IrisTrio, Topology, start_topology
from tests.support.proc_stats import MIB

pytestmark = [pytest.mark.serving, pytest.mark.slow, pytest.mark.timeout(180)]

RATE = 50.0
SECONDS = 60.0
FD_SLACK = 24
RSS_GROWTH_LIMIT = 6 * MIB


@pytest.fixture
def topo(iris: IrisTrio, tmp_path: Path) -> Iterator[Topology]:
    with Processes() as procs:
        yield start_topology(tmp_path, iris, procs, stable_env=RETRY_ENV)


def describe(result: SoakResult) -> str:
    load = result.load
    rss = [f"{s.rss_bytes / MIB:.1f}" for s in result.samples]
    return (
        f"sent {load.sent} answered {load.answered} statuses {dict(load.statuses)} "
        f"transport failures {dict(load.transport_failures)} not sent {load.not_sent}; "
        f"fds {result.fd_baseline} -> {result.fd_after}; rss MiB {rss}; sidecar {result.sidecar}"
    )


def test_sidecar_soak_loses_nothing_and_holds_memory_and_fds(topo: Topology, iris: IrisTrio) -> None:
    """Every primary request is answered (2xx), FDs return to the baseline, RSS is flat.

    Bounds, and why they are generous but still catch leaks:
    - FDs: after the load and once the client's connections are closed, at most FD_SLACK (24)
      above the baseline taken after a warm-up at the same rate. Idle upstream keep-alive
      connections (kept 30 s, up to one per request that was in flight at once) may number a
      dozen more after a latency spike than at the baseline; a leak of one FD per request
      would leave thousands, one per canary failure or per routing table dozens.
    - RSS: growth over the second half of the load (after allocator arenas, connection pools
      and metric label sets have warmed up) below RSS_GROWTH_LIMIT (6 MiB). A healthy sidecar
      measured well under 1 MiB here; the margin absorbs the garbage collector's timing on a
      busy machine. Retaining each request's body and headers (a few KiB) for the 1500
      requests of the second half would exceed it.
    """
    iris.canary.set_faults(fail_rate=CANARY_FAIL_RATE)
    result = run_soak(
        topo, rate=RATE, seconds=SECONDS, sample_period=2.0, rotate_every=8.0, fd_slack=FD_SLACK
    )
    load = result.load
    report = describe(result)
    print(report)
    # No dropped primary request: every request was sent and answered, none failed in transport.
    assert load.scheduled == int(RATE * SECONDS), report
    assert load.not_sent == 0 and load.failed == 0 and load.answered == load.sent, report
    # Failed canary attempts were retried on stable: clients saw only 200.
    assert load.statuses == {200: load.sent}, report
    # The canary really failed and the guard really tripped, repeatedly (one per canary revision).
    assert result.rotation_errors == [], report
    # Each trip needs more than 30% failures among at least 5 attempts: 2 or more failures.
    assert result.sidecar["guard_trips"] >= 3, report
    assert result.sidecar["canary_failures"] >= 2 * result.sidecar["guard_trips"], report
    # The shadow received copies of (nearly) every locally served request.
    assert result.sidecar["shadow_match"] >= 0.8 * load.sent, report
    assert result.fd_after <= result.fd_baseline + FD_SLACK, report
    assert result.second_half_growth_bytes() < RSS_GROWTH_LIMIT, report
    assert topo.stable.alive(), report
