"""User actions (promote, abort, retry, pause, resume) requested through the action annotation,
and the wait for the operator's acknowledgement in `status.lastAction`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modeldeploy.operator.cli.kube import ModelDeployments
from modeldeploy.operator.planner.actions import ACTION_ANNOTATION, action_value


def new_request_id(now: datetime | None = None) -> str:
    """Unique per request: a UTC timestamp (readable in `status.lastAction.id`) and a random suffix."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Acknowledgement:
    value: str
    """The annotation value that was written."""
    result: str | None
    """Applied, Ignored or Rejected; None when the operator did not answer in time."""
    message: str


def request(
    mds: ModelDeployments,
    name: str,
    action: str,
    wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Acknowledgement:
    """Write the action annotation; wait up to `wait_seconds` for the operator to acknowledge it."""
    value = action_value(action, new_request_id())
    mds.patch(name, {"metadata": {"annotations": {ACTION_ANNOTATION: value}}})
    deadline = time.monotonic() + wait_seconds
    while True:
        last: dict[str, Any] = (mds.get(name).get("status") or {}).get("lastAction") or {}
        if last.get("id") == value:
            return Acknowledgement(value, last.get("result"), str(last.get("message") or ""))
        if time.monotonic() >= deadline:
            return Acknowledgement(value, None, "")
        sleep(0.25)
