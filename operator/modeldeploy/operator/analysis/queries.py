"""What the PromQL of every check shares (pure functions: strings in, strings out): windows, the
selectors of a revision and of both revisions of a ModelDeployment, the requests each revision
served, custom-query templates. Each kind of check builds its own queries (`analysis.checks`).

Which series describe a revision: every request is counted by the sidecar of the pod that served it,
with `revision` = that pod's revision and `route="local"`. A stable sidecar also counts the requests
it forwards to the canary (`route="canary"`), so selecting `route="local"` counts each request once,
where it was served. Shadow copies are served by the shadow revision's own sidecar (`route="local"`
there); their comparison results are counted by the stable sidecar that sent them, in
`modeldeploy_shadow_requests_total{revision=<shadow revision>, result=match|mismatch|error|dropped}`.

Input drift: `modeldeploy_input_feature_value_bucket{feature, le}` histograms, counted by the sidecar
that served the request (like `route="local"`), compared between the new and the stable revision.

Every query covers one window ending now: `increase(...[w])` for counts, `rate(...[w])` inside
`histogram_quantile` for latency. Errors are responses with a 5xx status code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from modeldeploy.contract.metrics import REQUESTS, promql_string


def promql_duration(window: timedelta) -> str:
    """A range-selector duration in whole seconds, rounded up (e.g. 30s, 90s); at least 1s."""
    seconds = max(1, math.ceil(window.total_seconds()))
    return f"{seconds}s"


def query_window(interval: timedelta, min_window: timedelta) -> timedelta:
    """The window every query covers: the analysis interval, but never less than `min_window`.

    `rate()`/`increase()` need at least two samples in the window, so `min_window` should be at least
    two (better four) scrape intervals of the Prometheus that scrapes the sidecars.
    """
    if interval <= timedelta(0) or min_window < timedelta(0):
        raise ValueError("interval must be positive and min_window not negative")
    return max(interval, min_window)


@dataclass(frozen=True, slots=True)
class RevisionSelector:
    """The series of one revision of one ModelDeployment, as served by that revision's own pods."""

    model: str
    namespace: str
    revision: str

    def matchers(self, *extra: str) -> str:
        parts = [
            f"namespace={promql_string(self.namespace)}",
            f"model={promql_string(self.model)}",
            f"revision={promql_string(self.revision)}",
            *extra,
        ]
        return "{" + ",".join(parts) + "}"

    def served(self, *extra: str) -> str:
        """Matchers of the requests this revision served (each counted once)."""
        return self.matchers('route="local"', *extra)


def requests_query(sel: RevisionSelector, window: str) -> str:
    """Requests the revision served in the window."""
    return f"sum(increase({REQUESTS}{sel.served()}[{window}]))"


def both_revisions(new: RevisionSelector, stable: RevisionSelector, *extra: str) -> str:
    """Matchers of the two revisions of one ModelDeployment (`revision=~"<new>|<stable>"`)."""
    if (new.model, new.namespace) != (stable.model, stable.namespace):
        raise ValueError("both revisions must belong to the same ModelDeployment")
    revisions = "|".join(re.escape(r) for r in dict.fromkeys((new.revision, stable.revision)))
    parts = [
        f"namespace={promql_string(new.namespace)}",
        f"model={promql_string(new.model)}",
        f"revision=~{promql_string(revisions)}",
        *extra,
    ]
    return "{" + ",".join(parts) + "}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run's queries cover: the window (a PromQL duration) and the two revisions.

    The status shows each revision's own query (to paste into Prometheus); the run *sends* one
    query per metric that covers both revisions, grouped by revision, and picks each revision's
    series from the answer (`Sent`). `all_models` (the default): the sent query covers every
    ModelDeployment (`sum by (namespace, model, revision)`), so it is the same string for every
    ModelDeployment whose window is the same, and Prometheus evaluates it once for all of them
    (`prometheus.SHARE_ANSWERS_FOR`). False: only this ModelDeployment's two revisions
    (`revision=~"<new>|<stable>"`), for windows no other ModelDeployment shares (the time since a
    rollout began).
    """

    window: str
    canary: RevisionSelector
    stable: RevisionSelector
    all_models: bool = True

    def selector(self, metric: str, *extra: str) -> str:
        """`metric{...}` over what the sent queries cover, with `extra` matchers."""
        if not self.all_models:
            return metric + both_revisions(self.canary, self.stable, *extra)
        return metric + ("{" + ",".join(extra) + "}" if extra else "")

    def by(self, *labels: str) -> str:
        """The grouping of a sent query: the revision's identity, then `labels`."""
        keys = ("namespace", "model", "revision") if self.all_models else ("revision",)
        return "by (" + ", ".join((*keys, *labels)) + ")"


def requests_sent(plan: Plan) -> str:
    """`requests_query` of both revisions (or of every ModelDeployment) in one query."""
    selector = plan.selector(REQUESTS, 'route="local"')
    return f"sum {plan.by()} (increase({selector}[{plan.window}]))"


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """Replace `{{ name }}` placeholders (spaces optional) with `variables[name]`.

    An unknown placeholder is an error naming the known ones, so a typo never reaches Prometheus.
    """
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(variables))
    if unknown:
        known = ", ".join("{{" + name + "}}" for name in variables)
        shown = ", ".join("{{" + name + "}}" for name in unknown)
        raise ValueError(f"unknown placeholder {shown} in query (known: {known})")
    return _PLACEHOLDER.sub(lambda m: variables[m.group(1)], template)
