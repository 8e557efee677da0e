"""analyze() against a real Prometheus scraping processes that expose sidecar metrics at known rates.

Per second: the canary (its own sidecar) serves 10 requests, 3 of them 500s taking 400 ms and 7 fine
in 50 ms; stable serves 200, one 503, all in 20 ms, and counts shadow copies to the canary as 90 match,
8 mismatch, 2 error, 5 dropped. A second model, "quiet", serves 2 requests per second (one a 500).
Drift features (buckets <= 5, <= 6, > 6): stable observes sepal_length and petal_length 20/50/30 times
per second; the canary observes sepal_length 2/3/5 (shifted) and petal_length 2/5/3 (the same shares).
Every number below follows from those rates.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.operator.analysis import psi
from modeldeploy.operator.analysis.checks.drift import DriftGate
from modeldeploy.operator.analysis.prometheus import PrometheusClient
from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict, Verdict
from modeldeploy.operator.analysis.run import SequentialSettings, analyze
from modeldeploy.operator.api import AnalysisSpec
from tests.serving.process_base import http
from tests.serving.processes import (
    PYTHON,
    ROOT,
    Proc,
    Processes,
    PrometheusProc,
    free_port,
    spawn,
    start_prometheus,
)

pytestmark = [pytest.mark.serving, pytest.mark.slow]

CANARY, STABLE = "canary0001", "stable0001"
WINDOW = timedelta(seconds=10)
SPEC = AnalysisSpec.model_validate(
    {
        "interval": "10s",
        "minRequests": 50,
        "confidence": 0.95,
        "slo": {
            "errorRate": 0.01,
            "latencyP99": "250ms",
            "maxLatencyRatioToStable": 1.5,
            "maxErrorRateDeltaToStable": 0.0,
        },
        "shadowAgreementMin": 0.98,
        "metrics": [
            {
                "name": "throughput",
                "query": 'sum(rate(modeldeploy_requests_total{namespace="{{namespace}}",model="{{model}}",'
                'revision="{{ revision }}",route="local"}[{{interval}}]))',
                "min": 5,
            },
            {"name": "broken", "query": "sum(rate(modeldeploy_requests_total[{{interval}}])", "max": 1},
        ],
    }
)


def features(**counts: tuple[int, int, int]) -> list[dict[str, Any]]:
    """Drift features with buckets 5 and 6: per second, counts[i] values in the i-th bucket."""
    return [
        {
            "name": name,
            "path": f"/{name}",
            "buckets": [5.0, 6.0],
            "values": [4.8] * low + [5.5] * mid + [6.5] * high,
        }
        for name, (low, mid, high) in counts.items()
    ]


def start_exporter(workdir: Path, name: str, config: dict[str, Any]) -> tuple[Proc, str]:
    port = free_port()
    argv = [PYTHON, "-m", "tests.serving.analysis_exporter", json.dumps({"port": port, **config})]
    proc = spawn(name, argv, workdir / f"{name}.log", {"PYTHONUNBUFFERED": "1"}, cwd=ROOT)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/metrics", 20)
    except BaseException:
        proc.stop()
        raise
    return proc, f"127.0.0.1:{port}"


@dataclass
class Setup:
    prom: PrometheusProc


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = Path(tmp_path_factory.mktemp("analysis"))
    base = {"namespace": "ml", "tick": 1.0}
    exporters = {
        "canary": {
            **base,
            "model": "iris",
            "revision": CANARY,
            "requests": [
                {"code": 200, "seconds": 0.05, "count": 7},
                {"code": 500, "seconds": 0.4, "count": 3},
            ],
            "features": features(sepal_length=(2, 3, 5), petal_length=(2, 5, 3)),
        },
        "stable": {
            **base,
            "model": "iris",
            "revision": STABLE,
            "requests": [
                {"code": 200, "seconds": 0.02, "count": 199},
                {"code": 503, "seconds": 0.02, "count": 1},
            ],
            "features": features(sepal_length=(20, 50, 30), petal_length=(20, 50, 30)),
            "shadow": [
                {"revision": CANARY, "result": "match", "count": 90},
                {"revision": CANARY, "result": "mismatch", "count": 8},
                {"revision": CANARY, "result": "error", "count": 2},
                {"revision": CANARY, "result": "dropped", "count": 5},
            ],
        },
        "quiet": {
            **base,
            "model": "quiet",
            "revision": "quiet00001",
            "requests": [
                {"code": 200, "seconds": 0.05, "count": 1},
                {"code": 500, "seconds": 0.05, "count": 1},
            ],
        },
    }
    with Processes() as procs:
        targets = []
        for name, config in exporters.items():
            proc, address = start_exporter(workdir, f"exporter-{name}", config)
            procs.add(proc)
            targets.append(address)
        prom = procs.add(start_prometheus(workdir / "prometheus", targets))
        prom.wait_targets_up()
        time.sleep(WINDOW.total_seconds() + 2)  # a full window of scrapes
        yield Setup(prom)


@pytest.fixture
async def client(setup: Setup) -> AsyncIterator[PrometheusClient]:
    async with PrometheusClient(setup.prom.url, timeout=5) as prom:
        yield prom


def by_metric(outcome: AnalysisOutcome) -> dict[str, MetricVerdict]:
    return {result.metric: result for result in outcome.results}


async def test_a_failing_shadow_revision_fails_with_the_measured_values(client: PrometheusClient) -> None:
    outcome = await analyze(SPEC, "iris", "ml", CANARY, STABLE, "shadow", client, min_window=WINDOW)
    results = by_metric(outcome)
    error_rate = results["errorRate"]
    assert error_rate.verdict is Verdict.FAIL, error_rate.message
    assert error_rate.value == pytest.approx(0.3, rel=1e-9)
    assert error_rate.requests is not None and 80 <= error_rate.requests <= 120  # ~10/s over 10s
    assert error_rate.threshold == 0.01 and "[10s]" in error_rate.query
    assert "error rate 30% (" in error_rate.message and "> 1%, significant at 95%" in error_rate.message

    delta = results["errorRateDeltaToStable"]
    assert delta.verdict is Verdict.FAIL
    assert delta.value == pytest.approx(0.3 - 0.005, rel=1e-9)

    p99 = results["latencyP99"]  # 7 in the 50ms bucket, 3 in (250ms, 500ms]: 0.25 + 0.25 * 2.9 / 3
    assert p99.verdict is Verdict.FAIL, p99.message
    assert p99.value == pytest.approx(0.25 + 0.25 * 2.9 / 3, rel=1e-6)
    assert "slower than 250ms, significant" in p99.message

    ratio = results["latencyP99RatioToStable"]  # stable: 200 in (10ms, 25ms] -> 10ms + 15ms * 198 / 200
    assert ratio.verdict is Verdict.FAIL
    assert ratio.value == pytest.approx((0.25 + 0.25 * 2.9 / 3) / (0.01 + 0.015 * 198 / 200), rel=1e-6)

    agreement = results["shadowAgreement"]  # 90 of 100 compared; dropped copies do not count
    assert agreement.verdict is Verdict.FAIL
    assert agreement.value == pytest.approx(0.9, rel=1e-9)

    throughput = results["throughput"]
    assert throughput.verdict is Verdict.PASS
    assert throughput.value == pytest.approx(10, rel=0.15)  # 10 requests per second
    assert f'revision="{CANARY}"' in throughput.query and "[10s]" in throughput.query

    broken = results["broken"]
    assert broken.verdict is Verdict.INCONCLUSIVE
    assert "Prometheus rejected query" in broken.message and "parse error" in broken.message
    assert outcome.verdict is Verdict.FAIL


async def test_stable_against_itself_passes(client: PrometheusClient) -> None:
    spec = SPEC.model_copy(update={"metrics": [], "shadow_agreement_min": None})
    outcome = await analyze(spec, "iris", "ml", STABLE, STABLE, "canary", client, min_window=WINDOW)
    assert outcome.verdict is Verdict.PASS, outcome.summary
    assert by_metric(outcome)["errorRate"].value == pytest.approx(0.005, rel=1e-9)
    assert by_metric(outcome)["latencyP99RatioToStable"].value == pytest.approx(1.0)


async def test_low_traffic_is_inconclusive_not_failed(client: PrometheusClient) -> None:
    spec = SPEC.model_copy(update={"metrics": [], "shadow_agreement_min": None})
    outcome = await analyze(
        spec, "quiet", "ml", "quiet00001", "nonexistent", "canary", client, min_window=WINDOW
    )
    error_rate = by_metric(outcome)["errorRate"]
    assert error_rate.verdict is Verdict.INCONCLUSIVE  # 50% errors, but only ~20 requests
    assert error_rate.value == pytest.approx(0.5, rel=1e-9)
    assert "requests in 10s (minRequests 50)" in error_rate.message
    assert outcome.verdict is Verdict.INCONCLUSIVE
    assert not outcome.failed


async def test_prometheus_down_is_inconclusive(tmp_path: Path) -> None:
    with Processes() as procs:
        prom = procs.add(start_prometheus(tmp_path / "prometheus", []))
        async with PrometheusClient(prom.url, timeout=2, retries=1, backoff=0.1) as client:
            before = await analyze(SPEC, "iris", "ml", CANARY, STABLE, "canary", client, min_window=WINDOW)
            assert "served only 0 requests" in by_metric(before)["errorRate"].message  # reachable, no data
            prom.stop()
            after = await analyze(SPEC, "iris", "ml", CANARY, STABLE, "canary", client, min_window=WINDOW)
    assert after.verdict is Verdict.INCONCLUSIVE
    assert len(after.results) == len(before.results)
    for result in after.results:
        assert result.verdict is Verdict.INCONCLUSIVE
        assert result.message.startswith(f"Prometheus unreachable at {prom.url}"), result.message


async def test_input_drift_fails_the_shifted_feature_only(client: PrometheusClient) -> None:
    spec = SPEC.model_copy(update={"metrics": [], "shadow_agreement_min": None})
    gate = DriftGate(("sepal_length", "petal_length"), 0.1)
    outcome = await analyze(
        spec, "iris", "ml", CANARY, STABLE, "canary", client, min_window=WINDOW, drift=gate
    )
    sepal = by_metric(outcome)["inputPSI/sepal_length"]
    assert sepal.verdict is Verdict.FAIL, sepal.message
    # whole ticks: the shares are exact, so is the PSI (0.2 ln(5/3) * 2, smoothed)
    assert sepal.value == pytest.approx(psi.psi_of_counts([20, 50, 30], [2, 3, 5]), rel=1e-6)
    assert sepal.threshold == 0.1 and "[10s]" in sepal.query and 'feature="sepal_length"' in sepal.query
    assert "the input distributions differ, significant at 95%" in sepal.message
    petal = by_metric(outcome)["inputPSI/petal_length"]
    assert petal.verdict is Verdict.PASS, petal.message
    assert petal.value == pytest.approx(0.0, abs=1e-9)

    itself = await analyze(
        spec, "iris", "ml", STABLE, STABLE, "canary", client, min_window=WINDOW, drift=gate
    )
    assert by_metric(itself)["inputPSI/sepal_length"].verdict is Verdict.PASS


async def test_input_drift_without_observations_is_inconclusive(client: PrometheusClient) -> None:
    spec = SPEC.model_copy(update={"metrics": [], "shadow_agreement_min": None})
    gate = DriftGate(("sepal_length",), 0.1)
    outcome = await analyze(
        spec, "quiet", "ml", "quiet00001", "nonexistent", "canary", client, min_window=WINDOW, drift=gate
    )
    result = by_metric(outcome)["inputPSI/sepal_length"]
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.value is None
    assert "observed only 0 values of sepal_length in 10s (minRequests 50)" in result.message


async def test_sequential_canary_run_fails_conclusively_on_real_counts(client: PrometheusClient) -> None:
    spec = SPEC.model_copy(update={"metrics": [], "shadow_agreement_min": None})
    settings = SequentialSettings(since=WINDOW, latency_delta=0.0)
    outcome = await analyze(
        spec, "iris", "ml", CANARY, STABLE, "canary", client, min_window=WINDOW, sequential=settings
    )
    results = by_metric(outcome)
    for metric in ("errorRate", "errorRateDeltaToStable", "latencyDistribution"):
        assert results[metric].verdict is Verdict.FAIL and results[metric].conclusive, results[metric].message
        assert "since the rollout began" in results[metric].message
    assert results["errorRate"].value == pytest.approx(0.3, rel=0.05)  # counts rounded from increase()
    # every canary request is slower than 25 ms, no stable request is: the strongest bound
    assert "100% of" in results["latencyDistribution"].message
    assert "slower than 25ms vs stable's 0% of" in results["latencyDistribution"].message
    assert {r.metric for r in outcome.conclusive_failures} == {
        "errorRate",
        "errorRateDeltaToStable",
        "latencyDistribution",
    }


async def test_sequential_stable_against_itself_passes(client: PrometheusClient) -> None:
    spec = SPEC.model_copy(update={"metrics": [], "shadow_agreement_min": None})
    settings = SequentialSettings(since=WINDOW, latency_delta=0.0)
    outcome = await analyze(
        spec, "iris", "ml", STABLE, STABLE, "canary", client, min_window=WINDOW, sequential=settings
    )
    assert outcome.verdict is Verdict.PASS, outcome.summary
    assert outcome.conclusive_failures == ()


def evaluated_queries(prom: PrometheusProc) -> float:
    """Instant queries Prometheus has answered: its own `prometheus_http_requests_total` (from /metrics)."""
    status, _, body = http("GET", f"{prom.url}/metrics")
    assert status == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "prometheus_http_requests_total" and sample.labels.get("handler") == "/api/v1/query"
    )


# (model, revision under test, stable revision): the two real models, and models without data yet
MODELS = [
    ("iris", CANARY, STABLE),
    ("quiet", "quiet00001", "nonexistent"),
    *[(f"model{i}", f"new{i:06d}", f"old{i:06d}") for i in range(3, 9)],
]


@pytest.mark.parametrize("sharing", [True, False], ids=["shared", "unshared"])
async def test_the_queries_prometheus_evaluates_do_not_grow_with_the_number_of_modeldeployments(
    setup: Setup, sharing: bool
) -> None:
    """One interval of canary runs of 1, 2 and 8 ModelDeployments, counted by Prometheus itself.

    Shared (the operator's clients): every ModelDeployment's run sends the same all-models queries,
    and Prometheus evaluates each once (here the client keeps answers for 60 s so a slow machine
    cannot stretch the 8 runs past it; the operator keeps them 1 s, see docs/analysis.md).
    Unshared: the same queries evaluated once per ModelDeployment.
    """
    spec = SPEC.model_copy(update={"metrics": [], "shadow_agreement_min": None})
    evaluated: dict[int, float] = {}
    for count in (1, 2, 8):
        async with PrometheusClient(setup.prom.url, share_answers_for=60 if sharing else 0) as client:
            before = evaluated_queries(setup.prom)
            for name, new, old in MODELS[:count]:
                await analyze(spec, name, "ml", new, old, "canary", client, min_window=WINDOW)
            evaluated[count] = evaluated_queries(setup.prom) - before
    # requests, errors, p99s and buckets of every revision, and the guard: 5 queries per interval
    per_run = 5
    if sharing:
        assert evaluated == {1: per_run, 2: per_run, 8: per_run}
    else:
        assert evaluated == {1: per_run, 2: 2 * per_run, 8: 8 * per_run}


async def test_shared_answers_still_judge_each_modeldeployment_on_its_own_series(setup: Setup) -> None:
    spec = SPEC.model_copy(update={"metrics": [], "shadow_agreement_min": None})
    async with PrometheusClient(setup.prom.url, share_answers_for=60) as client:
        iris = await analyze(spec, "iris", "ml", CANARY, STABLE, "canary", client, min_window=WINDOW)
        quiet = await analyze(
            spec, "quiet", "ml", "quiet00001", "nonexistent", "canary", client, min_window=WINDOW
        )
    assert by_metric(iris)["errorRate"].value == pytest.approx(0.3, rel=1e-9)
    assert by_metric(quiet)["errorRate"].value == pytest.approx(0.5, rel=1e-9)
    assert by_metric(iris)["latencyP99RatioToStable"].verdict is Verdict.FAIL
    assert "requests in 10s (minRequests 50)" in by_metric(quiet)["errorRate"].message
