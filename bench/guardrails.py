"""The data-path guardrails' cost on the primary path: prediction logging, data contract, drift.

Several sidecars, identical except for the routing table's `dataPath`: none; prediction log at
sampleRate 0.1 and 1.0 to a file; the data contract (policy reject, every request passes); and
everything at once (contract, drift histograms for the four features, logging at 1.0). Every
sidecar is in front of the same static upstream (nginx answering a fixed body), so the sidecar's
own work is what is measured. Two measurements, each target in turn for interleaved rounds:
- latency: open-loop load (bench/openloop.py, latency from each request's scheduled time) on
  POST /predict_proba with 3 rows at LATENCY_RATE; percentiles are over all rounds' requests of a
  target; the spread of the plain sidecar's per-round p99 is shown as the noise to compare against;
- CPU per request at about 1,000 requests/s (bench/cpu_per_request.py): the sidecar process's
  user + system time from /proc (writer thread included) over the rounds divided by the requests.
  Issue #14's target: contract + drift + log at 1.0 cost at most 2x the plain sidecar's CPU per
  request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.cpu_per_request import CONNECTIONS, PAUSE_MS, RATE, CpuRun, CpuTarget, cpu_rounds
from bench.openloop import OpenLoopResult, constant_rate
from bench.proc_cpu import cpu_seconds
from bench.proxies import sidecar_build, sidecar_for, start_nginx
from bench.sidecar import PATH, WARMUP_SECONDS
from bench.targets import Target, met_summary, target_table
from bench.wrk import write_script
from modeldeploy.contract.routing import DataPathSettings
from tests.serving.processes import Processes, SidecarProc
from tests.serving.traffic import IRIS_ROWS
from tests.support.iris_contract import IRIS_SCHEMA

TITLE = "Guardrails on the primary path (prediction log, contract, drift)"

LATENCY_RATE = 100
ROUNDS = 5
SECONDS = 3
CPU_ROUNDS = 3
CPU_SECONDS = 5
PLAIN = "no guardrails"
EVERYTHING = "contract + drift + log 1.0"
CPU_FACTOR = 2.0

DRIFT = {
    "features": [
        {"name": name, "path": f"/features/*/{i}", "buckets": [0.5 * k for k in range(1, 17)]}
        for i, name in enumerate(("sepal_length", "sepal_width", "petal_length", "petal_width"))
    ]
}


def variants(workdir: Path) -> dict[str, DataPathSettings]:
    def log(rate: float, name: str) -> dict[str, object]:
        return {"sampleRate": rate, "sink": "file", "path": str(workdir / name), "redact": ["ssn"]}

    contract = {"schema": IRIS_SCHEMA, "policy": "reject"}
    return {
        PLAIN: DataPathSettings(),
        "log 0.1 to a file": DataPathSettings.model_validate({"predictionLog": log(0.1, "log-01.jsonl")}),
        "log 1.0 to a file": DataPathSettings.model_validate({"predictionLog": log(1.0, "log-10.jsonl")}),
        "contract (reject)": DataPathSettings.model_validate({"contract": contract}),
        EVERYTHING: DataPathSettings.model_validate(
            {"contract": contract, "drift": DRIFT, "predictionLog": log(1.0, "log-all.jsonl")}
        ),
    }


@dataclass(frozen=True)
class Row:
    p50_ms: float
    p99_ms: float
    round_p99_ms: list[float]
    errors: int
    late_starts: int


def pooled(results: list[OpenLoopResult]) -> Row:
    merged = OpenLoopResult([x for r in results for x in r.latencies], 0, 0)
    return Row(
        p50_ms=merged.percentile_ms(50),
        p99_ms=merged.percentile_ms(99),
        round_p99_ms=[r.percentile_ms(99) for r in results],
        errors=sum(r.errors for r in results),
        late_starts=sum(r.late_starts for r in results),
    )


def measure_latency(targets: dict[str, SidecarProc], rate: float) -> dict[str, Row]:
    body = json.dumps(IRIS_ROWS).encode()
    for sidecar in targets.values():
        constant_rate(sidecar.url + PATH, body, rate, WARMUP_SECONDS)
    runs: dict[str, list[OpenLoopResult]] = {name: [] for name in targets}
    for _ in range(ROUNDS):
        for name, sidecar in targets.items():
            runs[name].append(constant_rate(sidecar.url + PATH, body, rate, SECONDS))
    return {name: pooled(results) for name, results in runs.items()}


def measure_cpu(targets: dict[str, SidecarProc], script: Path) -> dict[str, CpuRun]:
    return cpu_rounds(
        {name: CpuTarget(sidecar.url + PATH, sidecar.pid, cpu_seconds) for name, sidecar in targets.items()},
        script,
        CPU_ROUNDS,
        CPU_SECONDS,
    )


@dataclass(frozen=True)
class Measured:
    latency: dict[str, Row]
    cpu: dict[str, CpuRun]
    written: dict[str, float]  # prediction log lines
    dropped: dict[str, float]


def run(workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    with Processes() as procs:
        static, static_url = start_nginx(workdir / "static", upstream_port=None)
        procs.add(static)
        sidecars: dict[str, SidecarProc] = {}
        for i, (name, data_path) in enumerate(variants(workdir / "logs").items()):
            sidecars[name] = sidecar_for(workdir / f"sidecar-{i}", static_url, procs, None, data_path)
        latency = measure_latency(sidecars, LATENCY_RATE)
        cpu = measure_cpu(sidecars, write_script(workdir / "paced.lua", IRIS_ROWS, pause_ms=PAUSE_MS))
        written = {name: s.metric("modeldeploy_prediction_log_lines_total") for name, s in sidecars.items()}
        dropped = {name: s.metric("modeldeploy_prediction_log_dropped_total") for name, s in sidecars.items()}
    return report(Measured(latency=latency, cpu=cpu, written=written, dropped=dropped))


def ms(value: float) -> str:
    return f"{value:.2f}"


def targets(m: Measured) -> list[Target]:
    plain, everything = m.cpu[PLAIN].us_per_request, m.cpu[EVERYTHING].us_per_request
    return [
        Target(
            f"{EVERYTHING}: CPU per request",
            f"≤ {CPU_FACTOR:g}x the plain sidecar's = {CPU_FACTOR * plain:.0f} µs",
            f"{everything:.0f} µs; plain {plain:.0f} µs ({everything / plain:.2f}x)",
            everything,
            CPU_FACTOR * plain,
        )
    ]


def report(m: Measured) -> str:
    rows = targets(m)
    plain_cpu = m.cpu[PLAIN].us_per_request
    lines = [
        "Sidecars identical but for the table's `dataPath` (as shipped: one traffic worker per "
        "CPU), each in front of the same static upstream (nginx answering a fixed JSON body: the "
        "sidecar's own work is all that is measured; on this busy machine a BentoML server saturates "
        "below 100 requests/s and its queue would hide it); POST /predict_proba (3 rows), each sidecar "
        "in turn for interleaved rounds. "
        f"All processes share the machine's CPUs with other work. Sidecar binary: {sidecar_build()}.",
        "",
        "### Target (issue #14)",
        "",
        *target_table(rows),
        "",
        met_summary(rows),
        "",
        f"### CPU per request (about {RATE:,} requests/s, {CPU_ROUNDS} rounds of "
        f"{CPU_SECONDS} s per sidecar)",
        "",
        f"The load is wrk with {CONNECTIONS} connections, each pausing {PAUSE_MS} ms after "
        "every answer (bench/cpu_per_request.py). User + system time of the sidecar process "
        "(prediction log writer thread included) from /proc over the rounds, divided by the requests "
        "answered.",
        "",
        "| sidecar dataPath | requests | achieved requests/s | CPU s | CPU µs/request | of plain | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {row.requests} | {row.achieved_rate:,.0f} | {row.cpu_seconds:.2f} "
            f"| {row.us_per_request:.0f} | {row.us_per_request / plain_cpu:.2f}x | {row.errors} |"
            for name, row in m.cpu.items()
        ),
    ]
    base = m.latency[PLAIN]
    spread = f"{ms(min(base.round_p99_ms))} to {ms(max(base.round_p99_ms))}"
    lines += [
        "",
        f"### Latency (open loop, {LATENCY_RATE} requests/s, {ROUNDS} rounds of {SECONDS} s per sidecar)",
        "",
        "Percentiles over all rounds' requests.",
        "",
        "| sidecar dataPath | p50 ms | p99 ms | p99 / none | p99 per round ms | errors |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, row in m.latency.items():
        per_round = ", ".join(ms(v) for v in row.round_p99_ms)
        lines.append(
            f"| {name} | {ms(row.p50_ms)} | {ms(row.p99_ms)} | {row.p99_ms / base.p99_ms:.2f} "
            f"| {per_round} | {row.errors} |"
        )
    within = [n for n, r in m.latency.items() if n != PLAIN and r.p99_ms <= max(base.round_p99_ms)]
    beyond = [n for n in m.latency if n != PLAIN and n not in within]
    lines += [
        "",
        f"Noise: the plain sidecar's p99 ranged {spread} ms between rounds. Pooled p99 within that "
        f"range: {', '.join(within) or 'none'}; above it: {', '.join(beyond) or 'none'}.",
    ]
    late = sum(r.late_starts for r in m.latency.values())
    if late:
        lines.append(f"The load generator started {late} requests more than 5 ms late (machine busy).")
    lines += [
        "",
        "Prediction log lines written (dropped), warm-ups included: "
        + ", ".join(
            f"{name} {m.written[name]:.0f} ({m.dropped[name]:.0f})" for name in m.written if "log" in name
        )
        + ".",
    ]
    return "\n".join(lines)
