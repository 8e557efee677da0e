"""`make demo`: modeldeploy end to end on this machine, narrated.

Starts the local Kubernetes control plane (built from upstream sources), Prometheus, the
modeldeploy operator and, for every Pod the operator creates, a real BentoML iris server with a
modeldeploy sidecar. Then, under steady traffic:

  1. iris v1 becomes stable;
  2. v2 (a slightly different model) goes through shadow and canary steps and is promoted;
  3. v3 (fails 30% of requests) is caught by the SLO analysis and rolled back by itself.

Exits 0 when v2 was promoted and v3 rolled back.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.cluster.localcluster import running_cluster
from tests.support.e2e_env import E2EEnv, LoadGenerator, modeldeployment
from tests.support.e2e_scenarios import deploy_stable

NAME = "iris"
STEPS = [
    {"shadow": {"percent": 100, "duration": "10s"}},
    {"canary": {"weight": 20, "duration": "10s"}},
    {"canary": {"weight": 50, "duration": "10s"}},
]
ANALYSIS = {
    "interval": "3s",
    "failureLimit": 2,
    "minRequests": 20,
    "slo": {"latencyP99": "500ms", "errorRate": 0.05},
}


def say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def bar(percent: float, width: int = 20) -> str:
    filled = round(width * percent / 100)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def live_line(env: E2EEnv, load: LoadGenerator, started: float) -> str:
    status = env.status(NAME)
    traffic = status.get("traffic") or {}
    results = (status.get("analysis") or {}).get("results") or []
    verdicts = ", ".join(f"{r['metric']}={r['verdict']}" for r in results[:4]) or "-"
    recent = load.since(time.time() - 2)
    by_rev: dict[str, int] = {}
    for sample in recent:
        by_rev[sample.revision[:6] or "none"] = by_rev.get(sample.revision[:6] or "none", 0) + 1
    errors = sum(1 for s in recent if s.status >= 500 or s.status == 0)
    step = status.get("currentStep")
    step_text = "-" if step is None else str(step)
    return (
        f"t+{time.monotonic() - started:5.1f}s {status.get('phase', '?'):<11} step={step_text} "
        f"canary {bar(float(traffic.get('canaryWeight') or 0))} {traffic.get('canaryWeight', 0):>3}% "
        f"shadow {traffic.get('shadowPercent', 0):>3}% | served(2s) {by_rev} 5xx={errors} | {verdicts}"
    )


def roll_out(
    env: E2EEnv, load: LoadGenerator, model: dict[str, Any], stable: str, timeout: float
) -> dict[str, Any]:
    env.patch_spec(NAME, {"model": model})
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        status = env.status(NAME)
        print("  " + live_line(env, load, started), flush=True)
        if (
            status.get("phase") in ("Succeeded", "RolledBack", "Failed")
            and status.get("observedGeneration") == env.get(NAME)["metadata"]["generation"]
            and (status.get("stableRevision") != stable or status.get("phase") != "Succeeded")
        ):
            return status
        time.sleep(1)
    raise SystemExit(f"demo: the rollout did not finish in {timeout:.0f}s; status: {env.status(NAME)}")


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="modeldeploy-demo-"))
    say("starting the local control plane (kube-apiserver, controller-manager, scheduler, etcd, KWOK)")
    with running_cluster() as cluster:
        env = E2EEnv(cluster, workdir, namespace="demo", scrape_interval="1s", min_window_seconds=6).start()
        try:
            assert env.prometheus is not None
            prom = env.prometheus.url
            print(f"    API server {cluster.server}, Prometheus {prom}, logs in {workdir}")
            say("iris v1: first revision goes straight to stable")
            v1 = deploy_stable(env, NAME, steps=STEPS, analysis=ANALYSIS)
            print(f"    stable revision {v1}")
            load = env.start_load(NAME, rate=20)
            time.sleep(3)

            say("iris v2 (another regularisation): shadow -> canary 20% -> canary 50% -> promote")
            v2_model = modeldeployment(NAME, prom, variant="b")["spec"]["model"]
            status = roll_out(env, load, v2_model, v1, timeout=180)
            v2 = status.get("stableRevision")
            promoted = status.get("phase") == "Succeeded" and v2 != v1
            print(f"    -> {status.get('phase')}: stable is now {v2}")

            say("iris v3 (fails 30% of requests): must be rolled back automatically")
            v3_model = modeldeployment(NAME, prom, variant="c", env={"IRIS_FAIL_RATE": "0.3"})["spec"][
                "model"
            ]
            before = time.time()
            status = roll_out(env, load, v3_model, str(v2), timeout=180)
            rolled_back = status.get("phase") == "RolledBack" and status.get("stableRevision") == v2
            load.stop()

            say("summary")
            condition: dict[str, Any] = next(
                (c for c in status.get("conditions", []) if c["type"] == "RolledBack"), {}
            )
            client_errors = sum(1 for s in load.since(before) if s.status >= 500 or s.status == 0)
            total = len(load.since(before))
            print(f"    v2 promoted: {promoted}  (stable {v2})")
            print(f"    v3 rolled back: {rolled_back}  (revision {status.get('abortedRevision')})")
            print(f"    why: {condition.get('message', status.get('rollbackReason'))}")
            print(
                f"    clients during v3: {client_errors} errors in {total} requests (canary share, guard on)"
            )
            print("    history:")
            for entry in status.get("history", []):
                reason = entry.get("reason", "")[:60]
                print(f"      {entry['at']}  {entry['revision']}  {entry['outcome']:<10} {reason}")
            print("    events:")
            for type_, reason, message in env.events(NAME)[-8:]:
                print(f"      {type_:<7} {reason:<14} {message[:110]}")
            ok = promoted and rolled_back
            print(
                f"\ndemo {'OK' if ok else 'FAILED'}: canary promoted, bad revision rolled back"
                if ok
                else "\ndemo FAILED"
            )
            return 0 if ok else 1
        finally:
            env.stop()


if __name__ == "__main__":
    sys.exit(main())
