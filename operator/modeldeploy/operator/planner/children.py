"""The Deployment of a revision: the model server container plus the modeldeploy sidecar.

Pod layout (``spec.template`` adds to it, see pod_template.py): ``model`` runs ``spec.model``
(BentoML by default) on its port, reachable only
through ``sidecar``, which listens on 8080 (traffic, /readyz, /healthz) and 9090 (/metrics,
scraped through the ``prometheus.io/*`` pod annotations). Both containers run as non-root with
a read-only root filesystem, no privilege escalation and no capabilities, under the RuntimeDefault
seccomp profile (the restricted Pod Security Standard); ``/tmp`` is a writable emptyDir for each,
and the model's ``BENTOML_HOME`` lives there.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.contract.labels import (
    CONTAINER_MODEL,
    CONTAINER_SIDECAR,
    IMAGE_ANNOTATION,
    revision_labels,
    revision_name,
    revision_selector,
    sidecar_service_account_name,
)
from modeldeploy.contract.routing import routing_configmap_name
from modeldeploy.operator.api import API_VERSION, KIND, ModelDeploymentSpec, Probe, parse_duration
from modeldeploy.operator.planner.inputs import ModelDeploymentMeta, PlannerConfig
from modeldeploy.operator.planner.outputs import Manifest
from modeldeploy.operator.planner.pod_template import pod_template

MODEL_READY_PATH = "/readyz"
MODEL_LIVE_PATH = "/livez"
MODEL_BENTOML_HOME = "/tmp/bentoml"
"""BENTOML_HOME of the model container unless spec.model.env sets it (on the /tmp emptyDir)."""
MODEL_PROBE_TIMEOUT_SECONDS = 5
"""Timeout of the default model probes: a model server busy with inference answers its health
endpoints late; Kubernetes' 1 s default would restart a busy, healthy model."""
MODEL_STARTUP_PERIOD_SECONDS = 5
MODEL_STARTUP_FAILURE_THRESHOLD = 120
"""The default startup probe allows 120 x 5 s = 10 minutes (the default progressDeadline) to load
a model; readiness and liveness probes start only once it has passed."""
SIDECAR_DRAIN_DELAY_SECONDS = 5
"""The sidecar keeps serving this long after SIGTERM, while endpoints stop sending it traffic."""
SIDECAR_DRAIN_TIMEOUT_SECONDS = 20
MODEL_PRESTOP_SLEEP_SECONDS = SIDECAR_DRAIN_DELAY_SECONDS + 5
"""The model container's default preStop: it gets SIGTERM this long after the Pod is deleted, so
it still answers what its sidecar forwards while endpoints and routing tables move away (the
sidecar's drain delay) and finishes what is in flight then (5 s more)."""
TERMINATION_GRACE_SECONDS = 35


def owner_reference(meta: ModelDeploymentMeta) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta.name,
        "uid": meta.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(meta: ModelDeploymentMeta, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """metadata of a child: namespace, labels and the controller ownerReference."""
    return {
        "name": name,
        "namespace": meta.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(meta)],
    }


def _probe(probe: Probe | None, default_path: str, port: int) -> dict[str, Any]:
    if probe is None:
        return {
            "httpGet": {"path": default_path, "port": port, "scheme": "HTTP"},
            "periodSeconds": 10,
            "timeoutSeconds": MODEL_PROBE_TIMEOUT_SECONDS,
            "failureThreshold": 3,
        }
    rendered: dict[str, Any] = probe.model_dump(mode="json", by_alias=True, exclude_none=True)
    rendered["httpGet"].setdefault("port", port)
    return rendered


def model_startup_probe(readiness_probe: dict[str, Any]) -> dict[str, Any]:
    """The model container's default startupProbe: the readiness check's request, every 5 s for up
    to 10 minutes, so a model that loads for minutes is not restarted by its liveness probe (which,
    like the readiness probe, starts only after this one passed). The template's `model` entry
    may set its own startupProbe, which replaces this one (see pod_template.py)."""
    return {
        "httpGet": dict(readiness_probe["httpGet"]),
        "periodSeconds": MODEL_STARTUP_PERIOD_SECONDS,
        "timeoutSeconds": MODEL_PROBE_TIMEOUT_SECONDS,
        "failureThreshold": MODEL_STARTUP_FAILURE_THRESHOLD,
    }


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def model_container(spec: ModelDeploymentSpec) -> dict[str, Any]:
    model = spec.model
    container: dict[str, Any] = {"name": CONTAINER_MODEL, "image": model.image}
    if model.image_pull_policy is not None:
        container["imagePullPolicy"] = model.image_pull_policy
    if model.command is not None:
        container["command"] = list(model.command)
    if model.args is not None:
        container["args"] = list(model.args)
    env = [var.model_dump(mode="json", by_alias=True, exclude_none=True) for var in model.env]
    if not any(var["name"] == "BENTOML_HOME" for var in env):
        # BentoML creates its home (stores, Prometheus multiprocess dir) at start-up; the root
        # filesystem is read-only, so the home goes on the writable /tmp emptyDir.
        env.append({"name": "BENTOML_HOME", "value": MODEL_BENTOML_HOME})
    container["env"] = env
    container["ports"] = [{"name": "model", "containerPort": model.port, "protocol": "TCP"}]
    if model.resources is not None:
        container["resources"] = model.resources.model_dump(mode="json", by_alias=True, exclude_none=True)
    container["readinessProbe"] = _probe(model.readiness_probe, MODEL_READY_PATH, model.port)
    container["livenessProbe"] = _probe(model.liveness_probe, MODEL_LIVE_PATH, model.port)
    container["securityContext"] = _container_security()
    container["volumeMounts"] = [{"name": "model-tmp", "mountPath": "/tmp"}]
    return container


