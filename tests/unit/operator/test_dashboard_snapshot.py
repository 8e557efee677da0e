"""The dashboard's pure parts: the snapshot of a ModelDeployment, the analysis recorder, the chart
queries and the parsing of Prometheus range answers, on objects captured from the operator."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.operator.cli.dashboard.charts import ChartError, _series, charts
from modeldeploy.operator.cli.dashboard.recorder import AnalysisRecorder
from modeldeploy.operator.cli.dashboard.snapshot import snapshot
from modeldeploy.operator.cli.main import parser

SAMPLES = Path(__file__).resolve().parents[2] / "argocd" / "samples"
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def sample(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())["object"]
    return obj


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_captured_state_makes_a_json_snapshot(path: Path) -> None:
    obj = json.loads(path.read_text())["object"]
    snap = snapshot(obj, NOW)
    assert snap["key"] == f"ml/{obj['metadata']['name']}"
    assert snap["phase"] == obj["status"]["phase"] and snap["problem"] is None
    assert json.loads(json.dumps(snap)) == snap


def test_steps_of_a_canary_in_progress() -> None:
    snap = snapshot(sample("progressing-canary"), NOW)
    assert [(s["label"], s["state"]) for s in snap["steps"]] == [
        ("shadow 50% for 3s", "done"),
        ("canary 40% for 10m", "running"),
        ("pause until promoted", "pending"),
    ]
    assert snap["traffic"] == {"canaryWeight": 40, "shadowPercent": 0}
    assert snap["canary"]["revision"] and snap["canary"]["revision"] != snap["stable"]["revision"]


def test_paused_step_and_rollback_reason() -> None:
    paused = snapshot(sample("paused-by-user"), NOW)
    assert "paused" in [s["state"] for s in paused["steps"]] and paused["pauseReason"] == "UserPaused"
    rolled_back = snapshot(sample("rolled-back-analysis"), NOW)
    assert rolled_back["rollbackReason"] and rolled_back["history"][-1]["outcome"] == "RolledBack"
    assert all(s["state"] == "pending" for s in rolled_back["steps"])


def test_recorder_keeps_one_sample_per_metric_and_run() -> None:
    recorder = AnalysisRecorder(max_samples=3)
    snap = snapshot(sample("progressing-canary"), NOW)
    metrics = len(snap["analysis"]["results"])
    assert metrics >= 1
    assert recorder.observe(snap) is True
    assert recorder.observe(snap) is False, "the same run is recorded once"
    samples = recorder.samples(snap["key"])
    assert len(samples) == min(3, metrics)
    assert samples[0]["revision"] == snap["canary"]["revision"]
    later = {**snap, "analysis": {**snap["analysis"], "lastRun": "2031-01-01T00:00:00+00:00"}}
    assert recorder.observe(later) is True
    assert len(recorder.samples(snap["key"])) == min(3, 2 * metrics), "bounded"
    recorder.forget(snap["key"])
    assert recorder.samples(snap["key"]) == []


def test_chart_queries_select_one_model_and_count_served_requests() -> None:
    by_id = {c.id: c for c in charts('ns"x', "iris", "30s")}
    assert set(by_id) == {"requests", "errors", "latency", "shadow", "guard"}
    assert by_id["requests"].query == (
        "sum by (revision) (rate(modeldeploy_requests_total"
        '{namespace="ns\\"x",model="iris",route="local"}[30s]))'
    )
    assert 'code=~"5.."' in by_id["errors"].query and by_id["errors"].unit == "ratio"
    assert by_id["latency"].query.startswith("histogram_quantile(0.99, sum by (revision, le)")


def test_range_answers_are_parsed_and_errors_said() -> None:
    payload = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"revision": "b"}, "values": [[1, "0.5"], [2, "NaN"], [3, "+Inf"], [4, "1"]]},
                {"metric": {"revision": "a"}, "values": [[1, "2"]]},
            ],
        },
    }
    assert _series(payload) == [
        {"revision": "a", "points": [[1.0, 2.0]]},
        {"revision": "b", "points": [[1.0, 0.5], [4.0, 1.0]]},
    ]
    with pytest.raises(ChartError, match="parse error"):
        _series({"status": "error", "error": "parse error at char 3"})
    with pytest.raises(ChartError, match="matrix"):
        _series({"status": "success", "data": {"resultType": "vector", "result": []}})


def test_dashboard_options() -> None:
    args = parser().parse_args(["dashboard", "--enable-actions", "--port", "9000", "-n", "ml"])
    assert (args.enable_actions, args.port, args.address, args.namespace) == (True, 9000, "127.0.0.1", "ml")
    assert parser().parse_args(["dashboard"]).enable_actions is False
