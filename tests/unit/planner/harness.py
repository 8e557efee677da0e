"""A fixed-clock driver of the REAL reconcile: a fake cluster behind the cluster port, scripted
analysis and golden checks behind theirs (tests/support/fake_cluster.py).

Each `tick()` writes the test's spec, generation, annotations and status into the fake
ModelDeployment, runs `Reconciler.reconcile_once` (the operator's own code: reads, analysis
when due, golden checks, plan, apply in order, status patch, Events), and reads the status
back. Status travels as JSON through a merge patch (what the API server stores), so anything
that does not survive the round trip shows up as a test failure.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict, Verdict
from modeldeploy.operator.api import ModelDeploymentSpec, ModelDeploymentStatus, revision_hash
from modeldeploy.operator.planner import (
    ACTION_ANNOTATION,
    AnalysisRequest,
    GoldenCheckRequest,
    ModelDeploymentMeta,
    Plan,
    PlannerConfig,
    plan,
)
from modeldeploy.operator.reconcile import Reconciler
from modeldeploy.operator.settings import OperatorSettings
from tests.support.fake_cluster import (
    FakeCluster,
    FixedClock,
    ScriptedAnalyst,
    ScriptedGoldenChecker,
    run_now,
)
from tests.support.modeldeployments import modeldeployment, spec_of

NAME, NAMESPACE, UID = "iris", "ml", "uid-iris"
T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
CONFIG = PlannerConfig(sidecar_image="registry.example.com/modeldeploy:0.1.0")


def make_spec(image: str = "registry.example.com/iris:1", **overrides: Any) -> ModelDeploymentSpec:
    """The spec used by most tests: 4 replicas, shadow → canary 10% → canary 50% → pause;
    `overrides`: top-level spec fields by their API names."""
    fields: dict[str, Any] = {"progressDeadline": "5m", **overrides}
    replicas = int(fields.pop("replicas", 4))
    analysis = {"interval": "30s", "failureLimit": 2, "inconclusiveLimit": 3}
    built = modeldeployment(NAME, image, replicas=replicas, analysis=analysis, drain_period="30s", **fields)
    return spec_of(built)


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

SETTINGS = OperatorSettings(sidecar_image=CONFIG.sidecar_image)
LOG = logging.getLogger("tests.planner.harness")


def decisions(status: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in status.items() if key not in OBSERVATIONS}


@dataclass
class Driver:
    """Plays the world around the operator: the user (spec, actions), the clock, Prometheus'
    verdicts, the kubelet (pods ready); the operator itself is the real reconcile."""

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
    given: AnalysisOutcome | None = None
    clock: FixedClock = field(default_factory=lambda: FixedClock(T0))
    reconciler: Reconciler = field(init=False)

    def __post_init__(self) -> None:
        self.clock.at = self.now
        self.reconciler = Reconciler(
            settings=SETTINGS,
            cluster=self.cluster,
            analyst=ScriptedAnalyst(self._answer),
            golden=ScriptedGoldenChecker(self.clock),
            clock=self.clock,
        )
        assert self.reconciler.config == CONFIG

    @property
    def status(self) -> ModelDeploymentStatus:
        return ModelDeploymentStatus.model_validate(self.status_json)

    @property
    def meta(self) -> ModelDeploymentMeta:
        return ModelDeploymentMeta(NAME, NAMESPACE, UID, self.generation, dict(self.annotations))

    @property
    def golden_checks(self) -> list[GoldenCheckRequest]:
        """Every golden check reconcile ran, in order."""
        checker = self.reconciler.golden
        assert isinstance(checker, ScriptedGoldenChecker)
        return checker.checks

    @property
    def events(self) -> list[tuple[str, str]]:
        """(reason, message) of every event so far."""
        return [(e.reason, e.message) for p in self.plans for e in p.events]

    def reasons(self) -> list[str]:
        return [reason for reason, _ in self.events]

    def _answer(self, request: AnalysisRequest, now: datetime) -> AnalysisOutcome:
        self.analysis_runs += 1
        if self.given is not None:
            given, self.given = self.given, None
            return given
        return AnalysisOutcome(revision=request.revision, results=(verdict(self.next_verdict),))

    def model(self) -> dict[str, Any]:
        """The ModelDeployment as the API server holds it (the test's spec, metadata and status)."""
        return {
            "apiVersion": "modeldeploy.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "uid": UID,
                "generation": self.generation,
                "annotations": dict(self.annotations),
            },
            "spec": self.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            "status": copy.deepcopy(self.status_json),
        }

    def _reconcile(self) -> Plan:
        """One call of the real reconcile against the fake cluster, at `now`."""
        self.clock.at = self.now
        self.reconciler.cluster = self.cluster  # a test may swap in a restored cluster
        checker = self.reconciler.golden
        assert isinstance(checker, ScriptedGoldenChecker)
        checker.passes = self.golden_passes
        self.cluster.put(self.model())
        result = run_now(self.reconciler.reconcile_once(NAMESPACE, NAME, LOG))
        assert result is not None, f"reconcile applied no plan; events: {self.cluster.events[-1:]}"
        return result

    def _status_in_cluster(self) -> dict[str, Any]:
        status: dict[str, Any] = self.cluster.objects[("ModelDeployment", NAME)].get("status") or {}
        round_tripped: dict[str, Any] = json.loads(json.dumps(status))
        return round_tripped

    def tick(self, analysis: AnalysisOutcome | None = None) -> Plan:
        """Reconcile once. `analysis`: what Prometheus answers if reconcile asks (it must ask)."""
        self.given = analysis
        result = self._reconcile()
        assert self.given is None, "an analysis outcome was given but reconcile asked for none"
        self.status_json = self._status_in_cluster()
        self.plans.append(result)
        if self.check_idempotent:
            self.assert_idempotent()
        self.cluster.kubelet()
        return result

    def assert_idempotent(self) -> None:
        """Planned again at once (a kopf retry, a restart) without new outcomes, the planner
        decides nothing new."""
        again = self.planned(None)
        assert again.events == (), f"re-planning at the same instant emitted {again.events}"
        # Stored status has no nulls (a merge patch removes them): compare it as the planner reads it.
        stored = self.status.model_dump(mode="json", by_alias=True)
        assert decisions(again.status_patch) == decisions(stored)
        assert again.routing == self.cluster.routing

    def planned(self, analysis: AnalysisOutcome | None) -> Plan:
        """What the planner alone decides on the cluster as it is, given `analysis` (for the
        planner's own guards: outcomes the real reconcile never hands it) and no golden outcome."""
        observed = self.cluster.observed()
        return plan(self.meta, self.spec, self.status, observed, self.now, CONFIG, analysis, ())

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
