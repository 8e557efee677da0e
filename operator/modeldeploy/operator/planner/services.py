"""The other children: Services, PodDisruptionBudget, routing ConfigMap, the sidecars' RBAC."""

from __future__ import annotations

from modeldeploy.contract.labels import (
    entry_service_name,
    model_labels,
    revision_labels,
    revision_name,
    revision_selector,
    sidecar_service_account_name,
)
from modeldeploy.contract.routing import ROUTING_KEY, RoutingTable, routing_configmap_name
from modeldeploy.operator.planner.children import object_meta
from modeldeploy.operator.planner.inputs import ModelDeploymentMeta, PlannerConfig
from modeldeploy.operator.planner.outputs import Manifest
from modeldeploy.operator.rbac import sidecar_rules


def _ports(config: PlannerConfig, with_metrics: bool) -> list[dict[str, object]]:
    ports: list[dict[str, object]] = [
        {"name": "http", "port": config.service_port, "targetPort": "http", "protocol": "TCP"}
    ]
    if with_metrics:
        ports.append(
            {"name": "metrics", "port": config.metrics_port, "targetPort": "metrics", "protocol": "TCP"}
        )
    return ports


def revision_service(meta: ModelDeploymentMeta, revision: str, config: PlannerConfig) -> Manifest:
    """Service ``<name>-<revision>``: where stable sidecars send canary traffic and shadow copies."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(
            meta, revision_name(meta.name, revision), revision_labels(meta.name, revision)
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": revision_selector(meta.name, revision),
            "ports": _ports(config, with_metrics=True),
        },
    }


def entry_service(meta: ModelDeploymentMeta, stable_revision: str, config: PlannerConfig) -> Manifest:
    """Service ``<name>``: what clients call; selects the stable revision's pods only."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(meta, entry_service_name(meta.name), model_labels(meta.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": revision_selector(meta.name, stable_revision),
            "ports": _ports(config, with_metrics=False),
        },
    }


def disruption_budget(meta: ModelDeploymentMeta, revision: str) -> Manifest:
    """At most one stable pod evicted at a time (only rendered when there is more than one)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(
            meta, revision_name(meta.name, revision), revision_labels(meta.name, revision)
        ),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": revision_selector(meta.name, revision)}},
    }


def routing_configmap(meta: ModelDeploymentMeta, table: RoutingTable) -> Manifest:
    """ConfigMap ``<name>-routing`` holding the routing table as JSON under ``routing.json``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(meta, routing_configmap_name(meta.name), model_labels(meta.name)),
        "data": {ROUTING_KEY: table.to_json()},
    }


def sidecar_rbac(meta: ModelDeploymentMeta, pod_service_account: str | None = None) -> list[Manifest]:
    """ServiceAccount, Role and RoleBinding letting the pods read and watch their routing ConfigMap.

    The binding also names the ServiceAccount of ``spec.template`` when it sets one (the pods then
    run under it, and their sidecars still need their routing table)."""
    name = sidecar_service_account_name(meta.name)
    labels = model_labels(meta.name)
    subjects = [{"kind": "ServiceAccount", "name": name, "namespace": meta.namespace}]
    if pod_service_account is not None and pod_service_account != name:
        subjects.append({"kind": "ServiceAccount", "name": pod_service_account, "namespace": meta.namespace})
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": object_meta(meta, name, labels),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": object_meta(meta, name, labels),
            "rules": sidecar_rules(meta.name),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": object_meta(meta, name, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": subjects,
        },
    ]
