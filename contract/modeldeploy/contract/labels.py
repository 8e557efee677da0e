"""Names and labels of the children (the sidecar, tests and kubectl plugin rely on them)."""

from __future__ import annotations

from typing import Final

NAME_LABEL: Final = "app.kubernetes.io/name"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "modeldeploy"
MODEL_LABEL: Final = "modeldeploy.io/model"
REVISION_LABEL: Final = "modeldeploy.io/revision"

IMAGE_ANNOTATION: Final = "modeldeploy.io/image"
"""On each revision Deployment: the model image of that revision."""

CONTAINER_MODEL: Final = "model"
CONTAINER_SIDECAR: Final = "sidecar"


def revision_name(model: str, revision: str) -> str:
    """Name of a revision's Deployment, Service and PodDisruptionBudget."""
    return f"{model}-{revision}"


def entry_service_name(model: str) -> str:
    """The Service clients call; it selects the stable revision's pods."""
    return model


def model_labels(model: str) -> dict[str, str]:
    """Labels on every child of a ModelDeployment."""
    return {NAME_LABEL: model, MANAGED_BY_LABEL: MANAGED_BY, MODEL_LABEL: model}


def revision_labels(model: str, revision: str) -> dict[str, str]:
    """Labels on a revision's children and pods."""
    return {**model_labels(model), REVISION_LABEL: revision}


def revision_selector(model: str, revision: str) -> dict[str, str]:
    """Pod selector of one revision (stays fixed for the Deployment's life)."""
    return {MODEL_LABEL: model, REVISION_LABEL: revision}


def model_selector(model: str) -> str:
    """Label selector (string form) listing every child of a model, for the handlers."""
    return f"{MODEL_LABEL}={model},{MANAGED_BY_LABEL}={MANAGED_BY}"


def sidecar_service_account_name(model: str) -> str:
    """ServiceAccount (and Role, RoleBinding) of a model's pods: reads the routing ConfigMap only."""
    return f"{model}-sidecar"
