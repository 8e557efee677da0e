"""`kubectl modeldeploy history` and the choice of the revision `undo` goes back to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modeldeploy.operator.api import HistoryEntry, ModelDeploymentStatus
from modeldeploy.operator.cli.view import ago, table


class UndoError(ValueError):
    """No history entry to go back to (with the reason)."""


def render_history(status: ModelDeploymentStatus, spec_image: str, now: datetime) -> str:
    if not status.history:
        return "no finished rollouts yet"
    rows = [("#", "REVISION", "IMAGE", "OUTCOME", "AGE", "REASON")]
    stable_at = max(
        (
            n
            for n, e in enumerate(status.history, 1)
            if e.revision == status.stable_revision and e.outcome == "Promoted"
        ),
        default=0,
    )
    for number, entry in enumerate(status.history, start=1):
        revision = entry.revision
        if number == stable_at:
            revision += " (stable)"
        rows.append((str(number), revision, entry.image, entry.outcome, ago(entry.at, now), entry.reason))
    lines = table(rows)
    if status.canary_revision:
        lines.append(f"rolling out now: {status.canary_revision} {status.canary_image or ''}".rstrip())
    lines.append(f"spec image: {spec_image}")
    return "\n".join(lines)


@dataclass(frozen=True)
class UndoTarget:
    entry: HistoryEntry
    number: int
    """1-based position in the history table."""


def undo_target(status: ModelDeploymentStatus, spec_image: str, to: str | None = None) -> UndoTarget:
    """The promoted revision to go back to.

    ``to``: a revision hash (or unique prefix) or a history number from `history`; by default the
    newest promoted revision whose image differs from the spec's (during a rollout that is the
    stable revision, so undo cancels the rollout; otherwise the previous stable revision).
    """
    promoted = [(n, e) for n, e in enumerate(status.history, start=1) if e.outcome == "Promoted"]
    if to is None:
        for number, entry in reversed(promoted):
            if entry.image != spec_image:
                return UndoTarget(entry, number)
        raise UndoError("no earlier promoted revision with another image in the history")
    if to.isdigit() and len(to) < 4:
        number = int(to)
        if not 1 <= number <= len(status.history):
            raise UndoError(f"history has entries 1..{len(status.history)}, not {number}")
        entry = status.history[number - 1]
        if entry.outcome != "Promoted":
            raise UndoError(f"entry {number} (revision {entry.revision}) was {entry.outcome}, never promoted")
        return _differs(UndoTarget(entry, number), spec_image)
    matches = [(n, e) for n, e in promoted if e.revision.startswith(to)]
    if not matches:
        raise UndoError(f"no promoted revision {to!r} in the history (see kubectl modeldeploy history)")
    if len({e.revision for _, e in matches}) > 1:
        raise UndoError(
            f"revision prefix {to!r} is ambiguous: {', '.join(sorted({e.revision for _, e in matches}))}"
        )
    number, entry = matches[-1]
    return _differs(UndoTarget(entry, number), spec_image)


def _differs(target: UndoTarget, spec_image: str) -> UndoTarget:
    if target.entry.image == spec_image:
        raise UndoError(f"the spec already runs the image of revision {target.entry.revision}: {spec_image}")
    return target
