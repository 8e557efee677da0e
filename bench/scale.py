"""How far one operator scales: N ModelDeployments on the local control plane.

For each N (a fresh control plane each time): one operator process (namespace-scoped,
`--analysis-override pass`, so no Prometheus: the rollout's analysis runs are constant passes
at the planner boundary), N ModelDeployments with 1 replica each, created back to back; model
Pods are made Ready by the harness (tests/support/readiness.py, no serving processes). Measured:

- time from the first create until every object has status phase Succeeded and all children
  exist (N Deployments, 2N Services, N routing ConfigMaps);
- an idle period (nothing changes): the operator's CPU, RSS and API requests per second;
- a rollout of one object (image change; shadow 5 s, canary 50% 5 s) while the others idle:
  the time from the spec change to each status step, and the operator's own reconcile
  duration histogram (modeldeploy_operator_reconcile_duration_seconds, every reconcile of
  every object in that window) as p50/p99;
- API requests issued by the operator, from the API server's audit log by user agent
  (bench/apiaudit.py), so the operator's own counting plays no part;
- while all are reconciled, the CPU time of every process on the machine's two cores: each
  control-plane process, the operator, this harness, and the machine's total from /proc/stat,
  so the report says where the reconcile-all time went.

The issue's targets (#15) are checked per size: all reconciled within 60 s of the last create,
idle reconcile p99 < 1 s, p99 during the rollout < 250 ms, RSS < 300 MiB at N = 1,000, idle
reads (get and list by the operator) <= one per object per resync period.

Sizes and idle time: MODELDEPLOY_SCALE_SIZES (default "100,500,1000"),
MODELDEPLOY_SCALE_IDLE_SECONDS (default 60).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from bench.apiaudit import AuditLog, Window, WindowCounts, apiserver_args, count_by_window
from bench.apiceiling import Ceiling, measure_ceiling
from bench.proc_cpu import cpu_seconds, machine_cpu_seconds, tree_cpu_seconds
from bench.scale_cluster import (
    STEPS,
    Objects,
    OperatorMetrics,
    Step,
    bench_client,
    follow_rollout,
    name_of,
    operator_metrics,
    wait_until,
)
from bench.targets import Target, met_summary, target_table
from tests.cluster.localcluster import LocalCluster, running_cluster
from tests.support.operator_process import install_crd, running_operator
from tests.support.proc_stats import MIB, ProcSampler
from tests.support.readiness import model_pods_ready

TITLE = "Operator scale (N ModelDeployments, one operator)"
NAMESPACE = "scale"
READY_PERIOD = 2.0
RESYNC_SECONDS = 30.0  # the operator's default (OperatorSettings.resync_seconds)
READS = ("get", "list")
RSS_TARGET_AT = 1000
# How long the bench follows the rolled-out object before recording that it did not finish.
ROLLOUT_TIMEOUT = 300.0


def sizes() -> list[int]:
    raw = os.environ.get("MODELDEPLOY_SCALE_SIZES", "100,500,1000")
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"MODELDEPLOY_SCALE_SIZES must be comma-separated integers, got {raw!r}") from None
    if not values or min(values) < 1:
        raise SystemExit(f"MODELDEPLOY_SCALE_SIZES needs at least one size >= 1, got {raw!r}")
    return values


@dataclass(frozen=True)
class ScaleRun:
    n: int
    reconciled_all: float | None  # seconds from the first create (None: not within the wait)
    waited: float  # seconds from the first create to the end of the reconcile-all window
    succeeded: int  # objects with phase Succeeded at its end
    created_in: float
    rss_before: int
    rss_after_all: int
    rss_max: int
    cpu_reconcile_all: float  # CPU seconds per second while reconciling all
    cpu_by_process: dict[str, float]  # the same, for every process on the machine (and "machine")
    api: dict[str, WindowCounts]
    ceiling: Ceiling  # the API server's write rates, measured before the operator started
    later: _Later | None  # idle period and rollout (None: not all were reconciled)
    operator_errors: list[str]


def measure(n: int, workdir: Path, idle_seconds: float) -> ScaleRun:
    audit_dir = workdir / f"audit-{n}"
    with running_cluster(apiserver_args(audit_dir)) as cluster:
        _install_crd(cluster)
        api = bench_client(cluster)
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        ceiling = measure_ceiling(api)
        objects = Objects(api, NAMESPACE)
        # The CRD's storage answers 429 for a moment after it is Established; kopf would log that.
        wait_until(_listable(objects), 60, 0.5, "ModelDeployment list")
        with (
            model_pods_ready(api, NAMESPACE, period=READY_PERIOD),
            running_operator(cluster, NAMESPACE, workdir, ("--analysis-override", "pass")) as op,
        ):
            assert op.proc is not None
            wait_until(lambda: _metrics_up(op.metrics_port), 60, 0.5, "operator /metrics")
            with ProcSampler(op.proc.pid, period=1.0) as sampler:
                time.sleep(2.0)
                rss_before = sampler.samples[-1].rss_bytes
                cpu_start = cpu_by_process(cluster, op.proc.pid)
                t0_wall, t0 = time.time(), time.monotonic()
                objects.create(n, "registry.invalid/iris:1")
                created_in = time.monotonic() - t0
                done, succeeded = _wait_for_all(objects, n, wait_seconds(n))
                end = done if done is not None else time.monotonic()
                cpu_end = cpu_by_process(cluster, op.proc.pid)
                end_wall = t0_wall + (end - t0)
                rss_after_all = sampler.samples[-1].rss_bytes
                windows = [Window("reconcile all", t0_wall, end_wall)]
                later: _Later | None = None
                if done is not None:
                    later = _idle_and_rollout(objects, n, op.metrics_port, idle_seconds, sampler)
                    windows += later.windows
            errors = [line for line in op.logs().splitlines() if " ERROR " in line or "Traceback" in line]
        api_counts = count_by_window(AuditLog(audit_dir), windows)
    return ScaleRun(
        n=n,
        reconciled_all=None if done is None else done - t0,
        waited=end - t0,
        succeeded=succeeded,
        created_in=created_in,
        rss_before=rss_before,
        rss_after_all=rss_after_all,
        rss_max=sampler.max_rss(),
        cpu_reconcile_all=sampler.cpu_share(t0, end),
        cpu_by_process={
            name: (cpu_end[name] - cpu_start[name]) / (end - t0) for name in cpu_start if name in cpu_end
        },
        api=api_counts,
        ceiling=ceiling,
        later=later,
        operator_errors=errors,
    )


MACHINE = "machine"


def cpu_by_process(cluster: LocalCluster, operator_pid: int) -> dict[str, float]:
    """CPU seconds so far of each control-plane process (with its children), the operator, this
    harness process (the readiness loop, the creating clients, the status polls) and the machine."""
    pids = {name: proc.pid for name, proc in cluster.processes.items()}
    pids["operator"] = operator_pid
    seconds: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            seconds[name] = tree_cpu_seconds(pid)
        except FileNotFoundError:
            continue
    seconds["harness"] = cpu_seconds(os.getpid())  # not its tree: the cluster runs below it
    seconds[MACHINE] = machine_cpu_seconds()
    return seconds


@dataclass(frozen=True)
class _Later:
    """The idle period and the rollout, measured once every object is reconciled."""

    windows: list[Window]
    cpu_idle: float
    cpu_rollout: float
    reconcile_idle: OperatorMetrics
    reconcile_rollout: OperatorMetrics
    rollout_steps: list[Step]
    rollout_done: float | None  # None: no new stable revision within ROLLOUT_TIMEOUT


def _idle_and_rollout(
    objects: Objects, n: int, metrics_port: int, idle_seconds: float, sampler: ProcSampler
) -> _Later:
    time.sleep(5.0)
    idle_wall, idle = time.time(), time.monotonic()
    before_idle = operator_metrics(metrics_port)
    time.sleep(idle_seconds)
    idle_end_wall, idle_end = time.time(), time.monotonic()
    after_idle = operator_metrics(metrics_port)
    rollout_wall, rollout = time.time(), time.monotonic()
    steps, rollout_done = follow_rollout(objects, name_of(n // 2), "registry.invalid/iris:2", ROLLOUT_TIMEOUT)
    rollout_end_wall, rollout_end = time.time(), time.monotonic()
    after_rollout = operator_metrics(metrics_port)
    return _Later(
        windows=[Window("idle", idle_wall, idle_end_wall), Window("rollout", rollout_wall, rollout_end_wall)],
        cpu_idle=sampler.cpu_share(idle, idle_end),
        cpu_rollout=sampler.cpu_share(rollout, rollout_end),
        reconcile_idle=after_idle.minus(before_idle),
        reconcile_rollout=after_rollout.minus(after_idle),
        rollout_steps=steps,
        rollout_done=rollout_done,
    )


def wait_seconds(n: int) -> float:
    """How long after the last create the benchmark waits for all n to be reconciled (then it
    reports how many were, and skips the idle period and the rollout of that size): long enough
    for the larger sizes to finish on this machine, so every size gets its idle and rollout rows."""
    default = max(300.0, 1.2 * n)
    return float(os.environ.get("MODELDEPLOY_SCALE_WAIT_SECONDS", default))


def _wait_for_all(objects: Objects, n: int, seconds: float) -> tuple[float | None, int]:
    """(monotonic time all were reconciled or None, how many had phase Succeeded at the end)."""
    deadline = time.monotonic() + seconds
    succeeded = 0
    while True:
        phases = objects.phases()
        succeeded = sum(1 for phase in phases.values() if phase == "Succeeded")
        if succeeded == n and _all_reconciled(objects, n):
            return time.monotonic(), succeeded
        if time.monotonic() >= deadline:
            return None, succeeded
        time.sleep(2.0)


def _metrics_up(port: int) -> bool:
    try:
        operator_metrics(port)
    except OSError:
        return False
    return True


def _install_crd(cluster: LocalCluster, attempts: int = 3) -> None:
    """install_crd, retried: on a loaded machine `kubectl wait` has failed right after the apply."""
    for attempt in range(1, attempts + 1):
        try:
            install_crd(cluster)
            return
        except subprocess.CalledProcessError as exc:
            print(f"bench: CRD install attempt {attempt} failed: {exc.stderr}", flush=True)
            if attempt == attempts:
                raise
            time.sleep(2.0)


def _listable(objects: Objects) -> Callable[[], bool]:
    def check() -> bool:
        try:
            objects.phases()
        except client.ApiException:
            return False
        return True

    return check


def _all_reconciled(objects: Objects, n: int) -> bool:
    phases = objects.phases()
    if len(phases) < n or any(phase != "Succeeded" for phase in phases.values()):
        return False
    children = objects.children()
    return children == {"deployments": n, "services": 2 * n, "configmaps": n}


def run(workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    idle_seconds = float(os.environ.get("MODELDEPLOY_SCALE_IDLE_SECONDS", "60"))
    runs = [measure(n, workdir, idle_seconds) for n in sizes()]
    return report(runs, idle_seconds)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def idle_reads_per_object_per_resync(r: ScaleRun, idle_seconds: float) -> float:
    idle = r.api["idle"]
    reads = sum(count for call, count in idle.by_call.items() if call.split(" ", 1)[0] in READS)
    return reads / r.n / (idle_seconds / RESYNC_SECONDS)


def targets(r: ScaleRun, idle_seconds: float) -> list[Target]:
    if r.reconciled_all is None:
        waited = r.waited - r.created_in
        rows = [
            Target(
                f"N={r.n}: all reconciled after the last create",
                "≤ 60 s",
                f"not within {waited:.0f} s: {r.succeeded} of {r.n} Succeeded; {api_floor(r)}",
                float("inf"),
                60.0,
            )
        ]
    else:
        after_last = r.reconciled_all - r.created_in
        rows = [
            Target(
                f"N={r.n}: all reconciled after the last create",
                "≤ 60 s",
                f"{after_last:.1f} s ({r.reconciled_all:.1f} s after the first); {api_floor(r)}",
                after_last,
                60.0,
            )
        ]
    if r.later is not None:
        idle_p99 = r.later.reconcile_idle.quantile(0.99)
        rollout_p99 = r.later.reconcile_rollout.quantile(0.99)
        reads = idle_reads_per_object_per_resync(r, idle_seconds)
        rows += [
            Target(f"N={r.n}: idle reconcile p99", "< 1 s", f"{_ms(idle_p99)} ms", idle_p99, 1.0),
            Target(
                f"N={r.n}: reconcile p99 during one rollout",
                "< 250 ms",
                f"{_ms(rollout_p99)} ms",
                rollout_p99,
                0.25,
            ),
            Target(
                f"N={r.n}: idle API reads per object per resync ({RESYNC_SECONDS:.0f} s)",
                "≤ 1",
                f"{reads:.2f} ({r.api['idle'].per_second:.1f} requests/s, all verbs)",
                reads,
                1.0,
            ),
        ]
    if r.n >= RSS_TARGET_AT:
        rss = r.rss_max / MIB
        rows.append(Target(f"N={r.n}: operator RSS (max)", "< 300 MiB", f"{rss:.0f} MiB", rss, 300.0))
    return rows


def api_floor(r: ScaleRun) -> str:
    """What the API server alone needs for the operator's requests of the reconcile-all window, at
    the write rates measured in the same run (bench/apiceiling.py)."""
    counts = r.api["reconcile all"]
    services = counts.by_call.get("patch services", 0)
    floor = r.ceiling.floor_seconds(services, counts.total - services)
    return (
        f"the API server's floor for the operator's {counts.total} requests at this run's "
        f"{r.ceiling.configmaps_per_second:.0f} ConfigMap / {r.ceiling.services_per_second:.0f} Service "
        f"applies/s: {floor:.0f} s"
    )


def cpu_breakdown(r: ScaleRun) -> str:
    shares = {name: share for name, share in r.cpu_by_process.items() if name != MACHINE}
    listed = ", ".join(f"{name} {share:.0%}" for name, share in sorted(shares.items(), key=lambda kv: -kv[1]))
    machine = r.cpu_by_process.get(MACHINE)
    return listed if machine is None else f"{listed}; the whole machine {machine:.0%}"


def _per_second(r: ScaleRun, window: str, digits: int) -> str:
    counts = r.api.get(window)
    return "—" if counts is None else f"{counts.per_second:.{digits}f}"


def report(runs: list[ScaleRun], idle_seconds: float) -> str:
    steps = " → ".join(
        f"shadow {s['shadow']['percent']}% {s['shadow']['duration']}"
        if "shadow" in s
        else f"canary {s['canary']['weight']}% {s['canary']['duration']}"
        for s in STEPS
    )
    rows = [row for r in runs for row in targets(r, idle_seconds)]
    lines = [
        "### Targets (issue #15)",
        "",
        *target_table(rows),
        "",
        met_summary(rows),
        "",
        "Setup: one operator process (namespace-scoped, `--analysis-override pass`: analysis runs are "
        "constant passes, no Prometheus), resync every 30 s (the default); ModelDeployments with 1 replica, "
        "created by 8 concurrent clients; model Pods made Ready by the harness (a list-and-patch loop every "
        f"{READY_PERIOD:.0f} s, no serving processes). Idle period {idle_seconds:.0f} s. The rolled-out "
        f"object's steps: {steps}. When not all objects are reconciled within max(300 s, 1.2 s x N) "
        "after the last create, that size stops there (no idle period, no rollout). API requests counted "
        "from the API server's audit log by the operator's user agents (kopf and the kubernetes client; "
        "watches count once, when they end); idle reads are its get and list requests in the idle "
        "period. The API server's floor: before the operator starts, 200 ConfigMaps and then 200 "
        "Services are applied through the operator's own client and thread pool (bench/apiceiling.py); "
        "the operator's requests of the reconcile-all window at those rates (its Service applies at "
        "the Service rate, the rest at the ConfigMap rate) give the time the API server alone needs "
        "for them, before the controller-manager's own requests for the Deployments. The load "
        "average in the heading says what else the machine ran meanwhile.",
        "",
        "### Reconcile all, idle, resources",
        "",
        "| N | create N (s) | all reconciled (s) | operator RSS before / after all / max (MiB) "
        "| CPU reconcile-all | CPU idle | CPU rollout | API req/s reconcile-all | API req/s idle "
        "| API req/s rollout |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        reconciled = (
            f"{r.reconciled_all:.1f}"
            if r.reconciled_all is not None
            else f"> {r.waited:.0f} ({r.succeeded} of {r.n})"
        )
        cpu_idle = f"{r.later.cpu_idle:.0%}" if r.later else "—"
        cpu_rollout = f"{r.later.cpu_rollout:.0%}" if r.later else "—"
        lines.append(
            f"| {r.n} | {r.created_in:.1f} | {reconciled} "
            f"| {r.rss_before / MIB:.0f} / {r.rss_after_all / MIB:.0f} / {r.rss_max / MIB:.0f} "
            f"| {r.cpu_reconcile_all:.0%} | {cpu_idle} | {cpu_rollout} "
            f"| {_per_second(r, 'reconcile all', 0)} | {_per_second(r, 'idle', 1)} "
            f"| {_per_second(r, 'rollout', 1)} |"
        )
    lines += [
        "",
        "CPU is the operator's user + system time per wall second (100% = one core).",
        "",
        f"CPU while all are reconciled, by process (per wall second, 100% = one core; the machine has "
        f"{os.cpu_count()}):",
        "",
        *[f"- N = {r.n}: {cpu_breakdown(r)}" for r in runs],
        "",
        "### Reconcile latency",
        "",
        "| N | reconciles/s idle | reconcile p50 / p99 idle (ms) | reconciles during rollout "
        "| reconcile p50 / p99 during rollout (ms) | spec change → first status (s) "
        "| spec change → Succeeded (s) |",
        "|---:|---:|---|---:|---|---:|---:|",
    ]
    for r in runs:
        later = r.later
        if later is None:
            lines.append(f"| {r.n} | — | — | — | — | — | — |")
            continue
        first = later.rollout_steps[0].after if later.rollout_steps else float("nan")
        done = (
            f"{later.rollout_done:.1f}"
            if later.rollout_done is not None
            else f"not within {ROLLOUT_TIMEOUT:.0f}"
        )
        idle, rollout = later.reconcile_idle, later.reconcile_rollout
        lines.append(
            f"| {r.n} | {idle.reconciles / idle_seconds:.1f} "
            f"| {_ms(idle.quantile(0.5))} / {_ms(idle.quantile(0.99))} "
            f"| {rollout.reconciles:.0f} "
            f"| {_ms(rollout.quantile(0.5))} / {_ms(rollout.quantile(0.99))} "
            f"| {first:.1f} | {done} |"
        )
    lines += [
        "",
        "Reconcile p50/p99 come from the operator's histogram "
        "`modeldeploy_operator_reconcile_duration_seconds` (bucket-interpolated like PromQL's "
        "histogram_quantile; buckets 5, 10, 25, 50, 100, 250 ms, ...), "
        "over every reconcile of every object in the window.",
        "",
        "### The rolled-out object's status steps (seconds after the spec change)",
        "",
        "| N | steps (phase, step, canary weight, shadow percent) |",
        "|---:|---|",
    ]
    for r in runs:
        if r.later is None:
            continue
        timeline = "; ".join(
            f"{s.after:.1f} s {s.phase} step {s.step} canary {s.canary_weight:.0f}% "
            f"shadow {s.shadow_percent:.0f}%"
            for s in r.later.rollout_steps
        )
        lines.append(f"| {r.n} | {timeline} |")
    lines += ["", "### Operator API requests by call (per second)", ""]
    for r in runs:
        for window in ("reconcile all", "idle", "rollout"):
            if window in r.api:
                lines.append(f"- N = {r.n}, {window}: {r.api[window].top(8)}")
    for r in runs:
        if r.operator_errors:
            lines += [
                "",
                f"N = {r.n}: {len(r.operator_errors)} operator log lines with ERROR or a traceback; "
                f"the first: `{r.operator_errors[0][:300]}`",
            ]
    return "\n".join(lines)
