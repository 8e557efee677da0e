"""End to end on the real node (real_env.py): every query of the chart's Grafana dashboard returns
series from the real Prometheus (discovering the sidecar Pods and the chart's operator Pod through the
API, `kubernetes_sd_configs`, as a user's Prometheus does) over a real rollout: a revision walked
through shadow and canary and promoted, then a failing one rolled back. The template variables are
resolved as Grafana resolves them (their label_values queries against the same Prometheus)."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.support import grafana
from tests.support.e2e_scenarios import deploy_stable, new_revision_spec, prom_url, watch_rollback
from tests.support.load import IRIS_BODY
from tests.support.node_prometheus import OPERATOR_JOB
from tests.support.real_env import RealNodeEnv

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

NAME = "dash"
# Request bodies above 7.0 cm violate the contract; `observe` lets the model answer them anyway.
CONTRACT = {
    "policy": "observe",
    "schema": {
        "type": "object",
        "required": ["features"],
        "properties": {"features": {"type": "array", "items": {"type": "array", "items": {"maximum": 7.0}}}},
    },
}
VIOLATING_BODY = {"features": [[7.7, 3.0, 6.7, 2.2]]}
DRIFT = {
    "features": [{"name": "sepal-length", "path": "/features/*/0", "buckets": [5.0, 6.0, 7.0]}],
    "maxInputPSI": 0.25,
}
STEPS = [{"shadow": {"percent": 100, "duration": "6s"}}, {"canary": {"weight": 50, "duration": "6s"}}]
RATE_INTERVAL = "5s"
"""What Grafana puts for $__rate_interval with this Prometheus (1 s scrapes): several scrapes."""


@pytest.fixture(scope="module")
def env(real_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeEnv]:
    e2e = RealNodeEnv(real_cluster, tmp_path_factory.mktemp("e2e-grafana")).start()
    try:
        yield e2e
    finally:
        e2e.stop()


def request(number: int) -> tuple[Any, dict[str, str]]:
    """One request in five violates the contract."""
    return (VIOLATING_BODY if number % 5 == 0 else IRIS_BODY), {}


def prometheus(env: RealNodeEnv, path: str, params: dict[str, str] | list[tuple[str, str]]) -> Any:
    url = f"{prom_url(env)}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def variable_values(env: RealNodeEnv, definition: str) -> list[str]:
    """Grafana's label_values(metric{selector}, label), with the dashboard's variables substituted."""
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert match, definition
    selector, label = match.groups()
    values: list[str] = prometheus(env, f"/api/v1/label/{label}/values", [("match[]", selector)])
    return values


def finite_points(series: list[dict[str, Any]]) -> int:
    return sum(1 for s in series for _, value in s["values"] if math.isfinite(float(value)))


def test_every_dashboard_query_returns_series_during_a_rollout(env: RealNodeEnv) -> None:
    extra = {"guardrails": {"contract": CONTRACT, "drift": DRIFT}}
    stable = deploy_stable(env, NAME, steps=STEPS, extra_spec=extra)
    load = env.start_load(NAME, request=request)
    env.wait(lambda: load.by_revision().get(stable, 0) > 10, 30, "traffic served by stable")
    started = time.time()

    env.patch_spec(NAME, new_revision_spec(env, NAME, variant="b"))
    promoted = env.wait(
        lambda: (s := env.status(NAME)).get("phase") == "Succeeded" and s["stableRevision"] != stable and s,
        150,
        "revision b promoted",
    )["stableRevision"]
    assert env.runner is not None
    env.runner.wait_ready(promoted, 1, timeout=60)
    env.patch_spec(NAME, new_revision_spec(env, NAME, variant="c", env={"IRIS_FAIL_RATE": "0.5"}))
    watch_rollback(env, NAME, promoted, timeout=150)
    time.sleep(3)  # two more scrapes of the operator after the rollback
    load.stop()

    dashboard = grafana.load()
    variables = {v["name"]: v for v in dashboard["templating"]["list"] if v["type"] == "query"}
    chosen = {"namespace": env.namespace, "model": NAME, "operator_job": OPERATOR_JOB}
    values = {"__rate_interval": RATE_INTERVAL}
    for name in ("namespace", "model", "operator_job"):  # in dependency order, as Grafana does
        offered = variable_values(env, grafana.substitute(variables[name]["definition"], values))
        assert chosen[name] in offered, (name, offered)
        values[name] = grafana.regex_value([chosen[name]])

    window = {"start": str(started), "end": str(time.time()), "step": "1"}
    empty = []
    for title, expr in grafana.panel_targets(dashboard):
        query = grafana.substitute(expr, values)
        data = prometheus(env, "/api/v1/query_range", {"query": query, **window})
        if not finite_points(data["result"]):
            empty.append(f"{title}: {query}")
    assert not empty, "panels without data during the rollout:\n" + "\n".join(empty)
