"""Waiting for a revision's pods, bounded by ``spec.progressDeadline``: one rule for every wait.

The first revision's pods, a step's pods before its traffic takes effect, and a running step
whose pods were lost all wait this way: the wait starts when the pods are first seen short
(``status.waitingForPodsSince``, kept across calls and shifted by a pause) and is overdue
``progressDeadline`` later. What an overdue wait means (rollback, or Failed for the first
revision) and when the wait is over (the field cleared) is each caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from modeldeploy.operator.api import format_duration
from modeldeploy.operator.planner.context import Tick


@dataclass(frozen=True)
class PodWait:
    ready: int
    need: int
    since: datetime | None = None
    """When the wait began (None when enough pods are ready)."""
    deadline: datetime | None = None
    overdue: bool = False
    waited_for: timedelta = timedelta(0)

    @property
    def met(self) -> bool:
        return self.ready >= self.need

    @property
    def waited(self) -> str:
        """How long the wait has lasted, for messages (e.g. 5m0s)."""
        return format_duration(self.waited_for)

    @property
    def wake(self) -> list[datetime]:
        """When to look again: at the deadline while the wait lasts."""
        return [] if self.deadline is None else [self.deadline]


def wait_for_pods(tick: Tick, revision: str, need: int) -> PodWait:
    """Whether ``need`` pods of ``revision`` are ready; if not, the wait (started now if new)."""
    ready = tick.ready_replicas(revision)
    if ready >= need:
        return PodWait(ready, need)
    status = tick.status
    since = status.waiting_for_pods_since or tick.now
    status.waiting_for_pods_since = since
    deadline = since + tick.progress_deadline
    return PodWait(ready, need, since, deadline, tick.now >= deadline, tick.now - since)
