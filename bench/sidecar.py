"""Sidecar overhead against nginx in front of the same BentoML iris server, and shadow's cost.

One run measures (POST /predict_proba with 3 rows, keep-alive; wrk for closed-loop throughput,
bench/openloop.py for latency at a steady rate):
- added latency at a constant 100 requests/s (open loop, latency from each request's scheduled
  time, so stalls are not hidden): BentoML direct, through nginx, through the sidecar; added =
  proxied percentile minus direct percentile;
- throughput at 32 connections (wrk, closed loop): the same three paths on the BentoML upstream,
  and both proxies in front of a static upstream (nginx answering a fixed JSON body), which shows
  the proxies' own ceiling when the model is not the bottleneck;
- the primary's latency at a constant 100 requests/s (open loop) through the sidecar without and
  with a 100% shadow copy to a second BentoML server.

Targets are measured in interleaved rounds and each figure is the median over the rounds, so a
burst of load from elsewhere on the machine does not land on one target only. nginx runs one
worker (the sidecar is one process) with upstream keep-alive and no access log.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.machine import tool_version
from bench.openloop import OpenLoopResult, constant_rate
from modeldeploy.contract.routing import Backend, Comparison, DataPathSettings, RoutingTable, ShadowRoute
from tests.serving.processes import (
    IrisServer,
    Proc,
    Processes,
    SidecarProc,
    free_port,
    http,
    launch_iris,
    spawn,
    start_sidecar,
    write_routing,
)
from tests.serving.traffic import IRIS_ROWS

TITLE = "Serving sidecar vs nginx"

ROUNDS = 3
LATENCY_RATE = 100
LATENCY_SECONDS = 3
THROUGHPUT_SECONDS = 2
WARMUP_SECONDS = 1
THROUGHPUT_CONNECTIONS = 32
SHADOW_RATE = 100
SHADOW_SECONDS = 4
PATH = "/predict_proba"
STATIC_BODY = "[[0.98, 0.018, 1.4e-08]]"

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"p50": %%d, "p90": %%d, "p99": %%d, "requests": %%d, "duration_us": %%d, '
    .. '"non2xx": %%d, "socket_errors": %%d}\\n',
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
"""

NGINX_CONF = """
worker_processes 1;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
  %(upstream_block)s
  server {
    listen 127.0.0.1:%(port)d;
    %(location)s
  }
}
"""

PROXY_LOCATION = """location / {
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }"""

STATIC_LOCATION = """location / {
      default_type application/json;
      return 200 '%s';
    }"""


@dataclass(frozen=True)
class WrkResult:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    rps: float
    errors: int


def wrk(url: str, script: Path, connections: int, seconds: int) -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 30)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None or done.stderr.strip():
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("RESULT "))
    return WrkResult(
        p50_ms=raw["p50"] / 1000,
        p90_ms=raw["p90"] / 1000,
        p99_ms=raw["p99"] / 1000,
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        errors=raw["non2xx"] + raw["socket_errors"],
    )


