"""Time from a breach to the traffic cut and to status RolledBack, end to end.

Real control plane, operator, Prometheus (5 s scrape interval), sidecars and BentoML iris
servers; analysis every 5 s with failureLimit 2. A bad revision (30% of requests fail) is rolled
out under steady traffic, several times; the breach starts when the routing table sends it
traffic and one of its pods serves. The traffic cut is the routing ConfigMap no longer naming it.
"""

from __future__ import annotations

import statistics
from functools import partial
from pathlib import Path

from tests.cluster.localcluster import running_cluster
from tests.support.e2e_env import E2EEnv, LoadGenerator, modeldeployment
from tests.support.e2e_scenarios import deploy_stable, watch_rollback

TITLE = "Breach to rollback (end to end)"
RUNS = 3
SCRAPE = "5s"
ANALYSIS = {
    "interval": "5s",
    "failureLimit": 2,
    "minRequests": 20,
    "slo": {"latencyP99": "500ms", "errorRate": 0.05},
}
STEPS = [{"canary": {"weight": 30, "duration": "60s"}}, {"canary": {"weight": 60, "duration": "60s"}}]


def served_more_than(load: LoadGenerator, revision: str, count: int) -> bool:
    return load.by_revision().get(revision, 0) > count


def run(workdir: Path) -> str:
    rows: list[tuple[float, float]] = []
    with running_cluster() as cluster:
        env = E2EEnv(cluster, workdir / "e2e", scrape_interval=SCRAPE, min_window_seconds=10).start()
        try:
            assert env.prometheus is not None
            for i in range(RUNS):
                name = f"bench-{i}"
                stable = deploy_stable(env, name, steps=STEPS, analysis=ANALYSIS)
                load = env.start_load(name, rate=20)
                env.wait(partial(served_more_than, load, stable, 20), 30, "stable traffic")
                bad = modeldeployment(name, env.prometheus.url, variant="b", env={"IRIS_FAIL_RATE": "0.3"})
                env.patch_spec(name, {"model": bad["spec"]["model"]})
                marks = watch_rollback(env, name, stable, timeout=180)
                load.stop()
                rows.append(
                    (
                        marks["traffic_cut"] - marks["breach_start"],
                        marks["rolled_back"] - marks["breach_start"],
                    )
                )
        finally:
            env.stop()
    cut = [r[0] for r in rows]
    done = [r[1] for r in rows]
    lines = [
        f"Setup: Prometheus scrape interval {SCRAPE}, analysis interval {ANALYSIS['interval']}, "
        f"failureLimit {ANALYSIS['failureLimit']}, PromQL window 10 s, 20 requests/s into the entry Service, "
        "canary weight 30%, bad revision failing 30% of requests.",
        "",
        "| run | breach → traffic cut (s) | breach → status RolledBack (s) |",
        "|---:|---:|---:|",
        *[f"| {i + 1} | {c:.1f} | {d:.1f} |" for i, (c, d) in enumerate(rows)],
        f"| median | {statistics.median(cut):.1f} | {statistics.median(done):.1f} |",
        "",
        "The routing table (traffic cut) and the status are written by the same reconcile, routing first, "
        "so the two times differ only by the API calls in between. Expected bound: up to one scrape interval "
        "before the errors are visible, then `failureLimit` analysis intervals.",
    ]
    return "\n".join(lines)
