"""Fakes behind reconcile's ports, for driving the REAL reconcile without a cluster.

`FakeCluster` is an in-memory API server for one namespace as reconcile sees it (get, list by
label, server-side apply, merge patches of objects and status, delete, create Events), with
resourceVersions, so the applied-children cache works as against a real one. Pods do not
exist: a Deployment's `status.readyReplicas` is what the test (or `kubelet()`) says.
`FixedClock`, `ScriptedAnalyst` and `ScriptedGoldenChecker` are the other ports' fakes.

Everything is synchronous underneath: `run_now` drives a reconcile coroutine to its end
without an event loop and fails if it ever waits for real I/O.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from modeldeploy.contract.labels import IMAGE_ANNOTATION, REVISION_LABEL
from modeldeploy.contract.routing import ROUTING_KEY, RoutingTable
from modeldeploy.operator.analysis.results import AnalysisOutcome
from modeldeploy.operator.api import ModelDeploymentSpec
from modeldeploy.operator.kube import KubeError
from modeldeploy.operator.kube.resources import Kind
from modeldeploy.operator.planner import (
    AnalysisRequest,
    GoldenCheckRequest,
    GoldenOutcome,
    ModelDeploymentMeta,
    ObservedChildren,
)

T = TypeVar("T")


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine whose awaits all complete at once (only fakes behind the ports)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("the coroutine waited for real I/O; only fakes may be behind the ports here")


def _wire(obj: T) -> T:
    """A copy of `obj` as it travels to or from an API server (JSON)."""
    copied: T = json.loads(json.dumps(obj))
    return copied


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the API server does with application/merge-patch+json)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


@dataclass(frozen=True)
class DeploymentView:
    """One revision's Deployment as the tests look at it."""

    revision: str
    replicas: int
    ready: int
    manifest: dict[str, Any]


