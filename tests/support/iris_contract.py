"""The iris example's request contract: a JSON object with `features`, rows of 4 numbers, and an
optional string `tag` (a field the model ignores, so a wrong type violates only the contract)."""

from __future__ import annotations

from typing import Any

IRIS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["features"],
    "properties": {
        "features": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
        },
        "tag": {"type": "string"},
    },
}
