"""What "equal" means for two answers (modeldeploy.contract.comparison)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.contract.comparison import json_equal, responses_match

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=15,
)


@given(json_values)
def test_a_value_equals_itself_in_both_modes(value: Any) -> None:
    assert json_equal(value, value, "exact", 0)
    assert json_equal(value, value, "numeric", 0)


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=10))
def test_numeric_mode_accepts_shifts_within_tolerance(values: list[float]) -> None:
    shifted = [v + 1e-7 for v in values]
    assert json_equal({"p": values}, {"p": shifted}, "numeric", 1e-6)


@pytest.mark.parametrize(
    ("a", "b", "mode", "tolerance", "equal"),
    [
        ([0.5, 0.5], [0.5, 0.5000001], "numeric", 1e-6, True),
        ([0.5, 0.5], [0.5, 0.51], "numeric", 1e-6, False),
        ([0.5, 0.5], [0.5, 0.5000001], "exact", 1e-6, False),
        (1, 1.0, "exact", 0, True),
        (True, 1, "numeric", 1, False),
        ({"a": 1}, {"a": 1, "b": 2}, "numeric", 1, False),
        ([1, 2], [1, 2, 3], "numeric", 1, False),
        ("setosa", "setosa", "exact", 0, True),
        ("setosa", "virginica", "numeric", 1e9, False),
        (None, 0, "numeric", 1, False),
        (float("nan"), float("nan"), "numeric", 0, True),
        (float("inf"), 1e308, "numeric", 1e308, False),
    ],
)
def test_json_equal_cases(a: Any, b: Any, mode: Any, tolerance: float, equal: bool) -> None:
    assert json_equal(a, b, mode, tolerance) is equal


def test_answers_match_only_with_equal_status_and_equal_bodies() -> None:
    primary = json.dumps([[0.98, 0.02]]).encode()
    shadow = json.dumps([[0.9800000001, 0.0199999999]], indent=2).encode()
    assert responses_match((200, primary), (200, shadow), "numeric", 1e-6)
    assert not responses_match((200, primary), (200, shadow), "exact", 1e-6)
    assert not responses_match((200, primary), (500, primary), "numeric", 1)
    assert responses_match((200, b"ok"), (200, b"ok"), "exact", 0)
    assert not responses_match((200, b"[1]"), (200, b"\xff"), "numeric", 1)