def sidecar_container(
    meta: ModelDeploymentMeta, spec: ModelDeploymentSpec, revision: str, config: PlannerConfig
) -> dict[str, Any]:
    env = {
        "MODELDEPLOY_MODEL": meta.name,
        "MODELDEPLOY_NAMESPACE": meta.namespace,
        "MODELDEPLOY_REVISION": revision,
        "MODELDEPLOY_UPSTREAM": f"http://127.0.0.1:{spec.model.port}",
        "MODELDEPLOY_ROUTING_CONFIGMAP": routing_configmap_name(meta.name),
        "MODELDEPLOY_PORT": str(config.service_port),
        "MODELDEPLOY_METRICS_PORT": str(config.metrics_port),
        "MODELDEPLOY_DRAIN_DELAY": str(SIDECAR_DRAIN_DELAY_SECONDS),
        "MODELDEPLOY_DRAIN_TIMEOUT": str(SIDECAR_DRAIN_TIMEOUT_SECONDS),
    }
    container: dict[str, Any] = {
        "name": CONTAINER_SIDECAR,
        "image": config.sidecar_image,
        "imagePullPolicy": config.sidecar_image_pull_policy,
    }
    if config.sidecar_command:
        container["command"] = list(config.sidecar_command)
    container.update(
        {
            "env": [{"name": name, "value": value} for name, value in env.items()],
            "ports": [
                {"name": "http", "containerPort": config.service_port, "protocol": "TCP"},
                {"name": "metrics", "containerPort": config.metrics_port, "protocol": "TCP"},
            ],
            "readinessProbe": {
                "httpGet": {"path": "/readyz", "port": "http", "scheme": "HTTP"},
                "periodSeconds": 5,
                "timeoutSeconds": 2,
                "failureThreshold": 2,
            },
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                "periodSeconds": 10,
                "timeoutSeconds": 2,
                "failureThreshold": 3,
            },
            "resources": dict(config.sidecar_resources),
            "securityContext": _container_security(),
            "volumeMounts": [{"name": "sidecar-tmp", "mountPath": "/tmp"}],
        }
    )
    return container


def deployment(
    meta: ModelDeploymentMeta,
    spec: ModelDeploymentSpec,
    revision: str,
    replicas: int,
    config: PlannerConfig,
) -> Manifest:
    """The Deployment ``<name>-<revision>`` running ``spec.model`` with ``replicas`` pods."""
    labels = revision_labels(meta.name, revision)
    deadline = max(1, int(parse_duration(spec.progress_deadline).total_seconds()))
    defaults: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
    }
    if config.sidecar_rbac:
        defaults["serviceAccountName"] = sidecar_service_account_name(meta.name)
    model = model_container(spec)
    template = pod_template(
        spec.template,
        labels=labels,
        annotations={
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(config.metrics_port),
            "prometheus.io/path": "/metrics",
        },
        defaults=defaults,
        model=model,
        model_defaults={
            "startupProbe": model_startup_probe(model["readinessProbe"]),
            "lifecycle": {"preStop": {"sleep": {"seconds": MODEL_PRESTOP_SLEEP_SECONDS}}},
        },
        sidecar=sidecar_container(meta, spec, revision, config),
        volumes=[{"name": "model-tmp", "emptyDir": {}}, {"name": "sidecar-tmp", "emptyDir": {}}],
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **object_meta(meta, revision_name(meta.name, revision), labels),
            "annotations": {IMAGE_ANNOTATION: spec.model.image},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": revision_selector(meta.name, revision)},
            "revisionHistoryLimit": 2,
            "progressDeadlineSeconds": deadline,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": template,
        },
    }
