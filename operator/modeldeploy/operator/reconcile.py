"""One reconcile of one ModelDeployment: read, analyse if due, plan, apply in the planner's order.

This is the only place that connects the pure planner to the cluster and to Prometheus:

1. read the ModelDeployment, its revision Deployments and its routing ConfigMap;
2. if the planner says an analysis run is due, query Prometheus (or use the test override);
3. call the planner;
4. apply: manifests (routing ConfigMap first), scale changes, deletions, then status, then
   Events — so traffic moves before any Deployment changes, and status never claims what the
   cluster does not have yet.

Bad specs and odd state never crash the loop: they become status and a Warning Event.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from modeldeploy.contract.labels import model_selector
from modeldeploy.contract.routing import routing_configmap_name
from modeldeploy.operator import metrics
from modeldeploy.operator.analysis import metrics as analysis_metrics
from modeldeploy.operator.analysis.checks.drift import gate_from_spec
from modeldeploy.operator.analysis.prometheus import PrometheusClients
from modeldeploy.operator.analysis.results import AnalysisOutcome, MetricVerdict, Verdict
from modeldeploy.operator.analysis.run import SequentialSettings, analyze
from modeldeploy.operator.api import PHASES, ModelDeploymentSpec, ModelDeploymentStatus, parse_duration
from modeldeploy.operator.golden.check import run_check, unavailable
from modeldeploy.operator.kube import CONFIGMAP, DEPLOYMENT, MODELDEPLOYMENT, Kube, KubeError
from modeldeploy.operator.kube.applied import AppliedChildren, ChildKey, Observed
from modeldeploy.operator.kube.events import post_event
from modeldeploy.operator.kube.resources import KINDS
from modeldeploy.operator.planner import (
    AnalysisRequest,
    ModelDeploymentMeta,
    ObservedChildren,
    Plan,
    PlannerConfig,
    analysis_request,
    plan,
)
from modeldeploy.operator.planner.golden import GoldenCheckRequest, golden_checks_due
from modeldeploy.operator.planner.guardrail_documents import (
    GuardrailConfigError,
    golden_requests,
    referenced_configmaps,
)
from modeldeploy.operator.planner.inputs import GoldenOutcome
from modeldeploy.operator.planner.routing import revision_url
from modeldeploy.operator.settings import OperatorSettings

Logger = logging.Logger | logging.LoggerAdapter[Any]
_prometheus = PrometheusClients()
_applied = AppliedChildren()
ACTIVE_PHASES = {"Progressing", "Paused"}


def planner_config(settings: OperatorSettings) -> PlannerConfig:
    config = PlannerConfig(
        sidecar_image=settings.sidecar_image, sidecar_image_pull_policy=settings.sidecar_image_pull_policy
    )
    if settings.sidecar_resources is not None:
        config = replace(config, sidecar_resources=settings.sidecar_resources)
    return config


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


async def run_analysis(
    request: AnalysisRequest,
    spec: ModelDeploymentSpec,
    meta: ModelDeploymentMeta,
    settings: OperatorSettings,
    now: datetime,
) -> AnalysisOutcome:
    if settings.analysis_override is not None:
        return _override_outcome(request.revision, settings.analysis_override, now)
    url = spec.prometheus.url if spec.prometheus and spec.prometheus.url else settings.default_prometheus_url
    outcome = await analyze(
        spec.rollout.analysis,
        meta.name,
        meta.namespace,
        canary_revision=request.revision,
        stable_revision=request.stable_revision,
        phase_kind=request.phase_kind,
        prom=_prometheus.get(url),
        window=request.window,
        min_window=timedelta(seconds=settings.analysis_min_window_seconds),
        now=now,
        drift=gate_from_spec(spec.guardrails.drift),
        sequential=sequential_settings(request, spec),
    )
    analysis_metrics.record_outcome(meta.namespace, meta.name, outcome)
    return outcome


async def run_golden_check(
    check: GoldenCheckRequest,
    spec: ModelDeploymentSpec,
    meta: ModelDeploymentMeta,
    observed: ObservedChildren,
    settings: OperatorSettings,
    config: PlannerConfig,
) -> GoldenOutcome:
    """Send the golden requests to the revision's Service; count the result."""
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
            revision_url(meta, check.revision, config),
            tolerance=golden.tolerance,
            request_timeout=parse_duration(golden.timeout).total_seconds(),
            proxy=settings.http_proxy,
        )
    result = "pass" if outcome.passed else ("error" if outcome.unanswered else "fail")
    metrics.GOLDEN_CHECKS.labels(meta.namespace, meta.name, check.revision, check.target, result).inc()
    return outcome


