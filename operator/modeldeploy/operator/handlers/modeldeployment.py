"""kopf handlers for ModelDeployments and their Deployments. Each one only wakes a loop.

- One rollout loop (kopf daemon) per ModelDeployment calls `reconcile()` and sleeps until
  the time it asks for (the next step or analysis run) or until it is poked.
- Watch events poke it: a spec or annotation change of the ModelDeployment (user actions
  are annotations), a status change of a Deployment the operator owns, or any change to (or
  deletion of) its routing ConfigMap, so a table deleted or edited by hand is restored at once.

With peering (HA), a replica acts only after a start-up grace (`PEERING_STARTUP_GRACE`): kopf
resumes a replica as soon as the first peering object it reads shows no higher-priority peer,
which, for replicas starting together, can be before the others have written their keep-alive.
During the grace kopf sees them and pauses (stops the loops of) every replica but one, so no
replica that turns out to be a standby ever writes. See docs/operations.md (High availability).

The event handlers also hand each event's object to the context (`OperatorContext.observe`),
so reconcile reads the ModelDeployment, its Deployments and its routing ConfigMap from what the
watches delivered instead of asking the API server every resync (kube/watched.py). They are
coroutines: kopf runs plain functions in a worker thread, and a loop's wake-up is an
asyncio.Event that must be set on the event loop.

kopf's own bookkeeping goes to annotations under modeldeploy.io (the status schema is
structural, so kopf must not write there). Daemons make kopf add a finalizer so a loop is
stopped before its resource goes away; see docs/operations.md for removing it by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from modeldeploy.contract.labels import MANAGED_BY, MANAGED_BY_LABEL, MODEL_LABEL
from modeldeploy.operator.api import GROUP, PLURAL, VERSION
from modeldeploy.operator.handlers.context import OperatorContext, operator_context
from modeldeploy.operator.handlers.wakeups import sleep
from modeldeploy.operator.settings import OperatorSettings

MANAGED = {MANAGED_BY_LABEL: MANAGED_BY}
MANAGED_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())
PEERING_STARTUP_GRACE = 10.0
"""Seconds after process start before a peered replica acts (peers' keep-alives become visible)."""


@kopf.on.startup()
def configure_kopf(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    operator: OperatorSettings = memo.get("settings") or OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modeldeploy.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modeldeploy.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "modeldeploy.io/rollout-loop"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.peering.mandatory = operator.peering is not None
    # Only modeldeploy's own ConfigMaps are watched (server-side filter, not every ConfigMap).
    settings.watching.label_selectors[("v1", "configmaps")] = MANAGED_SELECTOR
    memo.operator = OperatorContext.production(operator)


@kopf.on.cleanup()
def close_context(memo: kopf.Memo, **_: Any) -> None:
    context = getattr(memo, "operator", None)
    if isinstance(context, OperatorContext):
        context.close()


def _object(event: kopf.RawEvent, body: kopf.Body) -> Mapping[str, Any]:
    obj = event.get("object") if isinstance(event, Mapping) else None
    return obj if isinstance(obj, Mapping) else body


def _deleted(event: kopf.RawEvent) -> bool:
    return isinstance(event, Mapping) and event.get("type") == "DELETED"


def _fingerprint(body: kopf.Body) -> object:
    meta = body.get("metadata", {})
    return (meta.get("generation"), tuple(sorted((meta.get("annotations") or {}).items())))


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def rollout_loop(
    name: str,
    namespace: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    assert namespace is not None, "ModelDeployment is a namespaced resource"
    context = operator_context(memo)
    if context.settings.peering is not None:
        grace = PEERING_STARTUP_GRACE - (time.monotonic() - context.started)
        if grace > 0:
            logger.info("peering: waiting %.1fs for peers' keep-alives before acting", grace)
            await stopped.wait(grace)
            if stopped:
                return  # paused in favour of a peer (or shutting down) before acting
    key = (namespace, name)
    wakeup = context.wakeups.register(key)
    wakeup.fingerprint = _fingerprint(body)
    try:
        while not stopped:
            delay = await context.reconciler.reconcile(namespace, name, logger)
            await sleep(wakeup, delay, stopped.wait())
    finally:
        context.wakeups.unregister(key)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def modeldeployment_deleted(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    # The loop is stopped by now; what this process keeps about the model goes with it.
    if namespace:
        context = operator_context(memo)
        context.reconciler.forget(namespace, name)
        if context.watched is not None:
            context.watched.forget(namespace, name)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def modeldeployment_changed(
    name: str,
    namespace: str | None,
    event: kopf.RawEvent,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    # Status patches (our own) change neither generation nor annotations: they do not poke.
    if namespace:
        context = operator_context(memo)
        context.observe(_object(event, body), deleted=_deleted(event))
        context.wakeups.poke((namespace, name), _fingerprint(body))


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("v1", "configmaps", labels=MANAGED)
async def child_changed(
    namespace: str | None,
    labels: kopf.Labels,
    event: kopf.RawEvent,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A managed Deployment or ConfigMap changed: feed the watched reads, wake its model's loop."""
    _child_changed(operator_context(memo), namespace, labels, _object(event, body), _deleted(event))


def _child_changed(
    context: OperatorContext,
    namespace: str | None,
    labels: kopf.Labels,
    obj: Mapping[str, Any],
    deleted: bool,
) -> None:
    context.observe(obj, deleted)
    model = labels.get(MODEL_LABEL)
    if model and namespace:
        context.wakeups.poke((namespace, model))
