"""The operator's own Prometheus metrics (served on --metrics-port at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "modeldeploy_operator_reconciles_total",
    "Reconciles of ModelDeployments, by result (ok|retry|error).",
    ["namespace", "model", "result"],
)
RECONCILE_SECONDS = Histogram(
    "modeldeploy_operator_reconcile_duration_seconds",
    "Time to reconcile one ModelDeployment (read, analyse, plan, apply).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ROLLOUTS_IN_PROGRESS = Gauge(
    "modeldeploy_operator_rollouts_in_progress",
    "ModelDeployments whose rollout is in progress or paused.",
    ["namespace", "model"],
)
ROLLOUT_PHASE = Gauge(
    "modeldeploy_operator_rollout_phase",
    "1 for the phase a ModelDeployment is in (status.phase), 0 for every other phase.",
    ["namespace", "model", "phase"],
)
PROMOTIONS = Counter(
    "modeldeploy_operator_promotions_total", "Revisions promoted to stable.", ["namespace", "model"]
)
ROLLBACKS = Counter(
    "modeldeploy_operator_rollbacks_total",
    "Revisions rolled back, by reason.",
    ["namespace", "model", "reason"],
)
GOLDEN_CHECKS = Counter(
    "modeldeploy_golden_checks_total",
    "Golden-request checks, by target (gate: a new revision before traffic; periodic: stable) and result.",
    ["namespace", "model", "revision", "target", "result"],
)
