"""`guardTripped` (canary steps): did a stable sidecar's fast guard keep traffic away from the canary?

The guard is evidence by itself: it trips only after enough failed forwards. No series (no stable
sidecar scraped yet) is no evidence either way, so it passes; any other metric still needs its own
data. A tripped guard also starves the canary of traffic, which would otherwise only look like "too
few requests" forever.
"""

from __future__ import annotations

import math

from modeldeploy.contract.metrics import GUARD
from modeldeploy.operator.analysis.checks.base import Answers, Check, Run
from modeldeploy.operator.analysis.judgement import verdict
from modeldeploy.operator.analysis.queries import Plan, RevisionSelector
from modeldeploy.operator.analysis.results import MetricVerdict, Verdict

GUARD_TRIPPED = "guardTripped"


def guard_tripped_query(sel: RevisionSelector, window: str) -> str:
    """1 if any stable sidecar's fast guard kept traffic away from the revision in the window."""
    return f"max(max_over_time({GUARD}{sel.matchers()}[{window}]))"


def guard_tripped_sent(plan: Plan) -> str:
    """`guard_tripped_query` of both revisions (or of every ModelDeployment) in one query."""
    return f"max {plan.by()} (max_over_time({plan.selector(GUARD)}[{plan.window}]))"


def checks(run: Run) -> list[Check]:
    if run.phase_kind != "canary":
        return []
    canary = run.plan.canary
    shown, sent = guard_tripped_query(canary, run.plan.window), guard_tripped_sent(run.plan)

    def tripped(a: Answers) -> MetricVerdict:
        return judge_guard(a.revision_number(sent, canary), canary.revision, shown)

    return [Check(GUARD_TRIPPED, 1.0, shown, (sent,), tripped)]


def judge_guard(value: float | None, revision: str, query: str) -> MetricVerdict:
    """Fail when the guard reported tripped (value >= 1); pass otherwise, also without a series."""
    if value is None or math.isnan(value) or value < 1:
        shown = value if value is not None and not math.isnan(value) else None
        return verdict(GUARD_TRIPPED, Verdict.PASS, shown, 1.0, query, "fast guard not tripped")
    message = (
        f"fast guard tripped: the sidecars stopped forwarding to {revision} after too many failed requests"
    )
    return verdict(GUARD_TRIPPED, Verdict.FAIL, value, 1.0, query, message)
