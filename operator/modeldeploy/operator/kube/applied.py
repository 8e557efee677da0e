"""Skip server-side applies that would change nothing: what this process last applied, per child.

Every reconcile renders all children of a ModelDeployment (routing ConfigMap, sidecar RBAC,
Services, Deployments, PodDisruptionBudget). Applying an unchanged manifest changes nothing on
the server but is still a request: with N idle ModelDeployments resynced every 30 s, about
8 x N / 30 requests per second for nothing (see the scale section of docs/benchmarks.md).

`AppliedChildren` remembers, per child, a digest of the manifest last applied and the
resourceVersion the server answered with. A manifest is applied again when:

- it differs from the last one applied (the planner wants something else);
- the child was read in this reconcile (the Deployments and the routing ConfigMap are) and its
  resourceVersion is not the one our apply left (someone changed or deleted it; a Deployment's
  status updates count too, which costs one no-op apply after each);
- the child was not read (Services, RBAC, PDB) and was last applied more than
  `refresh_seconds` ago, so a child edited or deleted by hand is restored within that time.

A restarted operator remembers nothing and applies everything once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REFRESH_SECONDS = 300.0

Owner = tuple[str, str]  # (namespace, ModelDeployment name)
ChildKey = tuple[str, str]  # (kind, name)
Observed = Mapping[ChildKey, str | None]
"""resourceVersion of children read in this reconcile (None: read, and absent)."""


def child_key(manifest: Mapping[str, Any]) -> ChildKey:
    return (str(manifest["kind"]), str(manifest["metadata"]["name"]))


def _digest(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class _Applied:
    digest: str
    resource_version: str | None
    at: float


class AppliedChildren:
    def __init__(
        self, refresh_seconds: float = REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._owners: dict[Owner, dict[ChildKey, _Applied]] = {}

    def needs_apply(self, owner: Owner, manifest: Mapping[str, Any], observed: Observed) -> bool:
        key = child_key(manifest)
        last = self._owners.get(owner, {}).get(key)
        if last is None or last.digest != _digest(manifest):
            return True
        if key in observed:
            return observed[key] != last.resource_version
        return self._clock() - last.at > self.refresh_seconds

    def remember(self, owner: Owner, manifest: Mapping[str, Any], result: Mapping[str, Any] | None) -> None:
        """Record a successful apply and the object the server returned."""
        version = ((result or {}).get("metadata") or {}).get("resourceVersion")
        self._owners.setdefault(owner, {})[child_key(manifest)] = _Applied(
            _digest(manifest), version, self._clock()
        )

    def applied_children(self, owner: Owner) -> list[ChildKey] | None:
        """The children this process applied for `owner` and has not deleted since (None: it has
        applied none yet, e.g. after a restart)."""
        children = self._owners.get(owner)
        return None if children is None else sorted(children)

    def forget(self, owner: Owner, key: ChildKey | None = None) -> None:
        """Forget one child (deleted), or all of an owner's (the ModelDeployment is gone)."""
        if key is None:
            self._owners.pop(owner, None)
        else:
            self._owners.get(owner, {}).pop(key, None)
