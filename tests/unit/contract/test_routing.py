"""The routing table wire format shared with the operator (modeldeploy.contract.routing)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from modeldeploy.contract.routing import (
    ROUTING_KEY,
    Backend,
    CanaryRoute,
    GuardSettings,
    RoutingTable,
    ShadowRoute,
    check_json_schema,
    routing_configmap_name,
)


def table(**extra: object) -> RoutingTable:
    return RoutingTable(
        model="iris",
        namespace="ml",
        stable=Backend(revision="aaaa", url="http://iris-aaaa.ml.svc:8080"),
        **extra,
    )


def test_names() -> None:
    assert ROUTING_KEY == "routing.json"
    assert routing_configmap_name("iris") == "iris-routing"
    with pytest.raises(ValueError, match="empty"):
        routing_configmap_name("")


def test_camel_case_on_the_wire_and_round_trip() -> None:
    t = table(
        canary=CanaryRoute(revision="bbbb", url="http://iris-bbbb.ml.svc:8080/", weight=10),
        shadow=ShadowRoute(revision="cccc", url="http://iris-cccc.ml.svc:8080", percent=100),
        sticky_header="X-ModelDeploy-Key",
        guard=GuardSettings(window=10, max_error_ratio=0.2, min_requests=3),
        generation=7,
    )
    wire = json.loads(t.to_json())
    assert wire["stickyHeader"] == "x-modeldeploy-key"
    assert wire["guard"] == {"window": 10, "maxErrorRatio": 0.2, "minRequests": 3}
    assert wire["canary"]["url"] == "http://iris-bbbb.ml.svc:8080"
    assert RoutingTable.from_json(t.to_json()) == t


def test_operator_may_use_aliases_or_field_names() -> None:
    by_alias = RoutingTable.model_validate(
        {"model": "m", "namespace": "n", "stable": {"revision": "r", "url": "http://x"}, "stickyHeader": "k"}
    )
    assert by_alias.sticky_header == "k"
    assert GuardSettings(maxErrorRatio=0.3).max_error_ratio == 0.3


def test_defaults_match_the_agreed_interface() -> None:
    t = table()
    assert (t.canary, t.shadow, t.sticky_header, t.generation) == (None, None, None, 0)
    assert (t.comparison.mode, t.comparison.tolerance) == ("numeric", 1e-6)
    assert (t.guard.window, t.guard.max_error_ratio, t.guard.min_requests) == (20, 0.5, 5)


def test_unknown_fields_from_a_newer_operator_are_ignored() -> None:
    raw = json.loads(table().to_json())
    raw["futureField"] = {"x": 1}
    assert RoutingTable.model_validate(raw) == table()


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"canary": {"revision": "b", "url": "http://b", "weight": 101}}, "less than or equal to 100"),
        ({"shadow": {"revision": "c", "url": "http://c", "percent": -1}}, "greater than or equal to 0"),
        ({"stable": {"revision": "a", "url": "iris-aaaa:8080"}}, "must start with http"),
        ({"canary": {"revision": "aaaa", "url": "http://b", "weight": 5}}, "is the stable revision"),
        ({"guard": {"window": 3, "minRequests": 5}}, "must not exceed window"),
        ({"stickyHeader": "bad header"}, "plain HTTP header name"),
        ({"comparison": {"mode": "fuzzy"}}, "'exact' or 'numeric'"),
        (
            {"dataPath": {"contract": {"schema": {"properties": {"features": {"type": "arrayy"}}}}}},
            r"not a valid JSON Schema at /properties/features/type",
        ),
        (
            {"dataPath": {"drift": {"features": [{"name": "a", "path": "/x", "buckets": [1]}] * 2}}},
            "feature name 'a' appears twice",
        ),
        (
            {"dataPath": {"drift": {"features": [{"name": "a", "path": "features/0", "buckets": [1]}]}}},
            "starts with '/'",
        ),
    ],
)
def test_bad_tables_are_rejected_with_the_reason(patch: dict[str, object], message: str) -> None:
    raw = json.loads(table().to_json()) | patch
    with pytest.raises(ValidationError, match=message):
        RoutingTable.from_json(json.dumps(raw))


def test_a_contract_schema_is_checked_in_its_own_dialect() -> None:
    # draft 4: exclusiveMaximum is a boolean (a number in 2020-12, the default dialect)
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 5, "exclusiveMaximum": True}
    check_json_schema(draft4)
    with pytest.raises(ValueError, match="not a valid JSON Schema at /exclusiveMaximum"):
        check_json_schema({"maximum": 5, "exclusiveMaximum": True})
