"""End to end: the golden-request gate (`spec.guardrails.goldenRequests`) in the real environment.

The golden responses are recorded from the stable revision itself (what a team does before a
release: replay known requests against production and keep the answers). Class probabilities of
the iris model with variant "b" differ from variant "a" by ~1e-2, far above the tolerance 1e-6, so
revision b fails the gate and must be rolled back before it gets any traffic — no shadow copy, no
canary share. A revision that answers the same (variant "a" with another env value, so another
revision hash) passes the gate and is promoted.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.support.e2e_scenarios import deploy_stable, new_revision_spec
from tests.support.real_env import RealNodeEnv

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

ROWS = {"setosa": [5.1, 3.5, 1.4, 0.2], "versicolor": [6.0, 2.9, 4.5, 1.5], "virginica": [6.7, 3.0, 5.2, 2.3]}
ANALYSIS = {"interval": "2s", "failureLimit": 2, "minRequests": 20, "slo": {"errorRate": 0.05}}
STEPS = [{"shadow": {"percent": 100, "duration": "4s"}}, {"canary": {"weight": 50, "duration": "4s"}}]


@pytest.fixture(scope="module")
def env(real_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeEnv]:
    e2e = RealNodeEnv(real_cluster, tmp_path_factory.mktemp("e2e-golden")).start()
    try:
        yield e2e
    finally:
        e2e.stop()


def post(url: str, body: Any) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to the ClusterIP
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


def golden_from(env: RealNodeEnv, name: str) -> list[dict[str, Any]]:
    """Golden requests with the answers the stable revision gives now."""
    env.wait_routed(name)
    url = env.service_url(name, "/predict_proba")
    golden = []
    for label, row in ROWS.items():
        body = {"features": [row]}
        golden.append(
            {
                "name": f"proba-{label}",
                "path": "/predict_proba",
                "body": body,
                "expect": {"status": 200, "body": post(url, body)},
            }
        )
    return golden


def test_a_revision_with_different_answers_never_gets_traffic(env: RealNodeEnv) -> None:
    name = "golden"
    stable = deploy_stable(env, name, steps=STEPS, analysis=ANALYSIS)
    golden: dict[str, Any] = {"requests": golden_from(env, name), "tolerance": 1e-6, "timeout": "5s"}
    assert golden["requests"][0]["expect"]["body"][0][0] > 0.9  # setosa is setosa
    env.patch_spec(name, {"guardrails": {"goldenRequests": golden}})
    load = env.start_load(name, rate=10)
    env.wait(lambda: load.by_revision().get(stable, 0) > 10, 30, "traffic served by stable")

    # 1. variant b answers with other probabilities: rolled back at the gate
    env.patch_spec(name, new_revision_spec(env, name, variant="b"))
    routed: set[str] = set()

    def rolled_back() -> dict[str, Any] | None:
        table = env.routing(name)
        routed.update(table[k]["revision"] for k in ("canary", "shadow") if table.get(k))
        status = env.status(name)
        return status if status.get("phase") == "RolledBack" else None

    status = env.wait(rolled_back, 90, "the revision with different answers to be rolled back")
    bad = status["abortedRevision"]
    assert bad and bad != stable and status["stableRevision"] == stable
    assert routed == set(), f"the routing table sent {routed} traffic before the gate"
    assert load.by_revision().get(bad, 0) == 0
    check = status["guardrails"]["golden"]
    assert (check["revision"], check["result"], check["failedRequest"]) == (bad, "Failed", "proba-setosa")
    assert "tolerance 1e-06" in check["message"], check["message"]
    rolled = next(c for c in status["conditions"] if c["type"] == "RolledBack")
    assert rolled["reason"] == "GoldenRequestFailed"
    warnings = [m for type_, reason, m in env.events_with(name, "RolledBack") if reason == "RolledBack"]
    assert any("golden request proba-setosa failed before any traffic" in m for m in warnings), warnings

    # 2. the same answers from a new revision: the gate passes and the rollout goes on to promotion
    env.patch_spec(name, new_revision_spec(env, name, variant="a", env={"IRIS_LATENCY_MS": "1"}))

    def promoted() -> dict[str, Any] | None:
        status = env.status(name)
        done = status.get("phase") == "Succeeded" and status.get("stableRevision") not in (stable, bad)
        return status if done else None

    status = env.wait(promoted, 120, "the revision with the same answers to be promoted")
    good = status["stableRevision"]
    check = status["guardrails"]["golden"]
    assert (check["revision"], check["result"], check["requests"]) == (good, "Passed", 3)
    assert any(reason == "GoldenRequestsPassed" for _, reason, _ in env.events(name))
    assert load.by_revision().get(good, 0) > 0
    load.stop()
    assert [s.status for s in load.samples if s.status != 200] == [], "clients saw errors"
