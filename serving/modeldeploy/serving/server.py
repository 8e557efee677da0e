"""Sidecar lifecycle: the traffic and metrics listeners, the routing source, graceful drain.

Traffic port: `/healthz` (the sidecar is up), `/readyz` (the sidecar is not draining and the local
model's `/readyz` answers 200), everything else is proxied. Metrics port: `/metrics` and
`/routing` (the table in force and the guard state, as JSON).

On SIGTERM (or SIGINT) the sidecar drains: `/readyz` turns 503 at once, requests keep being
served for `drain_delay` seconds (while endpoints are updated), then the listener closes and
in-flight requests get up to `drain_timeout` seconds to finish before the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from modeldeploy.contract.routing import RoutingTable
from modeldeploy.serving.data_path import DataPath, DataPathError
from modeldeploy.serving.drift import FeatureHistograms
from modeldeploy.serving.http_errors import json_errors, server_logger
from modeldeploy.serving.metrics import SidecarMetrics
from modeldeploy.serving.prediction_log import PredictionLog
from modeldeploy.serving.proxy import REVISION_HEADER, Proxy, error_response
from modeldeploy.serving.router import Router, TableRejected
from modeldeploy.serving.routing_configmap import ConfigMapWatcher, kubernetes_api
from modeldeploy.serving.routing_file import RoutingFileWatcher
from modeldeploy.serving.settings import SidecarSettings
from modeldeploy.serving.shadow import ShadowMirror
from modeldeploy.serving.upstream import Upstreams, describe

log = logging.getLogger("modeldeploy.sidecar")

READY_PROBE_TIMEOUT = 2.0


class Sidecar:
    def __init__(self, settings: SidecarSettings) -> None:
        self.settings = settings
        self.metrics = SidecarMetrics(settings.model, settings.namespace, settings.revision)
        self.router = Router(settings, self.metrics)
        drift = FeatureHistograms(settings.model, settings.namespace, settings.revision)
        self.metrics.registry.register(drift)
        predictions = PredictionLog(
            settings.model, settings.namespace, self.metrics, queue_size=settings.prediction_log_queue
        )
        self.data_path = DataPath(self.metrics, drift, predictions)
        self._stopping = asyncio.Event()
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._configmap: ConfigMapWatcher | None = None

    # Routing source -------------------------------------------------------------------------

    def apply_routing(self, content: bytes, source: str) -> None:
        try:
            table = RoutingTable.from_json(content)
            self.router.check(table)
            prepared = self.data_path.prepare(table.data_path)
            self.router.apply(table)
            self.data_path.apply(prepared)
        except (ValidationError, TableRejected, DataPathError) as exc:
            self.metrics.routing_errors.inc()
            log.error("routing table from %s rejected, keeping the one in force: %s", source, exc)

    def routing_problem(self, message: str) -> None:
        self.metrics.routing_errors.inc()
        log.warning("%s", message)

    def _start_routing_source(self) -> None:
        settings = self.settings
        if settings.routing_file is not None:
            watcher = RoutingFileWatcher(
                settings.routing_file, self.apply_routing, settings.file_poll_interval
            )
            watcher.check()  # the table is in force before the first request when the file exists
            self._tasks.append(asyncio.create_task(watcher.run(), name="routing-file"))
        else:
            assert settings.routing_configmap is not None
            self._configmap = ConfigMapWatcher(
                kubernetes_api(settings.kubeconfig),
                settings.namespace,
                settings.routing_configmap,
                self.apply_routing,
                self.routing_problem,
                watch_timeout=settings.watch_timeout,
            )
            self._configmap.start(asyncio.get_running_loop())

    # Handlers -------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "revision": self.settings.revision, "draining": self.proxy.draining},
            headers={REVISION_HEADER: self.settings.revision},
        )

    async def readyz(self, request: web.Request) -> web.Response:
        own = self.settings.revision
        if self.proxy.draining:
            return error_response(503, "sidecar is draining (shutting down)", own, kind="draining")
        url = self.settings.upstream + "/readyz"
        try:
            async with self.upstreams.live.get(
                url, timeout=aiohttp.ClientTimeout(total=READY_PROBE_TIMEOUT)
            ) as response:
                await response.read()
                if response.status != 200:
                    message = f"model server {url} answered {response.status}"
                    return error_response(503, message, own, "not_ready")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return error_response(503, f"model server {url} unreachable ({describe(exc)})", own, "not_ready")
        return web.json_response({"status": "ready", "revision": own}, headers={REVISION_HEADER: own})

    async def metrics_handler(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def routing_handler(self, request: web.Request) -> web.Response:
        return web.json_response(self.router.snapshot())

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        self.upstreams = Upstreams(settings)
        self.shadow = ShadowMirror(
            self.upstreams,
            self.metrics,
            concurrency=settings.shadow_concurrency,
            queue=settings.shadow_queue,
            primary_wait=settings.upstream_timeout + 1.0,
            compare_max_bytes=settings.compare_max_bytes,
        )
        self.proxy = Proxy(settings, self.router, self.upstreams, self.shadow, self.metrics, self.data_path)
        self.data_path.predictions.start()
        self._start_routing_source()

        errors = json_errors(settings.revision)
        app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[errors])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_route("*", "/{tail:.*}", self.proxy.handle)
        metrics_app = web.Application(middlewares=[errors])
        metrics_app.router.add_get("/metrics", self.metrics_handler)
        metrics_app.router.add_get("/routing", self.routing_handler)

        try:
            for application, port in ((app, settings.port), (metrics_app, settings.metrics_port)):
                runner = web.AppRunner(
                    application,
                    access_log=None,
                    shutdown_timeout=settings.drain_timeout,
                    keepalive_timeout=settings.idle_timeout,
                    logger=server_logger(),
                )
                await runner.setup()
                self._runners.append(runner)
                await web.TCPSite(runner, settings.listen_host, port, backlog=1024).start()
        except BaseException:  # e.g. port in use: release what was set up, then report
            await self._release()
            raise
        log.info(
            "sidecar for %s/%s revision %s: traffic on %s:%d, metrics on :%d, upstream %s, routing from %s",
            settings.namespace,
            settings.model,
            settings.revision,
            settings.listen_host,
            settings.port,
            settings.metrics_port,
            settings.upstream,
            settings.routing_file or f"ConfigMap {settings.namespace}/{settings.routing_configmap}",
        )

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            log.info("stop requested: draining")
            self.proxy.draining = True
            self._stopping.set()

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self._stopping.wait()
        await self.stop()

    async def stop(self) -> None:
        settings = self.settings
        if settings.drain_delay > 0:
            await asyncio.sleep(settings.drain_delay)
        traffic = self._runners.pop(0)
        await traffic.cleanup()  # closes the listener, waits up to drain_timeout for in-flight requests
        await self.shadow.close(grace=1.0)
        await self._release()
        log.info("sidecar stopped")

    async def _release(self) -> None:
        """Close what is still open: listeners, routing source, client pools."""
        while self._runners:
            await self._runners.pop().cleanup()
        if self._configmap is not None:
            self._configmap.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.upstreams.close()
        await self.data_path.predictions.close(grace=2.0)  # writes the lines still queued
