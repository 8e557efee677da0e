"""The Grafana dashboard shipped in the chart (``charts/modeldeploy/dashboards/modeldeploy.json``).

Written by ``make chart`` (:mod:`modeldeploy.operator.chartgen`); never edit the JSON by hand. Every
panel is PromQL over the public metrics: the sidecar's (``docs/serving.md``) and the operator's
(``modeldeploy.operator.metrics`` and ``modeldeploy.operator.analysis.metrics``). Templating
variables: ``datasource``, ``namespace`` and ``model`` (multi-value, from the sidecar's series) and
``operator_job`` (the Prometheus job(s) scraping the operator, found from its own series).
Grafana replaces ``$__rate_interval`` with a window of at least four scrape intervals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from modeldeploy.contract.metrics import DURATION, FEATURE_VALUES, GUARD, REQUESTS, SHADOW

UID: Final = "modeldeploy-rollouts"
TITLE: Final = "modeldeploy: model rollouts"
SCHEMA_VERSION: Final = 39

MODEL: Final = 'namespace=~"$namespace", model=~"$model"'
"""Label matchers every panel of a model selects with (the variables' values)."""
WINDOW: Final = "$__rate_interval"
MATCHED: Final = 'result="match"'
COMPARED: Final = 'result=~"match|mismatch"'
"""Shadow answers that agree, and those compared with an answer (errors and drops say nothing)."""

# The sidecar's metrics (docs/serving.md) beyond those the analysis queries already name.
GUARD_TRIPS: Final = "modeldeploy_guard_trips_total"
INFLIGHT: Final = "modeldeploy_inflight_requests"
ROUTING_GENERATION: Final = "modeldeploy_routing_generation"
ROUTING_ERRORS: Final = "modeldeploy_routing_errors_total"
CONTRACT_CHECKS: Final = "modeldeploy_contract_checks_total"
CONTRACT_VIOLATIONS: Final = "modeldeploy_contract_violations_total"
# The operator's metrics.
ANALYSIS_VALUE: Final = "modeldeploy_analysis_value"
ANALYSIS_THRESHOLD: Final = "modeldeploy_analysis_threshold"
ANALYSIS_VERDICTS: Final = "modeldeploy_analysis_verdicts_total"
ROLLOUT_PHASE: Final = "modeldeploy_operator_rollout_phase"
ROLLOUTS_IN_PROGRESS: Final = "modeldeploy_operator_rollouts_in_progress"
PROMOTIONS: Final = "modeldeploy_operator_promotions_total"
ROLLBACKS: Final = "modeldeploy_operator_rollbacks_total"
RECONCILES: Final = "modeldeploy_operator_reconciles_total"
RECONCILE_SECONDS: Final = "modeldeploy_operator_reconcile_duration_seconds"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def rate(metric: str, matchers: str = "") -> str:
    selector = MODEL + (f", {matchers}" if matchers else "")
    return f"rate({metric}{{{selector}}}[{WINDOW}])"


def ratio(metric: str, by: str, part: str, whole: str = "") -> str:
    """sum(part)/sum(whole) per `by`, 0 (not "no data") where the part has no series yet."""
    numerator = f"sum by ({by}) ({rate(metric, part)})"
    denominator = f"sum by ({by}) ({rate(metric, whole)})"
    return f"({numerator} or {denominator} * 0)\n/ {denominator}"


def quantile(q: float, by: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) ({rate(DURATION + '_bucket')}))"


TRAFFIC = Row(
    "Traffic per revision and route",
    (
        Panel(
            "Requests per second",
            "Requests each revision's sidecars handled, by route: `local` (this pod's model answered) "
            "and `canary` (a stable sidecar forwarded the request to the canary; the canary counts it "
            "again as `local`).",
            (Target(f"sum by (revision, route) ({rate(REQUESTS)})", "{{revision}} {{route}}"),),
            unit="reqps",
        ),
        Panel(
            "Error ratio (5xx)",
            "Share of 5xx answers per revision and route: what the errorRate SLO judges on `local`.",
            (Target(ratio(REQUESTS, "revision, route", 'code=~"5.."'), "{{revision}} {{route}}"),),
            unit="percentunit",
        ),
        Panel(
            "Latency p99",
            "99th percentile of the request duration per revision and route: what the latencyP99 SLO "
            "judges on `local`.",
            (Target(quantile(0.99, "revision, route"), "{{revision}} {{route}}"),),
            unit="s",
        ),
        Panel(
            "Latency p50",
            "Median request duration per revision and route.",
            (Target(quantile(0.5, "revision, route"), "{{revision}} {{route}}"),),
            unit="s",
        ),
    ),
)

