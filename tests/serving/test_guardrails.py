"""Guardrails on the data path through real sidecars, BentoML iris and Prometheus (issue #8).

Data contract (reject: 422 and the model never called; observe: counted), switched on and off
live; sampled, redacted, truncated prediction log lines; per-feature drift histograms whose
buckets Prometheus reads back exactly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.contract.routing import DataPathSettings
from tests.serving.processes import (
    IrisServer,
    Processes,
    PrometheusProc,
    SidecarProc,
    http,
    start_prometheus,
)
from tests.serving.topology import CANARY, SHADOW, STABLE, IrisTrio, Topology, start_topology
from tests.serving.traffic import revisions, send, statuses
from tests.support.binomial import binomial_interval
from tests.support.iris_contract import IRIS_SCHEMA

pytestmark = [pytest.mark.serving, pytest.mark.slow]

ROW = [5.1, 3.5, 1.4, 0.2]
GOOD = {"features": [ROW]}
BAD_TYPE = {"features": [ROW, [6.2, 2.9, "x", 1.3]]}  # BentoML would answer 400 itself


def contract(policy: str) -> DataPathSettings:
    return DataPathSettings.model_validate({"contract": {"schema": IRIS_SCHEMA, "policy": policy}})


@dataclass
class Env:
    topo: Topology
    prom: PrometheusProc
    iris: IrisTrio
    workdir: Path


@pytest.fixture(scope="module")
def env(iris_servers: IrisTrio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = Path(tmp_path_factory.mktemp("guardrails"))
    with Processes() as procs:
        topo = start_topology(workdir, iris_servers, procs)
        prom = procs.add(
            start_prometheus(workdir / "prometheus", [s.metrics_address for s in topo.sidecars()])
        )
        prom.wait_targets_up()
        yield Env(topo, prom, iris_servers, workdir)


def wait_served(server: IrisServer, expected: float, timeout: float = 10.0) -> float:
    """Poll BentoML's request counter until it reaches `expected`; returns the final value."""
    deadline = time.monotonic() + timeout
    while True:
        value = server.requests_served("/classify")
        if value >= expected or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


async def assert_model_saw_none_of(server: IrisServer, sidecar: SidecarProc, before: float) -> None:
    """One good request sent after the rejected ones must be the only new one the model counts."""
    marker = await send(sidecar.url, 1, path="/classify", payload=GOOD)
    assert statuses(marker) == {200: 1}
    assert wait_served(server, before + 1) == before + 1


async def test_reject_answers_422_and_the_model_is_never_called(env: Env) -> None:
    topo, iris = env.topo, env.iris
    topo.publish(data_path=contract("reject"))
    before = iris.stable.requests_served("/classify")
    violations_before = topo.stable.metric("modeldeploy_contract_violations_total", field="/features/*/*")
    replies = await send(topo.stable.url, 40, path="/classify", payload=BAD_TYPE, concurrency=4)
    assert statuses(replies) == {422: 40} and revisions(replies) == {STABLE: 40}
    body = json.loads(replies[0].body)
    assert body == {
        "error": "contract violation",
        "path": "/features/1/2",
        "message": "'x' is not of type 'number'",
        "schemaPath": "/properties/features/items/items/type",
        "revision": STABLE,
    }
    for payload in (b"", b"features=1"):  # empty and non-JSON bodies: a clear 422 at the root
        headers = {"Content-Type": "application/json"}
        status, _, raw = await asyncio.to_thread(
            http, "POST", topo.stable.url + "/classify", payload, headers
        )
        error = json.loads(raw)
        assert status == 422 and error["path"] == "/" and error["message"].startswith("request body is")
    await assert_model_saw_none_of(iris.stable, topo.stable, before)
    after = topo.stable.metric("modeldeploy_contract_violations_total", field="/features/*/*")
    assert after - violations_before == 40
    assert topo.stable.metric("modeldeploy_requests_total", route="local", code="422") >= 42


