"""Watch ModelDeployments with the user's kubeconfig, in a thread: list, then watch from there.

Across all namespaces when the user may list them cluster-wide, else in the kubeconfig's namespace
(`scope` says which). When the watch ends or its resourceVersion expires (410 Gone) it lists again,
so the dashboard always converges on what the API server holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client, watch

from modeldeploy.operator.api import GROUP, PLURAL, VERSION
from modeldeploy.operator.cli.kube import ModelDeployments

Listener = Callable[[str, list[dict[str, Any]]], None]
"""(kind, objects): kind is "reset" (the full list) or a watch event type (ADDED, MODIFIED, DELETED)."""

WATCH_SECONDS = 300
RETRY_SECONDS = 2.0


class ModelDeploymentWatch:
    def __init__(
        self, mds: ModelDeployments, listener: Listener, problem: Callable[[str | None], None]
    ) -> None:
        self.mds = mds
        self.listener = listener
        self.problem = problem
        """Called with what keeps the watch from working (None once it works again)."""
        self.cluster_wide = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modeldeployment-watch", daemon=True)
        self._watch: watch.Watch | None = None

    @property
    def scope(self) -> str:
        return "all namespaces" if self.cluster_wide else f"namespace {self.mds.namespace}"

    def start(self) -> ModelDeploymentWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(1)  # a daemon thread: a watch blocked on a quiet stream is left behind

    def _list_call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        custom = self.mds.custom
        if self.cluster_wide:
            return custom.list_cluster_custom_object, (GROUP, VERSION, PLURAL)
        return custom.list_namespaced_custom_object, (GROUP, VERSION, self.mds.namespace, PLURAL)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._list_and_watch()
            except client.ApiException as exc:
                if exc.status == 403 and self.cluster_wide:
                    self.cluster_wide = False  # may not list cluster-wide: the kubeconfig's namespace
                    continue
                if exc.status != 410:
                    self.problem(f"cannot watch modeldeployments ({self.scope}): {exc.status} {exc.reason}")
                    self._stop.wait(RETRY_SECONDS)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                self.problem(f"cannot reach the API server: {exc}")
                self._stop.wait(RETRY_SECONDS)

    def _list_and_watch(self) -> None:
        fn, args = self._list_call()
        listed = fn(*args)
        self.problem(None)
        self.listener("reset", list(listed.get("items") or []))
        version = (listed.get("metadata") or {}).get("resourceVersion")
        self._watch = watch.Watch()
        started = time.monotonic()
        for event in self._watch.stream(fn, *args, resource_version=version, timeout_seconds=WATCH_SECONDS):
            if self._stop.is_set():
                return
            kind, obj = event.get("type"), event.get("object")
            if kind == "ERROR":
                code = (obj or {}).get("code") if isinstance(obj, dict) else None
                if code == 410:
                    return  # expired resourceVersion: list again
                raise client.ApiException(status=code or 500, reason=str(obj))
            if isinstance(obj, dict) and kind in ("ADDED", "MODIFIED", "DELETED"):
                self.listener(kind, [obj])
        if time.monotonic() - started < 1:
            self._stop.wait(RETRY_SECONDS)  # a watch that ends at once must not spin
