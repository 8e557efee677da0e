"""Test helpers for a ModelDeployment on a real API server, shared by the api, chart, plugin and
argocd layers: `wait_for` (poll with the operator's log on timeout), `manifest` (a small
ModelDeployment with the given steps) and `Mdep` (read and edit one through the API server)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from modeldeploy.contract.labels import MODEL_LABEL
from modeldeploy.contract.routing import ROUTING_KEY, routing_configmap_name
from modeldeploy.operator.api import GROUP, PLURAL, VERSION
from tests.cluster.localcluster import LocalCluster
from tests.support.modeldeployments import modeldeployment
from tests.support.operator_process import OperatorProcess


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, op: OperatorProcess | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.25)
    logs = op.logs()[-4000:] if op else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\noperator log tail:\n{logs}")


def manifest(name: str, image: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """A small ModelDeployment with fast analysis (1s, one request) for a real API server."""
    return modeldeployment(name, image, steps=steps, analysis={"interval": "1s", "minRequests": 1}, **spec)


class Mdep:
    """Reads and edits one ModelDeployment through the API server."""

    def __init__(self, cluster: LocalCluster, k8s: ApiClient, namespace: str, name: str) -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.custom = client.CustomObjectsApi(k8s)
        self.apps = client.AppsV1Api(k8s)
        self.core = client.CoreV1Api(k8s)

    def apply(self, body: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-", input=yaml.safe_dump(body))

    def get(self) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name
        )
        return result

    def status(self) -> dict[str, Any]:
        return dict(self.get().get("status") or {})

    def set_image(self, image: str) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name, {"spec": {"model": {"image": image}}}
        )

    def deployments(self) -> dict[str, Any]:
        items = self.apps.list_namespaced_deployment(
            self.namespace, label_selector=f"{MODEL_LABEL}={self.name}"
        ).items
        return {d.metadata.name: d for d in items}

    def routing(self) -> dict[str, Any]:
        cm = self.core.read_namespaced_config_map(routing_configmap_name(self.name), self.namespace)
        result: dict[str, Any] = json.loads(cm.data[ROUTING_KEY])
        return result