def _override_outcome(
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


class ChildRejected(Exception):
    """The API server refused a child the planner rendered from the spec as invalid (422).

    The CRD schema cannot repeat all of Kubernetes' Pod validation (env var sources, probes,
    quantities), so a spec can pass admission and still yield a Deployment the API server
    refuses. Retrying cannot help until the spec changes: it is reported like a bad spec.
    """

    def __init__(self, manifest: dict[str, Any], error: KubeError) -> None:
        kind, name = manifest.get("kind", "object"), manifest.get("metadata", {}).get("name", "?")
        super().__init__(f"the API server refused {kind} {name}: {error}")


def _validation_problems(error: ValidationError) -> str:
    return "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])


async def _report_bad_spec(kube: Kube, body: dict[str, Any], problems: str, logger: Logger) -> None:
    message = f"invalid spec: {problems}"
    status = body.get("status") or {}
    if status.get("phase") == "Failed" and status.get("message") == message:
        return
    meta = body["metadata"]
    await kube.patch_status(
        MODELDEPLOYMENT,
        meta["namespace"],
        meta["name"],
        {"phase": "Failed", "message": message, "observedGeneration": meta.get("generation")},
    )
    await post_event(kube, body, "Warning", "InvalidSpec", message)
    logger.warning(message)


async def apply_plan(
    kube: Kube, body: dict[str, Any], result: Plan, namespace: str, observed: Observed | None = None
) -> None:
    """Apply `result`; manifests unchanged since this process applied them are skipped (see
    kube/applied.py) unless `observed` (resourceVersions read in this reconcile) says otherwise."""
    owner = (namespace, body["metadata"]["name"])
    for manifest in result.manifests:
        if observed is not None and not _applied.needs_apply(owner, manifest, observed):
            continue
        try:
            applied = await kube.apply(manifest)
        except KubeError as exc:
            if exc.status == 422:
                raise ChildRejected(manifest, exc) from exc
            raise
        _applied.remember(owner, manifest, applied)
    for change in result.scale:
        await kube.patch(DEPLOYMENT, namespace, change.name, {"spec": {"replicas": change.replicas}})
    for ref in result.delete:
        _applied.forget(owner, (ref.kind, ref.name))
        await kube.delete(KINDS[(ref.api_version, ref.kind)], namespace, ref.name)
    if result.status_changed and result.status_patch:
        await kube.patch_status(MODELDEPLOYMENT, namespace, body["metadata"]["name"], result.status_patch)
    for event in result.events:
        await post_event(kube, body, event.type, event.reason, event.message)


def _observed_versions(
    deployments: list[dict[str, Any]], routing_cm: dict[str, Any] | None, name: str
) -> dict[ChildKey, str | None]:
    """resourceVersions of the children this reconcile read (the routing ConfigMap: None if absent)."""
    observed: dict[ChildKey, str | None] = {
        ("Deployment", d["metadata"]["name"]): d["metadata"].get("resourceVersion") for d in deployments
    }
    cm_version = routing_cm["metadata"].get("resourceVersion") if routing_cm else None
    observed[("ConfigMap", routing_configmap_name(name))] = cm_version
    return observed


def _rollback_cause(status: ModelDeploymentStatus) -> str:
    """The RolledBack condition's reason (a short CamelCase word, safe as a metric label)."""
    for condition in status.conditions:
        if condition.type == "RolledBack":
            return condition.reason or "Unknown"
    return "Unknown"


def _count(result: Plan, meta: ModelDeploymentMeta) -> None:
    labels = (meta.namespace, meta.name)
    metrics.ROLLOUTS_IN_PROGRESS.labels(*labels).set(1 if result.status.phase in ACTIVE_PHASES else 0)
    for phase in PHASES:
        metrics.ROLLOUT_PHASE.labels(*labels, phase).set(1 if result.status.phase == phase else 0)
    for event in result.events:
        if event.reason == "Promoted":
            metrics.PROMOTIONS.labels(*labels).inc()
        elif event.reason in ("RolledBack", "RolloutFailed"):
            metrics.ROLLBACKS.labels(*labels, _rollback_cause(result.status)).inc()


def forget(namespace: str, name: str) -> None:
    """Drop what this process keeps about a deleted ModelDeployment: digests of its applied
    children, its analysis series and its rollout gauges (counters stay: they only ever grow)."""
    _applied.forget((namespace, name))
    analysis_metrics.forget_model(namespace, name)
    with contextlib.suppress(KeyError):
        metrics.ROLLOUTS_IN_PROGRESS.remove(namespace, name)
    for phase in PHASES:
        with contextlib.suppress(KeyError):
            metrics.ROLLOUT_PHASE.remove(namespace, name, phase)


async def reconcile(
    kube: Kube, namespace: str, name: str, settings: OperatorSettings, logger: Logger
) -> float:
    """Reconcile once; returns the seconds until the next reconcile is needed."""
    started = time.monotonic()
    outcome = "ok"
    try:
        return await _reconcile(kube, namespace, name, settings, logger)
    except KubeError as exc:
        outcome = "retry"
        logger.warning("reconcile of %s/%s will be retried: %s", namespace, name, exc)
        return 2.0
    except Exception:
        outcome = "error"
        logger.exception("reconcile of %s/%s failed; retrying", namespace, name)
        return 5.0
    finally:
        metrics.RECONCILES.labels(namespace, name, outcome).inc()
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)


