"""Least-privilege RBAC rules, next to the code that needs them. The Helm chart renders these.

Each rule says which part of the operator (or sidecar) uses it. Secrets are never granted.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.contract.routing import routing_configmap_name

Rule = dict[str, Any]

_WRITE = ["get", "list", "watch", "create", "patch", "update", "delete"]

OPERATOR_RULES: list[Rule] = [
    # handlers/: watch ModelDeployments, acknowledge actions; reconcile/: write status.
    {
        "apiGroups": ["modeldeploy.io"],
        "resources": ["modeldeployments"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": ["modeldeploy.io"],
        "resources": ["modeldeployments/status"],
        "verbs": ["get", "patch", "update"],
    },
    # reconcile/ applies the planner's children with server-side apply and deletes retired ones.
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": _WRITE},
    {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": _WRITE},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _WRITE},
    # planner/render.py gives each model's sidecars a ServiceAccount and a Role + RoleBinding
    # limited to reading their routing ConfigMap (the operator holds that permission itself).
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": _WRITE},
    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": _WRITE},
    # kopf posts Kubernetes Events for every transition.
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    # kopf: resource discovery and namespace scanning.
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    # kopf peering (HA: one active replica).
    {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings", "kopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    },
]


def sidecar_rules(model: str) -> list[Rule]:
    """What a serving pod's sidecar may do: read and watch its own routing ConfigMap only.

    planner/services.py puts these rules in each model's sidecar Role."""
    return [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [routing_configmap_name(model)],
            "verbs": ["get", "list", "watch"],
        }
    ]
