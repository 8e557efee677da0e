"""Load with wrk (one wrk thread, keep-alive connections, POST of a JSON body).

wrk keeps `connections` requests in flight and sends the next as soon as one is answered, so its
requests/s is the ceiling of what it talks to. With a pause (`write_script(..., pause_ms=)`), each
connection waits that long after every answer before it sends again: `connections` connections
then offer about connections * 1000 / (pause_ms + latency ms) requests/s, a steady rate that costs
the load generator little CPU (the Python open-loop generator cannot hold 1,000 requests/s on a
busy 2-CPU machine). A run's summary comes from a Lua `done` hook as one JSON line.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = """
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


@dataclass(frozen=True)
class WrkResult:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    rps: float
    requests: int
    errors: int


PAUSE = """
delay = function()
  return %d
end
"""


def write_script(path: Path, body: object, pause_ms: int | None = None) -> Path:
    """The wrk Lua script POSTing `body` (JSON) and printing the RESULT line; with `pause_ms`, each
    connection pauses that long after every answer."""
    script = SCRIPT % {"body": json.dumps(body)}
    if pause_ms is not None:
        script += PAUSE % pause_ms
    path.write_text(script)
    return path


def wrk(url: str, script: Path, connections: int, seconds: float) -> WrkResult:
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
        requests=raw["requests"],
        errors=raw["non2xx"] + raw["socket_errors"],
    )


def median_result(results: list[WrkResult]) -> WrkResult:
    return WrkResult(
        p50_ms=statistics.median(r.p50_ms for r in results),
        p90_ms=statistics.median(r.p90_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        rps=statistics.median(r.rps for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
    )
