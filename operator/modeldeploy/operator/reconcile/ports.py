"""The I/O reconcile needs, as small protocols (ports); production adapters live beside them.

The planner says which I/O it needs next (an analysis run, golden checks, documents); reconcile
fulfils it through these ports and applies the plan through `Cluster`. Tests put fakes behind
the same ports and drive the real reconcile (tests/support/fake_cluster.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from modeldeploy.operator.analysis.results import AnalysisOutcome
from modeldeploy.operator.api import ModelDeploymentSpec
from modeldeploy.operator.kube.resources import Kind
from modeldeploy.operator.planner import AnalysisRequest, ModelDeploymentMeta, ObservedChildren
from modeldeploy.operator.planner.golden import GoldenCheckRequest
from modeldeploy.operator.planner.inputs import GoldenOutcome


class Cluster(Protocol):
    """The Kubernetes API as reconcile uses it (production: `kube.Kube`). Errors raise `KubeError`."""

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def list(self, kind: Kind, namespace: str, label_selector: str = "") -> list[dict[str, Any]]: ...

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]: ...

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]: ...

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool: ...

    async def patch(self, kind: Kind, namespace: str, name: str, patch: dict[str, Any]) -> None: ...

    async def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None: ...


class Analyst(Protocol):
    """Runs the analysis the planner asked for (production: Prometheus through `analysis.analyze`)."""

    async def analyze(
        self, request: AnalysisRequest, spec: ModelDeploymentSpec, meta: ModelDeploymentMeta, now: datetime
    ) -> AnalysisOutcome: ...


class GoldenChecker(Protocol):
    """Sends one due golden check's requests to its revision and counts the answers."""

    async def check(
        self,
        check: GoldenCheckRequest,
        spec: ModelDeploymentSpec,
        meta: ModelDeploymentMeta,
        observed: ObservedChildren,
    ) -> GoldenOutcome: ...


class Clock(Protocol):
    """The time every decision of one reconcile is made at (production: the wall clock, UTC)."""

    def now(self) -> datetime: ...
