"""Step cursor, replica sizing and the action annotation protocol."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.operator.planner.actions import (
    ACTIONS,
    ActionError,
    ActionRequest,
    action_value,
    parse_action,
)
from modeldeploy.operator.planner.sizing import canary_replicas, shadow_replicas, share_replicas
from modeldeploy.operator.planner.steps import (
    NO_TRAFFIC,
    Traffic,
    describe_step,
    is_pause,
    is_promoting,
    new_revision_replicas,
    step_duration,
    step_traffic,
)
from tests.unit.planner.harness import make_spec

STEPS = make_spec().rollout.steps  # shadow 100 % 2m, canary 10 % 1m, canary 50 % 2m, pause {}


@pytest.mark.parametrize(
    ("replicas", "percent", "pods"),
    [
        (4, 10, 1),
        (4, 5, 1),
        (4, 50, 2),
        (4, 100, 4),
        (20, 5, 1),  # exactly 1, not 2 (float noise)
        (3, 10, 1),  # 0.30000000000000004 -> 1
        (10, 33.4, 4),
        (10, 0, 1),  # at least one pod
        (0, 50, 0),
        (1000, 0.1, 1),
    ],
)
def test_share_replicas(replicas: int, percent: float, pods: int) -> None:
    assert share_replicas(replicas, percent) == pods
    assert canary_replicas(replicas, percent) == pods == shadow_replicas(replicas, percent)


def test_share_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        share_replicas(4, 101)
    with pytest.raises(ValueError, match=">= 0"):
        share_replicas(-1, 10)


@given(st.integers(1, 1000), st.floats(0, 100, allow_nan=False))
def test_share_never_more_than_needed(replicas: int, percent: float) -> None:
    pods = share_replicas(replicas, percent)
    assert 1 <= pods <= replicas
    assert pods >= replicas * percent / 100 - 1e-6
    assert pods - 1 < max(replicas * percent / 100, 1)


@pytest.mark.parametrize(
    ("index", "traffic", "pods", "duration"),
    [
        (0, Traffic(shadow_percent=100), 4, timedelta(minutes=2)),
        (1, Traffic(canary_weight=10), 1, timedelta(minutes=1)),
        (2, Traffic(canary_weight=50), 2, timedelta(minutes=2)),
        (3, Traffic(canary_weight=50), 2, None),  # a pause keeps the previous split
        (4, Traffic(canary_weight=50), 4, None),  # promoting: full size
    ],
)
def test_step_cursor(index: int, traffic: Traffic, pods: int, duration: timedelta | None) -> None:
    assert step_traffic(STEPS, index) == traffic
    assert new_revision_replicas(STEPS, index, 4) == pods
    assert step_duration(STEPS, index) == duration
    assert is_promoting(STEPS, index) == (index == 4)
    assert is_pause(STEPS, index) == (index == 3)


def test_a_leading_pause_has_no_traffic_and_one_pod() -> None:
    steps = make_spec(
        rollout={"steps": [{"pause": {"duration": "1m"}}, {"canary": {"weight": 20, "duration": "1m"}}]}
    ).rollout.steps
    assert step_traffic(steps, 0) == NO_TRAFFIC
    assert new_revision_replicas(steps, 0, 10) == 1
    assert step_duration(steps, 0) == timedelta(minutes=1)


def test_describe_step() -> None:
    assert [describe_step(STEPS, i) for i in range(5)] == [
        "step 1/4 (shadow 100% for 2m)",
        "step 2/4 (canary 10% for 1m)",
        "step 3/4 (canary 50% for 2m)",
        "step 4/4 (pause until promoted)",
        "promotion",
    ]


@pytest.mark.parametrize(
    ("value", "action", "request_id"),
    [
        ("promote", "promote", ""),
        ("promote@2026-11-22T10:00:00Z", "promote", "2026-11-22T10:00:00Z"),
        (" Abort@x ", "abort", "x"),
        ("promote-full@1", "promote-full", "1"),
        ("retry@a@b", "retry", "a@b"),
    ],
)
def test_parse_action(value: str, action: str, request_id: str) -> None:
    assert parse_action(value) == ActionRequest(action, request_id)


@pytest.mark.parametrize("value", ["", "@1", "promot", "rollback@1", "pause it"])
def test_parse_action_rejects_unknown(value: str) -> None:
    with pytest.raises(
        ActionError, match="expected one of: promote, promote-full, abort, retry, pause, resume"
    ):
        parse_action(value)


def test_action_value_round_trips() -> None:
    for action in ACTIONS:
        assert parse_action(action_value(action, "id-1")) == ActionRequest(action, "id-1")
    with pytest.raises(ActionError, match="unknown action"):
        action_value("nope", "1")
    with pytest.raises(ActionError, match="without spaces"):
        action_value("promote", "a b")
