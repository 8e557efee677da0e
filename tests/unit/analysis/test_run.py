"""analyze(): which queries a run sends, how answers become verdicts, and Prometheus trouble."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from modeldeploy.contract.metrics import FEATURE_VALUES
from modeldeploy.operator.analysis import queries as q
from modeldeploy.operator.analysis.checks import drift, error_rate, latency, shadow
from modeldeploy.operator.analysis.checks.drift import DriftGate
from modeldeploy.operator.analysis.checks.guard import guard_tripped_query, guard_tripped_sent
from modeldeploy.operator.analysis.prometheus import PrometheusClient
from modeldeploy.operator.analysis.results import Verdict
from modeldeploy.operator.analysis.run import SequentialSettings, analyze, plan_run
from modeldeploy.operator.api import AnalysisSpec

SPEC = AnalysisSpec.model_validate(
    {
        "interval": "15s",
        "minRequests": 50,
        "slo": {
            "errorRate": 0.01,
            "latencyP99": "250ms",
            "maxLatencyRatioToStable": 1.5,
            "maxErrorRateDeltaToStable": 0.0,
        },
        "shadowAgreementMin": 0.98,
        "metrics": [
            {"name": "cpu", "query": 'sum(cpu{rev="{{ revision }}",w="{{interval}}"})', "max": 2},
        ],
    }
)
CANARY = q.RevisionSelector("iris", "ml", "canary1234")
STABLE = q.RevisionSelector("iris", "ml", "stable5678")
W = "30s"  # 15s interval, 30s minimum window


def number(value: float | str) -> dict[str, Any]:
    return {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, str(value)]}]}


IRIS = {"namespace": "ml", "model": "iris"}
WINE = {"namespace": "ml", "model": "wine"}  # another ModelDeployment in the all-models answers


def vector(*series: tuple[dict[str, str], float]) -> dict[str, Any]:
    return {"resultType": "vector", "result": [{"metric": m, "value": [1.0, str(v)]} for m, v in series]}


def per_revision(values: dict[str, float], model: dict[str, str] | None = IRIS) -> dict[str, Any]:
    """A `sum by (namespace, model, revision)` answer (`model=None`: `sum by (revision)`), with a
    series of another ModelDeployment whose revision has the canary's name, which must be ignored."""
    foreign = [({**WINE, "revision": C}, 1e6)] if model else []
    return vector(*[({**(model or {}), "revision": k}, v) for k, v in values.items()], *foreign)


def per_revision_and(
    label: str, per_revision: dict[str, dict[str, float]], model: dict[str, str] | None = IRIS
) -> dict[str, Any]:
    """A `sum by (namespace, model, revision, <label>)` answer (`model=None`: `by (revision, <label>)`)."""
    foreign = [({**WINE, "revision": C, label: k}, 1e6) for k in per_revision.get(C, {})] if model else []
    return vector(
        *[
            ({**(model or {}), "revision": revision, label: key}, count)
            for revision, values in per_revision.items()
            for key, count in values.items()
        ],
        *foreign,
    )


def per_revision_and_le(
    per_revision: dict[str, dict[str, float]], model: dict[str, str] | None = IRIS
) -> dict[str, Any]:
    return per_revision_and("le", per_revision, model)


C, S = CANARY.revision, STABLE.revision
FIXED = q.Plan(W, CANARY, STABLE)  # what the run sends over its window: one query for every model
ANSWERS: dict[str, dict[str, Any]] = {
    q.requests_sent(FIXED): per_revision({C: 300, S: 3000}),
    # no 5xx series for stable: no series means zero errors
    error_rate.errors_sent(FIXED): per_revision({C: 90}),
    latency.latency_quantiles_sent(FIXED): per_revision({C: 0.12, S: 0.1}),
    latency.latency_buckets_sent(FIXED): per_revision_and_le({C: {"0.1": 200, "0.25": 300, "+Inf": 300}}),
    shadow.shadow_results_sent(FIXED): per_revision_and(
        "result", {C: {"match": 990, "mismatch": 5, "error": 5, "dropped": 40}}
    ),
    f'sum(cpu{{rev="{CANARY.revision}",w="30s"}})': number(1.5),
}


@dataclass
class QueryApi:
    answers: dict[str, dict[str, Any]]
    seen: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        query = request.query["query"]
        self.seen.append(query)
        data = self.answers.get(query, {"resultType": "vector", "result": []})
        return web.Response(
            text=json.dumps({"status": "success", "data": data}), content_type="application/json"
        )


