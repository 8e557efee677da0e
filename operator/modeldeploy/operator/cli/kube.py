"""Reading and patching ModelDeployments with the user's kubeconfig (as kubectl would)."""

from __future__ import annotations

import copy
import json
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from modeldeploy.operator.api import GROUP, PLURAL, VERSION


class CliError(Exception):
    """A failure to report to the user in one line (exit code 1)."""


def _api_message(exc: client.ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except json.JSONDecodeError:
        body = {}
    return str(body.get("message") or exc.reason or exc)


class ModelDeployments:
    """ModelDeployments in one namespace."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        try:
            self.api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        except (ConfigException, FileNotFoundError, OSError) as exc:
            raise CliError(f"cannot load kubeconfig: {exc}") from None
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
            active = next((c for c in contexts if c["name"] == context), active)
        self.namespace = namespace or (active.get("context") or {}).get("namespace") or "default"
        self.custom = client.CustomObjectsApi(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    def in_namespace(self, namespace: str) -> ModelDeployments:
        """The same connection, for ModelDeployments in `namespace` (the dashboard acts in any)."""
        other = copy.copy(self)
        other.namespace = namespace
        return other

    def _call(self, what: str, name: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = fn(*args, **kwargs)
        except client.ApiException as exc:
            if exc.status == 404:
                raise CliError(
                    f'modeldeployment "{name}" not found in namespace "{self.namespace}"'
                    if name
                    else f"no ModelDeployment API: {_api_message(exc)} (is the CRD installed?)"
                ) from None
            raise CliError(f"cannot {what} modeldeployment {name}: {_api_message(exc)}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise CliError(f"cannot reach the API server: {exc}") from None
        return result

    def get(self, name: str) -> dict[str, Any]:
        return self._call(
            "read",
            name,
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
        )

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the object (metadata or spec)."""
        return self._call(
            "patch",
            name,
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )

    def list(self) -> list[dict[str, Any]]:
        result = self._call(
            "list", "", self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL
        )
        items: list[dict[str, Any]] = result.get("items", [])
        return items
