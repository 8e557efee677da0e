"""The operator's state, one object in kopf's memo (no module globals).

`main()` puts the settings in the memo it hands to `kopf.run`; the start-up handler builds the
`OperatorContext` from them (the Kubernetes client needs kopf's loop to exist) and every handler
reads it back as `memo.operator`. kopf gives each resource a shallow copy of that memo, so all
handlers share this one object.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from modeldeploy.operator.handlers.wakeups import Wakeups
from modeldeploy.operator.kube import Kube
from modeldeploy.operator.kube.client import bounded_api_client
from modeldeploy.operator.kube.watched import WatchedCluster
from modeldeploy.operator.reconcile import Reconciler, production_reconciler
from modeldeploy.operator.settings import OperatorSettings


@dataclass
class OperatorContext:
    settings: OperatorSettings
    reconciler: Reconciler
    watched: WatchedCluster | None = None
    """The reconciler's cluster when it reads from the watches (the event handlers feed it)."""
    executor: Executor | None = None
    """The bounded pool the Kubernetes client's calls run in (shut down at cleanup)."""
    wakeups: Wakeups = field(default_factory=Wakeups)
    started: float = field(default_factory=time.monotonic)
    """time.monotonic() at process start (the peering grace counts from it)."""

    @classmethod
    def production(cls, settings: OperatorSettings) -> OperatorContext:
        api_client, executor = bounded_api_client()
        watched = WatchedCluster(Kube(api_client, executor=executor))
        return cls(settings, production_reconciler(settings, watched), watched=watched, executor=executor)

    def observe(self, obj: Any, deleted: bool = False) -> None:
        """A watch event's object, for the reads the reconciler answers from the watches."""
        if self.watched is not None:
            self.watched.observe(obj, deleted)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)


def operator_context(memo: Any) -> OperatorContext:
    """The context in a handler's memo (set by the start-up handler)."""
    context = getattr(memo, "operator", None)
    if not isinstance(context, OperatorContext):
        raise RuntimeError("the operator context is missing from kopf's memo (start-up handler not run)")
    return context
