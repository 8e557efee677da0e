"""A small async façade over the `kubernetes` client: server-side apply, list, delete, status.

The generated client is synchronous; every call runs in a worker thread so kopf's event loop
never blocks: in `executor` when one is given (the operator's own bounded pool, sized like the
client's connection pool: `bounded_api_client`), else in asyncio's default executor.

Manifests are plain dicts (the planner's output), applied with server-side apply under one field
manager, so repeated applies are idempotent and conflicts with other managers
are resolved in the operator's favour only for the fields it owns.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from modeldeploy.operator.kube.resources import Kind, kind_of

FIELD_MANAGER = "modeldeploy-operator"


class KubeError(RuntimeError):
    """An API call failed; `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _explain(body: str | None, reason: str | None) -> str:
    """The API server's own message (a Status object) when there is one."""
    try:
        return str(json.loads(body or "{}").get("message") or reason)
    except (ValueError, TypeError, AttributeError):
        return str(reason)


API_THREADS = 16
"""Threads (and pooled connections) for the operator's API calls; docs/architecture.md has the
measurement this number comes from."""


def bounded_api_client(threads: int = API_THREADS) -> tuple[ApiClient, ThreadPoolExecutor]:
    """An API client configured in-cluster (else from the kubeconfig) with `threads` pooled
    connections, and an executor of as many threads to run its calls in."""
    configuration = Configuration()
    try:
        kube_config.load_incluster_config(client_configuration=configuration)
    except kube_config.ConfigException:
        kube_config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = threads
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube-api")
    return ApiClient(configuration), executor


class Kube:
    def __init__(
        self, api_client: ApiClient, field_manager: str = FIELD_MANAGER, executor: Executor | None = None
    ) -> None:
        self.api = api_client
        self.field_manager = field_manager
        self.executor = executor

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        url_method, url, headers, payload, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(
                url_method, url, header_params=headers, body=payload, _request_timeout=30
            )
            response.read()
        except ApiException as exc:
            raise KubeError(
                f"{method} {path}: {exc.status} {_explain(exc.body, exc.reason)}", exc.status
            ) from exc
        except OSError as exc:  # connection refused, reset, TLS failures
            raise KubeError(f"{method} {path}: {exc}") from exc
        text = (response.data or b"").decode("utf-8", errors="replace")
        if not 200 <= response.status <= 299:
            raise KubeError(
                f"{method} {path}: {response.status} {_explain(text, response.reason)}", response.status
            )
        return json.loads(text) if text else None

    async def _acall(self, method: str, path: str, **kw: Any) -> Any:
        if self.executor is None:
            return await asyncio.to_thread(self._call, method, path, **kw)
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, lambda: self._call(method, path, **kw)
        )

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (force: the operator owns what it renders)."""
        kind = kind_of(manifest)
        meta = manifest["metadata"]
        result: dict[str, Any] = await self._acall(
            "PATCH",
            kind.item(meta.get("namespace"), meta["name"]),
            body=manifest,
            query=[("fieldManager", self.field_manager), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return result

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind = kind_of(manifest)
        result: dict[str, Any] = await self._acall(
            "POST", kind.collection(manifest["metadata"].get("namespace")), body=manifest
        )
        return result

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self._acall("GET", kind.item(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def list(self, kind: Kind, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        result = await self._acall("GET", kind.collection(namespace), query=query)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete in the background (dependents are garbage-collected); False if already gone."""
        try:
            await self._acall(
                "DELETE",
                kind.item(namespace, name),
                body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            )
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        """JSON merge patch of the status subresource (lists are replaced whole)."""
        await self.patch_status_returning(kind, namespace, name, status)

    async def patch_status_returning(
        self, kind: Kind, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """`patch_status`, returning the object as the server stored it."""
        result: dict[str, Any] = await self._acall(
            "PATCH",
            kind.item(namespace, name) + "/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )
        return result

    async def patch(self, kind: Kind, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """JSON merge patch of the main resource (e.g. to clear a handled action annotation)."""
        await self.patch_returning(kind, namespace, name, patch)

    async def patch_returning(
        self, kind: Kind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """`patch`, returning the object as the server stored it."""
        result: dict[str, Any] = await self._acall(
            "PATCH", kind.item(namespace, name), body=patch, content_type="application/merge-patch+json"
        )
        return result
