"""The routing table in force and the per-request decision: local or canary, and a shadow copy or not.

Only the sidecar of the *stable* revision splits traffic. Sidecars of other revisions (canary,
shadow, or a stable revision that was replaced) serve everything locally, and so does any sidecar
for requests that another sidecar already forwarded (loop prevention by header), or before the
first routing table arrives.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.contract.routing import RoutingTable
from modeldeploy.serving.guard import CanaryGuard
from modeldeploy.serving.metrics import CANARY, LOCAL, SHADOW, SidecarMetrics
from modeldeploy.serving.settings import SidecarSettings
from modeldeploy.serving.split import choose_canary, choose_shadow

log = logging.getLogger("modeldeploy.sidecar.router")

FORWARDED_HEADER = "x-modeldeploy-forwarded"
"""Set on requests a sidecar sends to a canary or shadow; its value is the sending revision."""
SHADOW_HEADER = "x-modeldeploy-shadow"
"""Set to "1" on shadow copies, so the shadow's model and logs can tell them apart."""


@dataclass(frozen=True, slots=True)
class Target:
    revision: str
    url: str
    route: str  # metrics.LOCAL, metrics.CANARY or metrics.SHADOW


@dataclass(frozen=True, slots=True)
class Decision:
    primary: Target
    shadow: Target | None = None

    @property
    def to_canary(self) -> bool:
        return self.primary.route == CANARY


class TableRejected(ValueError):
    """A routing table that does not belong to this sidecar's model."""


class Router:
    """Holds the current routing table and the canary guard; decides where each request goes."""

    def __init__(
        self, settings: SidecarSettings, metrics: SidecarMetrics, rng: random.Random | None = None
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._table: RoutingTable | None = None
        self._guard: CanaryGuard | None = None
        self._guarded_revision: str | None = None
        self.local = Target(settings.revision, settings.upstream, LOCAL)

    @property
    def table(self) -> RoutingTable | None:
        return self._table

    @property
    def guard(self) -> CanaryGuard | None:
        return self._guard

    def check(self, table: RoutingTable) -> None:
        """Raise TableRejected if `table` is for another model or namespace."""
        if (table.model, table.namespace) != (self._settings.model, self._settings.namespace):
            raise TableRejected(
                f"routing table is for {table.namespace}/{table.model}, "
                f"this sidecar serves {self._settings.namespace}/{self._settings.model}"
            )

    def apply(self, table: RoutingTable) -> None:
        """Put `table` in force; raises TableRejected if it is for another model or namespace."""
        self.check(table)
        if table == self._table:
            return
        canary = table.canary.revision if table.canary is not None else None
        if canary != self._guarded_revision:
            if self._guarded_revision is not None:
                self._metrics.clear_guard(self._guarded_revision)
            self._guard = CanaryGuard(table.guard) if canary is not None else None
            self._guarded_revision = canary
            if canary is not None:
                self._metrics.announce_canary(canary)
        elif self._guard is not None:
            self._guard.reconfigure(table.guard)
        if table.shadow is not None and (self._table is None or self._table.shadow != table.shadow):
            self._metrics.announce_shadow(table.shadow.revision)
        self._table = table
        self._metrics.routing_generation.set(table.generation)
        log.info(
            "routing generation %d in force: stable=%s canary=%s weight=%s shadow=%s percent=%s%s",
            table.generation,
            table.stable.revision,
            canary,
            table.canary.weight if table.canary else 0,
            table.shadow.revision if table.shadow else None,
            table.shadow.percent if table.shadow else 0,
            "" if self.is_stable else f" (this sidecar is {self._settings.revision}: serving locally only)",
        )

    @property
    def is_stable(self) -> bool:
        return self._table is not None and self._table.stable.revision == self._settings.revision

    def decide(self, headers: Mapping[str, str]) -> Decision:
        """Where this request goes. `headers` must be case-insensitive (aiohttp's are)."""
        table = self._table
        if table is None or table.stable.revision != self._settings.revision or FORWARDED_HEADER in headers:
            return Decision(self.local)
        primary = self.local
        canary = table.canary
        if canary is not None and not (self._guard is not None and self._guard.tripped):
            key = headers.get(table.sticky_header) if table.sticky_header else None
            if choose_canary(canary.weight, key, self._rng):
                url = self._settings.backend_url(canary.revision, canary.url)
                primary = Target(canary.revision, url, CANARY)
        # Shadow answers are compared with the stable revision's, so only requests served
        # locally are copied (with a canary at weight w, that is percent of the other 100 - w).
        shadow = None
        route = table.shadow
        copy_it = route is not None and route.revision != self._settings.revision and primary is self.local
        if route is not None and copy_it and choose_shadow(route.percent, self._rng):
            shadow = Target(route.revision, self._settings.backend_url(route.revision, route.url), SHADOW)
        return Decision(primary, shadow)

    def record_canary(self, revision: str, failed: bool) -> bool:
        """Feed one canary outcome to the guard; True when it trips (counted in the metrics)."""
        if self._guard is None or revision != self._guarded_revision:
            return False
        tripped = self._guard.record(failed)
        if tripped:
            self._metrics.observe_guard_trip(revision)
            log.warning(
                "fast guard tripped for canary %s: %d of the last %d forwarded requests failed "
                "(limit %.0f%%); serving locally until the canary changes",
                revision,
                self._guard.failures,
                self._guard.observed,
                self._guard.settings.max_error_ratio * 100,
            )
        return tripped

    def snapshot(self) -> dict[str, Any]:
        """The state shown at GET /routing on the metrics port (for people and tests)."""
        guard = self._guard
        return {
            "revision": self._settings.revision,
            "isStable": self.is_stable,
            "table": None if self._table is None else self._table.model_dump(mode="json", by_alias=True),
            "guard": None
            if guard is None
            else {
                "canaryRevision": self._guarded_revision,
                "tripped": guard.tripped,
                "observed": guard.observed,
                "failures": guard.failures,
            },
        }
