"""Production adapters behind reconcile's ports: Prometheus analysis, golden checks, wall clock.

(The `Cluster` port's adapter is `kube.Kube` itself.) Each adapter is a thin wrapper around its
package's public entry point: `analysis.run.analyze`, `golden.check.run_check`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from modeldeploy.operator import metrics
from modeldeploy.operator.analysis import metrics as analysis_metrics
from modeldeploy.operator.analysis.checks.drift import gate_from_spec
from modeldeploy.operator.analysis.prometheus import PrometheusClients
from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict, Verdict
from modeldeploy.operator.analysis.run import SequentialSettings, analyze
from modeldeploy.operator.api import ModelDeploymentSpec, parse_duration
from modeldeploy.operator.golden.check import run_check, unavailable
from modeldeploy.operator.planner import (
    AnalysisRequest,
    GoldenCheckRequest,
    GoldenOutcome,
    ModelDeploymentMeta,
    ObservedChildren,
    PlannerConfig,
)
from modeldeploy.operator.planner.guardrail_documents import GuardrailConfigError, golden_requests
from modeldeploy.operator.planner.routing import revision_url
from modeldeploy.operator.settings import OperatorSettings


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def sequential_settings(request: AnalysisRequest, spec: ModelDeploymentSpec) -> SequentialSettings | None:
    """The sequential tests of a canary run under analysis.method sequential (None: fixed rules)."""
    if request.sequential_since is None:
        return None
    analysis = spec.rollout.analysis
    return SequentialSettings(
        since=request.sequential_since,
        tolerance=analysis.tolerance,
        latency_delta=analysis.slo.max_slow_share_delta_to_stable,
    )


class PrometheusAnalyst:
    """Queries the model's Prometheus (one pooled client per URL) and records the outcome's series."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.clients = PrometheusClients()

    async def analyze(
        self, request: AnalysisRequest, spec: ModelDeploymentSpec, meta: ModelDeploymentMeta, now: datetime
    ) -> AnalysisOutcome:
        settings = self.settings
        if settings.analysis_override is not None:
            return override_outcome(request.revision, settings.analysis_override, now)
        configured = spec.prometheus.url if spec.prometheus else None
        url = configured or settings.default_prometheus_url
        outcome = await analyze(
            spec.rollout.analysis,
            meta.name,
            meta.namespace,
            canary_revision=request.revision,
            stable_revision=request.stable_revision,
            phase_kind=request.phase_kind,
            prom=self.clients.get(url),
            window=request.window,
            min_window=timedelta(seconds=settings.analysis_min_window_seconds),
            now=now,
            drift=gate_from_spec(spec.guardrails.drift),
            sequential=sequential_settings(request, spec),
        )
        analysis_metrics.record_outcome(meta.namespace, meta.name, outcome)
        return outcome


def override_outcome(
    revision: str, verdict: Literal["pass", "fail", "inconclusive"], now: datetime
) -> AnalysisOutcome:
    """A fixed verdict at the planner boundary (operator tests without Prometheus)."""
    result = MetricVerdict(
        metric="override",
        verdict=Verdict(verdict),
        value=None,
        threshold=None,
        query="",
        message=f"analysis overridden to {verdict} (--analysis-override)",
    )
    return AnalysisOutcome(revision=revision, results=(result,), at=now)


class HttpGoldenChecker:
    """Sends the golden requests to the revision's Service (through the configured proxy)."""

    def __init__(self, settings: OperatorSettings, config: PlannerConfig) -> None:
        self.settings = settings
        self.config = config

    async def check(
        self,
        check: GoldenCheckRequest,
        spec: ModelDeploymentSpec,
        meta: ModelDeploymentMeta,
        observed: ObservedChildren,
    ) -> GoldenOutcome:
        golden = spec.guardrails.golden_requests
        assert golden is not None
        try:
            requests = golden_requests(spec, observed.documents)
        except GuardrailConfigError as exc:
            outcome = unavailable(check, f"golden requests unavailable: {exc}")
        else:
            outcome = await run_check(
                check,
                requests,
                revision_url(meta, check.revision, self.config),
                tolerance=golden.tolerance,
                request_timeout=parse_duration(golden.timeout).total_seconds(),
                proxy=self.settings.http_proxy,
            )
        result = "pass" if outcome.passed else ("error" if outcome.unanswered else "fail")
        metrics.GOLDEN_CHECKS.labels(meta.namespace, meta.name, check.revision, check.target, result).inc()
        return outcome
