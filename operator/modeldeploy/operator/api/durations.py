"""Kubernetes duration strings ("250ms", "30s", "2m", "1h30m"), as Go's time.ParseDuration reads them.

The CRD accepts the same subset of Go's syntax that `parse_duration` accepts: one or more
`<number><unit>` parts, no sign, units ns, us (or µs), ms, s, m, h. Days are not a unit.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
"""Regular expression a duration string must match (also used by the CRD's CEL rules)."""

DURATION_EXAMPLES = "250ms, 30s, 2m or 1h30m"

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_WHOLE = re.compile(DURATION_PATTERN)
_UNIT_SECONDS: dict[str, Decimal] = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}


def parse_duration(text: str) -> timedelta:
    """Parse a Kubernetes/Go duration string into a timedelta (sub-microsecond parts are truncated).

    Raises ValueError with a message saying what is accepted, e.g. for "5 minutes", "1d" or "-3s".
    """
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string such as {DURATION_EXAMPLES}, got {text!r}")
    if not _WHOLE.match(text):
        hint = " (days are not a unit: use e.g. 24h)" if re.search(r"[0-9]d", text) else ""
        raise ValueError(f"invalid duration {text!r}: use a duration such as {DURATION_EXAMPLES}{hint}")
    seconds = sum(
        (Decimal(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text)),
        start=Decimal(0),
    )
    microseconds = int(seconds * 1_000_000)
    return timedelta(microseconds=microseconds)


def format_duration(value: timedelta) -> str:
    """Format a non-negative timedelta as a duration string that `parse_duration` reads back exactly.

    >>> format_duration(timedelta(minutes=90))
    '1h30m'
    """
    total_us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if total_us < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    if total_us == 0:
        return "0s"
    hours, rest = divmod(total_us, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if micros and micros % 1000 == 0 and not seconds:
        parts.append(f"{micros // 1000}ms")
    elif micros:
        parts.append(f"{seconds}.{micros:06d}".rstrip("0") + "s")
    elif seconds:
        parts.append(f"{seconds}s")
    return "".join(parts)
