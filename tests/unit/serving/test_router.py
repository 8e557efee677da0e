"""Per-request decisions of the Router: who splits, loop prevention, guard latch, overrides."""

from __future__ import annotations

import random

import pytest
from multidict import CIMultiDict

from modeldeploy.contract.routing import Backend, CanaryRoute, GuardSettings, RoutingTable, ShadowRoute
from modeldeploy.serving.metrics import CANARY, LOCAL, SidecarMetrics
from modeldeploy.serving.router import FORWARDED_HEADER, Router, TableRejected
from modeldeploy.serving.settings import load_settings

ENV = {
    "MODELDEPLOY_MODEL": "iris",
    "MODELDEPLOY_NAMESPACE": "ml",
    "MODELDEPLOY_UPSTREAM": "http://127.0.0.1:3000",
    "MODELDEPLOY_ROUTING_FILE": "/nonexistent",
    "MODELDEPLOY_BACKEND_OVERRIDES": '{"bbbb": "http://127.0.0.1:9001"}',
}


def make_router(revision: str = "aaaa") -> tuple[Router, SidecarMetrics]:
    settings = load_settings([], ENV | {"MODELDEPLOY_REVISION": revision})
    metrics = SidecarMetrics("iris", "ml", revision)
    return Router(settings, metrics, random.Random(1)), metrics


def routing(weight: float = 100, percent: float = 0, **extra: object) -> RoutingTable:
    return RoutingTable(
        model="iris",
        namespace="ml",
        stable=Backend(revision="aaaa", url="http://iris-aaaa.ml.svc:8080"),
        canary=CanaryRoute(revision="bbbb", url="http://iris-bbbb.ml.svc:8080", weight=weight),
        shadow=ShadowRoute(revision="cccc", url="http://iris-cccc.ml.svc:8080", percent=percent),
        **extra,
    )


def sample(metrics: SidecarMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, {"model": "iris", "namespace": "ml", **labels})
    return -1.0 if value is None else value


def test_no_table_means_local() -> None:
    router, _ = make_router()
    assert router.decide(CIMultiDict()).primary == router.local


def test_stable_sidecar_splits_with_overridden_url() -> None:
    router, metrics = make_router()
    router.apply(routing(weight=100, percent=100, generation=3))
    decision = router.decide(CIMultiDict())
    assert decision.primary.route == CANARY
    assert decision.primary.url == "http://127.0.0.1:9001"
    assert sample(metrics, "modeldeploy_routing_generation", revision="aaaa") == 3


def test_only_requests_served_by_stable_are_shadowed() -> None:
    """Shadow answers are compared with stable's: requests sent to the canary are not copied."""
    router, _ = make_router()
    router.apply(routing(weight=30, percent=100))
    decisions = [router.decide(CIMultiDict()) for _ in range(400)]
    for decision in decisions:
        assert (decision.shadow is not None) == (decision.primary.route == LOCAL)
    shadow = next(d.shadow for d in decisions if d.shadow is not None)
    assert shadow.url == "http://iris-cccc.ml.svc:8080"
    assert 0 < sum(d.primary.route == CANARY for d in decisions) < 400


@pytest.mark.parametrize("revision", ["bbbb", "cccc"])
def test_non_stable_sidecars_serve_locally(revision: str) -> None:
    router, _ = make_router(revision)
    router.apply(routing(weight=100, percent=100))
    decision = router.decide(CIMultiDict())
    assert decision.primary.route == LOCAL and decision.shadow is None


def test_forwarded_requests_are_never_forwarded_again() -> None:
    router, _ = make_router()
    router.apply(routing(weight=100, percent=100))
    decision = router.decide(CIMultiDict({FORWARDED_HEADER: "aaaa"}))
    assert decision.primary.route == LOCAL and decision.shadow is None


def test_table_for_another_model_is_rejected() -> None:
    router, _ = make_router()
    with pytest.raises(TableRejected, match="ml/other"):
        router.apply(routing().model_copy(update={"model": "other"}))
    assert router.table is None


def test_guard_latches_until_canary_changes() -> None:
    router, metrics = make_router()
    router.apply(routing(weight=100, guard=GuardSettings(window=4, max_error_ratio=0.5, min_requests=2)))
    assert not router.record_canary("bbbb", failed=True)
    assert router.record_canary("bbbb", failed=True)
    assert router.decide(CIMultiDict()).primary.route == LOCAL
    assert sample(metrics, "modeldeploy_guard_trips_total", revision="bbbb") == 1
    assert sample(metrics, "modeldeploy_guard_tripped", revision="bbbb") == 1
    # Same canary, new generation and weight: still cut off.
    router.apply(
        routing(weight=50, generation=2, guard=GuardSettings(window=4, max_error_ratio=0.5, min_requests=2))
    )
    assert all(router.decide(CIMultiDict()).primary.route == LOCAL for _ in range(50))
    # The operator removes the canary, then a new canary revision gets a fresh guard.
    router.apply(routing(weight=100).model_copy(update={"canary": None, "generation": 3}))
    assert sample(metrics, "modeldeploy_guard_tripped", revision="bbbb") == 0
    fresh = CanaryRoute(revision="dddd", url="http://iris-dddd.ml.svc:8080", weight=100)
    router.apply(routing().model_copy(update={"canary": fresh, "generation": 4}))
    assert router.decide(CIMultiDict()).primary.revision == "dddd"


def test_sticky_header_pins_a_key() -> None:
    router, _ = make_router()
    router.apply(routing(weight=50, sticky_header="X-User"))
    for user in (f"user-{i}" for i in range(40)):
        first = router.decide(CIMultiDict({"x-user": user})).primary.route
        assert all(router.decide(CIMultiDict({"X-User": user})).primary.route == first for _ in range(10))
