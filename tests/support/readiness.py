"""Mark model Pods Ready, as kubelet's readiness probes would for pods that serve.

The local cluster has no kubelet; KWOK leaves Pods labelled app.kubernetes.io/managed-by=modeldeploy
NotReady so that the e2e harness decides readiness from real processes. Tests that run no serving
processes (chart, plugin, Argo CD samples) only need rollouts to progress: every such Pod is made Ready.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient

MODEL_PODS = "app.kubernetes.io/managed-by=modeldeploy"


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def mark_ready_once(core: client.CoreV1Api, namespace: str, selector: str = MODEL_PODS) -> int:
    """Make the Running model Pods (matching `selector`) Ready; returns how many were changed.

    Reads and writes raw JSON (no client model objects): with hundreds of Pods (the scale
    benchmark) deserialising them would cost more CPU than the operator under test uses.
    """
    listed = core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
    marked = 0
    for pod in json.loads(listed.data)["items"]:
        meta, status = pod["metadata"], pod.get("status") or {}
        if meta.get("deletionTimestamp") or _ready(pod) or status.get("phase") != "Running":
            continue
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("ContainersReady", "Ready")
        ]
        with contextlib.suppress(client.ApiException):
            core.patch_namespaced_pod_status(
                meta["name"], namespace, {"status": {"conditions": conditions}}, _preload_content=False
            )
            marked += 1
    return marked


@contextlib.contextmanager
def model_pods_ready(k8s: ApiClient, namespace: str, period: float = 0.3) -> Iterator[None]:
    """While the block runs, every Running model Pod in `namespace` is made Ready within `period`."""
    core = client.CoreV1Api(k8s)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(period):
            with contextlib.suppress(Exception):
                mark_ready_once(core, namespace)

    thread = threading.Thread(target=loop, name=f"ready-{namespace}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
