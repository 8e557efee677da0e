"""`shadowAgreement` (shadow steps with `shadowAgreementMin`): the share of compared shadow copies
whose response matched stable's.

Query: the shadow copies sent to the revision, by comparison result (one query that covers both
revisions, see `queries.Plan`), counted by the stable sidecar that sent them (`dropped` copies were
not compared). Judged like the error rate: disagreements are the hits, and a one-sided exact test
must show the agreement is below the minimum to fail.
"""

from __future__ import annotations

from modeldeploy.contract.metrics import COMPARED_RESULTS, SHADOW, promql_string
from modeldeploy.operator.analysis import stats
from modeldeploy.operator.analysis.checks.base import Answers, Check, Run
from modeldeploy.operator.analysis.judgement import Counts, Judge, percent, verdict
from modeldeploy.operator.analysis.queries import Plan, RevisionSelector
from modeldeploy.operator.analysis.results import MetricVerdict, Verdict
from modeldeploy.operator.analysis.stats import p_text

SHADOW_AGREEMENT = "shadowAgreement"


def shadow_results_query(sel: RevisionSelector, window: str) -> str:
    """Shadow copies sent to the revision in the window, by comparison result."""
    return f"sum by (result) (increase({SHADOW}{sel.matchers()}[{window}]))"


def shadow_agreement_query(sel: RevisionSelector, window: str) -> str:
    """Matching / compared shadow copies in the window (`dropped` copies were not compared)."""
    compared = promql_string("|".join(COMPARED_RESULTS))
    match = "result=" + promql_string("match")
    matched = f"sum(increase({SHADOW}{sel.matchers(match)}[{window}]))"
    total = f"sum(increase({SHADOW}{sel.matchers(f'result=~{compared}')}[{window}]))"
    return f"{matched} / {total}"


def shadow_results_sent(plan: Plan) -> str:
    """`shadow_results_query` of both revisions (or of every ModelDeployment) in one query."""
    return f"sum {plan.by('result')} (increase({plan.selector(SHADOW)}[{plan.window}]))"


def checks(run: Run) -> list[Check]:
    minimum = run.spec.shadow_agreement_min
    if run.phase_kind != "shadow" or minimum is None:
        return []
    shadow, window, judge = run.plan.canary, run.plan.window, run.judge
    results = shadow_results_sent(run.plan)
    shown = shadow_agreement_query(shadow, window)

    def agreement(a: Answers) -> MetricVerdict:
        by_result = a.by_label(results, shadow, "result")
        compared = sum(by_result.get(r, 0.0) for r in COMPARED_RESULTS)
        return judge_shadow_agreement(by_result.get("match", 0.0), compared, minimum, judge, shown)

    return [Check(SHADOW_AGREEMENT, minimum, shown, (results,), agreement)]


def judge_shadow_agreement(
    matched: float, compared: float, minimum: float, judge: Judge, query: str
) -> MetricVerdict:
    """Share of compared shadow copies whose response matched stable's, against `shadowAgreementMin`."""
    counts = Counts(hits=max(0.0, compared - matched), total=compared)  # hits = disagreements
    agreement = matched / compared if compared > 0 else None
    low = judge.few_requests(counts.total_count, what="compared")
    if low:
        message = f"shadow agreement: {low}"
        return verdict(
            SHADOW_AGREEMENT, Verdict.INCONCLUSIVE, agreement, minimum, query, message, requests=compared
        )
    assert agreement is not None
    n = counts.total_count
    seen = f"shadow agreement {percent(agreement)} ({n - counts.hit_count} of {n} responses matched)"
    p = stats.binomial_test_greater(counts.hit_count, n, 1.0 - minimum)
    if p < judge.alpha:
        message = f"{seen} < {percent(minimum)}, significant at {judge.confidence_text} ({p_text(p)})"
        return verdict(SHADOW_AGREEMENT, Verdict.FAIL, agreement, minimum, query, message, requests=compared)
    if agreement < minimum:
        message = (
            f"{seen} < {percent(minimum)} but not significant at {judge.confidence_text} "
            f"({p_text(p)}); waiting for more requests"
        )
        return verdict(
            SHADOW_AGREEMENT, Verdict.INCONCLUSIVE, agreement, minimum, query, message, requests=compared
        )
    message = f"{seen} >= {percent(minimum)}"
    return verdict(SHADOW_AGREEMENT, Verdict.PASS, agreement, minimum, query, message, requests=compared)
