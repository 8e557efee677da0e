"""Soak: the stable sidecar under minutes of steady load with a 100% shadow and a failing canary.

Real processes on loopback (tests/serving: three BentoML iris servers, each behind a sidecar;
the routing table in a file). The canary fails 50% of its requests; the stable sidecar retries
failed POSTs locally, its fast guard trips, and a new canary revision is published every
ROTATE_EVERY seconds so the guard and the retries stay busy for the whole run. RSS and open FDs
of the stable sidecar come from /proc every SAMPLE_PERIOD seconds (tests/serving/soak.py), and
once before any request (idle, routing table loaded). Issue #14's targets: RSS <= 20 MiB idle,
<= 40 MiB through the soak, no growth in its second half.

Duration and rate: MODELDEPLOY_SOAK_SECONDS (default 300), MODELDEPLOY_SOAK_RATE (default 50).
The one-minute CI version is tests/serving/test_soak.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.proxies import sidecar_build
from bench.targets import Target, met_summary, target_table
from tests.serving.processes import Processes, launch_iris
from tests.serving.soak import (
    CANARY_FAIL_RATE,
    CANARY_WEIGHT,
    RETRY_ENV,
    SOAK_GUARD,
    SoakResult,
    run_soak,
)
from tests.serving.topology import IrisTrio, start_topology
from tests.support.proc_stats import MIB, sample

TITLE = "Sidecar soak (shadow 100%, failing canary)"

SAMPLE_PERIOD = 5.0
ROTATE_EVERY = 10.0
FD_SLACK = 4
FD_SETTLE_SECONDS = 40.0
IDLE_SETTLE_SECONDS = 2.0
IDLE_RSS_MIB = 20.0
LOAD_RSS_MIB = 40.0
SECOND_HALF_GROWTH_MIB = 1.0
"""'No growth': the least-squares RSS trend over the second half stays within allocator noise."""


def setting(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise SystemExit(f"{name} must be positive, got {raw!r}")
    return value


def run(workdir: Path) -> str:
    seconds = setting("MODELDEPLOY_SOAK_SECONDS", 300.0)
    rate = setting("MODELDEPLOY_SOAK_RATE", 50.0)
    workdir.mkdir(parents=True, exist_ok=True)
    with Processes() as procs:
        trio = IrisTrio(
            stable=procs.add(launch_iris(workdir / "stable", name="iris-stable")),
            canary=procs.add(
                launch_iris(
                    workdir / "canary", name="iris-canary", env={"IRIS_FAIL_RATE": str(CANARY_FAIL_RATE)}
                )
            ),
            shadow=procs.add(launch_iris(workdir / "shadow", name="iris-shadow", env={"IRIS_VARIANT": "b"})),
        )
        for server in trio.all():
            server.wait_ready(120)
        topology = start_topology(workdir / "sidecars", trio, procs, stable_env=RETRY_ENV)
        time.sleep(IDLE_SETTLE_SECONDS)
        idle_rss = sample(topology.stable.pid).rss_bytes
        result = run_soak(
            topology,
            rate=rate,
            seconds=seconds,
            sample_period=SAMPLE_PERIOD,
            rotate_every=ROTATE_EVERY,
            fd_slack=FD_SLACK,
            fd_settle_seconds=FD_SETTLE_SECONDS,
        )
    return report(result, idle_rss)


def second_half_trend_bytes(result: SoakResult) -> float:
    """RSS growth over the second half of the load by its least-squares trend."""
    half = result.second_half()
    if len(half) < 2:
        return 0.0
    return result.rss_slope_kib_per_min() * 1024 / 60 * (half[-1].at - half[0].at)


def targets(result: SoakResult, idle_rss: int) -> list[Target]:
    peak = max(s.rss_bytes for s in result.during_load())
    trend = second_half_trend_bytes(result)
    half = result.second_half()
    return [
        Target(
            "RSS idle (before any request)",
            f"≤ {IDLE_RSS_MIB:.0f} MiB",
            f"{idle_rss / MIB:.1f} MiB",
            idle_rss / MIB,
            IDLE_RSS_MIB,
        ),
        Target(
            f"RSS through the {result.seconds:.0f} s soak",
            f"≤ {LOAD_RSS_MIB:.0f} MiB",
            f"max {peak / MIB:.1f} MiB",
            peak / MIB,
            LOAD_RSS_MIB,
        ),
        Target(
            "RSS growth in the soak's second half",
            f"none: least-squares trend ≤ {SECOND_HALF_GROWTH_MIB:g} MiB",
            f"{trend / MIB:+.2f} MiB by the trend ({result.rss_slope_kib_per_min():+.0f} KiB/min); "
            f"last minus first sample {(half[-1].rss_bytes - half[0].rss_bytes) / MIB:+.2f} MiB",
            trend / MIB,
            SECOND_HALF_GROWTH_MIB,
        ),
    ]


def report(result: SoakResult, idle_rss: int) -> str:
    load = result.load
    during = result.during_load()
    rss = [s.rss_bytes for s in during]
    fds = [s.fds for s in during]
    counters = result.sidecar
    other = {code: n for code, n in sorted(load.statuses.items()) if code != 200}
    guard = SOAK_GUARD
    rows = targets(result, idle_rss)
    lines = [
        f"Setup: {result.rate:.0f} requests/s open loop for {result.seconds:.0f} s (POST /predict_proba) "
        "into the stable sidecar; shadow 100% to a second BentoML server; canary weight "
        f"{CANARY_WEIGHT:.0f}% on a BentoML server failing {CANARY_FAIL_RATE:.0%} of requests; "
        "POST retried locally on canary failure; "
        f"guard window {guard.window}, trip above {guard.max_error_ratio:.0%} after {guard.min_requests}; "
        f"a new canary revision every {ROTATE_EVERY:.0f} s ({result.tables_published} routing tables). "
        f"Sidecar sampled every {SAMPLE_PERIOD:.0f} s from /proc. All processes share the machine's CPUs "
        f"with other work running on it. Sidecar binary: {sidecar_build()}.",
        "",
        "### Targets (issue #14)",
        "",
        *target_table(rows),
        "",
        met_summary(rows),
        "",
        "### Primary requests (client side)",
        "",
        "| scheduled | sent | answered | 200 | other HTTP status | transport failures "
        "| not sent (client full) | p50 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {load.scheduled} | {load.sent} | {load.answered} | {load.statuses.get(200, 0)} "
        f"| {sum(other.values())}{f' {other}' if other else ''} "
        f"| {load.failed}{f' {dict(load.transport_failures)}' if load.failed else ''} "
        f"| {load.not_sent} | {load.percentile_ms(50):.1f} | {load.percentile_ms(99):.1f} |",
        "",
        "### Sidecar resources",
        "",
        "| RSS start MiB | RSS end MiB | RSS max MiB | RSS slope, 2nd half (KiB/min) | FD baseline "
        "| FD max under load | FD after load |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {rss[0] / MIB:.1f} | {rss[-1] / MIB:.1f} | {max(rss) / MIB:.1f} "
        f"| {result.rss_slope_kib_per_min():+.0f} | {result.fd_baseline} | {max(fds)} | {result.fd_after} |",
        "",
        "### What the sidecar did (its counters, during the load)",
        "",
        "| served locally | canary attempts | canary failures (retried) | guard trips | shadow match "
        "| shadow mismatch | shadow error | shadow dropped |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| "
        + " | ".join(
            f"{counters[key]:.0f}"
            for key in (
                "local",
                "canary_attempts",
                "canary_failures",
                "guard_trips",
                "shadow_match",
                "shadow_mismatch",
                "shadow_error",
                "shadow_dropped",
            )
        )
        + " |",
        "",
        "RSS start is the first sample under load (after a 3 s warm-up); the slope is the least-squares "
        "fit over the second half of the run. FD baseline is taken after the warm-up, FD after load once "
        f"it is within {FD_SLACK} of the baseline again, or after {FD_SETTLE_SECONDS:.0f} s (idle upstream "
        "keep-alive connections close after 30 s).",
    ]
    if result.rotation_errors:
        lines.append(f"Routing table publication failed {len(result.rotation_errors)} times.")
    return "\n".join(lines)
