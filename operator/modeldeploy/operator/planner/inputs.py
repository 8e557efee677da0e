"""What the planner is given besides spec and status: metadata, observed children, settings.

The handlers read the cluster and build these plain values; the helpers here only parse
dicts the handlers already have (a ModelDeployment body, a listed Deployment, the routing
ConfigMap), so the handlers stay thin and the parsing is unit-tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modeldeploy.contract.labels import CONTAINER_MODEL, IMAGE_ANNOTATION, REVISION_LABEL
from modeldeploy.contract.routing import ROUTING_KEY, RoutingTable
from modeldeploy.operator.planner.plan import ChildRef


@dataclass(frozen=True)
class ModelDeploymentMeta:
    """The parts of the ModelDeployment's metadata the planner uses."""

    name: str
    namespace: str
    uid: str
    generation: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ModelDeploymentMeta:
        meta = body.get("metadata") or {}
        missing = [key for key in ("name", "namespace", "uid") if not meta.get(key)]
        if missing:
            raise ValueError(f"ModelDeployment metadata lacks {', '.join(missing)}")
        return cls(
            name=str(meta["name"]),
            namespace=str(meta["namespace"]),
            uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 0),
            annotations=dict(meta.get("annotations") or {}),
        )


@dataclass(frozen=True)
class ObservedRevision:
    """One revision Deployment as it is in the cluster."""

    revision: str
    replicas: int
    """spec.replicas of the Deployment (what was last asked for)."""
    ready_replicas: int
    """status.readyReplicas."""
    created_at: datetime | None = None
    image: str | None = None
    """The model image (annotation modeldeploy.io/image, else the ``model`` container's image)."""

    @classmethod
    def from_deployment(cls, deployment: Mapping[str, Any]) -> ObservedRevision:
        """Parse a Deployment dict (as listed from the API server) of one revision."""
        meta = deployment.get("metadata") or {}
        labels = meta.get("labels") or {}
        revision = labels.get(REVISION_LABEL)
        if not revision:
            raise ValueError(f"Deployment {meta.get('name')!r} has no {REVISION_LABEL} label")
        spec = deployment.get("spec") or {}
        status = deployment.get("status") or {}
        created = meta.get("creationTimestamp")
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        image = (meta.get("annotations") or {}).get(IMAGE_ANNOTATION) or next(
            (c.get("image") for c in containers if c.get("name") == CONTAINER_MODEL), None
        )
        return cls(
            revision=str(revision),
            replicas=int(spec.get("replicas", 1)),
            ready_replicas=int(status.get("readyReplicas") or 0),
            created_at=_timestamp(created) if created else None,
            image=str(image) if image else None,
        )


@dataclass(frozen=True)
class ObservedChildren:
    """The children of one ModelDeployment as they are in the cluster."""

    revisions: tuple[ObservedRevision, ...] = ()
    routing: RoutingTable | None = None
    """The routing table currently in the ConfigMap (None when there is no ConfigMap yet)."""
    others: tuple[ChildRef, ...] = ()
    """Other children of the model found in the cluster (Services, PodDisruptionBudgets, ...).
    Those the plan neither renders nor keeps are deleted; leave empty to delete only the
    children of revisions the planner retires."""
    documents: Mapping[str, Mapping[str, str] | None] = field(default_factory=dict)
    """Data of the ConfigMaps the guardrails refer to, by name (None: the ConfigMap does not exist)."""

    def __post_init__(self) -> None:
        seen = [r.revision for r in self.revisions]
        duplicates = sorted({r for r in seen if seen.count(r) > 1})
        if duplicates:
            raise ValueError(f"more than one Deployment for revision(s) {', '.join(duplicates)}")

    def get(self, revision: str | None) -> ObservedRevision | None:
        for observed in self.revisions:
            if observed.revision == revision:
                return observed
        return None

    @classmethod
    def from_objects(
        cls,
        deployments: Sequence[Mapping[str, Any]],
        routing_configmap: Mapping[str, Any] | None,
        others: Sequence[Mapping[str, Any]] = (),
        documents: Mapping[str, Mapping[str, str] | None] | None = None,
    ) -> ObservedChildren:
        """From the model's listed Deployments, its routing ConfigMap (or None), and other children."""
        return cls(
            revisions=tuple(ObservedRevision.from_deployment(d) for d in deployments),
            routing=routing_from_configmap(routing_configmap),
            others=tuple(child_ref(obj) for obj in others),
            documents=dict(documents or {}),
        )


def child_ref(obj: Mapping[str, Any]) -> ChildRef:
    """The ChildRef of an object dict (apiVersion, kind, metadata.name)."""
    name = (obj.get("metadata") or {}).get("name")
    if not obj.get("apiVersion") or not obj.get("kind") or not name:
        raise ValueError(f"not a Kubernetes object (apiVersion, kind and metadata.name needed): {obj!r:.200}")
    return ChildRef(api_version=str(obj["apiVersion"]), kind=str(obj["kind"]), name=str(name))


def routing_from_configmap(configmap: Mapping[str, Any] | None) -> RoutingTable | None:
    """The routing table stored in a ConfigMap dict; None if absent or not a valid table."""
    if configmap is None:
        return None
    text = (configmap.get("data") or {}).get(ROUTING_KEY)
    if not text:
        return None
    try:
        return RoutingTable.from_json(text)
    except ValueError:
        # An unreadable table is replaced by the planner's; treat it as "no table applied".
        return None


@dataclass(frozen=True)
class PlannerConfig:
    """Operator-wide settings that shape the children (from the operator's settings)."""

    sidecar_image: str
    sidecar_image_pull_policy: str = "IfNotPresent"
    sidecar_command: tuple[str, ...] = ("modeldeploy-sidecar",)
    """Command of the sidecar container (the modeldeploy image holds operator and sidecar)."""
    sidecar_rbac: bool = True
    """Render a ServiceAccount, Role and RoleBinding per model so the sidecars may read (only) their
    routing ConfigMap; False: pods use the namespace's default ServiceAccount."""
    sidecar_resources: Mapping[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        }
    )
    service_port: int = 8080
    """Port of the revision Services and the entry Service (the sidecar's traffic port)."""
    metrics_port: int = 9090
    """The sidecar's /metrics port (scraped by Prometheus)."""
    cluster_domain_suffix: str = "svc"
    """Host suffix of Service URLs in the routing table: http://<svc>.<namespace>.<suffix>:<port>."""
    default_drain_seconds: float = 30.0
    """Drain period used when the spec sets none (time between traffic cut and scale-down)."""


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
