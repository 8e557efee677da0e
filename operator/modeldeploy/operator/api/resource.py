"""The ModelDeployment resource as a whole: names of the kind and a typed view of an object."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modeldeploy.operator.api.cel import ApiModel
from modeldeploy.operator.api.spec import ModelDeploymentSpec
from modeldeploy.operator.api.status import ModelDeploymentStatus

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("mdep",)
CATEGORIES = ("all", "ml")


class ModelDeployment(ApiModel):
    """A model served on Kubernetes whose new revisions are rolled out by shadow and canary steps,
    judged against SLOs in Prometheus, and promoted or rolled back automatically."""

    api_version: str = Field(default=API_VERSION, description="modeldeploy.io/v1alpha1.")
    kind: str = Field(default=KIND, description="ModelDeployment.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: ModelDeploymentSpec = Field(description="Desired state.")
    status: ModelDeploymentStatus = Field(
        default_factory=ModelDeploymentStatus, description="Observed state, written by the operator."
    )
