"""End to end: the input drift gate (`spec.guardrails.drift.maxInputPSI`) on the real node (real_env.py).

How the canary gets different inputs than stable: the sticky header. The ModelDeployment sets
`spec.traffic.stickyHeader: x-modeldeploy-key`, and the load comes from two client segments, each
a set of client keys:

- "early adopters": keys whose sticky point (`tests.support.sticky_split.sticky_point`) is below
  25%, so the stable sidecars forward all of their requests to the canary at the 30% step;
- "everyone else": keys at or above 65%, which stable keeps serving (also at weights up to 65%).

This is how drift between canary and stable arises in practice: a segment pinned to the new
revision (a client release, a region, a tenant) sends a different input population, e.g. features
computed by a changed pipeline. Here the early adopters' sepal lengths are first 1 cm larger than
the iris data (revision b: rolled back), then the same as everyone else's (revision c: promoted);
every other feature keeps its distribution throughout. Sending a segment straight to the canary revision's
Service would bypass the routing under test, so the test does not do that.

Each request carries 5 rows drawn from the iris data set; the drift features are sepal-length
(`/features/*/0`) and petal-length (`/features/*/2`), so each revision observes ~200 values per
feature in a 4 s window: enough that sampling noise stays far below maxInputPSI (0.25).
"""

from __future__ import annotations

import random
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris

from tests.cluster.localcluster import LocalCluster
from tests.support.e2e_scenarios import deploy_stable, new_revision_spec
from tests.support.real_env import RealNodeEnv
from tests.support.sticky_split import sticky_point

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

STICKY = "x-modeldeploy-key"
MAX_PSI = 0.25
ROWS_PER_REQUEST = 5
SHIFT_CM = 1.0
IRIS_ROWS: list[list[float]] = [[float(x) for x in row] for row in load_iris().data]

DRIFT: dict[str, Any] = {
    "features": [
        {"name": "sepal-length", "path": "/features/*/0", "buckets": [5.0, 5.5, 6.0, 6.5, 7.0]},
        {"name": "petal-length", "path": "/features/*/2", "buckets": [1.5, 3.0, 4.5, 5.5]},
    ],
    "maxInputPSI": MAX_PSI,
}
ANALYSIS = {
    "interval": "2s",
    "failureLimit": 2,
    "minRequests": 20,
    "slo": {"latencyP99": "500ms", "errorRate": 0.05},
}
STEPS = [{"canary": {"weight": 30, "duration": "8s"}}]


def client_keys(low: float, high: float, count: int = 20) -> list[str]:
    """`count` client keys whose sticky points lie in [low, high)."""
    keys = (f"client-{i}" for i in range(100_000))
    chosen = [key for key in keys if low <= sticky_point(key) < high]
    return chosen[:count]


EARLY_ADOPTERS = client_keys(0.0, 0.25)  # on the canary at weight 30
EVERYONE_ELSE = client_keys(0.65, 1.0)  # on stable


def segment(keys: list[str], sepal_shift: float, seed: int) -> Callable[[int], tuple[Any, dict[str, str]]]:
    """Requests of one client segment: a key of the segment, 5 iris rows (sepal length shifted)."""

    def request(number: int) -> tuple[Any, dict[str, str]]:
        rng = random.Random(seed * 1_000_003 + number)
        rows = [list(rng.choice(IRIS_ROWS)) for _ in range(ROWS_PER_REQUEST)]
        for row in rows:
            row[0] = round(row[0] + sepal_shift, 2)
        return {"features": rows}, {STICKY: keys[number % len(keys)]}

    return request


@pytest.fixture(scope="module")
def env(real_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeEnv]:
    e2e = RealNodeEnv(real_cluster, tmp_path_factory.mktemp("e2e-drift")).start()
    try:
        yield e2e
    finally:
        e2e.stop()


