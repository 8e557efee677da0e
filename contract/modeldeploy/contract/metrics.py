"""The sidecar's metric vocabulary: names and label values its readers select on.

Metric names, labels and buckets are a public interface of the sidecar (docs/serving.md): the
operator's analysis, the dashboard, the chart's rules and users' dashboards query them. The
sidecar (Rust, `sidecar/src/metrics.rs`) exposes them; readers take the names from here, and the
conformance suite (tests/serving) checks that the binary's exposition agrees.
"""

from __future__ import annotations

REQUESTS = "modeldeploy_requests_total"
DURATION = "modeldeploy_request_duration_seconds"
SHADOW = "modeldeploy_shadow_requests_total"
GUARD = "modeldeploy_guard_tripped"
FEATURE_VALUES = "modeldeploy_input_feature_value"
FEATURE_SKIPPED = "modeldeploy_input_feature_skipped_total"
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Upper bounds (seconds) of DURATION: 1 ms (a cached or trivial model) to 30 s (the default
upstream timeout)."""
LOCAL = "local"
"""`route` of requests served by the pod's own model; `canary`: forwarded by a stable sidecar."""
CANARY = "canary"
ERROR_CODES = "5.."
"""The `code` values that count as the revision's errors (a client's 4xx or 499 does not)."""
COMPARED_RESULTS = ("match", "mismatch", "error")
"""Shadow results that count as compared; `dropped` copies were never sent (the stable sidecar was busy)."""


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal for `value` (backslash and quote escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
