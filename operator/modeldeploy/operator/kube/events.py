"""Kubernetes Events on a ModelDeployment (core/v1, as `kubectl describe` shows them)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any, Literal

COMPONENT = "modeldeploy-operator"
MAX_MESSAGE = 1024


def event_manifest(
    body: dict[str, Any], type_: Literal["Normal", "Warning"], reason: str, message: str, now: datetime
) -> dict[str, Any]:
    meta = body["metadata"]
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT, "host": socket.gethostname()},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
