"""What "equal" means when two answers are compared (a routing table's `comparison` settings).

Bodies that both parse as JSON are compared structurally: in "exact" mode values must be equal
(1 and 1.0 are equal, as in JSON); in "numeric" mode numbers may differ by at most `tolerance`
(absolute), everything else must be equal. Bodies that are not JSON are compared byte for byte.
The status codes must be equal as well. The sidecar compares shadow answers this way; the
operator's golden checks compare an expected body with the numeric rule.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

Mode = Literal["exact", "numeric"]

_MISSING = object()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(a: Any, b: Any, mode: Mode, tolerance: float) -> bool:
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


def responses_match(
    primary: tuple[int, bytes], other: tuple[int, bytes], mode: Mode, tolerance: float
) -> bool:
    """Whether two (status, body) answers are equal under `mode` and `tolerance`."""
    (p_status, p_body), (o_status, o_body) = primary, other
    if p_status != o_status:
        return False
    if p_body == o_body:
        return True
    p_json, o_json = _parse(p_body), _parse(o_body)
    if p_json is _MISSING or o_json is _MISSING:
        return False
    return json_equal(p_json, o_json, mode, tolerance)
