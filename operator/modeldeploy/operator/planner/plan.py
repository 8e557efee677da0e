"""What one planner call returns: the desired children, routing, status and events.

The handler applies a ``Plan`` in this order, which the planner relies on:

1. ``manifests`` with server-side apply, in the given order (the routing ConfigMap comes first,
   so traffic moves before any Deployment or the entry Service changes);
2. ``scale``: merge-patch ``spec.replicas`` of Deployments the planner cannot render in full
   (revisions other than the spec's, whose pod template lives only in the cluster);
3. ``delete``: children of revisions that no longer take traffic (absent ones are fine);
4. ``status_patch`` as a JSON merge patch of the status subresource;
5. ``events`` on the ModelDeployment;
6. call the planner again after ``requeue_after`` seconds (or on the next watch event).

Scale-downs that must follow a traffic change never share a plan with it: the planner cuts
traffic in one plan and scales down in a later one, after the observed routing table no longer
names the revision and its drain period has passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from modeldeploy.contract.routing import RoutingTable
from modeldeploy.operator.api import ModelDeploymentStatus

Manifest = dict[str, Any]

NORMAL: Literal["Normal"] = "Normal"
WARNING: Literal["Warning"] = "Warning"


@dataclass(frozen=True)
class PlannedEvent:
    """A Kubernetes Event to post on the ModelDeployment."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class ScaleChange:
    """Set ``spec.replicas`` of Deployment ``name`` (revision ``revision``) to ``replicas``."""

    name: str
    revision: str
    replicas: int


@dataclass(frozen=True)
class ChildRef:
    """A child object to delete."""

    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class HandledAction:
    """The action annotation value the planner consumed (the handler may clear the annotation)."""

    value: str
    action: str
    accepted: bool
    message: str


@dataclass(frozen=True)
class Plan:
    """The result of one planner call; see the module docstring for the apply order."""

    manifests: tuple[Manifest, ...]
    routing: RoutingTable
    """The routing table to be in force (also rendered into the ConfigMap in ``manifests``)."""
    status: ModelDeploymentStatus
    """The complete new status (what the next call must be given back)."""
    status_patch: dict[str, Any]
    """``status`` as a JSON merge patch (camelCase; cleared fields are explicit nulls)."""
    status_changed: bool = True
    """False when ``status`` equals the status given in: the handler may skip the patch."""
    events: tuple[PlannedEvent, ...] = ()
    scale: tuple[ScaleChange, ...] = ()
    delete: tuple[ChildRef, ...] = ()
    requeue_after: float | None = None
    """Seconds until the next time-based transition or analysis run; None when nothing is timed."""
    handled_action: HandledAction | None = None
    analysis_due: bool = False
    """True when the canary/shadow should be analysed now (see ``analysis_request``)."""
    notes: tuple[str, ...] = field(default=())
    """Why the planner decided what it did in this call (for debug logs)."""
