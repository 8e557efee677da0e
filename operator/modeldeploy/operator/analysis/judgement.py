"""What every check's judgement shares (pure): the settings, counts, number formats and the one
place a `MetricVerdict` is built.

The rules of each kind of check live with its queries in `analysis.checks.<kind>`; this module only
holds what they have in common.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modeldeploy.operator.analysis.results import MetricVerdict, Verdict
from modeldeploy.operator.analysis.stats import p_text


@dataclass(frozen=True, slots=True)
class Counts:
    """`hits` (errors, disagreements, slow requests) out of `total`, as Prometheus' increase() gave them.

    increase() extrapolates to the window's edges, so the numbers are not whole; the tests use them
    rounded (`hit_count`, `total_count`).
    """

    hits: float
    total: float

    @property
    def total_count(self) -> int:
        return max(0, round(self.total))

    @property
    def hit_count(self) -> int:
        return min(self.total_count, max(0, round(self.hits)))

    @property
    def ratio(self) -> float | None:
        return self.hits / self.total if self.total > 0 else None


@dataclass(frozen=True, slots=True)
class Judge:
    """The analysis settings every judgement needs."""

    min_requests: int
    confidence: float
    window: str  # e.g. "30s", for messages

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    @property
    def confidence_text(self) -> str:
        """0.95 -> "95%"."""
        return f"{self.confidence * 100:g}%"

    def few_requests(self, total: int, who: str = "", what: str = "served") -> str | None:
        """None when `total` is enough for a verdict, else why not (e.g. "served only 12 requests ...")."""
        if total >= self.min_requests and total > 0:
            return None
        subject = f"{who} {what}" if who else what
        return f"{subject} only {total} requests in {self.window} (minRequests {self.min_requests})"


def percent(value: float) -> str:
    """0.3 -> "30%", 0.0123 -> "1.23%", 0.0001 -> "0.01%"."""
    scaled = value * 100
    if scaled == 0 or abs(scaled) >= 10:
        return f"{scaled:.1f}%".replace(".0%", "%")
    return f"{scaled:.3g}%"


def seconds_text(value: float) -> str:
    """0.412 -> "412ms", 1.5 -> "1.5s", 0.0004 -> "0.4ms"."""
    if value < 1:
        return f"{value * 1000:.3g}ms"
    return f"{value:.3g}s"


def verdict(
    metric: str,
    kind: Verdict,
    value: float | None,
    threshold: float | None,
    query: str,
    message: str,
    requests: float | None = None,
    *,
    conclusive: bool = False,
) -> MetricVerdict:
    """A metric's verdict (positional, as every check writes it)."""
    return MetricVerdict(
        metric=metric,
        verdict=kind,
        value=value,
        threshold=threshold,
        query=query,
        message=message,
        requests=requests,
        conclusive=conclusive,
    )


def inconclusive(metric: str, threshold: float | None, query: str, message: str) -> MetricVerdict:
    """A metric that could not be judged (Prometheus unreachable, bad query, no data)."""
    return verdict(metric, Verdict.INCONCLUSIVE, None, threshold, query, message)


SINCE = "since the rollout began"
"""How a sequential check's messages say where its counts come from."""


def e_text(log_e: float) -> str:
    """The e-value in words: "e=3.2", "e=4.1e+12", "e>1e300"."""
    if log_e > 690:
        return "e>1e300"
    return f"e={math.exp(log_e):.2g}"


def evidence_text(log_e: float, judge: Judge) -> str:
    """A sequential test's evidence: the e-value against its threshold and the always-valid p-value."""
    threshold = 1.0 / judge.alpha
    p = math.exp(-max(log_e, 0.0))
    return f"{e_text(log_e)} vs {threshold:g} at {judge.confidence_text}, {p_text(p)}"