def median_result(results: list[WrkResult]) -> WrkResult:
    return WrkResult(
        p50_ms=statistics.median(r.p50_ms for r in results),
        p90_ms=statistics.median(r.p90_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        rps=statistics.median(r.rps for r in results),
        errors=sum(r.errors for r in results),
    )


def interleaved(
    targets: dict[str, str], script: Path, connections: int, seconds: int
) -> dict[str, WrkResult]:
    """Round-robin over the targets ROUNDS times (after one warm-up each); medians per target."""
    for url in targets.values():
        wrk(url + PATH, script, connections, WARMUP_SECONDS)
    runs: dict[str, list[WrkResult]] = {name: [] for name in targets}
    for _ in range(ROUNDS):
        for name, url in targets.items():
            runs[name].append(wrk(url + PATH, script, connections, seconds))
    return {name: median_result(results) for name, results in runs.items()}


def start_nginx(workdir: Path, *, upstream_port: int | None) -> tuple[Proc, str]:
    """nginx, one worker: keep-alive reverse proxy to `upstream_port`, or (None) a static JSON server."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    if upstream_port is None:
        upstream_block, location = "", STATIC_LOCATION % STATIC_BODY
    else:
        upstream_block = f"upstream model {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}"
        location = PROXY_LOCATION
    conf.write_text(
        NGINX_CONF % {"dir": workdir, "port": port, "upstream_block": upstream_block, "location": location}
    )
    argv = ["nginx", "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
    proc = spawn(f"nginx-{workdir.name}", argv, workdir / "nginx.log", {})
    url = f"http://127.0.0.1:{port}"
    probe = "/" if upstream_port is None else "/readyz"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.alive():
        try:
            if http("GET", url + probe, timeout=1)[0] == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"nginx did not start:\n{(workdir / 'error.log').read_text(errors='replace')}")


@contextmanager
def iris_pair(workdir: Path, procs: Processes) -> Iterator[tuple[IrisServer, IrisServer]]:
    primary = procs.add(launch_iris(workdir / "primary", name="iris-primary"))
    shadow = procs.add(launch_iris(workdir / "shadow", name="iris-shadow"))
    primary.wait_ready(120)
    shadow.wait_ready(120)
    yield primary, shadow


def sidecar_for(
    workdir: Path,
    upstream: str,
    procs: Processes,
    shadow: IrisServer | None,
    data_path: DataPathSettings | None = None,
) -> SidecarProc:
    """A stable sidecar in front of `upstream`, optionally copying everything to `shadow`."""
    workdir.mkdir(parents=True, exist_ok=True)
    routing = workdir / "routing.json"
    table = RoutingTable(
        model="iris",
        namespace="bench",
        stable=Backend(revision="stable0000", url="http://iris-stable0000.bench.svc:8080"),
        shadow=None if shadow is None else ShadowRoute(revision="shadow0000", url=shadow.url, percent=100),
        comparison=Comparison(tolerance=1e-9),
        data_path=data_path or DataPathSettings(),
    )
    write_routing(routing, table)
    return procs.add(
        start_sidecar(
            workdir,
            name=f"sidecar-{workdir.name}",
            revision="stable0000",
            upstream=upstream,
            namespace="bench",
            routing_file=routing,
            wait_ready=False,
        )
    )


@dataclass(frozen=True)
class LatencyRun:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    late_starts: int


def open_loop_rounds(targets: dict[str, str], rate: float, seconds: float) -> dict[str, LatencyRun]:
    """Constant-rate load on each target, interleaved over ROUNDS; median percentiles per target."""
    body = json.dumps(IRIS_ROWS).encode()
    for url in targets.values():
        constant_rate(url + PATH, body, rate, WARMUP_SECONDS)
    runs: dict[str, list[OpenLoopResult]] = {name: [] for name in targets}
    for _ in range(ROUNDS):
        for name, url in targets.items():
            runs[name].append(constant_rate(url + PATH, body, rate, seconds))
    return {
        name: LatencyRun(
            p50_ms=statistics.median(r.percentile_ms(50) for r in results),
            p90_ms=statistics.median(r.percentile_ms(90) for r in results),
            p99_ms=statistics.median(r.percentile_ms(99) for r in results),
            errors=sum(r.errors for r in results),
            late_starts=sum(r.late_starts for r in results),
        )
        for name, results in runs.items()
    }


def run(workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT % {"body": json.dumps(IRIS_ROWS)})
    with Processes() as procs, iris_pair(workdir, procs) as (primary, shadow):
        nginx, nginx_url = start_nginx(workdir / "nginx", upstream_port=primary.port)
        procs.add(nginx)
        static, static_url = start_nginx(workdir / "static", upstream_port=None)
        procs.add(static)
        static_port = int(static_url.rsplit(":", 1)[1])
        nginx_static, nginx_static_url = start_nginx(workdir / "nginx-static", upstream_port=static_port)
        procs.add(nginx_static)
        plain = sidecar_for(workdir / "plain", primary.url, procs, None)
        mirrored = sidecar_for(workdir / "mirrored", primary.url, procs, shadow)
        sidecar_static = sidecar_for(workdir / "static-sidecar", static_url, procs, None)
        for sidecar in (plain, mirrored, sidecar_static):
            sidecar.wait_http(sidecar.url + "/healthz", 20)

        on_model = {
            "BentoML direct": primary.url,
            "nginx → BentoML": nginx_url,
            "sidecar → BentoML": plain.url,
        }
        latency = open_loop_rounds(on_model, LATENCY_RATE, LATENCY_SECONDS)
        throughput = interleaved(on_model, script, THROUGHPUT_CONNECTIONS, THROUGHPUT_SECONDS)
        on_static = {
            "static upstream direct": static_url,
            "nginx → static": nginx_static_url,
            "sidecar → static": sidecar_static.url,
        }
        capacity = interleaved(on_static, script, THROUGHPUT_CONNECTIONS, THROUGHPUT_SECONDS)
        shadow_paths = {"plain": plain.url, "mirrored": mirrored.url}
        shadowing = open_loop_rounds(shadow_paths, SHADOW_RATE, SHADOW_SECONDS)
        without_shadow, with_shadow = shadowing["plain"], shadowing["mirrored"]
        time.sleep(1.0)  # let the last copies finish and be counted
        copies = {
            result: mirrored.metric("modeldeploy_shadow_requests_total", result=result)
            for result in ("match", "mismatch", "error", "dropped")
        }
    return report(latency, throughput, capacity, without_shadow, with_shadow, copies)


def ms(value: float) -> str:
    return f"{value:.2f}"


def throughput_table(results: dict[str, WrkResult], base_name: str) -> list[str]:
    lines = ["| path | requests/s | of direct | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|"]
    base = results[base_name].rps
    for name, r in results.items():
        lines.append(
            f"| {name} | {r.rps:.0f} | {r.rps / base:.0%} | {ms(r.p50_ms)} | {ms(r.p99_ms)} | {r.errors} |"
        )
    return lines


def report(
    latency: dict[str, LatencyRun],
    throughput: dict[str, WrkResult],
    capacity: dict[str, WrkResult],
    without_shadow: LatencyRun,
    with_shadow: LatencyRun,
    copies: dict[str, float],
) -> str:
    direct = latency["BentoML direct"]
    nginx_add = latency["nginx → BentoML"].p50_ms - direct.p50_ms
    sidecar_add = latency["sidecar → BentoML"].p50_ms - direct.p50_ms
    lines = [
        f"Tools: {tool_version(['nginx', '-v'])}; {tool_version(['wrk', '-v']).split(' Copyright')[0]}; "
        "BentoML iris example (1 worker, access log off); the Rust sidecar (release build). "
        f"All processes share the machine's CPUs. Medians of {ROUNDS} interleaved rounds.",
        "",
        f"### Added latency (open loop, {LATENCY_RATE} requests/s, {ROUNDS} rounds of {LATENCY_SECONDS} s "
        "per path)",
        "",
        "| path | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in latency.items():
        added50 = "—" if name == "BentoML direct" else ms(r.p50_ms - direct.p50_ms)
        added99 = "—" if name == "BentoML direct" else ms(r.p99_ms - direct.p99_ms)
        lines.append(f"| {name} | {ms(r.p50_ms)} | {ms(r.p90_ms)} | {ms(r.p99_ms)} | {added50} | {added99} |")
    if any(r.p99_ms < direct.p99_ms for r in latency.values()):
        lines += ["", "A negative added p99 means the tail noise between runs exceeds the proxy's own cost."]
    lines += [
        "",
        f"Added p50: sidecar {ms(sidecar_add)} ms, nginx {ms(nginx_add)} ms"
        + (f" (ratio {sidecar_add / nginx_add:.1f})." if nginx_add > 0 else "."),
        "",
        f"### Throughput on the BentoML upstream ({THROUGHPUT_CONNECTIONS} connections)",
        "",
        *throughput_table(throughput, "BentoML direct"),
        "",
        f"Sidecar: {throughput['sidecar → BentoML'].rps / throughput['nginx → BentoML'].rps:.0%} of nginx's "
        "throughput on the same model server (the model server is the bottleneck here).",
        "",
        f"### Proxy ceiling on a static upstream ({THROUGHPUT_CONNECTIONS} connections)",
        "",
        *throughput_table(capacity, "static upstream direct"),
        "",
        f"Sidecar: {capacity['sidecar → static'].rps / capacity['nginx → static'].rps:.0%} of nginx's "
        "requests/s when the upstream is not the bottleneck (one Python process vs one nginx worker).",
        "",
        f"### Shadow's effect on the primary (open loop, {SHADOW_RATE} requests/s, "
        f"{ROUNDS} rounds of {SHADOW_SECONDS} s)",
        "",
        "| sidecar | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|",
        f"| no shadow | {ms(without_shadow.p50_ms)} | {ms(without_shadow.p99_ms)} "
        f"| {without_shadow.errors} |",
        f"| 100% shadow to a second BentoML | {ms(with_shadow.p50_ms)} | {ms(with_shadow.p99_ms)} "
        f"| {with_shadow.errors} |",
        "",
        f"Primary p99 with shadow / without: {with_shadow.p99_ms / without_shadow.p99_ms:.2f} "
        "(the shadow model runs on the same CPUs here; in a cluster it runs in its own pods). Copies: "
        + ", ".join(f"{k} {v:.0f}" for k, v in copies.items())
        + ".",
    ]
    late = without_shadow.late_starts + with_shadow.late_starts + sum(r.late_starts for r in latency.values())
    if late:
        lines.append(f"The load generator started {late} requests more than 5 ms late (machine busy).")
    return "\n".join(lines)
