"""User actions on a ModelDeployment, requested through an annotation.

The kubectl plugin and GitOps users set one annotation::

    modeldeploy.io/action: promote@2026-11-22T10:00:00Z

The part before ``@`` is the action, the part after it is an id that makes the request unique.
The planner applies a request once: it remembers the last handled request (action and id) in
``status.lastAction`` and ignores the annotation while it still carries the same value. A value
without ``@id`` works too, but the same plain value twice in a row is applied only once; use a
fresh id to repeat an action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ACTION_ANNOTATION: Final = "modeldeploy.io/action"
"""Annotation holding the requested action, ``<action>`` or ``<action>@<id>``."""

ACTION_ID_SEPARATOR: Final = "@"

PROMOTE: Final = "promote"
"""Skip the current step: leave a pause (timed or not) or end the current shadow/canary step now."""

PROMOTE_FULL: Final = "promote-full"
"""Skip every remaining step and analysis: promote the canary revision as soon as it is ready."""

ABORT: Final = "abort"
"""Roll the current rollout back now (traffic to the stable revision, canary scaled down)."""

RETRY: Final = "retry"
"""Roll out again a revision that was rolled back (otherwise it is not retried)."""

PAUSE: Final = "pause"
"""Hold the rollout at its current step: traffic stays, analysis keeps running, the clock stops."""

RESUME: Final = "resume"
"""Continue after ``pause`` or after a pause caused by inconclusive analysis."""

ACTIONS: Final = (PROMOTE, PROMOTE_FULL, ABORT, RETRY, PAUSE, RESUME)


class ActionError(ValueError):
    """The action annotation does not name a known action."""


@dataclass(frozen=True)
class ActionRequest:
    """One parsed action request; ``key`` identifies it for the apply-once rule."""

    action: str
    request_id: str

    @property
    def key(self) -> str:
        return self.action if not self.request_id else f"{self.action}{ACTION_ID_SEPARATOR}{self.request_id}"


def action_value(action: str, request_id: str) -> str:
    """The annotation value requesting ``action`` with id ``request_id`` (what the plugin writes)."""
    if action not in ACTIONS:
        raise ActionError(f"unknown action {action!r}; expected one of: {', '.join(ACTIONS)}")
    if not request_id or any(c.isspace() for c in request_id):
        raise ActionError(f"action id must be a non-empty string without spaces, got {request_id!r}")
    return f"{action}{ACTION_ID_SEPARATOR}{request_id}"


def parse_action(value: str) -> ActionRequest:
    """Parse an annotation value; raises ActionError naming the accepted actions."""
    text = value.strip()
    action, _, request_id = text.partition(ACTION_ID_SEPARATOR)
    action = action.strip().lower()
    if action not in ACTIONS:
        raise ActionError(
            f"unknown action {action!r} in annotation {ACTION_ANNOTATION}={value!r}; "
            f"expected one of: {', '.join(ACTIONS)} (optionally followed by @<id>)"
        )
    return ActionRequest(action=action, request_id=request_id.strip())
