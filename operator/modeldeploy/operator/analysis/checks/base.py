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
from modeldeploy.operator.analysis.prometheus import PrometheusError, QueryResult, Sample
from modeldeploy.operator.analysis.queries import Plan, RevisionSelector
from modeldeploy.operator.analysis.results import MetricVerdict
from modeldeploy.operator.api.rollout import AnalysisSpec

if TYPE_CHECKING:
    from modeldeploy.operator.analysis.checks.drift import DriftGate

PhaseKind = Literal["canary", "shadow"]


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


def _belongs(labels: Mapping[str, str], sel: RevisionSelector) -> bool:
    """A series of `sel`'s revision: the labels a sent query groups by match (see `queries.Plan`)."""
    return (
        labels.get("revision") == sel.revision
        and labels.get("model", sel.model) == sel.model
        and labels.get("namespace", sel.namespace) == sel.namespace
    )


@dataclass(frozen=True, slots=True)
class Answers:
    """Prometheus' answers to the run's queries, read the ways the checks need them.

    The sent queries are grouped by revision (and by ModelDeployment, see `queries.Plan`): a check
    reads its revision's series with a `RevisionSelector`, and `labels` narrow them further.
    """

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

    def of_revision(self, query: str, sel: RevisionSelector, **labels: str) -> list[Sample]:
        """`sel`'s series in a grouped answer (those whose `labels` match too)."""
        return [
            x
            for x in self.result(query).samples
            if _belongs(x.labels, sel) and all(x.labels.get(k) == v for k, v in labels.items())
        ]

    def count(self, query: str, sel: RevisionSelector) -> float:
        """A revision's sum of increase(): no series means nothing was counted (0); NaN counts as 0 too."""
        return sum(0.0 if math.isnan(x.value) else x.value for x in self.of_revision(query, sel))

    def revision_number(self, query: str, sel: RevisionSelector) -> float | None:
        """A revision's single number (None without a series)."""
        values = self.of_revision(query, sel)
        return values[0].value if values else None

    def counts(self, hits_query: str, total_query: str, sel: RevisionSelector) -> Counts:
        return Counts(hits=self.count(hits_query, sel), total=self.count(total_query, sel))

    def by_label(self, query: str, sel: RevisionSelector, label: str) -> dict[str, float]:
        """{label value: sample value} of a revision's series."""
        return {x.labels.get(label, ""): x.value for x in self.of_revision(query, sel)}

    def buckets(self, query: str, sel: RevisionSelector, **labels: str) -> dict[float, float]:
        """A revision's cumulative counts per `le` bound in a `by (..., le)` answer."""
        out: dict[float, float] = {}
        for sample in self.of_revision(query, sel, **labels):
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
