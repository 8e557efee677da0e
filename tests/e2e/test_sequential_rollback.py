"""End to end under analysis.method sequential, on the real node (real_env.py): a revision failing 30%
of requests is cut by the first conclusive sequential test, long before failureLimit (10 runs) would
allow.

The failures are spread evenly (IRIS_FAIL_SPREAD), not drawn at random: with random failures the
stable sidecar's fast guard (more than 50% of the last 20 forwarded requests, at least 5, failed)
trips in about one run in four before the canary has served the ~20-30 requests the sequential
test needs (3 failures in the first 5 requests are enough). The tripped guard latches and starves
the canary, its counts stop short of `minRequests`, the sequential test stays inconclusive, and the
revision is rolled back by `guardTripped` failing `failureLimit` runs in a row instead: the
failureLimit rollback this test must tell apart. Spread evenly, no prefix and no window of the
guard ever holds more than 30% + one failure, so the guard cannot trip and the rollback can only
come from the sequential test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.support.e2e_scenarios import deploy_stable, new_revision_spec, watch_rollback
from tests.support.real_env import RealNodeEnv

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

FAILURE_LIMIT = 10


@pytest.fixture(scope="module")
def env(real_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeEnv]:
    e2e = RealNodeEnv(real_cluster, tmp_path_factory.mktemp("e2e-sequential")).start()
    try:
        yield e2e
    finally:
        e2e.stop()


def test_a_conclusive_sequential_failure_rolls_back_without_waiting_for_failure_limit(
    env: RealNodeEnv,
) -> None:
    name = "seq-errors"
    analysis = {
        "method": "sequential",
        "interval": "2s",
        "failureLimit": FAILURE_LIMIT,
        "minRequests": 20,
        "slo": {"errorRate": 0.05},
    }
    steps = [{"canary": {"weight": 30, "duration": "60s"}}, {"canary": {"weight": 60, "duration": "60s"}}]
    stable = deploy_stable(env, name, analysis=analysis, steps=steps)
    load = env.start_load(name)
    env.wait(lambda: load.by_revision().get(stable, 0) > 10, 30, "traffic served by stable")
    failing = {"IRIS_FAIL_RATE": "0.3", "IRIS_FAIL_SPREAD": "1"}
    env.patch_spec(name, new_revision_spec(env, name, variant="b", env=failing))
    marks = watch_rollback(env, name, stable, timeout=120)
    load.stop()

    status = env.status(name)
    assert status["stableRevision"] == stable and status.get("abortedRevision") not in (None, stable)
    assert status["analysis"]["consecutiveFailures"] < FAILURE_LIMIT, status["analysis"]
    proved = [r for r in status["analysis"]["results"] if r["verdict"] == "Fail" and r.get("conclusive")]
    assert [r["metric"] for r in proved] == ["errorRate"], status["analysis"]["results"]
    guard = next(r for r in status["analysis"]["results"] if r["metric"] == "guardTripped")
    assert guard["verdict"] == "Pass", guard  # the guard kept forwarding: the canary's counts grew
    assert "since the rollout began" in proved[0]["message"] and "conclusive (e=" in proved[0]["message"]
    rolled_back = next(c for c in status["conditions"] if c["type"] == "RolledBack")
    assert "no failureLimit wait" in rolled_back["message"], rolled_back["message"]
    warnings = [
        m
        for type_, reason, m in env.events_with(name, "RolledBack")
        if type_ == "Warning" and reason == "RolledBack"
    ]
    assert any("conclusive (e=" in m and "95% sequence" in m for m in warnings), warnings
    # 10 failed runs 2 s apart would take at least 18 s after the first one
    assert marks["traffic_cut"] - marks["breach_start"] < 2 * (FAILURE_LIMIT - 1), marks
