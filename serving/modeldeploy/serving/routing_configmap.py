"""Routing table from the ConfigMap `<model>-routing`, followed by an API watch (not a volume mount).

A background thread lists the one ConfigMap (field selector `metadata.name`, so RBAC can be
limited with `resourceNames`), then watches it from the listed resourceVersion; every ADDED or
MODIFIED event hands the `routing.json` value to the event loop, so a change is in force within
the watch latency (well under a second). When a watch ends (server timeout) or fails (API server
restart, 410 Gone, network error) the thread lists again and re-watches, backing off from 0.2 s
to 5 s while errors persist. A deleted ConfigMap leaves the last table in force.

Credentials: the in-cluster service account when KUBERNETES_SERVICE_HOST is set, otherwise the
kubeconfig from the settings or $KUBECONFIG / ~/.kube/config.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from modeldeploy.contract.routing import ROUTING_KEY

log = logging.getLogger("modeldeploy.sidecar.routing")

_BACKOFF_START = 0.2
_BACKOFF_MAX = 5.0


class WatchSetupError(RuntimeError):
    """No Kubernetes credentials could be loaded for the ConfigMap watch."""


def kubernetes_api(kubeconfig: Path | None) -> client.ApiClient:
    """An ApiClient from in-cluster credentials or a kubeconfig; WatchSetupError if neither works."""
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None)
    except (config.ConfigException, OSError) as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "in-cluster config or $KUBECONFIG"
        raise WatchSetupError(f"cannot load Kubernetes credentials from {where}: {exc}") from exc


class ConfigMapWatcher:
    """Follows one ConfigMap from a daemon thread and posts its routing JSON to the event loop."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        on_change: Callable[[bytes, str], None],
        on_error: Callable[[str], None],
        *,
        watch_timeout: int,
        request_timeout: float = 10.0,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._namespace = namespace
        self._name = name
        self._on_change = on_change
        self._on_error = on_error
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last: bytes | None = None
        self.watches_started = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name=f"watch-{self._name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop; it is a daemon, so a watch blocked in a read does not hold exit."""
        self._stop.set()

    def _post(self, data: dict[str, Any] | None, how: str) -> None:
        text = (data or {}).get(ROUTING_KEY)
        if text is None:
            self._post_error(f"ConfigMap {self._namespace}/{self._name} has no key {ROUTING_KEY!r}")
            return
        content = text.encode("utf-8")
        if content == self._last:
            return
        self._last = content
        source = f"ConfigMap {self._namespace}/{self._name} ({how})"
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_change, content, source)

    def _post_error(self, message: str) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_error, message)

    def _run(self) -> None:
        backoff = _BACKOFF_START
        selector = f"metadata.name={self._name}"
        while not self._stop.is_set():
            try:
                listed = self._core.list_namespaced_config_map(
                    self._namespace, field_selector=selector, _request_timeout=self._request_timeout
                )
                if listed.items:
                    self._post(listed.items[0].data, "list")
                else:
                    self._post_error(f"ConfigMap {self._namespace}/{self._name} not found; waiting for it")
                self.watches_started += 1
                log.debug(
                    "watching ConfigMap %s/%s from resourceVersion %s (watch #%d)",
                    self._namespace,
                    self._name,
                    listed.metadata.resource_version,
                    self.watches_started,
                )
                stream = watch.Watch().stream(
                    self._core.list_namespaced_config_map,
                    self._namespace,
                    field_selector=selector,
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=self._watch_timeout,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                    _request_timeout=(self._request_timeout, self._watch_timeout + self._request_timeout),
                )
                for event in stream:
                    backoff = _BACKOFF_START
                    if self._stop.is_set():
                        return
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind in ("ADDED", "MODIFIED"):
                        self._post(obj.get("data"), "watch")
                    elif kind == "DELETED":
                        where = f"{self._namespace}/{self._name}"
                        self._post_error(f"ConfigMap {where} was deleted; keeping the table in force")
                        self._last = None
            except Exception as exc:  # any failure: relist and watch again after a pause
                if self._stop.is_set():
                    return
                self._post_error(f"watch of ConfigMap {self._namespace}/{self._name} failed: {exc!r}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
