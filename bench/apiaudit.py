"""Who asked the API server what: its audit log, read back per client and time window.

kube-apiserver's own `apiserver_request_total` has no label for the client, so the scale
benchmark turns on the audit log (level Metadata: verb, resource, user agent, timestamps; no
bodies) and counts the requests of one client by user agent. The operator's two HTTP clients
identify themselves as `kopf/<version>` (watches, finalizers, kopf's bookkeeping) and
`OpenAPI-Generator/<version>/python` (the `kubernetes` client behind modeldeploy's Kube façade);
the benchmark's own client sets BENCH_USER_AGENT so it is not counted. Node leases (KWOK's
heartbeats) are not logged at all. Watches are logged once, when they end.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

OPERATOR_AGENTS = ("kopf/", "OpenAPI-Generator/")
BENCH_USER_AGENT = "modeldeploy-bench"

POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {"level": "None", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "Metadata"},
    ],
}


def apiserver_args(workdir: Path) -> tuple[str, ...]:
    """kube-apiserver flags writing the audit log to `workdir/audit.log` (see `AuditLog`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    policy = workdir / "audit-policy.json"
    policy.write_text(json.dumps(POLICY))
    return (
        f"--audit-policy-file={policy}",
        f"--audit-log-path={workdir / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-maxsize=0",
    )


@dataclass(frozen=True)
class Request:
    at: float  # POSIX seconds (stageTimestamp: when the response completed)
    verb: str
    resource: str  # "deployments", "modeldeployments/status", ...
    agent: str


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class AuditLog:
    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "audit.log"

    def requests(self, agents: Sequence[str] = OPERATOR_AGENTS) -> Iterator[Request]:
        """Completed requests whose user agent starts with one of `agents`."""
        with self.path.open(encoding="utf-8") as log:
            for line in log:
                event = json.loads(line)
                agent = event.get("userAgent", "")
                if not agent.startswith(tuple(agents)) or event.get("stage") != "ResponseComplete":
                    continue
                ref = event.get("objectRef") or {}
                resource = ref.get("resource", event.get("requestURI", "?"))
                if ref.get("subresource"):
                    resource += "/" + ref["subresource"]
                yield Request(_timestamp(event["stageTimestamp"]), event["verb"], resource, agent)


@dataclass(frozen=True)
class Window:
    name: str
    start: float  # POSIX seconds
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class WindowCounts:
    window: Window
    total: int
    by_call: Counter[str]  # "patch deployments" -> count

    @property
    def per_second(self) -> float:
        return self.total / self.window.seconds if self.window.seconds > 0 else 0.0

    def top(self, n: int) -> str:
        seconds = self.window.seconds
        return ", ".join(f"{call} {count / seconds:.1f}/s" for call, count in self.by_call.most_common(n))


def count_by_window(log: AuditLog, windows: Sequence[Window]) -> dict[str, WindowCounts]:
    """Operator requests per window (a request counts in every window its completion falls in)."""
    calls: dict[str, Counter[str]] = {w.name: Counter() for w in windows}
    for request in log.requests():
        for window in windows:
            if window.start <= request.at < window.end:
                calls[window.name][f"{request.verb} {request.resource}"] += 1
    return {w.name: WindowCounts(w, sum(calls[w.name].values()), calls[w.name]) for w in windows}
