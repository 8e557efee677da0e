"""A fixed-clock driver for the planner: plays the handler and a tiny in-memory cluster.

The cluster applies a Plan exactly as the handler must (manifests, then scale, then delete),
keeps Deployments' ready counts under the test's control, and hands the planner what a handler
would observe. Status travels between calls as JSON (what the API server stores), so anything
that does not survive the round trip shows up as a test failure.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy.contract.labels import IMAGE_ANNOTATION, REVISION_LABEL
from modeldeploy.contract.routing import ROUTING_KEY, RoutingTable
from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict, Verdict
from modeldeploy.operator.api import ModelDeploymentSpec, ModelDeploymentStatus, revision_hash
from modeldeploy.operator.planner import (
    ACTION_ANNOTATION,
    GoldenCheckRequest,
    GoldenOutcome,
    ModelDeploymentMeta,
    ObservedChildren,
    ObservedRevision,
    Plan,
    PlannerConfig,
    analysis_request,
    golden_checks_due,
    plan,
)
from modeldeploy.operator.planner.outputs import ChildRef

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
CONFIG = PlannerConfig(sidecar_image="registry.example.com/modeldeploy:0.1.0")


def make_spec(image: str = "registry.example.com/iris:1", **overrides: Any) -> ModelDeploymentSpec:
    """The spec used by most tests: 4 replicas, shadow → canary 10% → canary 50% → pause."""
    data: dict[str, Any] = {
        "model": {"image": image},
        "replicas": 4,
        "rollout": {
            "steps": [
                {"shadow": {"percent": 100, "duration": "2m"}},
                {"canary": {"weight": 10, "duration": "1m"}},
                {"canary": {"weight": 50, "duration": "2m"}},
                {"pause": {}},
            ],
            "analysis": {"interval": "30s", "failureLimit": 2, "inconclusiveLimit": 3},
        },
        "progressDeadline": "5m",
        "drainPeriod": "30s",
    }
    for key, value in overrides.items():
        data[key] = value
    return ModelDeploymentSpec.model_validate(data)


P99_QUERY = (
    "histogram_quantile(0.99, sum by (le) "
    '(rate(modeldeploy_request_duration_seconds_bucket{revision="x"}[30s])))'
)


def verdict(
    kind: Verdict, metric: str = "latency-p99", value: float = 0.1, threshold: float = 0.25
) -> MetricVerdict:
    sign = {Verdict.PASS: "<=", Verdict.FAIL: ">", Verdict.INCONCLUSIVE: "?"}[kind]
    message = (
        "only 3 requests (< 50)"
        if kind is Verdict.INCONCLUSIVE
        else f"p99 latency {value * 1000:.0f}ms {sign} {threshold * 1000:.0f}ms"
    )
    return MetricVerdict(
        metric=metric,
        verdict=kind,
        value=None if kind is Verdict.INCONCLUSIVE else value,
        threshold=threshold,
        query=P99_QUERY,
        message=message,
    )


OBSERVATIONS = ("conditions", "message", "replicas")
"""Status fields that describe what was observed (pods ready) rather than what was decided."""


def decisions(status: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in status.items() if key not in OBSERVATIONS}


@dataclass
class FakeDeployment:
    revision: str
    replicas: int
    ready: int = 0
    manifest: dict[str, Any] | None = None


@dataclass
class FakeCluster:
    """The children of one ModelDeployment, changed only by applying Plans."""

    deployments: dict[str, FakeDeployment] = field(default_factory=dict)
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    routing: RoutingTable | None = None
    auto_ready: bool = True
    """Pods become ready at once after each apply (a fast kubelet); False: the test decides."""
    applied_routing: list[RoutingTable] = field(default_factory=list)

    def apply(self, result: Plan) -> None:
        for manifest in result.manifests:
            kind, name = manifest["kind"], manifest["metadata"]["name"]
            self.objects[(kind, name)] = copy.deepcopy(manifest)
            if kind == "Deployment":
                revision = manifest["metadata"]["labels"][REVISION_LABEL]
                replicas = manifest["spec"]["replicas"]
                current = self.deployments.get(revision)
                if current is None:
                    self.deployments[revision] = FakeDeployment(revision, replicas, 0, manifest)
                else:
                    current.replicas = replicas
                    current.manifest = manifest
            elif kind == "ConfigMap":
                table = RoutingTable.from_json(manifest["data"][ROUTING_KEY])
                if table != self.routing:
                    self.applied_routing.append(table)
                self.routing = table
        for change in result.scale:
            self.deployments[change.revision].replicas = change.replicas
        for ref in result.delete:
            self.objects.pop((ref.kind, ref.name), None)
            if ref.kind == "Deployment":
                for revision in list(self.deployments):
                    if ref.name == f"iris-{revision}":
                        del self.deployments[revision]
        for deployment in self.deployments.values():
            deployment.ready = min(deployment.ready, deployment.replicas)

    def kubelet(self) -> None:
        """Pods start (or not): with auto_ready every Deployment is fully ready."""
        if self.auto_ready:
            for deployment in self.deployments.values():
                deployment.ready = deployment.replicas

    def set_ready(self, revision: str, ready: int | None = None) -> None:
        deployment = self.deployments[revision]
        deployment.ready = deployment.replicas if ready is None else ready

    def observed(self) -> ObservedChildren:
        return ObservedChildren(
            revisions=tuple(
                ObservedRevision(
                    revision=d.revision,
                    replicas=d.replicas,
                    ready_replicas=d.ready,
                    image=(d.manifest or {}).get("metadata", {}).get("annotations", {}).get(IMAGE_ANNOTATION),
                )
                for d in sorted(self.deployments.values(), key=lambda d: d.revision)
            ),
            routing=self.routing,
            others=tuple(
                ChildRef(m["apiVersion"], m["kind"], m["metadata"]["name"])
                for (kind, _), m in sorted(self.objects.items())
                if kind != "Deployment"
            ),
        )


@dataclass
class Driver:
    """Plays the handler: reads status (as JSON), asks for analysis when due, plans, applies."""

    spec: ModelDeploymentSpec = field(default_factory=make_spec)
    now: datetime = T0
    status_json: dict[str, Any] = field(default_factory=dict)
    cluster: FakeCluster = field(default_factory=FakeCluster)
    generation: int = 1
    annotations: dict[str, str] = field(default_factory=dict)
    next_verdict: Verdict = Verdict.PASS
    plans: list[Plan] = field(default_factory=list)
    analysis_runs: int = 0
    check_idempotent: bool = True
    golden_passes: bool = True
    """What the golden checks reconcile makes yield (only when the spec has golden requests)."""
    golden_checks: list[GoldenCheckRequest] = field(default_factory=list)

    @property
    def status(self) -> ModelDeploymentStatus:
        return ModelDeploymentStatus.model_validate(self.status_json)

    @property
    def meta(self) -> ModelDeploymentMeta:
        return ModelDeploymentMeta("iris", "ml", "uid-iris", self.generation, dict(self.annotations))

    @property
    def events(self) -> list[tuple[str, str]]:
        """(reason, message) of every event so far."""
        return [(e.reason, e.message) for p in self.plans for e in p.events]

    def reasons(self) -> list[str]:
        return [reason for reason, _ in self.events]

    def outcome(self) -> AnalysisOutcome | None:
        request = analysis_request(self.spec, self.status, self.now)
        if request is None:
            return None
        self.analysis_runs += 1
        return AnalysisOutcome(revision=request.revision, results=(verdict(self.next_verdict),))

    def golden(self) -> list[GoldenOutcome]:
        due = golden_checks_due(self.spec, self.status, self.cluster.observed(), self.now)
        self.golden_checks += due
        failed = None if self.golden_passes else "setosa"
        message = "" if self.golden_passes else 'expected body ["setosa"], got ["versicolor"]'
        return [
            GoldenOutcome(c.revision, c.target, self.golden_passes, self.now, 1, failed, message) for c in due
        ]

    def tick(self, analysis: AnalysisOutcome | str | None = "auto") -> Plan:
        outcome = self.outcome() if analysis == "auto" else analysis
        assert not isinstance(outcome, str)
        golden = self.golden()
        observed = self.cluster.observed()
        result = plan(self.meta, self.spec, self.status, observed, self.now, CONFIG, outcome, golden)
        self.cluster.apply(result)
        self.status_json = json.loads(json.dumps(result.status_patch))
        self.plans.append(result)
        if self.check_idempotent:
            self.assert_idempotent()
        self.cluster.kubelet()
        return result

    def assert_idempotent(self) -> None:
        """Called again at once (a kopf retry, a restart), the planner decides nothing new."""
        again = plan(self.meta, self.spec, self.status, self.cluster.observed(), self.now, CONFIG, None)
        assert again.events == (), f"re-planning at the same instant emitted {again.events}"
        assert decisions(again.status_patch) == decisions(self.status_json)
        assert again.routing == self.cluster.routing

    def advance(self, seconds: float, every: float = 5.0) -> None:
        """Let time pass, ticking every `every` seconds (as timers and watch events would)."""
        end = self.now + timedelta(seconds=seconds)
        while self.now < end:
            self.now = min(self.now + timedelta(seconds=every), end)
            self.tick()

    def run_until(self, predicate: Any, limit: float = 3600, every: float = 5.0) -> None:
        end = self.now + timedelta(seconds=limit)
        while not predicate(self):
            assert self.now < end, f"condition not reached within {limit}s; status: {self.status_json}"
            self.now += timedelta(seconds=every)
            self.tick()

    def change_spec(self, spec: ModelDeploymentSpec) -> None:
        self.spec = spec
        self.generation += 1

    def action(self, value: str) -> None:
        self.annotations[ACTION_ANNOTATION] = value

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a fresh operator would find: status JSON and the cluster."""
        return (
            copy.deepcopy(self.status_json),
            copy.deepcopy(self.cluster),
            self.now,
            self.spec,
            self.generation,
            dict(self.annotations),
        )

    @classmethod
    def restore(cls, snap: tuple[Any, ...], next_verdict: Verdict = Verdict.PASS) -> Driver:
        status_json, cluster, now, spec, generation, annotations = copy.deepcopy(snap)
        return cls(
            spec=spec,
            now=now,
            status_json=status_json,
            cluster=cluster,
            generation=generation,
            annotations=annotations,
            next_verdict=next_verdict,
        )


def rev(image: str) -> str:
    return revision_hash(make_spec(image))


def deployed(driver: Driver) -> Driver:
    """Drive the first revision to Succeeded."""
    driver.tick()
    driver.tick()
    assert driver.status.phase == "Succeeded", driver.status_json
    return driver
