"""The operator's state, one object in kopf's memo (no module globals).

`main()` puts the settings in the memo it hands to `kopf.run`; the start-up handler builds the
`OperatorContext` from them (the Kubernetes client needs kopf's loop to exist) and every handler
reads it back as `memo.operator`. kopf gives each resource a shallow copy of that memo, so all
handlers share this one object.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient

from modeldeploy.operator.handlers.wakeups import Wakeups
from modeldeploy.operator.kube import Kube
from modeldeploy.operator.reconcile import Reconciler, production_reconciler
from modeldeploy.operator.settings import OperatorSettings


@dataclass
class OperatorContext:
    settings: OperatorSettings
    reconciler: Reconciler
    wakeups: Wakeups = field(default_factory=Wakeups)
    started: float = field(default_factory=time.monotonic)
    """time.monotonic() at process start (the peering grace counts from it)."""

    @classmethod
    def production(cls, settings: OperatorSettings) -> OperatorContext:
        try:
            kube_config.load_incluster_config()
        except kube_config.ConfigException:
            kube_config.load_kube_config()
        return cls(settings, production_reconciler(settings, Kube(ApiClient())))


def operator_context(memo: Any) -> OperatorContext:
    """The context in a handler's memo (set by the start-up handler)."""
    context = getattr(memo, "operator", None)
    if not isinstance(context, OperatorContext):
        raise RuntimeError("the operator context is missing from kopf's memo (start-up handler not run)")
    return context