def psi_results(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    results = status.get("analysis", {}).get("results", [])
    return {r["metric"]: r for r in results if r["metric"].startswith("inputPSI/")}


def operator_gauge(env: RealNodeEnv, name: str, model: str, metric: str) -> float | None:
    """A sample of the operator's own /metrics, e.g. modeldeploy_analysis_value for one metric."""
    assert env.operator is not None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to the ClusterIP
    with opener.open(env.operator.metrics_url(), timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels.get("model") == model and s.labels.get("metric") == metric:
                return float(s.value)
    return None


def test_a_drifting_canary_is_rolled_back_and_an_undrifted_one_promoted(env: RealNodeEnv) -> None:
    """One ModelDeployment (pod start-up dominates the run time): revision b meets early adopters
    whose sepal lengths are shifted and is rolled back; then revision c meets the same segment
    with unshifted inputs and is promoted."""
    name = "drift"
    extra = {"traffic": {"stickyHeader": STICKY}, "guardrails": {"drift": DRIFT}}
    stable = deploy_stable(env, name, steps=STEPS, analysis=ANALYSIS, extra_spec=extra)
    # the sidecars learn the features from the routing table the operator renders from the spec
    features = env.routing(name)["dataPath"]["drift"]["features"]
    assert [(f["name"], f["path"], f["buckets"]) for f in features] == [
        (f["name"], f["path"], f["buckets"]) for f in DRIFT["features"]
    ]
    early = env.start_load(name, rate=10, request=segment(EARLY_ADOPTERS, SHIFT_CM, seed=1))
    rest = env.start_load(name, rate=12, request=segment(EVERYONE_ELSE, 0.0, seed=2))
    env.wait(lambda: rest.by_revision().get(stable, 0) > 10, 30, "traffic served by stable")

    # 1. shifted inputs on the canary: rolled back, and everything says which feature and how much
    env.patch_spec(name, new_revision_spec(env, name, variant="b"))
    seen: dict[str, dict[str, Any]] = {}

    def rolled_back() -> dict[str, Any] | None:
        status = env.status(name)
        seen.update(psi_results(status))
        return status if status.get("phase") == "RolledBack" else None

    status = env.wait(rolled_back, 90, "the drifting canary to be rolled back")
    bad = status.get("abortedRevision")
    assert status["stableRevision"] == stable and bad and bad != stable
    assert early.by_revision().get(bad, 0) > 0, "the early adopters' requests reached the canary"

    sepal = seen["inputPSI/sepal-length"]
    assert sepal["verdict"] == "Fail", sepal
    assert sepal["value"] > MAX_PSI and sepal["threshold"] == MAX_PSI
    assert (
        'feature="sepal-length"' in sepal["query"]
        and "modeldeploy_input_feature_value_bucket" in sepal["query"]
    )
    assert seen["inputPSI/petal-length"]["verdict"] != "Fail", "an unshifted feature does not fail"

    gauge = operator_gauge(env, "modeldeploy_analysis_threshold", name, "inputPSI/sepal-length")
    assert gauge == MAX_PSI, "the operator exports the PSI metric like the others"
    value = operator_gauge(env, "modeldeploy_analysis_value", name, "inputPSI/sepal-length")
    assert value is not None and value > MAX_PSI, value  # the run that rolled the canary back
    rolled = next(c for c in status["conditions"] if c["type"] == "RolledBack")
    assert "inputPSI/sepal-length" in rolled["message"], rolled["message"]
    warnings = [m for type_, _, m in env.events_with(name, "RolledBack") if type_ == "Warning"]
    assert any("inputPSI/sepal-length: PSI" in m for m in warnings), warnings
    assert [(h["revision"], h["outcome"]) for h in status["history"]][-1] == (bad, "RolledBack")

    # 2. the same segment without the shift: the next revision passes the gate and is promoted
    early.stop()
    early = env.start_load(name, rate=10, request=segment(EARLY_ADOPTERS, 0.0, seed=3))
    env.patch_spec(name, new_revision_spec(env, name, variant="c"))
    passed: dict[str, dict[str, Any]] = {}

    def promoted() -> dict[str, Any] | None:
        status = env.status(name)
        new = status.get("canaryRevision") or status.get("stableRevision")
        if new not in (stable, bad):
            passed.update((m, r) for m, r in psi_results(status).items() if r["verdict"] == "Pass")
        done = status.get("phase") == "Succeeded" and status.get("stableRevision") not in (stable, bad)
        return status if done else None

    status = env.wait(promoted, 90, "the canary with unshifted inputs to be promoted")
    good = status["stableRevision"]
    assert early.by_revision().get(good, 0) > 0, "the early adopters' requests reached the canary"
    assert (good, "Promoted") in [(h["revision"], h["outcome"]) for h in status["history"]]
    assert set(passed) == {"inputPSI/sepal-length", "inputPSI/petal-length"}, passed
