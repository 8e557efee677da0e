"""Custom metrics (`spec.rollout.analysis.metrics`): the user's PromQL, one number, `min` and/or `max`.

The query is a template (`{{model}}`, `{{namespace}}`, `{{revision}}`, `{{stableRevision}}`,
`{{interval}}`); an unknown placeholder makes the metric inconclusive with the known ones named,
so a typo never reaches Prometheus. The number is compared directly with its bounds (no count-based
test applies). With `minRequests`, fewer canary requests in the window is inconclusive; an empty
result names the selector when a histogram bound is written `le="1"` instead of `le="1.0"`.
Custom metrics have no sequential test: `failureLimit` keeps its meaning for them.
"""

from __future__ import annotations

import math
import re

from modeldeploy.operator.analysis.checks.base import Answers, Check, Run
from modeldeploy.operator.analysis.judgement import inconclusive, verdict
from modeldeploy.operator.analysis.queries import Plan, render_template, requests_sent
from modeldeploy.operator.analysis.results import MetricVerdict, Verdict
from modeldeploy.operator.api.rollout import CustomMetric


def template_variables(plan: Plan) -> dict[str, str]:
    """What a custom query's `{{ name }}` placeholders stand for in this run."""
    return {
        "model": plan.canary.model,
        "namespace": plan.canary.namespace,
        "revision": plan.canary.revision,
        "stableRevision": plan.stable.revision,
        "interval": plan.window,
    }


def checks(run: Run) -> list[Check]:
    variables = template_variables(run.plan)
    return [_check(metric, variables, run.plan) for metric in run.spec.metrics]


def _check(metric: CustomMetric, variables: dict[str, str], plan: Plan) -> Check:
    name, low, high = metric.name, metric.min, metric.max
    threshold = high if high is not None else low
    try:
        resolved = render_template(metric.query, variables)
    except ValueError as exc:
        message = f"{name}: {exc}"

        def unresolved(_: Answers) -> MetricVerdict:
            return inconclusive(name, threshold, metric.query, message)

        return Check(name, threshold, metric.query, (), unresolved)
    gate = metric.min_requests
    requests = requests_sent(plan)

    def judge(a: Answers) -> MetricVerdict:
        return judge_custom(
            name,
            a.number(resolved),
            low,
            high,
            resolved,
            unit=metric.unit,
            served=a.count(requests, plan.canary) if gate is not None else None,
            min_requests=gate,
            window=plan.window,
        )

    return Check(name, threshold, resolved, (resolved, requests) if gate is not None else (resolved,), judge)


_LE_MATCHER = re.compile(r'\ble\s*=\s*"([^"]*)"')


def bucket_selector_hint(query: str) -> str:
    """Why a histogram query may match nothing: `le="1"` where the series say `le="1.0"`.

    Bucket bounds are label strings: the sidecar (Python client) writes whole numbers as "1.0", and
    Prometheus 3 normalises every `le` to that form, so `le="1"` matches no series. "" when no
    `le="..."` matcher in `query` is a whole number written without ".0".
    """
    hints = []
    for written in _LE_MATCHER.findall(query):
        if written.isdigit():
            hints.append(f'le="{written}" matches no bucket: bounds are written le="{int(written)}.0"')
    return "; ".join(hints)


def with_unit(number: float, unit: str | None, spec: str = ".4g") -> str:
    """A number and its unit in words: "0.41 s", "12%", "3e+09 bytes"."""
    text = format(number, spec)
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def judge_custom(
    name: str,
    value: float | None,
    minimum: float | None,
    maximum: float | None,
    query: str,
    *,
    unit: str | None = None,
    served: float | None = None,
    min_requests: int | None = None,
    window: str = "",
) -> MetricVerdict:
    """A custom metric's single number against its `min` and/or `max`.

    With `min_requests`, fewer than that many canary requests `served` in the window is inconclusive
    (one slow request out of a few hundred must not fail a p99.9). `unit` is printed after the numbers.
    """
    threshold = maximum if maximum is not None else minimum
    if min_requests is not None and (served is None or served < min_requests):
        count = 0 if served is None or math.isnan(served) else round(served)
        why = f"{name}: the canary served only {count} requests in {window} (minRequests {min_requests})"
        return inconclusive(name, threshold, query, why)
    if value is None:
        hint = bucket_selector_hint(query)
        why = f"{name}: empty result (no series)" + (f"; {hint}" if hint else "")
        return inconclusive(name, threshold, query, why)
    if math.isnan(value):
        return inconclusive(name, threshold, query, f"{name}: result is NaN (e.g. 0/0 without traffic)")
    shown = value if math.isfinite(value) else None  # JSON (and so .status) has no infinity
    seen = with_unit(value, unit)
    if maximum is not None and value > maximum:
        message = f"{name} {seen} > max {with_unit(maximum, unit, 'g')}"
        return verdict(name, Verdict.FAIL, shown, maximum, query, message)
    if minimum is not None and value < minimum:
        message = f"{name} {seen} < min {with_unit(minimum, unit, 'g')}"
        return verdict(name, Verdict.FAIL, shown, minimum, query, message)
    bounds = [f">= {with_unit(minimum, unit, 'g')}"] if minimum is not None else []
    bounds += [f"<= {with_unit(maximum, unit, 'g')}"] if maximum is not None else []
    within = " and ".join(bounds)
    return verdict(name, Verdict.PASS, shown, threshold, query, f"{name} {seen} {within}")
