"""One analysis run: build the queries for the revision under test, fetch them, judge every metric.

    outcome = await analyze(spec.rollout.analysis, name, namespace, canary_revision=new,
                            stable_revision=stable, phase_kind="canary", prom=clients.get(url))

All queries of a run go out concurrently. Prometheus unreachable (or answering 5xx after retries)
makes every metric inconclusive with the reason; a query Prometheus rejects makes that one metric
inconclusive with Prometheus' error text.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from modeldeploy.contract.metrics import COMPARED_RESULTS
from modeldeploy.operator.analysis import drift as d
from modeldeploy.operator.analysis import queries as q
from modeldeploy.operator.analysis import sequential_verdict as sv
from modeldeploy.operator.analysis import verdict as v
from modeldeploy.operator.analysis.prometheus import (
    PrometheusClient,
    PrometheusError,
    PrometheusHTTPError,
    PrometheusUnreachable,
    QueryResult,
)
from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict
from modeldeploy.operator.api.durations import parse_duration
from modeldeploy.operator.api.rollout import AnalysisSpec, CustomMetric

PhaseKind = Literal["canary", "shadow"]

DEFAULT_MIN_WINDOW = timedelta(seconds=30)
"""Queries never cover less than this (>= two scrape intervals of a Prometheus scraping every 15s)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The resolved queries of one run (what the run will ask Prometheus)."""

    window: str
    canary: q.RevisionSelector
    stable: q.RevisionSelector

    def requests(self, sel: q.RevisionSelector) -> str:
        return q.requests_query(sel, self.window)

    def errors(self, sel: q.RevisionSelector) -> str:
        return q.errors_query(sel, self.window)

    def p99(self, sel: q.RevisionSelector) -> str:
        return q.latency_quantile_query(sel, self.window)

    def buckets(self, sel: q.RevisionSelector) -> str:
        return q.latency_buckets_query(sel, self.window)

    def shadow_results(self) -> str:
        return q.shadow_results_query(self.canary, self.window)

    # What is sent: one query per metric for both revisions (the per-revision forms above are shown).
    def all_requests(self) -> str:
        return q.requests_by_revision_query(self.canary, self.stable, self.window)

    def all_errors(self) -> str:
        return q.errors_by_revision_query(self.canary, self.stable, self.window)

    def all_p99(self) -> str:
        return q.latency_quantile_by_revision_query(self.canary, self.stable, self.window)

    def all_buckets(self) -> str:
        return q.latency_buckets_by_revision_query(self.canary, self.stable, self.window)

    def feature_buckets(self, feature: str) -> str:
        return q.feature_buckets_query(self.canary, self.stable, feature, self.window)


@dataclass(frozen=True, slots=True)
class SequentialSettings:
    """Judge the error checks (and optionally the latency distribution) sequentially (`sequential_verdict`).

    `since`: how long ago the rollout of the new revision began (the counts are `increase()` over it);
    `tolerance`: promotion needs "no regression beyond it" shown (None: today's pass rule);
    `latency_delta`: with a value, the latency-distribution check runs with that allowed excess share
    of slow requests per bucket bound (None: no latency-distribution check). The checks share alpha
    (1 - confidence) evenly: each tests at 1 - alpha / (number of sequential checks).
    """

    since: timedelta
    tolerance: float | None = None
    latency_delta: float | None = None


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


class _Missing(Exception):
    """A query of this metric had no usable answer; `message` says why."""


def _result(fetched: Fetched, query: str) -> QueryResult:
    answer = fetched[query]
    if isinstance(answer, PrometheusError):
        raise _Missing(answer.message)
    return answer


def _number(fetched: Fetched, query: str) -> float | None:
    try:
        return _result(fetched, query).value()
    except ValueError as exc:
        raise _Missing(str(exc)) from exc


def _of_revision(fetched: Fetched, query: str, revision: str) -> list[float]:
    """The values of `revision`'s series in a `by (revision)` answer."""
    return [x.value for x in _result(fetched, query).samples if x.labels.get("revision") == revision]


def _revision_count(fetched: Fetched, query: str, revision: str) -> float:
    """A revision's sum of increase(): no series means nothing was counted (0); NaN counts as 0 too."""
    return sum(0.0 if math.isnan(x) else x for x in _of_revision(fetched, query, revision))


def _revision_number(fetched: Fetched, query: str, revision: str) -> float | None:
    """A revision's single number (None without a series)."""
    values = _of_revision(fetched, query, revision)
    return values[0] if values else None


def _counts(fetched: Fetched, plan: Plan, sel: q.RevisionSelector) -> v.Counts:
    return v.Counts(
        hits=_revision_count(fetched, plan.all_errors(), sel.revision),
        total=_revision_count(fetched, plan.all_requests(), sel.revision),
    )


def _template_variables(plan: Plan) -> dict[str, str]:
    return {
        "model": plan.canary.model,
        "namespace": plan.canary.namespace,
        "revision": plan.canary.revision,
        "stableRevision": plan.stable.revision,
        "interval": plan.window,
    }


JudgeFn = Callable[[Fetched, str], MetricVerdict]
"""Judges a metric from the fetched answers and its displayed query."""


@dataclass(frozen=True, slots=True)
class Check:
    """One metric to judge: the queries it needs, the query shown in status, its threshold."""

    metric: str
    threshold: float | None
    shown: str
    needs: tuple[str, ...]
    judge: JudgeFn


def _sequential_checks(spec: AnalysisSpec, plan: Plan, settings: SequentialSettings) -> list[Check]:
    """errorRate and errorRateDeltaToStable over the counts since the rollout began; latencyDistribution.

    alpha is split evenly between them (Bonferroni), so the chance that any of them ever fails a
    healthy revision over the whole rollout stays <= 1 - confidence.
    """
    c, s = plan.canary, plan.stable
    slo = spec.slo
    configured = [slo.error_rate, slo.max_error_rate_delta_to_stable, settings.latency_delta]
    share = max(1, sum(x is not None for x in configured))
    confidence = 1.0 - (1.0 - spec.confidence) / share
    judge = v.Judge(min_requests=spec.min_requests, confidence=confidence, window=plan.window)
    checks: list[Check] = []
    if slo.error_rate is not None:
        limit = slo.error_rate
        checks.append(
            Check(
                sv.ERROR_RATE,
                limit,
                q.error_ratio_query(c, plan.window),
                (plan.all_errors(), plan.all_requests()),
                lambda f, shown: sv.judge_error_rate(
                    _revision_count(f, plan.all_errors(), c.revision),
                    _revision_count(f, plan.all_requests(), c.revision),
                    limit,
                    judge,
                    shown,
                ),
            )
        )
    if slo.max_error_rate_delta_to_stable is not None:
        delta = slo.max_error_rate_delta_to_stable
        checks.append(
            Check(
                sv.ERROR_RATE_DELTA,
                delta,
                f"({q.error_ratio_query(c, plan.window)}) - ({q.error_ratio_query(s, plan.window)})",
                (plan.all_errors(), plan.all_requests()),
                lambda f, shown: sv.judge_error_rate_delta(
                    _revision_count(f, plan.all_errors(), c.revision),
                    _revision_count(f, plan.all_requests(), c.revision),
                    _revision_count(f, plan.all_errors(), s.revision),
                    _revision_count(f, plan.all_requests(), s.revision),
                    delta,
                    judge,
                    shown,
                    settings.tolerance,
                ),
            )
        )
    if settings.latency_delta is not None:
        allowed = settings.latency_delta
        checks.append(
            Check(
                sv.LATENCY_DISTRIBUTION,
                allowed,
                f"{plan.buckets(c)} vs {plan.buckets(s)}",
                (plan.all_buckets(),),
                lambda f, shown: sv.judge_latency_distribution(
                    _revision_buckets(f, plan.all_buckets(), c.revision),
                    _revision_buckets(f, plan.all_buckets(), s.revision),
                    allowed,
                    judge,
                    shown,
                    settings.tolerance,
                ),
            )
        )
    return checks


def _checks(
    spec: AnalysisSpec,
    plan: Plan,
    phase_kind: PhaseKind,
    judge: v.Judge,
    drift: d.DriftGate | None,
    sequential: Plan | None = None,
) -> list[Check]:
    c, s = plan.canary, plan.stable
    checks: list[Check] = []
    slo = spec.slo

    def add(metric: str, threshold: float | None, shown: str, needs: list[str], fn: JudgeFn) -> None:
        checks.append(Check(metric, threshold, shown, tuple(needs), fn))

    # with a sequential plan the error checks are judged sequentially (`_sequential_checks`)
    if sequential is None and slo.error_rate is not None:
        limit = slo.error_rate
        add(
            v.ERROR_RATE,
            limit,
            q.error_ratio_query(c, plan.window),
            [plan.all_errors(), plan.all_requests()],
            lambda f, shown: v.judge_error_rate(_counts(f, plan, c), limit, judge, shown),
        )
    if sequential is None and slo.max_error_rate_delta_to_stable is not None:
        delta = slo.max_error_rate_delta_to_stable
        shown = f"({q.error_ratio_query(c, plan.window)}) - ({q.error_ratio_query(s, plan.window)})"
        add(
            v.ERROR_RATE_DELTA,
            delta,
            shown,
            [plan.all_errors(), plan.all_requests()],
            lambda f, shown: v.judge_error_rate_delta(
                _counts(f, plan, c), _counts(f, plan, s), delta, judge, shown
            ),
        )
    if slo.latency_p99 is not None:
        seconds = parse_duration(slo.latency_p99).total_seconds()
        add(
            v.LATENCY_P99,
            seconds,
            plan.p99(c),
            [plan.all_p99(), plan.all_buckets()],
            lambda f, shown: v.judge_latency_p99(
                _revision_number(f, plan.all_p99(), c.revision),
                _revision_buckets(f, plan.all_buckets(), c.revision),
                seconds,
                judge,
                shown,
            ),
        )
    if slo.max_latency_ratio_to_stable is not None:
        ratio = slo.max_latency_ratio_to_stable
        add(
            v.LATENCY_RATIO,
            ratio,
            f"{plan.p99(c)} / {plan.p99(s)}",
            [plan.all_p99(), plan.all_requests()],
            lambda f, shown: v.judge_latency_ratio(
                _revision_number(f, plan.all_p99(), c.revision),
                _revision_number(f, plan.all_p99(), s.revision),
                _revision_count(f, plan.all_requests(), c.revision),
                _revision_count(f, plan.all_requests(), s.revision),
                ratio,
                judge,
                shown,
            ),
        )
    if phase_kind == "canary":
        guard = q.guard_tripped_query(c, plan.window)
        add(
            v.GUARD_TRIPPED,
            1.0,
            guard,
            [guard],
            lambda f, shown: v.judge_guard(_number(f, guard), c.revision, shown),
        )
    if phase_kind == "shadow" and spec.shadow_agreement_min is not None:
        minimum = spec.shadow_agreement_min

        def agreement(f: Fetched, shown: str) -> MetricVerdict:
            by_result = _result(f, plan.shadow_results()).by_label("result")
            compared = sum(by_result.get(r, 0.0) for r in COMPARED_RESULTS)
            return v.judge_shadow_agreement(by_result.get("match", 0.0), compared, minimum, judge, shown)

        add(
            v.SHADOW_AGREEMENT,
            minimum,
            q.shadow_agreement_query(c, plan.window),
            [plan.shadow_results()],
            agreement,
        )
    if drift is not None:
        checks.extend(_drift_check(feature, drift.max_psi, plan, judge) for feature in drift.features)
    variables = _template_variables(plan)
    for metric in spec.metrics:
        checks.append(_custom_check(metric, variables, plan))
    return checks


def _revision_buckets(fetched: Fetched, query: str, revision: str) -> dict[float, float]:
    """A revision's cumulative counts per `le` bound in a `by (revision, le)` answer."""
    out: dict[float, float] = {}
    for sample in _result(fetched, query).samples:
        if sample.labels.get("revision") != revision:
            continue
        try:
            out[float(sample.labels.get("le", ""))] = 0.0 if math.isnan(sample.value) else sample.value
        except ValueError:
            continue
    return out


def _drift_check(feature: str, max_psi: float, plan: Plan, judge: v.Judge) -> Check:
    query = plan.feature_buckets(feature)
    new, old = plan.canary.revision, plan.stable.revision
    return Check(
        d.metric_name(feature),
        max_psi,
        query,
        (query,),
        lambda f, shown: d.judge_input_psi(
            feature, _revision_buckets(f, query, new), _revision_buckets(f, query, old), max_psi, judge, shown
        ),
    )


def _custom_check(metric: CustomMetric, variables: dict[str, str], plan: Plan) -> Check:
    name, low, high = metric.name, metric.min, metric.max
    threshold = high if high is not None else low
    try:
        resolved = q.render_template(metric.query, variables)
    except ValueError as exc:
        message = f"{name}: {exc}"
        return Check(
            name,
            threshold,
            metric.query,
            (),
            lambda f, shown: v.inconclusive(name, threshold, shown, message),
        )
    gate = metric.min_requests
    requests = plan.all_requests()
    revision = plan.canary.revision
    return Check(
        name,
        threshold,
        resolved,
        (resolved, requests) if gate is not None else (resolved,),
        lambda f, shown: v.judge_custom(
            name,
            _number(f, shown),
            low,
            high,
            shown,
            unit=metric.unit,
            served=_revision_count(f, requests, revision) if gate is not None else None,
            min_requests=gate,
            window=plan.window,
        ),
    )


def plan_run(
    spec: AnalysisSpec,
    name: str,
    namespace: str,
    canary_revision: str,
    stable_revision: str,
    *,
    window: timedelta | None = None,
    min_window: timedelta = DEFAULT_MIN_WINDOW,
) -> Plan:
    """The window and revision selectors of a run (pure).

    The window is `window` if given, else `spec.interval`, and never less than `min_window`.
    """
    span = q.query_window(window or parse_duration(spec.interval), min_window)
    return Plan(
        window=q.promql_duration(span),
        canary=q.RevisionSelector(name, namespace, canary_revision),
        stable=q.RevisionSelector(name, namespace, stable_revision),
    )


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
    drift: d.DriftGate | None = None,
    sequential: SequentialSettings | None = None,
) -> AnalysisOutcome:
    """Judge `canary_revision` (the canary, or the shadow during shadow steps) against `spec`.

    `stable_revision` is the comparison baseline over the same window: `window` (default: the
    analysis interval), at least `min_window`. `now` (default: the current UTC time) is recorded as
    the outcome's `at`. `drift` adds one `inputPSI/<feature>` check per feature (see `drift`).
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
    judge = v.Judge(min_requests=spec.min_requests, confidence=spec.confidence, window=plan.window)
    since = None
    if sequential is not None and phase_kind == "canary":
        since = plan_run(
            spec,
            name,
            namespace,
            canary_revision,
            stable_revision,
            window=sequential.since,
            min_window=min_window,
        )
    checks = _checks(spec, plan, phase_kind, judge, drift, since)
    if since is not None and sequential is not None:
        checks[:0] = _sequential_checks(spec, since, sequential)
    fetched = await _fetch(prom, (query for check in checks for query in check.needs))
    down = next(
        (
            answer
            for answer in fetched.values()
            if isinstance(answer, PrometheusUnreachable | PrometheusHTTPError)
        ),
        None,
    )
    results: list[MetricVerdict] = []
    for check in checks:
        if down is not None:
            results.append(v.inconclusive(check.metric, check.threshold, check.shown, down.message))
            continue
        try:
            results.append(check.judge(fetched, check.shown))
        except _Missing as exc:
            results.append(
                v.inconclusive(check.metric, check.threshold, check.shown, f"{check.metric}: {exc}")
            )
    return AnalysisOutcome(revision=canary_revision, results=tuple(results), at=now or datetime.now(UTC))
