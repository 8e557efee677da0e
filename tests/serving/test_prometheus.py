"""A real Prometheus scrapes the sidecars; PromQL gives the error ratio and latency per revision."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modeldeploy.contract.metrics import LATENCY_BUCKETS
from modeldeploy.contract.routing import GuardSettings
from tests.serving.processes import Processes, PrometheusProc, start_prometheus
from tests.serving.topology import CANARY, STABLE, IrisTrio, Topology, start_topology
from tests.serving.traffic import Reply, send

pytestmark = [pytest.mark.serving, pytest.mark.slow]

NO_GUARD = GuardSettings(window=20, max_error_ratio=1.0, min_requests=20)  # a ratio never exceeds 1
SELECT = 'model="iris",namespace="ml",route="local"'


@dataclass
class Observed:
    topo: Topology
    prom: PrometheusProc
    replies: list[Reply]


@pytest.fixture(scope="module")
def observed(iris_servers: IrisTrio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """Canary failing 30% and 300 ms slower at weight 50; every sidecar scraped each second."""
    workdir = Path(tmp_path_factory.mktemp("prom"))
    with Processes() as procs:
        topo = start_topology(workdir, iris_servers, procs)
        prom = procs.add(
            start_prometheus(workdir / "prometheus", [s.metrics_address for s in topo.sidecars()])
        )
        prom.wait_targets_up()
        iris_servers.reset_faults()
        iris_servers.canary.set_faults(fail_rate=0.3, latency_ms=300)
        try:
            topo.publish(weight=50, guard=NO_GUARD)
            replies: list[Reply] = []
            for _ in range(4):  # spread over several scrapes, so rate() has several points
                replies += asyncio.run(send(topo.stable.url, 150, concurrency=16))
            prom.wait_fresh_scrape(len(topo.sidecars()))
            yield Observed(topo, prom, replies)
        finally:
            iris_servers.reset_faults()


def test_counters_give_the_observed_error_ratio_per_revision(observed: Observed) -> None:
    canary = [r for r in observed.replies if r.revision == CANARY]
    stable = [r for r in observed.replies if r.revision == STABLE]
    assert len(canary) + len(stable) == len(observed.replies) == 600
    expected = sum(r.status >= 500 for r in canary) / len(canary)
    assert 0.15 < expected < 0.45  # the canary really failed about 30% of the time
    ratio = observed.prom.values_by(
        f'sum by (revision) (modeldeploy_requests_total{{{SELECT},code=~"5.."}})'
        f" / sum by (revision) (modeldeploy_requests_total{{{SELECT}}})",
        "revision",
    )
    # Stable had no 5xx series at all, so it is absent from the division: its ratio is 0.
    assert set(ratio) == {CANARY}
    assert ratio[CANARY] == pytest.approx(expected, abs=1e-9)
    assert all(r.status == 200 for r in stable)


def test_rate_based_error_ratio_as_the_operator_queries_it(observed: Observed) -> None:
    canary = [r for r in observed.replies if r.revision == CANARY]
    expected = sum(r.status >= 500 for r in canary) / len(canary)
    ratio = observed.prom.values_by(
        f'sum by (revision) (rate(modeldeploy_requests_total{{{SELECT},code=~"5.."}}[1m]))'
        f" / sum by (revision) (rate(modeldeploy_requests_total{{{SELECT}}}[1m]))",
        "revision",
    )
    # rate() drops each series' first sample, so the ratio is close to, not exactly, the count ratio.
    assert ratio[CANARY] == pytest.approx(expected, abs=0.12)


def test_latency_histogram_separates_the_slow_canary(observed: Observed) -> None:
    # Every canary answer sleeps 300 ms before it succeeds or fails: none can be in a bucket up to
    # 0.25 s, and the histogram counts every one of them. (A p99 bound would measure the machine:
    # on a loaded 2-core CI host a few answers took over 500 ms, which is the truth, not a bug.)
    counts = f"modeldeploy_request_duration_seconds_bucket{{{SELECT}}}"
    fast = observed.prom.values_by(f'sum by (revision) ({counts[:-1]},le="0.25"}})', "revision")
    total = observed.prom.values_by(f'sum by (revision) ({counts[:-1]},le="+Inf"}})', "revision")
    canary = sum(r.revision == CANARY for r in observed.replies)
    stable = sum(r.revision == STABLE for r in observed.replies)
    assert total == {CANARY: canary, STABLE: stable}
    assert fast[CANARY] == 0 and fast[STABLE] > stable / 2, fast
    # As the operator's latency checks read it: the medians fall on either side of 250 ms.
    median = observed.prom.values_by(
        f"histogram_quantile(0.5, sum by (le, revision) (rate({counts}[1m])))", "revision"
    )
    assert 0.25 <= median[CANARY] <= 0.5 and median[STABLE] < 0.25, median


def test_scraped_series_and_labels_match_the_design(observed: Observed) -> None:
    prom = observed.prom
    names = {r["metric"]["__name__"] for r in prom.query('{__name__=~"modeldeploy_.*",job="sidecars"}')}
    assert {
        "modeldeploy_requests_total",
        "modeldeploy_request_duration_seconds_bucket",
        "modeldeploy_inflight_requests",
        "modeldeploy_guard_trips_total",
        "modeldeploy_routing_generation",
    } <= names
    forwarded = prom.query(f'modeldeploy_requests_total{{route="canary",revision="{CANARY}"}}')
    assert forwarded and all(
        r["metric"]["model"] == "iris" and r["metric"]["namespace"] == "ml" for r in forwarded
    )
    buckets = {r["metric"]["le"] for r in prom.query("modeldeploy_request_duration_seconds_bucket")}
    assert {"0.001", "30.0", "+Inf"} <= buckets
    # Exactly the contract's buckets (modeldeploy.contract.metrics), which the operator's PromQL uses.
    assert {float(le) for le in buckets} == {*LATENCY_BUCKETS, math.inf}
