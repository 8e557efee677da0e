"""Time from a breach to the traffic cut and to status RolledBack, end to end, for each analysis method.

On the local cluster's real node (tests/support/real_env.py): the operator installed by the chart
from its image, model Pods of the iris (BentoML) and sidecar images run by the kubelet, Prometheus
(5 s scrape interval) discovering them with `kubernetes_sd_configs`, load to the entry Service's
ClusterIP through kube-proxy; analysis every 5 s with failureLimit 2. For each `analysis.method`
one ModelDeployment becomes stable, then a bad revision (30% of requests fail, at random) is rolled
out under steady traffic, several times (each run a new revision: its spec differs by BENCH_RUN).
The breach starts when the routing table sends the bad revision traffic and one of its Pods is
Ready. The traffic cut is the routing ConfigMap no longer naming it. Each run also says what rolled
it back: a conclusive sequential test (the RolledBack condition says "no failureLimit wait") or
`failureLimit` failed runs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tests.cluster.localcluster import running_cluster
from tests.support.e2e_scenarios import deploy_stable, new_revision_spec, watch_rollback
from tests.support.load import LoadGenerator
from tests.support.real_env import RealNodeEnv

TITLE = "Breach to rollback (end to end)"
RUNS = 3
SCRAPE = "5s"
ANALYSIS = {
    "interval": "5s",
    "failureLimit": 2,
    "minRequests": 20,
    "slo": {"latencyP99": "500ms", "errorRate": 0.05},
}
METHODS = ("fixed", "sequential")
STEPS = [{"canary": {"weight": 30, "duration": "60s"}}, {"canary": {"weight": 60, "duration": "60s"}}]


@dataclass(frozen=True)
class Run:
    method: str
    cut: float
    rolled_back: float
    by: str


def served_more_than(load: LoadGenerator, revision: str, count: int) -> bool:
    return load.by_revision().get(revision, 0) > count


def rolling_out(env: RealNodeEnv, name: str) -> bool:
    """The operator has seen the latest spec and is rolling it out (not the previous RolledBack)."""
    status = env.status(name)
    generation = env.get(name)["metadata"]["generation"]
    return status.get("observedGeneration") == generation and status.get("phase") == "Progressing"


def rolled_back_by(env: RealNodeEnv, name: str) -> str:
    condition = next(c for c in env.status(name).get("conditions", []) if c["type"] == "RolledBack")
    if "no failureLimit wait" in condition.get("message", ""):
        return "conclusive sequential test"
    return "failureLimit"


def run(workdir: Path) -> str:
    rows: list[Run] = []
    asked = time.monotonic()
    with running_cluster(node="real") as cluster:
        cluster_up = time.monotonic() - asked
        node_up = cluster.real_node.started_in if cluster.real_node else 0.0
        env = RealNodeEnv(cluster, workdir / "e2e", scrape_interval=SCRAPE, min_window_seconds=10).start()
        try:
            for method in METHODS:
                name = f"bench-{method[:3]}"
                analysis = {**ANALYSIS, "method": method}
                stable = deploy_stable(env, name, steps=STEPS, analysis=analysis)
                for i in range(RUNS):
                    load = env.start_load(name, rate=20)
                    env.wait(partial(served_more_than, load, stable, 20), 30, "stable traffic")
                    bad = new_revision_spec(
                        env, name, variant="b", env={"IRIS_FAIL_RATE": "0.3", "BENCH_RUN": str(i)}
                    )
                    env.patch_spec(name, bad)
                    # the previous run's RolledBack must not be taken for this run's
                    env.wait(partial(rolling_out, env, name), 30, f"{name} to start run {i + 1}")
                    marks = watch_rollback(env, name, stable, timeout=300)
                    load.stop()
                    row = Run(
                        method,
                        marks["traffic_cut"] - marks["breach_start"],
                        marks["rolled_back"] - marks["breach_start"],
                        rolled_back_by(env, name),
                    )
                    rows.append(row)
                    print(f"bench: rollback {row}", flush=True)
                # its Pods would only load the 2-core machine during the next method's runs
                env.cluster.kubectl("delete", "modeldeployment", name, "-n", env.namespace, "--wait=false")
        finally:
            env.stop()
    table = [
        "| method | run | breach → traffic cut (s) | breach → status RolledBack (s) | rolled back by |",
        "|---|---:|---:|---:|---|",
    ]
    for method in METHODS:
        mine = [r for r in rows if r.method == method]
        table += [
            f"| {method} | {i + 1} | {r.cut:.1f} | {r.rolled_back:.1f} | {r.by} |" for i, r in enumerate(mine)
        ]
        table.append(
            f"| {method} | median | {statistics.median(r.cut for r in mine):.1f} "
            f"| {statistics.median(r.rolled_back for r in mine):.1f} | |"
        )
    lines = [
        "Setup: real Pods on the local cluster's real node (operator from the chart's image, iris and "
        "sidecar images, load to the entry Service's ClusterIP through kube-proxy); "
        f"Prometheus scrape interval {SCRAPE}, analysis interval {ANALYSIS['interval']}, "
        f"failureLimit {ANALYSIS['failureLimit']}, PromQL window 10 s, 20 requests/s into the entry Service, "
        "canary weight 30%, bad revision failing 30% of requests (at random), "
        f"{RUNS} runs per `analysis.method` (one stable revision, a new bad revision each run).",
        "",
        f"The run time includes {cluster_up:.0f} s to get the cluster (waiting for another session's real "
        f"node on this machine to stop, then starting it: the node was Ready in {node_up:.0f} s).",
        "",
        *table,
        "",
        "The routing table (traffic cut) and the status are written by the same reconcile, routing first, "
        "so the two times differ only by the API calls in between. Expected bound with `fixed`: up to one "
        "scrape interval before the errors are visible, then `failureLimit` analysis intervals. With "
        "`sequential` the first analysis whose counts since the rollout began are conclusive rolls back; "
        "when the sidecars' fast guard trips first (about one rollout in four at 30% random errors) it "
        "starves the canary before that, and `guardTripped` failing `failureLimit` runs rolls back as "
        "with `fixed`.",
    ]
    return "\n".join(lines)
