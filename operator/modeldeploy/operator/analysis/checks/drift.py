"""Input drift gate: PSI of the new revision's inputs against stable's, per feature.

For every feature named in `spec.guardrails.drift.features`, when `maxInputPSI` is set, a run judges
the metric `inputPSI/<feature>` from the two revisions' histogram bucket counts over the window:

1. either revision observed fewer than `minRequests` values of the feature in the window (including
   none at all: no series) → inconclusive; a quiet window says nothing about drift;
2. PSI > maxInputPSI and Pearson's chi-square test of homogeneity says the two distributions differ
   at `confidence` → fail;
3. PSI > maxInputPSI but the difference is not significant → inconclusive. PSI of small samples is
   biased upwards (about (buckets - 1) * (1/n_new + 1/n_stable)): two samples of 50 values drawn from
   one distribution over 7 buckets give PSI 0.28 on average and exceed 0.2 in more than half of the
   windows; with the test, such windows fail about 5% of the time (alpha);
4. otherwise → pass.

Query: the sidecar's `modeldeploy_input_feature_value_bucket{feature, le}` histogram of each
feature, counted by the sidecar that served the request (no `route` label: the canary's own sidecar
for forwarded requests, the shadow's for shadow copies). The status shows one query per feature
with both revisions side by side; the run sends one query for every feature (see `queries.Plan`).
See `psi` for the formula and the smoothing of empty buckets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from modeldeploy.contract.metrics import FEATURE_VALUES, promql_string
from modeldeploy.operator.analysis import psi, stats
from modeldeploy.operator.analysis.checks.base import Answers, Check, Run
from modeldeploy.operator.analysis.judgement import Judge, inconclusive
from modeldeploy.operator.analysis.queries import Plan, RevisionSelector, both_revisions
from modeldeploy.operator.analysis.results import MetricVerdict, Verdict
from modeldeploy.operator.analysis.stats import p_text
from modeldeploy.operator.api.guardrails import DriftSpec

METRIC_PREFIX = "inputPSI/"


def metric_name(feature: str) -> str:
    """The result name of a feature's PSI, e.g. "inputPSI/sepal_length"."""
    return f"{METRIC_PREFIX}{feature}"


@dataclass(frozen=True, slots=True)
class DriftGate:
    """What the analysis needs from `spec.guardrails.drift`: the feature names and `maxInputPSI`."""

    features: tuple[str, ...]
    max_psi: float

    def __post_init__(self) -> None:
        if not self.max_psi >= 0 or math.isinf(self.max_psi):
            raise ValueError(f"maxInputPSI must be a finite number >= 0, got {self.max_psi}")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"drift feature names must be unique, got {list(self.features)}")


def gate_from_spec(spec: DriftSpec | None) -> DriftGate | None:
    """The gate of `spec.guardrails.drift`; None without drift features or without `maxInputPSI`."""
    if spec is None or spec.max_input_psi is None:
        return None
    return DriftGate(tuple(feature.name for feature in spec.features), spec.max_input_psi)


def feature_buckets_query(new: RevisionSelector, stable: RevisionSelector, feature: str, window: str) -> str:
    """Cumulative observations of one input feature per revision and histogram bucket in the window.

    One query for both revisions (`sum by (revision, le)`), so the status shows a query that puts
    them side by side. `+Inf` is every observed value.
    """
    matchers = both_revisions(new, stable, f"feature={promql_string(feature)}")
    return f"sum by (revision, le) (increase({FEATURE_VALUES}_bucket{matchers}[{window}]))"


def feature_buckets_sent(plan: Plan) -> str:
    """Every feature's buckets of both revisions (or of every ModelDeployment) in one query."""
    selector = plan.selector(f"{FEATURE_VALUES}_bucket")
    return f"sum {plan.by('feature', 'le')} (increase({selector}[{plan.window}]))"


def checks(run: Run) -> list[Check]:
    """One `inputPSI/<feature>` check per feature of the run's drift gate (none without a gate)."""
    gate = run.drift
    if gate is None:
        return []
    return [_feature_check(feature, gate.max_psi, run) for feature in gate.features]


def _feature_check(feature: str, max_psi: float, run: Run) -> Check:
    plan, judge = run.plan, run.judge
    shown, sent = (
        feature_buckets_query(plan.canary, plan.stable, feature, plan.window),
        feature_buckets_sent(plan),
    )
    new, old = plan.canary, plan.stable

    def psi_check(a: Answers) -> MetricVerdict:
        return judge_input_psi(
            feature,
            a.buckets(sent, new, feature=feature),
            a.buckets(sent, old, feature=feature),
            max_psi,
            judge,
            shown,
        )

    return Check(metric_name(feature), max_psi, shown, (sent,), psi_check)


@dataclass(frozen=True, slots=True)
class FeatureSample:
    """Observations per bucket of one feature on one revision (from cumulative `le` counts)."""

    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.counts)

    @property
    def total_count(self) -> int:
        return max(0, round(self.total))


def samples(
    canary: Mapping[float, float], stable: Mapping[float, float]
) -> tuple[FeatureSample, FeatureSample]:
    """Both revisions' per-bucket counts over the bounds they share.

    Without a shared `+Inf` bound (a side has no series) both samples are empty: values above the
    largest shared finite bound could not be counted otherwise.
    """
    bounds = psi.shared_bounds(canary, stable)
    if not bounds or bounds[-1] != math.inf:
        return FeatureSample(()), FeatureSample(())
    return FeatureSample(psi.bucket_counts(canary, bounds)), FeatureSample(psi.bucket_counts(stable, bounds))


def _few(sample: FeatureSample, who: str, feature: str, judge: Judge) -> str | None:
    n = sample.total_count
    if n >= judge.min_requests and n > 0:
        return None
    return f"{who} observed only {n} values of {feature} in {judge.window} (minRequests {judge.min_requests})"


def judge_input_psi(
    feature: str,
    canary_buckets: Mapping[float, float],
    stable_buckets: Mapping[float, float],
    max_psi: float,
    judge: Judge,
    query: str,
) -> MetricVerdict:
    """PSI of `feature` on the new revision against stable (cumulative `le` counts) vs `maxInputPSI`."""
    metric = metric_name(feature)
    new, old = samples(canary_buckets, stable_buckets)
    value = psi.psi_of_counts(old.counts, new.counts) if new.total > 0 and old.total > 0 else None

    def verdict(kind: Verdict, message: str) -> MetricVerdict:
        return MetricVerdict(metric, kind, value, max_psi, query, f"{metric}: {message}")

    low = _few(new, "the new revision", feature, judge) or _few(old, "stable", feature, judge)
    if low:
        return verdict(Verdict.INCONCLUSIVE, low)
    if value is None:  # unreachable after the checks above; keeps the type checker honest
        return inconclusive(metric, max_psi, query, f"{metric}: no observations")
    seen = f"PSI {value:.3g} ({new.total_count} values vs stable's {old.total_count})"
    if value <= max_psi:
        return verdict(Verdict.PASS, f"{seen} <= {max_psi:g}")
    _, _, p = stats.chi_square_homogeneity(new.counts, old.counts)
    confidence = f"{judge.confidence * 100:g}%"
    if p < judge.alpha:
        return verdict(
            Verdict.FAIL,
            f"{seen} > {max_psi:g}; the input distributions differ, significant at {confidence} "
            f"({p_text(p)})",
        )
    return verdict(
        Verdict.INCONCLUSIVE,
        f"{seen} > {max_psi:g} but the difference is not significant at {confidence} ({p_text(p)}); "
        "waiting for more observations",
    )