GUARDRAILS = Row(
    "Shadow, guard, contract and drift",
    (
        Panel(
            "Shadow agreement",
            "Share of compared shadow answers that matched the stable answer, per shadow revision "
            "(the shadowAgreement metric of the analysis).",
            (
                Target(
                    f"sum by (revision) ({rate(SHADOW, MATCHED)})\n"
                    f"/ sum by (revision) ({rate(SHADOW, COMPARED)})",
                    "{{revision}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Shadow copies per second by result",
            "Copies sent to the shadow revision: match, mismatch, error, and dropped (never sent: the "
            "stable sidecar was saturated).",
            (Target(f"sum by (revision, result) ({rate(SHADOW)})", "{{revision}} {{result}}"),),
            unit="reqps",
        ),
        Panel(
            "Fast guard",
            "Guard trips of the canary revision (its last requests failed; it got no more traffic) and "
            "whether the guard is tripped now.",
            (
                Target(
                    f"sum by (revision) (increase({GUARD_TRIPS}{{{MODEL}}}[{WINDOW}]))", "trips {{revision}}"
                ),
                Target(f"max by (revision) ({GUARD}{{{MODEL}}})", "tripped {{revision}}"),
            ),
        ),
        Panel(
            "Contract violation ratio",
            "Share of checked request bodies that violated the data contract, per revision that served "
            "them (with `policy: reject` they were answered 422).",
            (Target(ratio(CONTRACT_CHECKS, "revision", 'result="violation"'), "{{revision}}"),),
            unit="percentunit",
        ),
        Panel(
            "Contract violations by field",
            "Violations per second by JSON pointer of the failing value (array indices as `*`).",
            (Target(f"sum by (revision, field) ({rate(CONTRACT_VIOLATIONS)})", "{{revision}} {{field}}"),),
            unit="reqps",
        ),
        Panel(
            "Input feature mean",
            "Mean of each drift feature's input values per revision (from the input histograms the "
            "drift gate compares).",
            (
                Target(
                    f"sum by (revision, feature) ({rate(FEATURE_VALUES + '_sum')})\n"
                    f"/ sum by (revision, feature) ({rate(FEATURE_VALUES + '_count')})",
                    "{{revision}} {{feature}}",
                ),
            ),
        ),
        Panel(
            "Input drift (PSI) vs limit",
            "The drift gate's population stability index of the new revision's inputs against "
            "stable's, per feature, and `maxInputPSI`.",
            (
                Target(f'{ANALYSIS_VALUE}{{{MODEL}, metric=~"inputPSI/.*"}}', "PSI {{metric}}"),
                Target(f'{ANALYSIS_THRESHOLD}{{{MODEL}, metric=~"inputPSI/.*"}}', "limit {{metric}}"),
            ),
        ),
    ),
)

ANALYSIS = Row(
    "Analysis",
    (
        Panel(
            "Analysis value vs threshold",
            "The latest measured value of every analysis metric of the revision under test and the "
            "threshold it is judged against (ratios 0-1, latencies in seconds).",
            (
                Target(f"{ANALYSIS_VALUE}{{{MODEL}}}", "value {{model}} {{metric}}"),
                Target(f"{ANALYSIS_THRESHOLD}{{{MODEL}}}", "threshold {{model}} {{metric}}"),
            ),
        ),
        Panel(
            "Analysis verdicts",
            "Verdicts per metric in the window: pass, fail (failureLimit of them rolls back) and "
            "inconclusive (too little data; never promotes).",
            (
                Target(
                    f"sum by (metric, verdict) (increase({ANALYSIS_VERDICTS}{{{MODEL}}}[{WINDOW}]))",
                    "{{metric}} {{verdict}}",
                ),
            ),
        ),
    ),
)

ROLLOUTS = Row(
    "Rollouts",
    (
        Panel(
            "ModelDeployments by phase",
            "How many ModelDeployments are in each phase now.",
            (Target(f"sum by (phase) ({ROLLOUT_PHASE}{{{MODEL}}})", "{{phase}}"),),
            kind="bargauge",
            extra={"options": {"orientation": "horizontal", "displayMode": "basic"}},
        ),
        Panel(
            "Phase per ModelDeployment",
            "The phase of each ModelDeployment over time (1 while in that phase).",
            (Target(f"{ROLLOUT_PHASE}{{{MODEL}}} == 1", "{{namespace}}/{{model}} {{phase}}"),),
        ),
        Panel(
            "Promotions and rollbacks",
            "Revisions promoted to stable, and rolled back by reason, in the window.",
            (
                Target(f"sum by (model) (increase({PROMOTIONS}{{{MODEL}}}[{WINDOW}]))", "promoted {{model}}"),
                Target(
                    f"sum by (model, reason) (increase({ROLLBACKS}{{{MODEL}}}[{WINDOW}]))",
                    "rolled back {{model}} ({{reason}})",
                ),
            ),
        ),
        Panel(
            "Rollouts in progress",
            "ModelDeployments rolling out or paused.",
            (Target(f"sum({ROLLOUTS_IN_PROGRESS}{{{MODEL}}})", "in progress"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Routing tables in force",
            "Generation of the routing table each revision's sidecars apply (-1: none yet), and "
            "rejected tables.",
            (
                Target(f"max by (revision) ({ROUTING_GENERATION}{{{MODEL}}})", "generation {{revision}}"),
                Target(
                    f"sum by (revision) (increase({ROUTING_ERRORS}{{{MODEL}}}[{WINDOW}]))",
                    "rejected {{revision}}",
                ),
            ),
            width=18,
        ),
    ),
)

OPERATOR = Row(
    "Operator",
    (
        Panel(
            "Operator replicas up",
            "Scrape health of the operator's replicas (one is active; the others stand by).",
            (Target('up{job=~"$operator_job"}', "{{instance}}"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Reconciles per second by result",
            "Reconciles of ModelDeployments: ok, retry (a conflict or a transient error) and error.",
            (
                Target(
                    f"sum by (result) (rate({RECONCILES}{{{MODEL}}}[{WINDOW}]))",
                    "{{result}}",
                ),
            ),
            unit="ops",
            width=9,
        ),
        Panel(
            "Reconcile duration p99",
            "Time to read, analyse, plan and apply one ModelDeployment.",
            (
                Target(
                    "histogram_quantile(0.99, sum by (le) ("
                    f'rate({RECONCILE_SECONDS}_bucket{{job=~"$operator_job"}}[{WINDOW}])))',
                    "p99",
                ),
            ),
            unit="s",
            width=9,
        ),
    ),
)

ROWS: Final = (TRAFFIC, GUARDRAILS, ANALYSIS, ROLLOUTS, OPERATOR)

HEIGHT: Final = 8


def _variable(name: str, label: str, query: str, *, multi: bool) -> dict[str, Any]:
    variable: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "current": {},
        "options": [],
        "hide": 0,
    }
    if multi:
        variable["allValue"] = ".*"
    return variable


def templating() -> dict[str, Any]:
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Prometheus",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "options": [],
                "hide": 0,
                "refresh": 1,
            },
            _variable("namespace", "Namespace", f"label_values({REQUESTS}, namespace)", multi=True),
            _variable(
                "model", "Model", f'label_values({REQUESTS}{{namespace=~"$namespace"}}, model)', multi=True
            ),
            _variable("operator_job", "Operator job", f"label_values({RECONCILES}, job)", multi=True),
        ]
    }


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": HEIGHT},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": target.expr,
                "legendFormat": target.legend,
            }
            for index, target in enumerate(panel.targets)
        ],
    }
    body.update(panel.extra)
    return body


def dashboard() -> dict[str, Any]:
    """The dashboard model (Grafana JSON): one collapsed-open row per `ROWS` entry, panels 24 wide."""
    panels: list[dict[str, Any]] = []
    next_id, y = 1, 0
    for row in ROWS:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        next_id, y, x = next_id + 1, y + 1, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y = 0, y + HEIGHT
            panels.append(_panel(panel, next_id, x, y))
            next_id, x = next_id + 1, x + panel.width
        y += HEIGHT
    return {
        "uid": UID,
        "title": TITLE,
        "description": "Rollouts of ModelDeployments: traffic, errors and latency per revision and route, "
        "shadow, guard, contract, drift, analysis against thresholds, phases and the operator.",
        "tags": ["modeldeploy"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "",
        "templating": templating(),
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target, with the variables unsubstituted."""
    return [(panel.title, target.expr) for row in ROWS for panel in row.panels for target in panel.targets]
