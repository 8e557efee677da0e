"""The sidecar's metric vocabulary: names and label values its readers select on.

Metric names, labels and buckets are a public interface of the sidecar (docs/serving.md): the
operator's analysis, the dashboard, the chart's rules and users' dashboards query them. The
Python and Rust sidecars expose them; readers take the names from here.
"""

from __future__ import annotations

REQUESTS = "modeldeploy_requests_total"
DURATION = "modeldeploy_request_duration_seconds"
SHADOW = "modeldeploy_shadow_requests_total"
GUARD = "modeldeploy_guard_tripped"
FEATURE_VALUES = "modeldeploy_input_feature_value"
ERROR_CODES = "5.."
"""The `code` values that count as the revision's errors (a client's 4xx or 499 does not)."""
COMPARED_RESULTS = ("match", "mismatch", "error")
"""Shadow results that count as compared; `dropped` copies were never sent (the stable sidecar was busy)."""


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal for `value` (backslash and quote escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
