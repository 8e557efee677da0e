"""Reads served from what the watches already delivered (an informer cache, as controller-runtime's).

kopf watches the ModelDeployments, the Deployments and modeldeploy's own ConfigMaps anyway (their
events wake the rollout loops). Every reconcile reads a ModelDeployment, its Deployments and its
routing ConfigMap; asked of the API server, that is three reads per object per resync even when
nothing changed. `WatchedCluster` is the `Cluster` port's production adapter: it answers those
reads from the objects the watch events carried (`observe`, called by the event handlers) and
sends everything else, and every write, to the API server (`Kube`).

Rules that keep it as fresh as a read:

- a read is answered from the cache only after this process has read the same thing from the
  API server once (`get` by name, `list` by label selector) and within `refresh_seconds` of that
  read: the first reconcile after a start reads everything, and a missed watch event lives at
  most that long;
- only objects the watches see are cached: ModelDeployments, managed Deployments (the model's
  selector names the managed-by label), ConfigMaps with the managed-by label. A ConfigMap not
  found, or found without that label (a guardrail document the user owns), is always read;
- an object's newest version wins: watch events, read answers and the answers to the
  operator's own writes (apply, patch, status patch) replace a cached object only if their
  resourceVersion is not older, so a late watch event never undoes the operator's own write and
  the next reconcile sees the status it just wrote;
- a deletion (watch event or the operator's own delete) drops the object.

What it keeps stays small and quick to search at 1,000 ModelDeployments: cached objects leave
out `metadata.managedFields` (server-side apply's field owners, often larger than the rest of a
Deployment, and never read by the planner), and a list by a model's selector looks only at that
model's objects (an index by kind, namespace and model label) instead of every cached object.

Idle, a ModelDeployment then costs the API server three reads per `refresh_seconds` instead of
three per resync (docs/benchmarks.md, operator scale).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from modeldeploy.contract.labels import MANAGED_BY, MANAGED_BY_LABEL, MODEL_LABEL, model_selector
from modeldeploy.contract.routing import routing_configmap_name
from modeldeploy.operator.kube.resources import CONFIGMAP, DEPLOYMENT, MODELDEPLOYMENT, Kind, kind_of

REFRESH_SECONDS = 300.0
CACHED_KINDS = (MODELDEPLOYMENT, DEPLOYMENT, CONFIGMAP)
LIST_OMITS = ("apiVersion", "kind")  # a list's items carry neither (the list does)

ObjectKey = tuple[str, str, str]  # (kind, namespace, name)
ReadKey = tuple[str, str, str]  # (kind, namespace, name or "?" + label selector)
GroupKey = tuple[str, str, str | None]  # (kind, namespace, model label or None)


def _newer_or_same(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Is `candidate` at least as new as `current`? resourceVersions are etcd revisions (integers);
    one that is not an integer is taken as newer."""
    if current is None:
        return True
    try:
        return int(candidate["metadata"]["resourceVersion"]) >= int(current["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return True


def _equality_selector(selector: str) -> dict[str, str] | None:
    """`a=b,c=d` as a dict; None for any other selector syntax (not served from the cache)."""
    wanted: dict[str, str] = {}
    for term in filter(None, (part.strip() for part in selector.split(","))):
        key, sep, value = term.partition("=")
        if not sep or value.startswith("=") or key.endswith("!") or not key:
            return None
        wanted[key.strip()] = value.strip()
    return wanted


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def _matches(obj: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    labels = _labels(obj)
    return all(labels.get(key) == value for key, value in wanted.items())


def _group(key: ObjectKey, obj: Mapping[str, Any]) -> GroupKey:
    return (key[0], key[1], _labels(obj).get(MODEL_LABEL))


def _slim_copy(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy without metadata.managedFields."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or "managedFields" not in meta:
        return copy.deepcopy(dict(obj))
    slim = {k: v for k, v in obj.items() if k != "metadata"}
    slim["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return copy.deepcopy(slim)


def _watched(kind: Kind, obj: Mapping[str, Any]) -> bool:
    """Do the operator's watches see this object (so the cache stays current for it)?"""
    if kind == MODELDEPLOYMENT:
        return True
    return _labels(obj).get(MANAGED_BY_LABEL) == MANAGED_BY


class Api(Protocol):
    """What `WatchedCluster` sends to the API server (production: `Kube`)."""

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def list(self, kind: Kind, namespace: str, label_selector: str = "") -> list[dict[str, Any]]: ...

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]: ...

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]: ...

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool: ...

    async def patch_returning(
        self, kind: Kind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def patch_status_returning(
        self, kind: Kind, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Read:
    at: float


class WatchedCluster:
    """The `Cluster` port over `Kube`, with reads of watched objects answered from watch events."""

    def __init__(
        self,
        kube: Api,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._objects: dict[ObjectKey, dict[str, Any]] = {}
        self._groups: dict[GroupKey, set[ObjectKey]] = {}  # the index of `_objects` lists use
        self._reads: dict[ReadKey, _Read] = {}
        self.hits = 0
        self.misses = 0

    # ---- fed by the watch event handlers -------------------------------------------------
    def observe(self, obj: Mapping[str, Any], deleted: bool = False) -> None:
        """A watch event's object (`deleted`: a DELETED event)."""
        try:
            kind = kind_of(dict(obj))
            meta = obj["metadata"]
            key = (kind.kind, str(meta["namespace"]), str(meta["name"]))
        except (KeyError, TypeError, ValueError):
            return
        if kind not in CACHED_KINDS:
            return
        if deleted:
            if _newer_or_same(obj, self._objects.get(key)):
                self._drop(key)
            return
        if _watched(kind, obj):
            self._store(key, obj)

    def _store(self, key: ObjectKey, obj: Mapping[str, Any]) -> None:
        current = self._objects.get(key)
        if not _newer_or_same(obj, current):
            return
        if current is not None:
            self._drop(key)
        self._objects[key] = _slim_copy(obj)
        self._groups.setdefault(_group(key, obj), set()).add(key)

    def _drop(self, key: ObjectKey) -> None:
        obj = self._objects.pop(key, None)
        if obj is None:
            return
        group = _group(key, obj)
        members = self._groups.get(group)
        if members is not None:
            members.discard(key)
            if not members:
                del self._groups[group]

    def _fresh(self, read: ReadKey) -> bool:
        last = self._reads.get(read)
        return last is not None and self._clock() - last.at <= self.refresh_seconds

    def _remember_read(self, read: ReadKey) -> None:
        self._reads[read] = _Read(self._clock())

    def forget(self, namespace: str, model: str) -> None:
        """Drop the read marks of a deleted ModelDeployment (its objects go with their watch events)."""
        names = {model, routing_configmap_name(model), "?" + model_selector(model)}
        for read in [r for r in self._reads if r[1] == namespace and r[2] in names]:
            del self._reads[read]

    # ---- the Cluster port ----------------------------------------------------------------
    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        key, read = (kind.kind, namespace, name), (kind.kind, namespace, name)
        if kind in CACHED_KINDS and self._fresh(read):
            cached = self._objects.get(key)
            if cached is not None:
                self.hits += 1
                return copy.deepcopy(cached)
        self.misses += 1
        found = await self.kube.get(kind, namespace, name)
        if found is not None and kind in CACHED_KINDS and _watched(kind, found):
            self._store(key, found)
            self._remember_read(read)
        return found

    def _cached_items(self, kind: Kind, namespace: str, wanted: Mapping[str, str]) -> list[ObjectKey]:
        if MODEL_LABEL in wanted:
            candidates: set[ObjectKey] = self._groups.get((kind.kind, namespace, wanted[MODEL_LABEL]), set())
        else:
            candidates = {key for key in self._objects if key[0] == kind.kind and key[1] == namespace}
        return sorted(key for key in candidates if _matches(self._objects[key], wanted))

    async def list(self, kind: Kind, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        wanted = _equality_selector(label_selector)
        if (
            wanted is None
            or kind not in (DEPLOYMENT, CONFIGMAP)
            or wanted.get(MANAGED_BY_LABEL) != MANAGED_BY  # the watches see managed objects only
        ):
            self.misses += 1
            return await self.kube.list(kind, namespace, label_selector)
        read = (kind.kind, namespace, "?" + label_selector)
        if self._fresh(read):
            self.hits += 1
            # As the API server answers a list: the items carry no apiVersion and kind.
            return [
                {k: copy.deepcopy(v) for k, v in self._objects[key].items() if k not in LIST_OMITS}
                for key in self._cached_items(kind, namespace, wanted)
            ]
        self.misses += 1
        items = await self.kube.list(kind, namespace, label_selector)
        listed = {str(item["metadata"]["name"]) for item in items}
        for key in self._cached_items(kind, namespace, wanted):
            if key[2] not in listed:
                self._drop(key)  # gone while no event told us
        for item in items:
            self._store((kind.kind, namespace, str(item["metadata"]["name"])), item)
        self._remember_read(read)
        return items

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        result = await self.kube.apply(manifest)
        self.observe(result)
        return result

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        result = await self.kube.create(manifest)
        self.observe(result)
        return result

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        self._drop((kind.kind, namespace, name))
        return await self.kube.delete(kind, namespace, name)

    async def patch(self, kind: Kind, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.observe(await self.kube.patch_returning(kind, namespace, name, patch))

    async def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.observe(await self.kube.patch_status_returning(kind, namespace, name, status))
