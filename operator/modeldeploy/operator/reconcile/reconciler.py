"""One reconcile of one ModelDeployment: read, fulfil the planner's I/O, plan, apply in order.

This is the only place that connects the pure planner to the outside world, and it does so
only through its ports (reconcile/ports.py):

1. read the ModelDeployment, its revision Deployments, its routing ConfigMap and the
   ConfigMaps its guardrails refer to (`Cluster`; PodDisruptionBudgets once per process);
2. if the planner says an analysis run is due, ask the `Analyst`; run the golden checks that
   are due through the `GoldenChecker`; all at the `Clock`'s time;
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
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError

from modeldeploy.contract.labels import model_selector
from modeldeploy.contract.routing import routing_configmap_name
from modeldeploy.operator import metrics
from modeldeploy.operator.analysis import metrics as analysis_metrics
from modeldeploy.operator.api import PHASES, ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.operator.kube import CONFIGMAP, DEPLOYMENT, MODELDEPLOYMENT, PDB, KubeError
from modeldeploy.operator.kube.applied import AppliedChildren, ChildKey, Observed
from modeldeploy.operator.kube.events import event_manifest
from modeldeploy.operator.kube.resources import KINDS
from modeldeploy.operator.planner import (
    ModelDeploymentMeta,
    ObservedChildren,
    Plan,
    PlannerConfig,
    analysis_request,
    golden_checks_due,
    plan,
)
from modeldeploy.operator.planner.guardrail_documents import referenced_configmaps
from modeldeploy.operator.reconcile.ports import Analyst, Clock, Cluster, GoldenChecker
from modeldeploy.operator.settings import OperatorSettings

Logger = logging.Logger | logging.LoggerAdapter[Any]
ACTIVE_PHASES = {"Progressing", "Paused"}


def planner_config(settings: OperatorSettings) -> PlannerConfig:
    config = PlannerConfig(
        sidecar_image=settings.sidecar_image, sidecar_image_pull_policy=settings.sidecar_image_pull_policy
    )
    if settings.sidecar_resources is not None:
        config = replace(config, sidecar_resources=settings.sidecar_resources)
    return config


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


@dataclass
class Reconciler:
    """Everything one reconcile needs: settings, the ports, and what this process has applied."""

    settings: OperatorSettings
    cluster: Cluster
    analyst: Analyst
    golden: GoldenChecker
    clock: Clock
    applied: AppliedChildren = field(init=False)

    def __post_init__(self) -> None:
        # Refresh of children not read back is timed by the same clock as every decision.
        self.applied = AppliedChildren(clock=lambda: self.clock.now().timestamp())

    @property
    def config(self) -> PlannerConfig:
        return planner_config(self.settings)

    async def reconcile(self, namespace: str, name: str, logger: Logger) -> float:
        """Reconcile once; returns the seconds until the next reconcile is needed."""
        started = time.monotonic()
        outcome = "ok"
        resync = self.settings.resync_seconds
        try:
            result = await self.reconcile_once(namespace, name, logger)
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
        if result is None:
            return resync
        return min(result.requeue_after or resync, resync)

    async def reconcile_once(self, namespace: str, name: str, logger: Logger) -> Plan | None:
        """Read, plan and apply; the Plan applied, or None (gone, or a bad spec reported)."""
        cluster = self.cluster
        body = await cluster.get(MODELDEPLOYMENT, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name)
            return None
        meta = ModelDeploymentMeta.from_body(body)
        try:
            spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            await self._report_bad_spec(body, _validation_problems(exc), logger)
            return None
        try:
            status = ModelDeploymentStatus.model_validate(body.get("status") or {})
        except ValidationError as exc:
            logger.warning("status of %s/%s is unreadable, planning from scratch: %s", namespace, name, exc)
            status = ModelDeploymentStatus()

        deployments = await cluster.list(DEPLOYMENT, namespace, model_selector(name))
        routing_cm = await cluster.get(CONFIGMAP, namespace, routing_configmap_name(name))
        budgets = await self._budgets(namespace, name)
        documents = {}
        for configmap in referenced_configmaps(spec):
            found = await cluster.get(CONFIGMAP, namespace, configmap)
            documents[configmap] = None if found is None else dict(found.get("data") or {})
        observed = ObservedChildren.from_objects(deployments, routing_cm, budgets, documents)
        now = self.clock.now()

        request = analysis_request(spec, status, now)
        outcome = await self.analyst.analyze(request, spec, meta, now) if request else None
        golden = [
            await self.golden.check(check, spec, meta, observed)
            for check in golden_checks_due(spec, status, observed, now)
        ]
        result = plan(meta, spec, status, observed, now, self.config, analysis=outcome, golden=golden)
        for note in result.notes:
            logger.debug("%s/%s: %s", namespace, name, note)
        try:
            await self.apply_plan(body, result, namespace, _observed_versions(deployments, routing_cm, name))
        except ChildRejected as exc:
            await self._report_bad_spec(body, str(exc), logger)
            return None
        _count(result, meta)
        return result

    async def _budgets(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The model's PodDisruptionBudgets: the one child that leaves the plan while its revision
        stays (replicas down to 1), so the planner must see it to delete it (other children go
        with their revision). Listed once per process and model; afterwards the ones this
        process applied (no read per reconcile)."""
        applied = self.applied.applied_children((namespace, name))
        if applied is not None:
            names = [child for kind, child in applied if kind == PDB.kind]
        else:
            listed = await self.cluster.list(PDB, namespace, model_selector(name))
            names = [str(item["metadata"]["name"]) for item in listed]
        return [{"apiVersion": PDB.api_version, "kind": PDB.kind, "metadata": {"name": n}} for n in names]

    async def apply_plan(
        self, body: dict[str, Any], result: Plan, namespace: str, observed: Observed | None = None
    ) -> None:
        """Apply `result`; manifests unchanged since this process applied them are skipped (see
        kube/applied.py) unless `observed` (resourceVersions read in this reconcile) says otherwise."""
        cluster, applied = self.cluster, self.applied
        owner = (namespace, body["metadata"]["name"])
        for manifest in result.manifests:
            if observed is not None and not applied.needs_apply(owner, manifest, observed):
                continue
            try:
                answer = await cluster.apply(manifest)
            except KubeError as exc:
                if exc.status == 422:
                    raise ChildRejected(manifest, exc) from exc
                raise
            applied.remember(owner, manifest, answer)
        for change in result.scale:
            await cluster.patch(DEPLOYMENT, namespace, change.name, {"spec": {"replicas": change.replicas}})
        for ref in result.delete:
            applied.forget(owner, (ref.kind, ref.name))
            await cluster.delete(KINDS[(ref.api_version, ref.kind)], namespace, ref.name)
        if result.status_changed and result.status_patch:
            await cluster.patch_status(MODELDEPLOYMENT, namespace, owner[1], result.status_patch)
        for event in result.events:
            await self._post_event(body, event.type, event.reason, event.message)

    async def _post_event(
        self, body: dict[str, Any], type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        await self.cluster.create(event_manifest(body, type_, reason, message, self.clock.now()))

    async def _report_bad_spec(self, body: dict[str, Any], problems: str, logger: Logger) -> None:
        message = f"invalid spec: {problems}"
        status = body.get("status") or {}
        if status.get("phase") == "Failed" and status.get("message") == message:
            return
        meta = body["metadata"]
        await self.cluster.patch_status(
            MODELDEPLOYMENT,
            meta["namespace"],
            meta["name"],
            {"phase": "Failed", "message": message, "observedGeneration": meta.get("generation")},
        )
        await self._post_event(body, "Warning", "InvalidSpec", message)
        logger.warning(message)

    def forget(self, namespace: str, name: str) -> None:
        """Drop what this process keeps about a deleted ModelDeployment: digests of its applied
        children, its analysis series and its rollout gauges (counters stay: they only ever grow)."""
        self.applied.forget((namespace, name))
        analysis_metrics.forget_model(namespace, name)
        with contextlib.suppress(KeyError):
            metrics.ROLLOUTS_IN_PROGRESS.remove(namespace, name)
        for phase in PHASES:
            with contextlib.suppress(KeyError):
                metrics.ROLLOUT_PHASE.remove(namespace, name, phase)
