"""Targets a benchmark checks (issue #14's sidecar targets): one table row per target.

Each row states the bound, the measured figure (with the reference it is compared to, e.g.
nginx's figure from the same run), the figure as a share of the bound and whether the target is
met. A missed target stays in the table with its figure; the section says why below it.

    rows = [Target("added p50", "≤ 2x nginx's added p50 (0.16 ms)", "0.12 ms; nginx 0.08 ms", 0.12, 0.16)]
    lines = target_table(rows)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    bound_text: str  # the bound in words and as a figure, e.g. "≤ 2x nginx's added p50 (0.16 ms)"
    measured_text: str  # the figure and its reference, e.g. "0.12 ms (nginx 0.08 ms: 1.5x)"
    value: float
    bound: float
    at_least: bool = False  # the value must be >= bound (a share of nginx's throughput), else <=

    @property
    def met(self) -> bool:
        return self.value >= self.bound if self.at_least else self.value <= self.bound

    def of_bound(self) -> str:
        """The figure as a share of its bound (100% is exactly at the bound)."""
        return f"{self.value / self.bound:.0%}" if self.bound > 0 else "—"


def target_table(rows: Sequence[Target]) -> list[str]:
    """Markdown table: target, bound, measured, share of the bound, met/missed."""
    lines = ["| target | bound | measured | of bound | result |", "|---|---|---|---:|---|"]
    for row in rows:
        result = "met" if row.met else "**missed**"
        lines.append(f"| {row.name} | {row.bound_text} | {row.measured_text} | {row.of_bound()} | {result} |")
    return lines


def met_summary(rows: Sequence[Target]) -> str:
    """E.g. "5 of 7 targets met; missed: proxy ceiling (1 worker), CPU per request"."""
    missed = [row.name for row in rows if not row.met]
    text = f"{len(rows) - len(missed)} of {len(rows)} targets met"
    return text + (f"; missed: {', '.join(missed)}." if missed else ".")
