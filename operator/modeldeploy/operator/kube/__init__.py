"""Kubernetes access for the operator (the only package here that talks to the API server)."""

from modeldeploy.operator.kube.client import Kube, KubeError
from modeldeploy.operator.kube.resources import (
    CONFIGMAP,
    DEPLOYMENT,
    MODELDEPLOYMENT,
    PDB,
    POD,
    SERVICE,
    Kind,
)

__all__ = [
    "CONFIGMAP",
    "DEPLOYMENT",
    "EVENT",
    "MODELDEPLOYMENT",
    "PDB",
    "POD",
    "SERVICE",
    "Kind",
    "Kube",
    "KubeError",
]