async def _reconcile(
    kube: Kube, namespace: str, name: str, settings: OperatorSettings, logger: Logger
) -> float:
    body = await kube.get(MODELDEPLOYMENT, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        forget(namespace, name)
        return settings.resync_seconds
    meta = ModelDeploymentMeta.from_body(body)
    try:
        spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        await _report_bad_spec(kube, body, _validation_problems(exc), logger)
        return settings.resync_seconds
    try:
        status = ModelDeploymentStatus.model_validate(body.get("status") or {})
    except ValidationError as exc:
        logger.warning("status of %s/%s is unreadable, planning from scratch: %s", namespace, name, exc)
        status = ModelDeploymentStatus()

    deployments = await kube.list(DEPLOYMENT, namespace, model_selector(name))
    routing_cm = await kube.get(CONFIGMAP, namespace, routing_configmap_name(name))
    documents = {}
    for configmap in referenced_configmaps(spec):
        found = await kube.get(CONFIGMAP, namespace, configmap)
        documents[configmap] = None if found is None else dict(found.get("data") or {})
    observed = ObservedChildren.from_objects(deployments, routing_cm, documents=documents)
    config = planner_config(settings)
    now = datetime.now(UTC)

    request = analysis_request(spec, status, now)
    outcome = await run_analysis(request, spec, meta, settings, now) if request else None
    golden = [
        await run_golden_check(check, spec, meta, observed, settings, config)
        for check in golden_checks_due(spec, status, observed, now)
    ]
    result = plan(meta, spec, status, observed, now, config, analysis=outcome, golden=golden)
    for note in result.notes:
        logger.debug("%s/%s: %s", namespace, name, note)
    try:
        await apply_plan(kube, body, result, namespace, _observed_versions(deployments, routing_cm, name))
    except ChildRejected as exc:
        await _report_bad_spec(kube, body, str(exc), logger)
        return settings.resync_seconds
    _count(result, meta)
    return min(result.requeue_after or settings.resync_seconds, settings.resync_seconds)
