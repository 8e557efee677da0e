"""The data-path guardrails' cost on the primary path: prediction logging, data contract, drift.

Several sidecars in front of the same BentoML iris server, identical except for the routing
table's `dataPath`: none; prediction log at sampleRate 0.1 and 1.0 to a file; the data contract
(policy reject, every request passes); and everything at once (contract, drift histograms for the
four features, logging at 1.0). Open-loop load (bench/openloop.py, latency from each request's
scheduled time) on POST /predict_proba with 3 rows, each target in turn for ROUNDS interleaved
rounds, at two rates. Percentiles are over all rounds' requests of a target; the spread of the
plain sidecar's per-round p99 is shown as the noise to compare against. The sidecar process's CPU
time per request (user + system from /proc, writer thread included) is measured over the same
rounds: on a shared machine it is a far steadier signal of what a guardrail costs than a p99.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from bench.openloop import OpenLoopResult, constant_rate
from bench.sidecar import PATH, WARMUP_SECONDS, sidecar_for
from modeldeploy.contract.routing import DataPathSettings
from tests.serving.processes import Processes, SidecarProc, launch_iris
from tests.serving.traffic import IRIS_ROWS
from tests.support.iris_contract import IRIS_SCHEMA

TITLE = "Guardrails on the primary path (prediction log, contract, drift)"

RATES = (50, 100)
ROUNDS = 5
SECONDS = 3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

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
        "no guardrails": DataPathSettings(),
        "log 0.1 to a file": DataPathSettings.model_validate({"predictionLog": log(0.1, "log-01.jsonl")}),
        "log 1.0 to a file": DataPathSettings.model_validate({"predictionLog": log(1.0, "log-10.jsonl")}),
        "contract (reject)": DataPathSettings.model_validate({"contract": contract}),
        "contract + drift + log 1.0": DataPathSettings.model_validate(
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
    cpu_us_per_request: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads) so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def pooled(results: list[OpenLoopResult], cpu: float) -> Row:
    merged = OpenLoopResult([x for r in results for x in r.latencies], 0, 0)
    requests = sum(len(r.latencies) + r.errors for r in results)
    return Row(
        p50_ms=merged.percentile_ms(50),
        p99_ms=merged.percentile_ms(99),
        round_p99_ms=[r.percentile_ms(99) for r in results],
        errors=sum(r.errors for r in results),
        late_starts=sum(r.late_starts for r in results),
        cpu_us_per_request=1e6 * cpu / requests,
    )


def measure(targets: dict[str, SidecarProc], rate: float) -> dict[str, Row]:
    body = json.dumps(IRIS_ROWS).encode()
    for sidecar in targets.values():
        constant_rate(sidecar.url + PATH, body, rate, WARMUP_SECONDS)
    runs: dict[str, list[OpenLoopResult]] = {name: [] for name in targets}
    cpu = dict.fromkeys(targets, 0.0)
    for _ in range(ROUNDS):
        for name, sidecar in targets.items():
            before = cpu_seconds(sidecar.pid)
            runs[name].append(constant_rate(sidecar.url + PATH, body, rate, SECONDS))
            cpu[name] += cpu_seconds(sidecar.pid) - before
    return {name: pooled(results, cpu[name]) for name, results in runs.items()}


def run(workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    with Processes() as procs:
        iris = procs.add(launch_iris(workdir / "iris", name="iris-primary"))
        iris.wait_ready(120)
        sidecars: dict[str, SidecarProc] = {}
        for i, (name, data_path) in enumerate(variants(workdir / "logs").items()):
            sidecars[name] = sidecar_for(workdir / f"sidecar-{i}", iris.url, procs, None, data_path)
        for sidecar in sidecars.values():
            sidecar.wait_http(sidecar.url + "/healthz", 20)
        load_before = os.getloadavg()[0]
        results = {rate: measure(sidecars, rate) for rate in RATES}
        load_after = os.getloadavg()[0]
        written = {name: s.metric("modeldeploy_prediction_log_lines_total") for name, s in sidecars.items()}
        dropped = {name: s.metric("modeldeploy_prediction_log_dropped_total") for name, s in sidecars.items()}
    return report(results, written, dropped, (load_before, load_after))


def ms(value: float) -> str:
    return f"{value:.2f}"


def report(
    results: dict[int, dict[str, Row]],
    written: dict[str, float],
    dropped: dict[str, float],
    load: tuple[float, float],
) -> str:
    lines = [
        "Sidecars in front of one BentoML iris server (1 worker, access log off), identical but for "
        "the table's `dataPath`; open loop on POST /predict_proba (3 rows), "
        f"{ROUNDS} interleaved rounds of {SECONDS} s per sidecar and rate; percentiles over all "
        "rounds' requests. All processes share the machine's CPUs; its 1-minute load average was "
        f"{load[0]:.1f} when the measurement started and {load[1]:.1f} when it ended.",
    ]
    for rate, rows in results.items():
        base = rows["no guardrails"]
        spread = f"{ms(min(base.round_p99_ms))} to {ms(max(base.round_p99_ms))}"
        lines += [
            "",
            f"### {rate} requests/s",
            "",
            "| sidecar dataPath | p50 ms | p99 ms | p99 / none | p99 per round ms | sidecar CPU µs/request "
            "| errors |",
            "|---|---:|---:|---:|---|---:|---:|",
        ]
        for name, row in rows.items():
            per_round = ", ".join(ms(v) for v in row.round_p99_ms)
            lines.append(
                f"| {name} | {ms(row.p50_ms)} | {ms(row.p99_ms)} | {row.p99_ms / base.p99_ms:.2f} "
                f"| {per_round} | {row.cpu_us_per_request:.0f} | {row.errors} |"
            )
        within = [n for n, r in rows.items() if n != "no guardrails" and r.p99_ms <= max(base.round_p99_ms)]
        beyond = [n for n in rows if n != "no guardrails" and n not in within]
        lines += [
            "",
            f"Noise: the plain sidecar's p99 ranged {spread} ms between rounds. Pooled p99 within that "
            f"range: {', '.join(within) or 'none'}; above it: {', '.join(beyond) or 'none'}.",
        ]
        late = sum(r.late_starts for r in rows.values())
        if late:
            lines.append(f"The load generator started {late} requests more than 5 ms late (machine busy).")
    lines += [
        "",
        "Prediction log lines written (dropped): "
        + ", ".join(f"{name} {written[name]:.0f} ({dropped[name]:.0f})" for name in written if "log" in name)
        + " (warm-up requests included).",
    ]
    return "\n".join(lines)
