from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.operator.api.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("30s", timedelta(seconds=30)),
        ("2m", timedelta(minutes=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("0.5s", timedelta(milliseconds=500)),
        ("1h0m5s", timedelta(hours=1, seconds=5)),
        ("100us", timedelta(microseconds=100)),
        ("100µs", timedelta(microseconds=100)),
        ("1500ns", timedelta(microseconds=1)),  # sub-microsecond parts are truncated
        ("0s", timedelta(0)),
        ("48h", timedelta(days=2)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5 minutes", "invalid duration '5 minutes': use a duration such as 250ms, 30s, 2m or 1h30m"),
        ("1d", "days are not a unit: use e.g. 24h"),
        ("-3s", "invalid duration '-3s'"),
        ("30", "invalid duration '30'"),
        ("", "invalid duration ''"),
        ("1.s", "invalid duration '1.s'"),
        ("s", "invalid duration 's'"),
        ("1m 30s", "invalid duration '1m 30s'"),
    ],
)
def test_parse_duration_rejects_with_a_hint(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="use a duration such as") as err:
        parse_duration(text)
    assert message in str(err.value)


def test_parse_duration_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="duration must be a string"):
        parse_duration(30)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(hours=1, seconds=1, milliseconds=500), "1h1.5s"),
        (timedelta(days=1), "24h"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
def test_format_then_parse_is_exact(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value