@pytest.fixture
async def prom() -> AsyncIterator[tuple[QueryApi, PrometheusClient]]:
    api = QueryApi(dict(ANSWERS))
    app = web.Application()
    app.router.add_get("/api/v1/query", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    client = PrometheusClient(f"http://127.0.0.1:{runner.addresses[0][1]}", retries=0)
    try:
        yield api, client
    finally:
        await client.close()
        await runner.cleanup()


async def test_a_shadow_run_judges_every_metric(prom: tuple[QueryApi, PrometheusClient]) -> None:
    api, client = prom
    at = datetime(2025, 1, 1, tzinfo=UTC)
    outcome = await analyze(SPEC, "iris", "ml", CANARY.revision, STABLE.revision, "shadow", client, now=at)
    results = {r.metric: r for r in outcome.results}
    assert list(results) == [
        "errorRate",
        "errorRateDeltaToStable",
        "latencyP99",
        "latencyP99RatioToStable",
        "shadowAgreement",
        "cpu",
    ]
    assert outcome.revision == CANARY.revision and outcome.at == at
    assert results["errorRate"].verdict is Verdict.FAIL and results["errorRate"].value == pytest.approx(0.3)
    assert results["errorRate"].query == error_rate.error_ratio_query(CANARY, W)
    assert results["errorRateDeltaToStable"].verdict is Verdict.FAIL
    assert results["errorRateDeltaToStable"].value == pytest.approx(0.3)
    assert results["latencyP99"].verdict is Verdict.PASS and results["latencyP99"].value == 0.12
    assert results["latencyP99RatioToStable"].verdict is Verdict.PASS
    assert results["latencyP99RatioToStable"].value == pytest.approx(1.2)
    assert results["shadowAgreement"].verdict is Verdict.PASS
    assert results["shadowAgreement"].value == pytest.approx(0.99)  # dropped copies are not compared
    assert (
        results["cpu"].verdict is Verdict.PASS
        and results["cpu"].query == 'sum(cpu{rev="canary1234",w="30s"})'
    )
    assert outcome.verdict is Verdict.FAIL
    # shared queries are sent once, and each metric's query covers both revisions: 6 queries, where
    # one query per revision and metric took 9
    assert len(api.seen) == len(set(api.seen)) == 6


async def test_a_canary_run_has_no_shadow_agreement(prom: tuple[QueryApi, PrometheusClient]) -> None:
    _, client = prom
    outcome = await analyze(SPEC, "iris", "ml", CANARY.revision, STABLE.revision, "canary", client)
    assert "shadowAgreement" not in {r.metric for r in outcome.results}
    assert outcome.at is not None and outcome.at.tzinfo is not None


async def test_no_traffic_is_inconclusive(prom: tuple[QueryApi, PrometheusClient]) -> None:
    api, client = prom
    api.answers = {}
    spec = SPEC.model_copy(update={"metrics": []})
    outcome = await analyze(spec, "iris", "ml", CANARY.revision, STABLE.revision, "shadow", client)
    assert {r.verdict for r in outcome.results} == {Verdict.INCONCLUSIVE}
    assert outcome.results[0].message == "error rate: served only 0 requests in 30s (minRequests 50)"


async def test_unreachable_prometheus_makes_every_metric_inconclusive() -> None:
    client = PrometheusClient("http://127.0.0.1:9", retries=0, timeout=1)
    outcome = await analyze(SPEC, "iris", "ml", CANARY.revision, STABLE.revision, "canary", client)
    await client.close()
    assert outcome.verdict is Verdict.INCONCLUSIVE
    assert {r.verdict for r in outcome.results} == {Verdict.INCONCLUSIVE}
    assert all(
        r.message.startswith("Prometheus unreachable at http://127.0.0.1:9: ") for r in outcome.results
    )
    assert all(r.query for r in outcome.results)  # the query that would have run is still shown


def test_the_window_follows_the_interval_with_a_floor() -> None:
    slow = SPEC.model_copy(update={"interval": "2m"})
    assert plan_run(slow, "iris", "ml", "a", "b").window == "120s"
    assert plan_run(SPEC, "iris", "ml", "a", "b").window == "30s"
    assert plan_run(SPEC, "iris", "ml", "a", "b", min_window=timedelta(seconds=5)).window == "15s"
    assert plan_run(SPEC, "iris", "ml", "a", "b", window=timedelta(minutes=1)).window == "60s"


async def test_a_canary_run_fails_when_the_fast_guard_tripped(
    prom: tuple[QueryApi, PrometheusClient],
) -> None:
    api, client = prom
    spec = SPEC.model_copy(update={"metrics": [], "slo": SPEC.slo.model_copy(update={"error_rate": 1.0})})
    api.answers = {
        q.requests_sent(FIXED): per_revision({C: 0}),  # the guard starved the canary
        guard_tripped_sent(FIXED): per_revision({C: 1}),
    }
    outcome = await analyze(spec, "iris", "ml", CANARY.revision, STABLE.revision, "canary", client)
    guard = next(r for r in outcome.results if r.metric == "guardTripped")
    assert guard.verdict is Verdict.FAIL and guard.value == 1
    assert CANARY.revision in guard.message and "guard" in guard.message
    assert guard.query == guard_tripped_query(CANARY, W)
    assert outcome.verdict is Verdict.FAIL, "a tripped guard is a failure, not 'too few requests'"

    api.answers[guard_tripped_sent(FIXED)] = per_revision({C: 0})
    outcome = await analyze(spec, "iris", "ml", CANARY.revision, STABLE.revision, "canary", client)
    guard = next(r for r in outcome.results if r.metric == "guardTripped")
    assert guard.verdict is Verdict.PASS
    assert outcome.verdict is Verdict.INCONCLUSIVE, "without traffic the other metrics stay inconclusive"


async def test_a_shadow_run_does_not_ask_about_the_guard(prom: tuple[QueryApi, PrometheusClient]) -> None:
    api, client = prom
    await analyze(SPEC, "iris", "ml", CANARY.revision, STABLE.revision, "shadow", client)
    assert guard_tripped_sent(FIXED) not in api.seen


async def test_drift_adds_one_psi_check_per_feature(prom: tuple[QueryApi, PrometheusClient]) -> None:
    api, client = prom
    stable: dict[str, float] = {"5.0": 300, "6.0": 700, "+Inf": 1000}
    features: dict[str, dict[str, dict[str, float]]] = {
        "sepal_length": {C: {"5.0": 20, "6.0": 100, "+Inf": 600}, S: stable},
        "petal_width": {C: {"5.0": 180, "6.0": 420, "+Inf": 600}, S: stable},
    }
    # one query for every feature (and every model): series by revision, feature and le
    api.answers[drift.feature_buckets_sent(FIXED)] = vector(
        *[
            ({**IRIS, "revision": revision, "feature": feature, "le": le}, count)
            for feature, revisions in features.items()
            for revision, buckets in revisions.items()
            for le, count in buckets.items()
        ],
        ({**WINE, "revision": C, "feature": "sepal_width", "le": "+Inf"}, 1e6),
    )
    # no series at all for the third feature: inconclusive, not a failure and not a pass
    gate = DriftGate(("sepal_length", "petal_width", "sepal_width"), 0.2)
    outcome = await analyze(
        SPEC, "iris", "ml", CANARY.revision, STABLE.revision, "canary", client, drift=gate
    )
    results = {r.metric: r for r in outcome.results}
    shifted = results["inputPSI/sepal_length"]
    assert shifted.verdict is Verdict.FAIL and shifted.value is not None and shifted.value > 1
    assert shifted.threshold == 0.2
    assert shifted.query == drift.feature_buckets_query(CANARY, STABLE, "sepal_length", W)
    assert "600 values vs stable's 1000" in shifted.message
    same = results["inputPSI/petal_width"]
    assert same.verdict is Verdict.PASS and same.value == pytest.approx(0.0, abs=1e-12)
    missing = results["inputPSI/sepal_width"]
    assert missing.verdict is Verdict.INCONCLUSIVE and "observed only 0 values" in missing.message
    assert list(results)[-1] == "cpu", "custom metrics stay last"


async def test_no_drift_gate_sends_no_feature_queries(prom: tuple[QueryApi, PrometheusClient]) -> None:
    api, client = prom
    await analyze(SPEC, "iris", "ml", CANARY.revision, STABLE.revision, "canary", client)
    assert not [x for x in api.seen if FEATURE_VALUES in x]


async def test_a_sequential_canary_run_judges_counts_since_the_rollout_began(
    prom: tuple[QueryApi, PrometheusClient],
) -> None:
    api, client = prom
    since = "120s"
    began = q.Plan(since, CANARY, STABLE, all_models=False)
    api.answers.update(
        {
            # since the rollout began: this ModelDeployment's own queries (`sum by (revision)`)
            q.requests_sent(began): per_revision({C: 600, S: 6000}, model=None),
            error_rate.errors_sent(began): per_revision({C: 180, S: 60}, model=None),
            latency.latency_buckets_sent(began): per_revision_and_le(
                {C: {"0.1": 300, "0.25": 600, "+Inf": 600}, S: {"0.1": 5900, "0.25": 6000, "+Inf": 6000}},
                model=None,
            ),
        }
    )
    settings = SequentialSettings(since=timedelta(minutes=2), latency_delta=0.0)
    outcome = await analyze(
        SPEC, "iris", "ml", CANARY.revision, STABLE.revision, "canary", client, sequential=settings
    )
    results = {r.metric: r for r in outcome.results}
    assert list(results) == [
        "errorRate",
        "errorRateDeltaToStable",
        "latencyDistribution",
        "latencyP99",
        "latencyP99RatioToStable",
        "guardTripped",
        "cpu",
    ]
    for metric in ("errorRate", "errorRateDeltaToStable", "latencyDistribution"):
        assert results[metric].verdict is Verdict.FAIL and results[metric].conclusive, results[metric]
        assert "since the rollout began" in results[metric].message
    assert results["errorRate"].value == pytest.approx(0.3)
    assert results["errorRate"].query == error_rate.error_ratio_query(CANARY, since)
    assert "(180 of 600 requests since the rollout began" in results["errorRate"].message
    # three sequential checks share alpha = 5%: each rejects at e >= 1 / (5% / 3) = 60
    assert all(
        "vs 60 at 98.3333%" in results[m].message
        for m in ("errorRate", "errorRateDeltaToStable", "latencyDistribution")
    ), [results[m].message for m in results]
    assert results["latencyDistribution"].message.startswith(
        "50% of 600 requests slower than 100ms vs stable's 1.67% of 6000 since the rollout began"
    )
    # the fixed checks keep their window and their failureLimit semantics
    assert results["latencyP99"].query == latency.latency_quantile_query(CANARY, W)
    assert not results["latencyP99"].conclusive
    assert set(outcome.conclusive_failures) == {
        results[m] for m in ("errorRate", "errorRateDeltaToStable", "latencyDistribution")
    }
    # requests, errors and buckets since the rollout began; p99, buckets and requests of the window
    # (latencyP99, latencyP99RatioToStable); the guard; the custom metric
    assert len(api.seen) == len(set(api.seen)) == 8


async def test_shadow_steps_keep_the_fixed_rules_when_sequential(
    prom: tuple[QueryApi, PrometheusClient],
) -> None:
    _, client = prom
    settings = SequentialSettings(since=timedelta(minutes=2), latency_delta=0.0)
    outcome = await analyze(
        SPEC, "iris", "ml", CANARY.revision, STABLE.revision, "shadow", client, sequential=settings
    )
    results = {r.metric: r for r in outcome.results}
    assert "latencyDistribution" not in results
    assert results["errorRate"].query == error_rate.error_ratio_query(CANARY, W)
    assert outcome.conclusive_failures == ()


async def test_a_custom_metric_with_min_requests_waits_for_traffic_and_prints_its_unit(
    prom: tuple[QueryApi, PrometheusClient],
) -> None:
    api, client = prom
    api.answers[f'sum(p999{{rev="{C}"}})'] = number(1.2)
    gated = {
        "name": "p999",
        "query": 'sum(p999{rev="{{revision}}"})',
        "max": 1.0,
        "unit": "s",
        "minRequests": 500,
    }
    spec = SPEC.model_copy(update={"metrics": [AnalysisSpec.model_validate({"metrics": [gated]}).metrics[0]]})
    outcome = await analyze(spec, "iris", "ml", C, S, "canary", client)
    few = outcome.results[-1]
    assert (few.metric, few.verdict) == ("p999", Verdict.INCONCLUSIVE)
    assert few.message == "p999: the canary served only 300 requests in 30s (minRequests 500)"
    api.answers[q.requests_sent(FIXED)] = per_revision({C: 600, S: 3000})
    enough = (await analyze(spec, "iris", "ml", C, S, "canary", client)).results[-1]
    assert (enough.verdict, enough.value, enough.message) == (Verdict.FAIL, 1.2, "p999 1.2 s > max 1 s")
