"""End to end on the real node: the operator installed by the chart, model Pods of the iris and
sidecar images, Prometheus discovering them through the API, load through kube-proxy (real_env.py).

Scenarios (issue 6): a good revision is promoted through shadow and canary steps; a revision
failing 30% of requests is rolled back; a revision whose p99 is several times stable's is rolled
back; too little traffic is inconclusive (never promoted); Prometheus stopped mid-rollout
blocks promotion and says why. Breach -> traffic cut -> RolledBack times are recorded in
`.cache/e2e-timings.json` (and by `make bench` in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.cluster.localcluster import CACHE
from tests.support.e2e_scenarios import deploy_stable, new_revision_spec, watch_rollback
from tests.support.real_env import RealNodeEnv

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

TIMINGS = CACHE / "e2e-timings.json"


def record_timing(scenario: str, marks: dict[str, float]) -> dict[str, float]:
    figures = {
        "breach_to_traffic_cut_s": round(marks["traffic_cut"] - marks["breach_start"], 2),
        "breach_to_rolled_back_s": round(marks["rolled_back"] - marks["breach_start"], 2),
    }
    data = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    data[scenario] = figures
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS.write_text(json.dumps(data, indent=2))
    return figures


def test_good_revision_walks_shadow_and_canary_and_is_promoted(env: RealNodeEnv) -> None:
    stable = deploy_stable(env, "good")
    load = env.start_load("good")
    env.wait(lambda: load.by_revision().get(stable, 0) > 10, 30, "traffic served by stable")
    started = time.time()
    env.patch_spec("good", new_revision_spec(env, "good", variant="b"))
    status = env.wait(
        lambda: (
            (s := env.status("good")).get("phase") == "Succeeded" and s.get("stableRevision") != stable and s
        ),
        150,
        "the good revision to be promoted",
    )
    new = status["stableRevision"]
    load.stop()
    samples = load.since(started)
    served = {s.revision for s in samples if s.status == 200}
    assert new in served, "live traffic reached the new revision during the canary steps"
    assert not [s for s in samples if s.status >= 500 or s.status == 0], "no client saw an error"
    history = [(h["revision"], h["outcome"]) for h in status["history"]]
    assert (new, "Promoted") in history
    reasons = [reason for _, reason, _ in env.events_with("good", "Promoted")]
    assert "Promoted" in reasons, reasons
    assert (
        env.core.read_namespaced_service("good", env.namespace).spec.selector["modeldeploy.io/revision"]
        == new
    )


@pytest.mark.parametrize(
    ("scenario", "bad_env", "expect"),
    [
        ("errors-30pct", {"IRIS_FAIL_RATE": "0.3"}, "error"),
        ("p99-5x", {"IRIS_LATENCY_MS": "150"}, "latency"),
    ],
)
def test_bad_revision_is_rolled_back(
    env: RealNodeEnv, scenario: str, bad_env: dict[str, str], expect: str
) -> None:
    name = f"bad-{scenario}"
    # Stable answers in ~20 ms; the p99 limit of 100 ms is then met by stable and broken by a
    # revision 5x+ slower (150 ms), judged by exact tests on the slow-request counts.
    analysis = {
        "interval": "2s",
        "failureLimit": 2,
        "minRequests": 20,
        "slo": {"latencyP99": "100ms", "errorRate": 0.05},
    }
    stable = deploy_stable(env, name, env={"IRIS_LATENCY_MS": "20"}, analysis=analysis)
    load = env.start_load(name)
    env.wait(lambda: load.by_revision().get(stable, 0) > 10, 30, "traffic served by stable")
    env.patch_spec(name, new_revision_spec(env, name, variant="b", env={"IRIS_LATENCY_MS": "20", **bad_env}))
    marks = watch_rollback(env, name, stable, timeout=150)
    load.stop()
    figures = record_timing(scenario, marks)

    status = env.status(name)
    assert status["stableRevision"] == stable
    bad = status.get("abortedRevision")
    assert bad and bad != stable
    assert status["traffic"]["canaryWeight"] == 0 and status["traffic"]["shadowPercent"] == 0
    rolled_back = next(c for c in status["conditions"] if c["type"] == "RolledBack")
    assert rolled_back["status"] == "True"
    assert expect in rolled_back["message"].lower(), rolled_back["message"]
    warnings = [
        (reason, message)
        for type_, reason, message in env.events_with(name, "RolledBack")
        if type_ == "Warning"
    ]
    assert any(expect in message.lower() for _, message in warnings), warnings
    failed = [r for r in status["analysis"]["results"] if r["verdict"] == "Fail"]
    assert failed and all(r.get("value") is not None and r.get("query") for r in failed), failed
    assert [(h["revision"], h["outcome"]) for h in status["history"]][-1] == (bad, "RolledBack")
    assert figures["breach_to_traffic_cut_s"] <= figures["breach_to_rolled_back_s"]
    # The bad revision is not retried while the spec stays the same.
    time.sleep(3)
    assert env.status(name).get("phase") == "RolledBack"
    assert not (env.routing(name).get("canary") or {}).get("weight")


def test_too_little_traffic_is_inconclusive_and_never_promotes(env: RealNodeEnv) -> None:
    stable = deploy_stable(env, "quiet")
    load = env.start_load("quiet", rate=1.0)
    env.patch_spec("quiet", new_revision_spec(env, "quiet", variant="b"))
    status = env.wait(
        lambda: (s := env.status("quiet")).get("analysis", {}).get("consecutiveInconclusive", 0) >= 2 and s,
        90,
        "two inconclusive analysis runs",
    )
    load.stop()
    assert status["stableRevision"] == stable, "an inconclusive analysis never promotes"
    results = status["analysis"]["results"]
    assert results and all(r["verdict"] == "Inconclusive" for r in results if r["metric"] == "errorRate")
    assert any("request" in r["message"].lower() for r in results), results


def test_prometheus_stopped_mid_rollout_blocks_promotion(env: RealNodeEnv) -> None:
    stable = deploy_stable(env, "blind")
    load = env.start_load("blind")
    env.patch_spec("blind", new_revision_spec(env, "blind", variant="b"))
    env.wait(lambda: env.status("blind").get("canaryRevision"), 30, "the rollout to start")
    assert env.prometheus is not None
    env.prometheus.stop()
    status = env.wait(
        lambda: (s := env.status("blind")).get("analysis", {}).get("consecutiveInconclusive", 0) >= 2 and s,
        90,
        "inconclusive runs while Prometheus is down",
    )
    time.sleep(30)  # longer than all steps together: it still must not promote
    load.stop()
    status = env.status("blind")
    assert status["stableRevision"] == stable
    assert status["phase"] in ("Progressing", "Paused", "Failed")
    messages = " ".join(r["message"] for r in status["analysis"]["results"]) + status.get("message", "")
    assert "unreachable" in messages.lower(), messages
