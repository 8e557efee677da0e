"""One analysis run: ask every kind of check what it needs, fetch it, collect the verdicts.

    outcome = await analyze(spec.rollout.analysis, name, namespace, canary_revision=new,
                            stable_revision=stable, phase_kind="canary", prom=clients.get(url))

The kinds of check (`analysis.checks`) each build their queries and judge their answers; this module
only plans the window, hands every kind the same `Run`, sends all queries of the run at once
(identical queries once) and turns Prometheus trouble into inconclusive verdicts: Prometheus
unreachable (or answering 5xx after retries) makes every metric inconclusive with the reason; a
query Prometheus rejects makes the metrics that need it inconclusive with Prometheus' error text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modeldeploy.operator.analysis.checks import custom, drift, error_rate, guard, latency, shadow
from modeldeploy.operator.analysis.checks.base import (
    Answers,
    Check,
    CheckKind,
    Missing,
    PhaseKind,
    Run,
    Sequential,
)
from modeldeploy.operator.analysis.checks.drift import DriftGate
from modeldeploy.operator.analysis.judgement import Judge, inconclusive
from modeldeploy.operator.analysis.prometheus import (
    PrometheusClient,
    PrometheusError,
    PrometheusHTTPError,
    PrometheusUnreachable,
    QueryResult,
)
from modeldeploy.operator.analysis.queries import Plan, RevisionSelector, promql_duration, query_window
from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict
from modeldeploy.operator.api.durations import parse_duration
from modeldeploy.operator.api.rollout import AnalysisSpec

__all__ = ["DEFAULT_MIN_WINDOW", "PhaseKind", "Plan", "SequentialSettings", "analyze", "plan_run"]

DEFAULT_MIN_WINDOW = timedelta(seconds=30)
"""Queries never cover less than this (>= two scrape intervals of a Prometheus scraping every 15s)."""

CHECK_KINDS: tuple[CheckKind, ...] = (
    error_rate.checks,
    latency.checks,
    guard.checks,
    shadow.checks,
    drift.checks,
    custom.checks,
)
"""Every kind of check, in the order their verdicts appear in status."""


@dataclass(frozen=True, slots=True)
class SequentialSettings:
    """Judge the error checks (and optionally the latency distribution) sequentially.

    `since`: how long ago the rollout of the new revision began (the counts are `increase()` over it);
    `tolerance`: promotion needs "no regression beyond it" shown (None: today's pass rule);
    `latency_delta`: with a value, the latency-distribution check runs with that allowed excess share
    of slow requests per bucket bound (None: no latency-distribution check). The checks share alpha
    (1 - confidence) evenly: each tests at 1 - alpha / (number of sequential checks).
    """

    since: timedelta
    tolerance: float | None = None
    latency_delta: float | None = None


def plan_run(
    spec: AnalysisSpec,
    name: str,
    namespace: str,
    canary_revision: str,
    stable_revision: str,
    *,
    window: timedelta | None = None,
    min_window: timedelta = DEFAULT_MIN_WINDOW,
    all_models: bool = True,
) -> Plan:
    """The window and revision selectors of a run (pure).

    The window is `window` if given, else `spec.interval`, and never less than `min_window`.
    `all_models`: the sent queries cover every ModelDeployment (see `queries.Plan`).
    """
    span = query_window(window or parse_duration(spec.interval), min_window)
    return Plan(
        window=promql_duration(span),
        canary=RevisionSelector(name, namespace, canary_revision),
        stable=RevisionSelector(name, namespace, stable_revision),
        all_models=all_models,
    )


def _sequential(spec: AnalysisSpec, since: Plan, settings: SequentialSettings) -> Sequential:
    """errorRate, errorRateDeltaToStable and latencyDistribution over the counts since the rollout began.

    alpha is split evenly between them (Bonferroni), so the chance that any of them ever fails a
    healthy revision over the whole rollout stays <= 1 - confidence.
    """
    slo = spec.slo
    configured = [slo.error_rate, slo.max_error_rate_delta_to_stable, settings.latency_delta]
    share = max(1, sum(x is not None for x in configured))
    confidence = 1.0 - (1.0 - spec.confidence) / share
    judge = Judge(min_requests=spec.min_requests, confidence=confidence, window=since.window)
    return Sequential(since, judge, settings.tolerance, settings.latency_delta)


Fetched = dict[str, QueryResult | PrometheusError]


async def _fetch(prom: PrometheusClient, promql: Iterable[str]) -> Fetched:
    unique = list(dict.fromkeys(promql))
    answers = await asyncio.gather(*(prom.query(x) for x in unique), return_exceptions=True)
    fetched: Fetched = {}
    for query, answer in zip(unique, answers, strict=True):
        if isinstance(answer, QueryResult | PrometheusError):
            fetched[query] = answer
        elif isinstance(answer, BaseException):
            raise answer
    return fetched


def _judge(check: Check, answers: Answers) -> MetricVerdict:
    try:
        return check.judge(answers)
    except Missing as exc:
        return inconclusive(check.metric, check.threshold, check.shown, f"{check.metric}: {exc}")


async def analyze(
    spec: AnalysisSpec,
    name: str,
    namespace: str,
    canary_revision: str,
    stable_revision: str,
    phase_kind: PhaseKind,
    prom: PrometheusClient,
    *,
    window: timedelta | None = None,
    min_window: timedelta = DEFAULT_MIN_WINDOW,
    now: datetime | None = None,
    drift: DriftGate | None = None,
    sequential: SequentialSettings | None = None,
) -> AnalysisOutcome:
    """Judge `canary_revision` (the canary, or the shadow during shadow steps) against `spec`.

    `stable_revision` is the comparison baseline over the same window: `window` (default: the
    analysis interval), at least `min_window`. `now` (default: the current UTC time) is recorded as
    the outcome's `at`. `drift` adds one `inputPSI/<feature>` check per feature (see `checks.drift`).
    `sequential` judges the error checks (and the latency distribution, if asked) on the counts since
    the rollout began, anytime-valid (see `SequentialSettings`; canary steps only: shadow steps keep
    today's rules).
    Never raises for Prometheus trouble: an unreachable Prometheus makes every
    metric inconclusive, with the reason.
    """
    if phase_kind not in ("canary", "shadow"):
        raise ValueError(f"phase_kind must be 'canary' or 'shadow', got {phase_kind!r}")
    plan = plan_run(
        spec, name, namespace, canary_revision, stable_revision, window=window, min_window=min_window
    )
    since = None
    if sequential is not None and phase_kind == "canary":
        since_plan = plan_run(
            spec,
            name,
            namespace,
            canary_revision,
            stable_revision,
            window=sequential.since,
            min_window=min_window,
            all_models=False,  # no other ModelDeployment's rollout began at the same moment
        )
        since = _sequential(spec, since_plan, sequential)
    run = Run(
        spec=spec,
        plan=plan,
        phase_kind=phase_kind,
        judge=Judge(min_requests=spec.min_requests, confidence=spec.confidence, window=plan.window),
        drift=drift,
        sequential=since,
    )
    checks = [check for kind in CHECK_KINDS for check in kind(run)]
    fetched = await _fetch(prom, (query for check in checks for query in check.needs))
    at = now or datetime.now(UTC)
    down = next(
        (a for a in fetched.values() if isinstance(a, PrometheusUnreachable | PrometheusHTTPError)), None
    )
    if down is not None:
        results = [inconclusive(c.metric, c.threshold, c.shown, down.message) for c in checks]
        return AnalysisOutcome(revision=canary_revision, results=tuple(results), at=at)
    answers = Answers(fetched)
    return AnalysisOutcome(
        revision=canary_revision, results=tuple(_judge(check, answers) for check in checks), at=at
    )
