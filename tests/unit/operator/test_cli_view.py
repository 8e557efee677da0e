"""The kubectl plugin's status view, history and undo choice, on objects captured from the operator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.operator.api import ModelDeploymentStatus
from modeldeploy.operator.cli.history import UndoError, render_history, undo_target
from modeldeploy.operator.cli.main import parser
from modeldeploy.operator.cli.view import parse, progress, progress_bar, render_status

SAMPLES = Path(__file__).resolve().parents[2] / "argocd" / "samples"


def sample(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())["object"]
    return obj


def started(obj: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(obj["status"]["stepStartedAt"])


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_captured_state_renders(path: Path) -> None:
    obj = json.loads(path.read_text())["object"]
    text = render_status(obj, datetime(2030, 1, 1, tzinfo=UTC))
    assert text.startswith(f"Name:           {obj['metadata']['name']}\nNamespace:      ml\n")
    assert "Status:         " in text and obj["status"]["phase"] in text
    assert "Progress:       [" in text
    assert "Problem:" not in text


def test_canary_step_view() -> None:
    obj = sample("progressing-canary")
    text = render_status(obj, started(obj) + timedelta(minutes=5))
    assert "Status:         ◌ Progressing" in text
    assert "Traffic:        canary 40%, shadow 0%" in text
    assert "Step:           2/3" in text
    steps = [
        "  ✔  1  shadow 50% for 3s",
        "  ▶  2  canary 40% for 10m   (running 5m00s)",
        "  ·  3  pause until promoted",
    ]
    assert "\n".join(steps) in text
    assert "override  ✔ Pass" in text
    # Step 2 of 3 half done, the promotion is the fourth share: (1 + 0.5) / 4.
    assert "[" + "█" * 11 + "░" * 19 + "]  38%" in text


def test_progress_stops_while_paused_and_is_empty_after_a_rollback() -> None:
    paused = sample("paused-by-user")
    later = started(paused) + timedelta(hours=1)
    frozen = progress(parse(paused), later)
    assert frozen == progress(parse(paused), later + timedelta(hours=1)) < 0.5
    assert "॥  2  canary 40% for 10m" in render_status(paused, later)
    assert progress(parse(sample("rolled-back-analysis")), later) == 0.0
    assert progress(parse(sample("succeeded")), later) == 1.0


def test_rollback_view_shows_why_and_the_failed_verdict() -> None:
    text = render_status(sample("rolled-back-analysis"))
    assert "Status:         ✖ RolledBack" in text
    assert (
        "Rolled back:    revision 7521a40e9e (registry.example.com/iris:2.0-bad) rolled back: analysis"
        in text
    )
    assert "override  ✖ Fail" in text
    assert "failures 2/2" in text


def test_unobserved_generation_is_said() -> None:
    text = render_status(sample("generation-not-observed"))
    assert "✔ Succeeded — generation 2 not yet observed by the operator" in text


def test_progress_bar_bounds() -> None:
    assert progress_bar(0.0, 4) == "[░░░░]   0%"
    assert progress_bar(1.0, 4) == "[████] 100%"
    assert progress_bar(-1.0, 4) == "[░░░░]   0%"
    assert progress_bar(3.0, 4) == "[████] 100%"
    assert progress_bar(0.5, 4) == "[██░░]  50%"


def status(*entries: tuple[str, str, str], stable: str | None = None) -> ModelDeploymentStatus:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    return ModelDeploymentStatus.model_validate(
        {
            "stableRevision": stable,
            "history": [
                {"revision": rev, "image": image, "outcome": outcome, "at": at.isoformat()}
                for rev, image, outcome in entries
            ],
        }
    )


HISTORY = status(
    ("aaaa000001", "iris:1", "Promoted"),
    ("bbbb000002", "iris:2", "RolledBack"),
    ("cccc000003", "iris:3", "Promoted"),
    stable="cccc000003",
)


def test_undo_defaults_to_the_previous_promoted_image() -> None:
    target = undo_target(HISTORY, "iris:3")
    assert (target.entry.revision, target.number) == ("aaaa000001", 1)


def test_undo_during_a_rollout_goes_back_to_stable() -> None:
    assert undo_target(HISTORY, "iris:4").entry.revision == "cccc000003"


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("2", "entry 2 (revision bbbb000002) was RolledBack, never promoted"),
        ("9", "history has entries 1..3, not 9"),
        ("bbbb", "no promoted revision 'bbbb'"),
        ("cccc", "the spec already runs the image of revision cccc000003"),
        ("3", "the spec already runs the image"),
    ],
)
def test_undo_refuses_with_the_reason(to: str, message: str) -> None:
    with pytest.raises(UndoError, match=message.replace("(", r"\(").replace(")", r"\)")):
        undo_target(HISTORY, "iris:3", to)


def test_undo_by_prefix_and_number() -> None:
    assert undo_target(HISTORY, "iris:3", "aaaa").number == 1
    assert undo_target(HISTORY, "iris:3", "1").entry.image == "iris:1"


def test_undo_without_history() -> None:
    with pytest.raises(UndoError, match="no earlier promoted revision"):
        undo_target(status(), "iris:1")


def test_history_table() -> None:
    text = render_history(HISTORY, "iris:3", datetime(2030, 1, 1, 0, 2, tzinfo=UTC))
    lines = text.splitlines()
    assert lines[0].split() == ["#", "REVISION", "IMAGE", "OUTCOME", "AGE", "REASON"]
    assert lines[3].split()[:5] == ["3", "cccc000003", "(stable)", "iris:3", "Promoted"]
    assert "2m00s" in lines[1]
    assert lines[-1] == "spec image: iris:3"
    assert render_history(status(), "x", datetime(2030, 1, 1, tzinfo=UTC)) == "no finished rollouts yet"


def test_namespace_flag_works_before_and_after_the_command() -> None:
    assert parser().parse_args(["-n", "a", "status", "x"]).namespace == "a"
    assert parser().parse_args(["status", "x", "-n", "b"]).namespace == "b"
    assert parser().parse_args(["promote", "x", "--full"]).full is True
    with pytest.raises(SystemExit):
        parser().parse_args(["explode", "x"])


def test_history_marks_only_the_promotion_in_force_as_stable() -> None:
    obj = sample("succeeded-after-rollouts")
    text = render_history(parse(obj).status, obj["spec"]["model"]["image"], datetime(2030, 1, 1, tzinfo=UTC))
    marked = [line for line in text.splitlines() if "(stable)" in line]
    assert len(marked) == 1 and "Promoted" in marked[0]