async def test_canary_sidecar_checks_what_it_is_forwarded(env: Env) -> None:
    topo, iris = env.topo, env.iris
    topo.publish(weight=100, data_path=contract("reject"))
    before = iris.canary.requests_served("/classify")
    checks_before = topo.canary.metric("modeldeploy_contract_checks_total", result="violation")
    stable_checks_before = topo.stable.metric("modeldeploy_contract_checks_total")
    replies = await send(topo.stable.url, 20, path="/classify", payload=BAD_TYPE, concurrency=4)
    assert statuses(replies) == {422: 20} and revisions(replies) == {CANARY: 20}
    assert json.loads(replies[0].body)["path"] == "/features/1/2"
    await assert_model_saw_none_of(iris.canary, topo.stable, before)
    assert topo.canary.metric("modeldeploy_contract_checks_total", result="violation") - checks_before == 20
    # The stable sidecar forwarded them unchecked: each request is checked once, where it is served.
    assert topo.stable.metric("modeldeploy_contract_checks_total") == stable_checks_before
    assert topo.stable.metric("modeldeploy_guard_trips_total") == 0  # a 422 is not a canary failure


async def test_observe_passes_and_counts_through_prometheus(env: Env) -> None:
    topo, iris, prom = env.topo, env.iris, env.prom
    topo.publish(data_path=contract("observe"))
    before = iris.stable.requests_served("/classify")
    odd = {"features": [ROW], "tag": 7}  # violates the contract ("tag" must be a string), fine for the model
    replies = await send(topo.stable.url, 30, path="/classify", payload=odd, concurrency=4)
    replies += await send(topo.stable.url, 10, path="/classify", payload=GOOD, concurrency=4)
    assert statuses(replies) == {200: 40}
    assert wait_served(iris.stable, before + 40) == before + 40  # all of them reached the model
    prom.wait_fresh_scrape(len(topo.sidecars()))
    select = f'model="iris",namespace="ml",revision="{STABLE}"'
    violations = prom.values_by(f"modeldeploy_contract_violations_total{{{select}}}", "field")
    assert violations["/tag"] == 30
    checks = prom.values_by(f"modeldeploy_contract_checks_total{{{select}}}", "result")
    assert checks == {
        "violation": topo.stable.metric("modeldeploy_contract_checks_total", result="violation"),
        "pass": topo.stable.metric("modeldeploy_contract_checks_total", result="pass"),
    }
    assert checks["pass"] >= 10


async def test_contract_switched_off_and_on_live(env: Env) -> None:
    topo = env.topo
    topo.publish(data_path=contract("reject"))
    bad_for_model = {"features": [[1, 2, 3]]}  # violates minItems; BentoML answers 400 itself
    assert statuses(await send(topo.stable.url, 3, path="/classify", payload=bad_for_model)) == {422: 3}
    topo.publish()  # no dataPath: the model answers (its own 400 with its own message)
    replies = await send(topo.stable.url, 3, path="/classify", payload=bad_for_model)
    assert statuses(replies) == {400: 3}
    assert b"contract violation" not in replies[0].body
    topo.publish(data_path=contract("reject"))
    assert statuses(await send(topo.stable.url, 3, path="/classify", payload=bad_for_model)) == {422: 3}


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_written(sidecar: SidecarProc, timeout: float = 10.0) -> float:
    """Wait until no sampled line is queued or being written; returns the lines written so far."""
    deadline = time.monotonic() + timeout
    while sidecar.metric("modeldeploy_prediction_log_pending") > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{sidecar.name}: prediction log lines still pending after {timeout}s")
        time.sleep(0.05)
    return sidecar.metric("modeldeploy_prediction_log_lines_total")


