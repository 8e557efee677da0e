"""Prediction log lines: trace ids, redaction at any depth, size cap, line format."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

from modeldeploy.serving.prediction_record import (
    REDACTED,
    TOO_DEEP,
    Prediction,
    format_line,
    loggable_body,
    redact,
    rfc3339,
    trace_id,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, (TRACE, False)),
        ({"Traceparent": f"00-{TRACE.upper()}-00f067aa0ba902b7-01", "x-request-id": "r1"}, (TRACE, False)),
        ({"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01", "x-request-id": "r1"}, ("r1", False)),
        ({"traceparent": f"ff-{TRACE}-00f067aa0ba902b7-01", "X-Request-Id": "r2"}, ("r2", False)),
        ({"traceparent": "garbage", "x-request-id": " r3 "}, ("r3", False)),
    ],
)
def test_trace_id_sources(headers: dict[str, str], expected: tuple[str, bool]) -> None:
    assert trace_id(CIMultiDict(headers)) == expected


def test_trace_id_is_generated_when_absent() -> None:
    first, generated = trace_id(CIMultiDict())
    assert generated and len(first) == 32 and int(first, 16) >= 0
    assert trace_id(CIMultiDict())[0] != first


def test_redaction_at_any_depth_leaves_the_input_alone() -> None:
    doc = {"ssn": "1", "user": {"ssn": "2", "name": "x", "cards": [{"ssn": 3, "pin": 4}]}, "ok": [1, "ssn"]}
    out = redact(doc, {"ssn", "pin"})
    assert out == {
        "ssn": REDACTED,
        "user": {"ssn": REDACTED, "name": "x", "cards": [{"ssn": REDACTED, "pin": REDACTED}]},
        "ok": [1, "ssn"],  # values are not names: only members are redacted
    }
    assert doc["ssn"] == "1"


def test_small_json_body_is_logged_as_json() -> None:
    assert loggable_body(b'{"features": [[1, 2]]}', (), 4096) == ({"features": [[1, 2]]}, False)
    assert loggable_body(None, (), 10) == (None, False)
    assert loggable_body(b"", (), 10) == ("", False)


def test_large_body_is_cut_after_redaction() -> None:
    body = json.dumps({"secret": "s" * 100, "features": list(range(100))}).encode()
    value, truncated = loggable_body(body, ("secret",), 40)
    assert truncated and isinstance(value, str)
    assert value == '{"secret":"[REDACTED]","features":[0,1,2'
    assert "sss" not in value


def test_redaction_can_bring_a_body_under_the_cap() -> None:
    body = json.dumps({"secret": "s" * 100}).encode()
    assert loggable_body(body, ("secret",), 40) == ({"secret": REDACTED}, False)


def test_text_bodies_are_capped_without_splitting_characters() -> None:
    assert loggable_body(b"plain text", ("x",), 100) == ("plain text", False)
    value, truncated = loggable_body("ééé".encode(), (), 3)  # 6 bytes; byte 3 is inside the 2nd é
    assert (value, truncated) == ("é", True)


def test_rfc3339_utc_milliseconds() -> None:
    assert rfc3339(0.0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1795395000.1234) == "2026-11-23T00:50:00.123Z"


def test_line_has_the_agreed_fields() -> None:
    prediction = Prediction(
        timestamp=0.5,
        revision="bbbb",
        route="canary",
        latency_seconds=0.0123456,
        status=200,
        trace_id=TRACE,
        request=b'{"features": [[5.1, 3.5, 1.4, 0.2]], "ssn": "123"}',
        response=b'["setosa"]',
    )
    line = format_line(prediction, "iris", "ml", ("ssn",), 4096)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "ts": "1970-01-01T00:00:00.500Z",
        "model": "iris",
        "namespace": "ml",
        "revision": "bbbb",
        "route": "canary",
        "latencyMs": 12.346,
        "status": 200,
        "traceId": TRACE,
        "request": {"features": [[5.1, 3.5, 1.4, 0.2]], "ssn": REDACTED},
        "response": ["setosa"],
        "truncated": False,
    }


def test_bodies_too_deep_to_redact_are_not_logged() -> None:
    deep = b'{"ssn": "1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert loggable_body(deep, ("ssn",), 4096) == (TOO_DEEP, True)
