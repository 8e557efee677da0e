"""What every e2e environment offers the scenarios: the ModelDeployment and its children, read and
changed through the API server, and waiting with a message that says where to look.

RealNodeEnv (real node + chart, tests/support/real_env.py) builds on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml
from kubernetes import client

if TYPE_CHECKING:
    from tests.cluster.localcluster import LocalCluster

GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
__all__ = ["GROUP", "PLURAL", "VERSION", "ModelDeploymentObjects"]


class ModelDeploymentObjects:
    cluster: LocalCluster
    namespace: str
    custom: client.CustomObjectsApi
    core: client.CoreV1Api

    def failure_context(self) -> str:
        """What a timed-out wait shows besides its own message (logs and where they are)."""
        return ""

    def apply(self, body: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-", input=yaml.safe_dump(body))

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return result

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )

    def routing(self, name: str) -> dict[str, Any]:
        cm = self.core.read_namespaced_config_map(f"{name}-routing", self.namespace)
        result: dict[str, Any] = json.loads(cm.data["routing.json"])
        return result

    def events(self, name: str) -> list[tuple[str, str, str]]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=ModelDeployment"
        ).items
        return [
            (e.type, e.reason, e.message) for e in sorted(items, key=lambda e: e.metadata.creation_timestamp)
        ]

    def events_with(
        self, name: str, reason: str, about: str = "", timeout: float = 15.0
    ) -> list[tuple[str, str, str]]:
        """The events of `name` once one of them has `reason` (and `about` in its message). The
        operator posts a transition's Events right after the status write that records it, so a
        test that saw the status first may read the events a moment too early."""

        def found() -> list[tuple[str, str, str]] | None:
            events = self.events(name)
            return events if any(r == reason and about in m for _, r, m in events) else None

        events: list[tuple[str, str, str]] = self.wait(found, timeout, f"a {reason} event of {name}")
        return events

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}\n"
            f"{self.rollout_states()}\n{self.failure_context()}"
        )

    def rollout_states(self) -> str:
        """Each ModelDeployment's phase, revisions, conditions and last analysis results, and each
        Pod's phase and container states: what a timed-out wait was waiting on."""
        lines = []
        try:
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"]
            for item in items:
                status = item.get("status") or {}
                summary = {k: status.get(k) for k in ("phase", "stableRevision", "canaryRevision", "step")}
                lines.append(f"ModelDeployment {item['metadata']['name']}: {summary}")
                for condition in status.get("conditions") or []:
                    lines.append(
                        f"  {condition.get('type')}={condition.get('status')}: {condition.get('message')}"
                    )
                for result in (status.get("analysis") or {}).get("results") or []:
                    lines.append(
                        f"  analysis {result.get('metric')}: {result.get('result')} {result.get('message')}"
                    )
                guardrails = status.get("guardrails") or {}
                if guardrails:
                    lines.append(f"  guardrails: {guardrails}")
            for pod in self.core.list_namespaced_pod(self.namespace).items:
                states = [
                    f"{c.name} ready={c.ready} restarts={c.restart_count}"
                    for c in pod.status.container_statuses or []
                ]
                lines.append(f"Pod {pod.metadata.name}: {pod.status.phase} {'; '.join(states)}")
        except Exception as exc:  # a diagnosis must not hide the timeout it explains
            lines.append(f"(could not read the rollout's state: {exc})")
        return "\n".join(lines)
