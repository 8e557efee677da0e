"""Grafana's side of the chart's dashboard for tests: its panel queries with the template variables
replaced as Grafana replaces them."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.cluster.localcluster import ROOT

DASHBOARD = ROOT / "charts" / "modeldeploy" / "dashboards" / "modeldeploy.json"
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panel_targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel that has targets."""
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def regex_value(values: list[str]) -> str:
    """A multi-value variable inside a `=~` matcher: Grafana joins the regex-escaped values with |."""
    escaped = [re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, values: dict[str, str]) -> str:
    """`expr` with every $variable / ${variable} replaced; an unknown variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"variable ${name} has no value (query: {expr})")
        return values[name]

    return _VARIABLE.sub(replace, expr)
