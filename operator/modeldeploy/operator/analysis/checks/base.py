"""The interface between an analysis run and the kinds of check (like Flagger's metric observers).

A kind of check is a module with one function, `checks(run: Run) -> list[Check]`: the checks it
makes in this run. A `Check` carries what the status shows (metric name, threshold, the PromQL a
user can paste) and what it needs (the queries to send); `judge` turns their answers into a
`MetricVerdict`. Reading an answer that is missing or unusable raises `Missing`, which the run turns
into an inconclusive verdict naming the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from modeldeploy.operator.analysis.judgement import Counts, Judge
from modeldeploy.operator.analysis.prometheus import PrometheusError, QueryResult
from modeldeploy.operator.analysis.queries import RevisionSelector
from modeldeploy.operator.analysis.results import MetricVerdict
from modeldeploy.operator.api.rollout import AnalysisSpec

if TYPE_CHECKING:
    from modeldeploy.operator.analysis.checks.drift import DriftGate

PhaseKind = Literal["canary", "shadow"]


@dataclass(frozen=True, slots=True)
class Plan:
    """The window every query of a run covers (a PromQL duration) and the two revisions' selectors."""

    window: str
    canary: RevisionSelector
    stable: RevisionSelector


@dataclass(frozen=True, slots=True)
class Sequential:
    """The sequential part of a canary run: counts since the rollout began (`plan.window` spans it).

    `tolerance`: promotion needs "no regression beyond it" shown (None: today's pass rule);
    `latency_delta`: the allowed excess share of slow requests per bucket bound (None: no
    latency-distribution check); `judge`: the confidence each sequential check tests at (alpha
    split evenly between them).
    """

    plan: Plan
    judge: Judge
    tolerance: float | None
    latency_delta: float | None


@dataclass(frozen=True, slots=True)
class Run:
    """What every kind of check may look at: the spec, the run's plan, judge and phase; the drift
    gate (`spec.guardrails.drift`) and the sequential part of a canary run, when there are any."""

    spec: AnalysisSpec
    plan: Plan
    phase_kind: PhaseKind
    judge: Judge
    drift: DriftGate | None = None
    sequential: Sequential | None = None


class Missing(Exception):
    """A query of this metric had no usable answer; the message says why."""


@dataclass(frozen=True, slots=True)
class Answers:
    """Prometheus' answers to the run's queries, read the ways the checks need them."""

    by_query: Mapping[str, QueryResult | PrometheusError]

    def result(self, query: str) -> QueryResult:
        answer = self.by_query[query]
        if isinstance(answer, PrometheusError):
            raise Missing(answer.message)
        return answer

    def number(self, query: str) -> float | None:
        """The single number of a one-series answer (None when empty)."""
        try:
            return self.result(query).value()
        except ValueError as exc:
            raise Missing(str(exc)) from exc

    def of_revision(self, query: str, revision: str) -> list[float]:
        """The values of `revision`'s series in a `by (revision)` answer."""
        return [x.value for x in self.result(query).samples if x.labels.get("revision") == revision]

    def count(self, query: str, revision: str) -> float:
        """A revision's sum of increase(): no series means nothing was counted (0); NaN counts as 0 too."""
        return sum(0.0 if math.isnan(x) else x for x in self.of_revision(query, revision))

    def revision_number(self, query: str, revision: str) -> float | None:
        """A revision's single number (None without a series)."""
        values = self.of_revision(query, revision)
        return values[0] if values else None

    def counts(self, hits_query: str, total_query: str, revision: str) -> Counts:
        return Counts(hits=self.count(hits_query, revision), total=self.count(total_query, revision))

    def buckets(self, query: str, revision: str) -> dict[float, float]:
        """A revision's cumulative counts per `le` bound in a `by (revision, le)` answer."""
        out: dict[float, float] = {}
        for sample in self.result(query).samples:
            if sample.labels.get("revision") != revision:
                continue
            try:
                out[float(sample.labels.get("le", ""))] = 0.0 if math.isnan(sample.value) else sample.value
            except ValueError:
                continue
        return out


JudgeFn = Callable[[Answers], MetricVerdict]


@dataclass(frozen=True, slots=True)
class Check:
    """One metric to judge: the name, threshold and query shown in status, the queries it needs."""

    metric: str
    threshold: float | None
    shown: str
    needs: tuple[str, ...]
    judge: JudgeFn


class CheckKind(Protocol):
    """A kind of check (a module of `analysis.checks`)."""

    def __call__(self, run: Run) -> list[Check]: ...
