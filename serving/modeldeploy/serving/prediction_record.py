"""One prediction log line: trace id, redaction, size cap, and the JSON line itself (pure functions).

Bodies that parse as JSON are logged as JSON with every member whose name is in the redaction list
replaced by "[REDACTED]", at any depth. A body (after redaction) longer than `maxBodyBytes` when
serialised is logged as a string holding its first `maxBodyBytes` bytes, and the line says
`"truncated": true`; redaction happens first, so a cut never exposes a redacted value. Bodies that
are not JSON are logged as text (invalid UTF-8 replaced), capped the same way; redaction cannot
apply to them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

REDACTED = "[REDACTED]"
TOO_DEEP = "[NOT LOGGED: nested too deeply to redact]"

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32
REQUEST_ID_MAX = 200
"""Longest x-request-id taken as the trace id (longer ones are cut)."""


def trace_id(headers: Mapping[str, str]) -> tuple[str, bool]:
    """(trace id, generated?): W3C traceparent's trace-id, else x-request-id, else a new UUID (hex).

    `headers` must be case-insensitive (aiohttp's are). A traceparent that is malformed, version
    ff or has the all-zero trace-id is ignored, as the W3C spec asks.
    """
    parent = headers.get("traceparent")
    if parent is not None:
        match = _TRACEPARENT.match(parent.strip().lower())
        if match is not None and not parent.strip().lower().startswith("ff") and match[1] != _ZERO_TRACE:
            return match[1], False
    request_id = headers.get("x-request-id", "").strip()
    if request_id:
        return request_id[:REQUEST_ID_MAX], False
    return uuid.uuid4().hex, True


def redact(value: Any, names: Collection[str]) -> Any:
    """A copy of the JSON value with members named in `names` replaced by REDACTED, at any depth."""
    if not names:
        return value
    if isinstance(value, dict):
        return {k: REDACTED if k in names else redact(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item, names) for item in value]
    return value


def _cut(data: bytes, limit: int) -> str:
    """The first `limit` bytes as text, not splitting a UTF-8 sequence."""
    return data[:limit].decode("utf-8", errors="ignore")


def loggable_body(body: bytes | None, redact_names: Collection[str], limit: int) -> tuple[Any, bool]:
    """(value for the log line, truncated?) for a request or response body (None: not available)."""
    if body is None:
        return None, False
    if not body:
        return "", False
    try:
        document = json.loads(body)
    except RecursionError:  # JSON, but too deep to parse, hence to redact: not logged
        return TOO_DEEP, True
    except (ValueError, UnicodeDecodeError):  # logged as text
        text = body.decode("utf-8", errors="replace")
        encoded = text.encode("utf-8")
        return (text, False) if len(encoded) <= limit else (_cut(encoded, limit), True)
    if len(body) <= limit and not redact_names:
        return document, False
    try:
        cleaned = redact(document, redact_names)
        serialised = json.dumps(cleaned, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except RecursionError:
        return TOO_DEEP, True
    if len(serialised) <= limit:
        return cleaned, False
    return _cut(serialised, limit), True


def rfc3339(timestamp: float) -> str:
    """UTC with milliseconds and a Z, e.g. 2026-11-23T01:02:03.456Z."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the request path hands over (cheap to make); the writer turns it into a line."""

    timestamp: float  # time.time() when the request arrived
    revision: str  # the revision that answered
    route: str  # local | canary
    latency_seconds: float
    status: int
    trace_id: str
    request: bytes
    response: bytes | None  # None when the response was streamed and too long to keep


def format_line(
    prediction: Prediction, model: str, namespace: str, redact_names: Collection[str], limit: int
) -> str:
    """The JSON line (with its newline) for one sampled prediction."""
    request, request_cut = loggable_body(prediction.request, redact_names, limit)
    response, response_cut = loggable_body(prediction.response, redact_names, limit)
    record = {
        "ts": rfc3339(prediction.timestamp),
        "model": model,
        "namespace": namespace,
        "revision": prediction.revision,
        "route": prediction.route,
        "latencyMs": round(prediction.latency_seconds * 1000, 3),
        "status": prediction.status,
        "traceId": prediction.trace_id,
        "request": request,
        "response": response,
        "truncated": request_cut or response_cut,
    }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
