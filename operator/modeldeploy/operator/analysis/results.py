"""What an analysis run concludes: one verdict per metric and an overall verdict.

Plain frozen data with no I/O imports, so the pure planner can consume it. A metric's verdict is
`pass`, `fail` or `inconclusive` (too few requests in the window, Prometheus unreachable, an empty
or NaN result, or a breach that the evidence does not yet support). The overall verdict is `fail`
if any metric failed, `inconclusive` if any metric was inconclusive and none failed, else `pass`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class MetricVerdict:
    """The judgement of one metric, with what was measured and why, in words.

    `metric`: a stable name such as "error-rate" or "latency-p99-ratio-to-stable", or a custom
    metric's name; `value`: the measured value (None when nothing could be measured);
    `threshold`: the limit it was held against; `query`: the resolved PromQL a user can paste into
    Prometheus; `message`: e.g. "p99 latency 412ms > 250ms"; `requests`: requests counted in the
    window for the revision under test (None where not applicable); `conclusive`: a sequential
    (anytime-valid) test rejected "no regression", so the failure needs no `failureLimit` repeats.
    """

    metric: str
    verdict: Verdict
    value: float | None
    threshold: float | None
    query: str
    message: str
    requests: float | None = None
    conclusive: bool = False

    def to_dict(self) -> dict[str, Any]:
        """camelCase dict for `.status.analysis.results` (None values omitted)."""
        out: dict[str, Any] = {
            "metric": self.metric,
            "verdict": self.verdict.value,
            "value": self.value,
            "threshold": self.threshold,
            "query": self.query,
            "message": self.message,
            "requests": self.requests,
        }
        return {key: value for key, value in out.items() if value is not None}


def overall_verdict(results: tuple[MetricVerdict, ...] | list[MetricVerdict]) -> Verdict:
    """fail if any failed, inconclusive if any inconclusive (and none failed), else pass."""
    verdicts = {result.verdict for result in results}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if Verdict.INCONCLUSIVE in verdicts:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


@dataclass(frozen=True, slots=True)
class AnalysisOutcome:
    """All metric verdicts of one analysis run of `revision` (the canary or shadow revision).

    `at`: when the run finished (timezone-aware), so a run is counted once.
    """

    revision: str
    results: tuple[MetricVerdict, ...]
    at: datetime | None = None

    @property
    def verdict(self) -> Verdict:
        return overall_verdict(self.results)

    @property
    def failed(self) -> tuple[MetricVerdict, ...]:
        return tuple(r for r in self.results if r.verdict is Verdict.FAIL)

    @property
    def conclusive_failures(self) -> tuple[MetricVerdict, ...]:
        """Failures a sequential test proved: roll back now, whatever `failureLimit` says."""
        return tuple(r for r in self.results if r.verdict is Verdict.FAIL and r.conclusive)

    @property
    def inconclusive(self) -> tuple[MetricVerdict, ...]:
        return tuple(r for r in self.results if r.verdict is Verdict.INCONCLUSIVE)

    @property
    def summary(self) -> str:
        """One line for events and conditions, e.g. "fail: error ratio 30.0% > 1.0% (p=0.0001)"."""
        if not self.results:
            return "pass: no metrics to analyse"
        chosen = self.failed or self.inconclusive or self.results
        return f"{self.verdict.value}: " + "; ".join(r.message for r in chosen)

    def to_dict(self) -> list[dict[str, Any]]:
        return [result.to_dict() for result in self.results]
