"""Reusable field types of the API: durations, quantities, bounded strings."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints

from modeldeploy.operator.api.cel import CelRule, SchemaExtra, cel_raw_string
from modeldeploy.operator.api.durations import DURATION_EXAMPLES, DURATION_PATTERN, parse_duration

MAX_DURATION_LENGTH = 32


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_positive_duration(value: str) -> str:
    if parse_duration(value).total_seconds() <= 0:
        raise ValueError(f"duration must be greater than zero, got {value!r}")
    return value


_DURATION_RULE = CelRule(
    f"self.matches({cel_raw_string(DURATION_PATTERN)})",
    f"must be a duration such as {DURATION_EXAMPLES}",
)
# Only judged on well-formed durations, so a malformed one gets one message, not two.
_POSITIVE_RULE = CelRule(
    f"!self.matches({cel_raw_string(DURATION_PATTERN)}) || self.matches('[1-9]')",
    "must be greater than zero",
)

Duration = Annotated[
    str,
    StringConstraints(max_length=MAX_DURATION_LENGTH),
    AfterValidator(_check_duration),
    _DURATION_RULE,
]
"""A Kubernetes duration string ("250ms", "30s", "2m", "1h30m"); zero ("0s") allowed."""

PositiveDuration = Annotated[
    str,
    StringConstraints(max_length=MAX_DURATION_LENGTH),
    AfterValidator(_check_duration),
    AfterValidator(_check_positive_duration),
    _DURATION_RULE,
    _POSITIVE_RULE,
]
"""A Kubernetes duration string greater than zero."""


QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY = re.compile(QUANTITY_PATTERN)


def _quantity_to_string(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"a resource quantity is a number or a string such as 500m or 1Gi, got {value!r}")
    if isinstance(value, int | float):
        return str(value)
    return value


def _check_quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"invalid resource quantity {value!r}: use e.g. 500m, 2, 1.5, 512Mi or 1Gi")
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_string),
    AfterValidator(_check_quantity),
    SchemaExtra(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "maxLength": 64,
        }
    ),
    CelRule(
        f"type(self) != string || self.matches({cel_raw_string(QUANTITY_PATTERN)})",
        "must be a quantity such as 500m, 2, 1.5, 512Mi or 1Gi",
    ),
]
"""A Kubernetes resource quantity (`500m`, `2`, `512Mi`); numbers are kept as their string form."""


def bounded(max_length: int, min_length: int = 0) -> StringConstraints:
    """String length bounds (the API server needs a maxLength to bound the cost of CEL rules)."""
    return StringConstraints(min_length=min_length, max_length=max_length)


NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
HEADER_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
"""An HTTP header field name (RFC 9110 token)."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]
"""A Kubernetes object name (ConfigMap, Secret)."""
