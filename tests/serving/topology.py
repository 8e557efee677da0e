"""A model's serving pods on loopback: stable, canary and shadow iris, each behind a real sidecar.

All three sidecars follow the same routing file (as all pods of a model follow one ConfigMap).
The table names the revisions' Services by their cluster DNS names; the stable sidecar reaches
them through MODELDEPLOY_BACKEND_OVERRIDES, which maps each revision to its sidecar's loopback URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modeldeploy.contract.routing import (
    Backend,
    CanaryRoute,
    Comparison,
    DataPathSettings,
    GuardSettings,
    RoutingTable,
    ShadowRoute,
)
from tests.serving.processes import IrisServer, Processes, SidecarProc, start_sidecar, write_routing

MODEL, NAMESPACE = "iris", "ml"
STABLE, CANARY, SHADOW = "aaaa111111", "bbbb222222", "cccc333333"


def service_url(revision: str) -> str:
    return f"http://{MODEL}-{revision}.{NAMESPACE}.svc:8080"


@dataclass(frozen=True)
class IrisTrio:
    """The three BentoML iris servers of the serving tests (see tests/serving/conftest.py)."""

    stable: IrisServer
    canary: IrisServer
    shadow: IrisServer

    def all(self) -> tuple[IrisServer, IrisServer, IrisServer]:
        return (self.stable, self.canary, self.shadow)

    def reset_faults(self) -> None:
        for server in self.all():
            server.set_faults(latency_ms=0, fail_rate=0)


@dataclass
class Topology:
    routing_file: Path
    stable: SidecarProc
    canary: SidecarProc
    shadow: SidecarProc
    generation: int = 0

    def sidecars(self) -> tuple[SidecarProc, SidecarProc, SidecarProc]:
        return (self.stable, self.canary, self.shadow)

    def publish(
        self,
        *,
        weight: float | None = None,
        percent: float | None = None,
        sticky_header: str | None = None,
        comparison: Comparison | None = None,
        guard: GuardSettings | None = None,
        canary_revision: str = CANARY,
        canary_url: str | None = None,
        shadow_revision: str = SHADOW,
        shadow_url: str | None = None,
        data_path: DataPathSettings | None = None,
        wait: bool = True,
    ) -> RoutingTable:
        """Write a new table (next generation) and, with `wait`, return once every sidecar uses it."""
        self.generation += 1
        table = RoutingTable(
            model=MODEL,
            namespace=NAMESPACE,
            stable=Backend(revision=STABLE, url=service_url(STABLE)),
            canary=None
            if weight is None
            else CanaryRoute(
                revision=canary_revision, url=canary_url or service_url(canary_revision), weight=weight
            ),
            shadow=None
            if percent is None
            else ShadowRoute(
                revision=shadow_revision, url=shadow_url or service_url(shadow_revision), percent=percent
            ),
            sticky_header=sticky_header,
            comparison=comparison or Comparison(),
            guard=guard or GuardSettings(),
            generation=self.generation,
            data_path=data_path or DataPathSettings(),
        )
        write_routing(self.routing_file, table)
        if wait:
            for sidecar in self.sidecars():
                sidecar.wait_generation(self.generation)
        return table


def start_topology(
    workdir: Path,
    iris: IrisTrio,
    procs: Processes,
    *,
    stable_env: Mapping[str, str] | None = None,
    shared_env: Mapping[str, str] | None = None,
) -> Topology:
    """Three sidecars in front of the three iris servers, the routing file at generation 0."""
    workdir.mkdir(parents=True, exist_ok=True)
    routing_file = workdir / "routing.json"
    first = RoutingTable(
        model=MODEL, namespace=NAMESPACE, stable=Backend(revision=STABLE, url=service_url(STABLE))
    )
    write_routing(routing_file, first)

    def sidecar(
        revision: str,
        upstream: str,
        overrides: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> SidecarProc:
        return procs.add(
            start_sidecar(
                workdir,
                revision=revision,
                upstream=upstream,
                model=MODEL,
                namespace=NAMESPACE,
                routing_file=routing_file,
                overrides=overrides,
                env={**(shared_env or {}), **(env or {})},
            )
        )

    canary = sidecar(CANARY, iris.canary.url)
    shadow = sidecar(SHADOW, iris.shadow.url)
    stable = sidecar(STABLE, iris.stable.url, {CANARY: canary.url, SHADOW: shadow.url}, stable_env)
    return Topology(routing_file, stable, canary, shadow)
