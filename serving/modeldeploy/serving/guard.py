"""The fast guard: stop sending traffic to a canary that is failing, before the operator reacts.

The guard keeps the outcomes of the last `window` requests forwarded to the canary. Once at least
`min_requests` outcomes are known and the share of failures among them exceeds `max_error_ratio`,
the guard trips and stays tripped for this canary revision: the sidecar then serves everything
locally. A new canary revision (or none) starts a fresh guard. The operator still makes the
durable rollback decision from the metrics.
"""

from __future__ import annotations

from collections import deque

from modeldeploy.contract.routing import GuardSettings


class CanaryGuard:
    """Sliding-window error ratio over canary-forwarded requests, with a latch once tripped."""

    def __init__(self, settings: GuardSettings) -> None:
        self._settings = settings
        self._outcomes: deque[bool] = deque(maxlen=settings.window)
        self._failures = 0
        self._tripped = False

    @property
    def settings(self) -> GuardSettings:
        return self._settings

    @property
    def tripped(self) -> bool:
        return self._tripped

    @property
    def observed(self) -> int:
        """Outcomes currently in the window."""
        return len(self._outcomes)

    @property
    def failures(self) -> int:
        """Failures currently in the window."""
        return self._failures

    def error_ratio(self) -> float:
        return self._failures / len(self._outcomes) if self._outcomes else 0.0

    def record(self, failed: bool) -> bool:
        """Add one canary outcome. Returns True exactly when this outcome trips the guard."""
        if self._tripped:
            return False
        if len(self._outcomes) == self._outcomes.maxlen and self._outcomes[0]:
            self._failures -= 1
        self._outcomes.append(failed)
        if failed:
            self._failures += 1
        if len(self._outcomes) >= self._settings.min_requests and self.error_ratio() > (
            self._settings.max_error_ratio
        ):
            self._tripped = True
            return True
        return False

    def reconfigure(self, settings: GuardSettings) -> None:
        """Apply new limits to the same canary, keeping the latest outcomes and the latch."""
        if settings == self._settings:
            return
        self._settings = settings
        self._outcomes = deque(self._outcomes, maxlen=settings.window)
        self._failures = sum(self._outcomes)