@dataclass
class FakeCluster:
    """One namespace's objects, keyed by (kind, name); changed by reconcile through the port."""

    namespace: str = "ml"
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    auto_ready: bool = True
    """Pods become ready at once after each reconcile (a fast kubelet); False: the test decides."""
    applied_routing: list[RoutingTable] = field(default_factory=list)
    """Every distinct routing table applied, in order."""
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    """(verb, kind, name) of every call reconcile made."""
    fail_with: dict[tuple[str, str], KubeError] = field(default_factory=dict)
    """(verb, kind) -> the error that call answers with (a refusing or unreachable API server)."""
    _version: int = 0

    # -- the Cluster port ---------------------------------------------------------------------

    def _call(self, verb: str, kind: str, name: str) -> None:
        self.requests.append((verb, kind, name))
        error = self.fail_with.get((verb, kind))
        if error is not None:
            raise error

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        return obj

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get", kind.kind, name)
        found = self.objects.get((kind.kind, name))
        return _wire(found) if found is not None and namespace == self.namespace else None

    async def list(self, kind: Kind, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        self._call("list", kind.kind, label_selector)
        # Items of a list carry no apiVersion and kind (the list does), as the API server answers.
        return [
            {key: value for key, value in _wire(obj).items() if key not in ("apiVersion", "kind")}
            for (k, _), obj in sorted(self.objects.items())
            if k == kind.kind
            and namespace == self.namespace
            and _matches(obj["metadata"].get("labels") or {}, label_selector)
        ]

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        self._call("apply", kind, name)
        current = self.objects.get((kind, name))
        applied = _wire(manifest)
        if current is not None and "status" in current:
            applied["status"] = current["status"]  # apply of the main resource keeps the status
        if kind == "Deployment":
            self._clamp_ready(applied)
        elif kind == "ConfigMap" and ROUTING_KEY in (manifest.get("data") or {}):
            table = RoutingTable.from_json(manifest["data"][ROUTING_KEY])
            if not self.applied_routing or table != self.applied_routing[-1]:
                self.applied_routing.append(table)
        self.objects[(kind, name)] = self._stamp(applied)
        return _wire(applied)

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self._call("create", manifest["kind"], manifest["metadata"].get("generateName", ""))
        created: dict[str, Any] = _wire(manifest)
        self.events.append(created)
        return _wire(created)

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        self._call("delete", kind.kind, name)
        return self.objects.pop((kind.kind, name), None) is not None

    async def patch(self, kind: Kind, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._call("patch", kind.kind, name)
        current = self.objects.get((kind.kind, name))
        if current is None:
            raise KubeError(f"PATCH {kind.kind} {name}: 404 not found", 404)
        patched = merge_patch(current, patch)
        if kind.kind == "Deployment":
            self._clamp_ready(patched)
        self.objects[(kind.kind, name)] = self._stamp(patched)

    async def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._call("patch_status", kind.kind, name)
        current = self.objects.get((kind.kind, name))
        if current is None:
            raise KubeError(f"PATCH {kind.kind} {name}/status: 404 not found", 404)
        current["status"] = merge_patch(current.get("status") or {}, status)
        self._stamp(current)

    async def patch_returning(
        self, kind: Kind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        await self.patch(kind, namespace, name, patch)
        return _wire(self.objects[(kind.kind, name)])

    async def patch_status_returning(
        self, kind: Kind, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        await self.patch_status(kind, namespace, name, status)
        return _wire(self.objects[(kind.kind, name)])

    # -- what the tests set and look at -------------------------------------------------------

    @staticmethod
    def _clamp_ready(deployment: dict[str, Any]) -> None:
        status = deployment.setdefault("status", {})
        status["readyReplicas"] = min(status.get("readyReplicas", 0), deployment["spec"]["replicas"])

    def put(self, obj: dict[str, Any]) -> None:
        """Create or replace an object as a user would (kubectl apply)."""
        self.objects[(obj["kind"], obj["metadata"]["name"])] = self._stamp(_wire(obj))

    @property
    def deployments(self) -> dict[str, DeploymentView]:
        """The revision Deployments by revision."""
        views = {}
        for (kind, _), obj in self.objects.items():
            if kind == "Deployment":
                revision = obj["metadata"]["labels"][REVISION_LABEL]
                ready = int((obj.get("status") or {}).get("readyReplicas", 0))
                views[revision] = DeploymentView(revision, int(obj["spec"]["replicas"]), ready, obj)
        return views

    @property
    def routing(self) -> RoutingTable | None:
        """The routing table in the cluster now."""
        for (kind, _), obj in self.objects.items():
            if kind == "ConfigMap" and ROUTING_KEY in (obj.get("data") or {}):
                return RoutingTable.from_json(obj["data"][ROUTING_KEY])
        return None

    def set_ready(self, revision: str, ready: int | None = None) -> None:
        for (kind, _), obj in self.objects.items():
            if kind == "Deployment" and obj["metadata"]["labels"][REVISION_LABEL] == revision:
                replicas = obj["spec"]["replicas"]
                obj.setdefault("status", {})["readyReplicas"] = replicas if ready is None else ready
                self._stamp(obj)
                return
        raise KeyError(revision)

    def kubelet(self) -> None:
        """Pods start (or not): with auto_ready every Deployment becomes fully ready."""
        if self.auto_ready:
            for revision, view in self.deployments.items():
                if view.ready != view.replicas:
                    self.set_ready(revision)

    def observed(self) -> ObservedChildren:
        """What reconcile reads of the model's children (without guardrail documents)."""
        deployments = [obj for (kind, _), obj in sorted(self.objects.items()) if kind == "Deployment"]
        configmaps = [obj for (kind, _), obj in self.objects.items() if kind == "ConfigMap"]
        routing = next((obj for obj in configmaps if ROUTING_KEY in (obj.get("data") or {})), None)
        return ObservedChildren.from_objects(deployments, routing)

    def image_of(self, revision: str) -> str | None:
        annotations = self.deployments[revision].manifest["metadata"].get("annotations") or {}
        image = annotations.get(IMAGE_ANNOTATION)
        return str(image) if image else None


@dataclass
class FixedClock:
    at: datetime

    def now(self) -> datetime:
        return self.at


@dataclass
class ScriptedAnalyst:
    """Answers each analysis reconcile asks for with `make(request, now)`; records the requests."""

    make: Any
    """Callable[[AnalysisRequest, datetime], AnalysisOutcome]"""
    requests: list[AnalysisRequest] = field(default_factory=list)

    async def analyze(
        self, request: AnalysisRequest, spec: ModelDeploymentSpec, meta: ModelDeploymentMeta, now: datetime
    ) -> AnalysisOutcome:
        self.requests.append(request)
        outcome: AnalysisOutcome = self.make(request, now)
        return outcome


@dataclass
class ScriptedGoldenChecker:
    """Every golden check passes (or fails on 'setosa' when `passes` is False); records the checks."""

    clock: FixedClock
    passes: bool = True
    checks: list[GoldenCheckRequest] = field(default_factory=list)

    async def check(
        self,
        check: GoldenCheckRequest,
        spec: ModelDeploymentSpec,
        meta: ModelDeploymentMeta,
        observed: ObservedChildren,
    ) -> GoldenOutcome:
        self.checks.append(check)
        failed = None if self.passes else "setosa"
        message = "" if self.passes else 'expected body ["setosa"], got ["versicolor"]'
        return GoldenOutcome(check.revision, check.target, self.passes, self.clock.now(), 1, failed, message)
