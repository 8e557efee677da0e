"""Comparison of a shadow response with the primary response.

Bodies that both parse as JSON are compared structurally: in "exact" mode values must be equal
(1 and 1.0 are equal, as in JSON); in "numeric" mode numbers may differ by at most `tolerance`
(absolute), everything else must be equal. Bodies that are not JSON are compared byte for byte.
The status codes must be equal as well.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Any, Literal

_MISSING = object()


class Verdict(StrEnum):
    """The label values of `modeldeploy_shadow_requests_total{result}`."""

    MATCH = "match"
    MISMATCH = "mismatch"
    ERROR = "error"
    DROPPED = "dropped"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(a: Any, b: Any, mode: Literal["exact", "numeric"], tolerance: float) -> bool:
    """Structural equality of two parsed JSON values, numbers within `tolerance` in numeric mode."""
    if _is_number(a) and _is_number(b):
        if mode == "exact":
            return bool(a == b)
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        if math.isinf(fa) or math.isinf(fb):
            return fa == fb
        return abs(fa - fb) <= tolerance
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return False
        return all(json_equal(a[k], b[k], mode, tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        return all(json_equal(x, y, mode, tolerance) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False
    return bool(a == b)


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _MISSING


def compare_responses(
    primary: tuple[int, bytes],
    shadow: tuple[int, bytes],
    mode: Literal["exact", "numeric"],
    tolerance: float,
) -> Verdict:
    """MATCH or MISMATCH for two (status, body) pairs (a failed shadow is the caller's ERROR)."""
    (p_status, p_body), (s_status, s_body) = primary, shadow
    if p_status != s_status:
        return Verdict.MISMATCH
    if p_body == s_body:
        return Verdict.MATCH
    p_json, s_json = _parse(p_body), _parse(s_body)
    if p_json is _MISSING or s_json is _MISSING:
        return Verdict.MISMATCH
    return Verdict.MATCH if json_equal(p_json, s_json, mode, tolerance) else Verdict.MISMATCH