async def test_prediction_log_is_sampled_and_redacted(env: Env) -> None:
    topo = env.topo
    path = env.workdir / "predictions-sampled.jsonl"
    n, rate = 2000, 0.1
    settings = DataPathSettings.model_validate(
        {"predictionLog": {"sampleRate": rate, "sink": "file", "path": str(path), "redact": ["ssn"]}}
    )
    topo.publish(weight=30, data_path=settings)
    lines_before = topo.stable.metric("modeldeploy_prediction_log_lines_total")
    payload = {"features": [ROW], "patient": {"ssn": "123-45-6789", "age": 40}}
    replies = await send(
        topo.stable.url,
        n,
        path="/classify",
        payload=payload,
        concurrency=16,
        headers=lambda i: {"x-request-id": f"req-{i}"},
    )
    assert statuses(replies) == {200: n}
    # Every sampled line was queued before its response was sent: wait until all are written.
    written = wait_written(topo.stable) - lines_before
    topo.publish(weight=30)  # logging off
    lines = read_lines(path)
    low, high = binomial_interval(n, rate, 0.999)
    assert len(lines) == written and low <= len(lines) <= high, (len(lines), low, high)
    assert topo.stable.metric("modeldeploy_prediction_log_dropped_total") == 0
    for sidecar in (topo.canary, topo.shadow):  # forwarded requests are logged by the receiver only
        assert sidecar.metric("modeldeploy_prediction_log_lines_total") == 0
    by_id = {f"req-{r.index}": r for r in replies}
    assert len({line["traceId"] for line in lines}) == len(lines)
    for line in lines:
        reply = by_id[line["traceId"]]
        assert line["model"] == "iris" and line["namespace"] == "ml" and line["status"] == 200
        assert line["revision"] == reply.revision
        assert line["route"] == ("canary" if reply.revision == CANARY else "local")
        assert line["request"] == {"features": [ROW], "patient": {"ssn": "[REDACTED]", "age": 40}}
        assert line["response"] == json.loads(reply.body) and line["truncated"] is False
        assert 0 < line["latencyMs"] < 10_000 and line["ts"].endswith("Z")
    assert "123-45-6789" not in path.read_text()
    routes = {line["route"] for line in lines}
    assert routes == {"local", "canary"}  # 30% canary: both appear among ~200 lines


async def test_prediction_log_truncates_large_bodies(env: Env) -> None:
    topo = env.topo
    path = env.workdir / "predictions-truncated.jsonl"
    settings = DataPathSettings.model_validate(
        {"predictionLog": {"sampleRate": 1.0, "sink": "file", "path": str(path), "maxBodyBytes": 64}}
    )
    topo.publish(data_path=settings)
    before = topo.stable.metric("modeldeploy_prediction_log_lines_total")
    big = {"features": [ROW] * 20}
    replies = await send(topo.stable.url, 5, path="/classify", payload=big, concurrency=1)
    assert statuses(replies) == {200: 5}
    small = await send(topo.stable.url, 1, path="/classify", payload=GOOD)
    assert wait_written(topo.stable) == before + 6
    topo.publish()
    lines = read_lines(path)
    assert len(lines) == 6
    for line in lines[:5]:
        assert line["truncated"] is True
        assert isinstance(line["request"], str) and len(line["request"].encode()) == 64
        assert line["request"].startswith('{"features":[[5.1,3.5,1.4,0.2],')
        assert isinstance(line["response"], str) and len(line["response"].encode()) == 64  # 20 labels
        assert line["traceId"] and len(line["traceId"]) == 32  # generated
    assert lines[5]["truncated"] is False and lines[5]["request"] == GOOD
    assert lines[5]["response"] == json.loads(small[0].body)
    assert small[0].status == 200


async def test_prediction_log_to_stdout_writes_whole_lines(env: Env) -> None:
    """The default sink is the container log: every sampled line is one whole JSON line on the
    sidecar's standard output, between its own log lines."""
    topo = env.topo
    settings = DataPathSettings.model_validate({"predictionLog": {"sampleRate": 1.0, "redact": ["ssn"]}})
    topo.publish(data_path=settings)
    before = topo.stable.metric("modeldeploy_prediction_log_lines_total")
    payload = {"features": [ROW], "ssn": "123-45-6789"}
    n = 40
    replies = await send(
        topo.stable.url,
        n,
        path="/classify",
        payload=payload,
        concurrency=8,
        headers=lambda i: {"x-request-id": f"stdout-{i}"},
    )
    assert statuses(replies) == {200: n}
    assert wait_written(topo.stable) == before + n
    topo.publish()
    lines = []
    for text in topo.stable.log_path.read_text().splitlines():
        if text.startswith("{") and '"traceId":"stdout-' in text:
            lines.append(json.loads(text))  # a torn or merged line would not parse
    assert sorted(line["traceId"] for line in lines) == sorted(f"stdout-{i}" for i in range(n))
    assert all(line["request"] == {"features": [ROW], "ssn": "[REDACTED]"} for line in lines)
    assert "123-45-6789" not in topo.stable.log_path.read_text()


def expected_buckets(values: list[float], bounds: list[float]) -> dict[str, float]:
    out = {f"{b:.1f}": float(sum(v <= b for v in values)) for b in bounds}
    out["+Inf"] = float(len(values))
    return out


async def test_drift_histograms_hold_what_was_served_locally(env: Env) -> None:
    topo, prom = env.topo, env.prom
    bounds = [4.5, 5.0, 5.5, 6.0, 6.5, 7.0]
    settings = DataPathSettings.model_validate(
        {
            "drift": {
                "features": [
                    {"name": "sepal_length", "path": "/features/*/0", "buckets": bounds},
                    {"name": "petal_width", "path": "/features/*/3", "buckets": [0.5, 1.5]},
                ]
            }
        }
    )
    topo.publish(weight=50, data_path=settings)
    rows = [[4.4, 3.0, 1.3, 0.2], [5.0, 3.4, 1.5, 0.2], [5.9, 3.0, 4.2, 1.5], [6.9, 3.1, 5.4, 2.1]]
    served: dict[str, list[list[float]]] = {STABLE: [], CANARY: []}
    for size in range(1, 5):  # 1 to 4 rows per request
        payload = {"features": rows[:size]}
        replies = await send(topo.stable.url, 50, path="/classify", payload=payload)
        assert statuses(replies) == {200: 50}
        for reply in replies:
            served[str(reply.revision)] += payload["features"]
    assert served[STABLE] and served[CANARY]
    prom.wait_fresh_scrape(len(topo.sidecars()))
    for revision, feature_rows in served.items():
        select = f'model="iris",namespace="ml",revision="{revision}",feature="sepal_length"'
        buckets = prom.values_by(f"modeldeploy_input_feature_value_bucket{{{select}}}", "le")
        assert buckets == expected_buckets([r[0] for r in feature_rows], bounds), revision
        count = prom.query(f"modeldeploy_input_feature_value_count{{{select}}}")
        total = prom.query(f"modeldeploy_input_feature_value_sum{{{select}}}")
        assert float(count[0]["value"][1]) == len(feature_rows)
        assert float(total[0]["value"][1]) == pytest.approx(sum(r[0] for r in feature_rows))
        select_pw = select.replace("sepal_length", "petal_width")
        pw = prom.values_by(f"modeldeploy_input_feature_value_bucket{{{select_pw}}}", "le")
        widths = [r[3] for r in feature_rows]
        assert pw == {"0.5": sum(w <= 0.5 for w in widths), "1.5": sum(w <= 1.5 for w in widths)} | {
            "+Inf": len(widths)
        }
    # The shadow sidecar served nothing here: its histograms exist and are empty.
    shadow = prom.query(
        f'modeldeploy_input_feature_value_count{{revision="{SHADOW}",feature="sepal_length"}}'
    )
    assert [r["value"][1] for r in shadow] == ["0"]
    topo.publish()
