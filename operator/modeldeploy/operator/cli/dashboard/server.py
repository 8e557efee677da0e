"""The dashboard's web server (aiohttp): the page, its JSON API and the live event stream.

    GET  /                                          the page (static/index.html)
    GET  /static/<file>                             dashboard.js, dashboard.css
    GET  /api/modeldeployments                      every ModelDeployment seen: snapshots + recorded analysis
    GET  /api/events                                server-sent events: `reset` (all), `upsert`, `delete`
    GET  /api/modeldeployments/<ns>/<name>/charts   Prometheus series per revision (?range=<seconds>)
    POST /api/modeldeployments/<ns>/<name>/actions  {"action": "promote"}: only with --enable-actions

Every /api answer is JSON, errors included (`{"error": "..."}` with a 4xx/5xx status). Actions are
written with the user's kubeconfig exactly as `kubectl modeldeploy <action>` writes them (the
action annotation), and the answer carries the operator's acknowledgement.

The server listens on loopback by default. It refuses requests whose Host header is not its own
address (DNS rebinding) and POSTs from another origin or not sent as application/json (a web page
elsewhere cannot make the browser act on the cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

from modeldeploy.operator.cli.action_requests import request as request_action
from modeldeploy.operator.cli.dashboard.charts import chart_data
from modeldeploy.operator.cli.dashboard.recorder import AnalysisRecorder
from modeldeploy.operator.cli.dashboard.snapshot import snapshot
from modeldeploy.operator.cli.dashboard.watch import ModelDeploymentWatch
from modeldeploy.operator.cli.kube import CliError, ModelDeployments
from modeldeploy.operator.planner.actions import ABORT, PAUSE, PROMOTE, PROMOTE_FULL, RESUME, RETRY

ACTIONS = (PROMOTE, PROMOTE_FULL, ABORT, RETRY, PAUSE, RESUME)
STATIC_FILES = {
    "index.html": "text/html",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
KEEPALIVE_SECONDS = 15.0
MAX_RANGE_SECONDS = 7 * 24 * 3600
MAX_BODY_BYTES = 4096
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass(frozen=True)
class DashboardOptions:
    address: str = "127.0.0.1"
    port: int = 8765
    enable_actions: bool = False
    prometheus_url: str | None = None
    """Used for every ModelDeployment; when unset, each one's spec.prometheus.url (if any)."""
    range_seconds: float = 900.0
    """Default time range of the charts."""
    rate_window: str = "1m"
    """The PromQL rate window of the charts."""
    action_wait_seconds: float = 30.0


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def static_text(name: str) -> str:
    return (resources.files("modeldeploy.operator.cli.dashboard") / "static" / name).read_text("utf-8")


class Dashboard:
    """What the server knows: the latest snapshot of every ModelDeployment and who listens."""

    def __init__(self, mds: ModelDeployments, options: DashboardOptions) -> None:
        self.mds = mds
        self.options = options
        self.items: dict[str, dict[str, Any]] = {}
        self.recorder = AnalysisRecorder()
        self.problem: str | None = None
        self.listeners: set[asyncio.Queue[str]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.watch = ModelDeploymentWatch(mds, self._from_thread, self._problem_from_thread)
        self.session: aiohttp.ClientSession | None = None

    # ---- the watch (its thread hands every event to the event loop) ---------------------------
    def _from_thread(self, kind: str, objects: list[dict[str, Any]]) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.apply, kind, objects)

    def _problem_from_thread(self, problem: str | None) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.set_problem, problem)

    def set_problem(self, problem: str | None) -> None:
        if problem != self.problem:
            self.problem = problem
            self.publish({"type": "problem", "problem": problem})

    def item(self, obj: dict[str, Any]) -> dict[str, Any]:
        snap = snapshot(obj, datetime.now(UTC))
        self.recorder.observe(snap)
        snap["recorded"] = self.recorder.samples(snap["key"])
        return snap

    def apply(self, kind: str, objects: list[dict[str, Any]]) -> None:
        if kind == "reset":
            self.items = {}
            for obj in objects:
                snap = self.item(obj)
                self.items[snap["key"]] = snap
            self.publish(self.state("reset"))
            return
        for obj in objects:
            if kind == "DELETED":
                meta = obj.get("metadata") or {}
                key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
                self.items.pop(key, None)
                self.recorder.forget(key)
                self.publish({"type": "delete", "key": key})
            else:
                snap = self.item(obj)
                self.items[snap["key"]] = snap
                self.publish({"type": "upsert", "item": snap})

    def state(self, kind: str = "reset") -> dict[str, Any]:
        return {
            "type": kind,
            "actions": self.options.enable_actions,
            "scope": self.watch.scope,
            "problem": self.problem,
            "items": [self.items[key] for key in sorted(self.items)],
        }

    def publish(self, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        for queue in self.listeners:
            queue.put_nowait(text)

    # ---- handlers ------------------------------------------------------------------------------
    async def page(self, _: web.Request) -> web.Response:
        return web.Response(text=static_text("index.html"), content_type="text/html")

    async def static(self, req: web.Request) -> web.Response:
        name = req.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(text=static_text(name), content_type=STATIC_FILES[name])

    async def list_items(self, _: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def events(self, req: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(req)
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.listeners.add(queue)
        try:
            await response.write(f"data: {json.dumps(self.state())}\n\n".encode())
            while True:
                try:
                    text = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                await response.write(f"data: {text}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.listeners.discard(queue)
        return response

    def _known(self, req: web.Request) -> dict[str, Any] | web.Response:
        key = f"{req.match_info['namespace']}/{req.match_info['name']}"
        item = self.items.get(key)
        if item is None:
            return json_error(404, f'modeldeployment "{key}" not seen by the dashboard')
        return item

    async def chart_data(self, req: web.Request) -> web.Response:
        item = self._known(req)
        if isinstance(item, web.Response):
            return item
        try:
            range_seconds = float(req.query.get("range", self.options.range_seconds))
        except ValueError:
            return json_error(400, f"range must be a number of seconds, not {req.query.get('range')!r}")
        if not 10 <= range_seconds <= MAX_RANGE_SECONDS:
            return json_error(400, f"range must be between 10 and {MAX_RANGE_SECONDS} seconds")
        url = self.options.prometheus_url or item["prometheusUrl"]
        if not url:
            return web.json_response(
                {
                    "prometheusUrl": None,
                    "charts": [],
                    "error": "no Prometheus URL: start the dashboard with --prometheus-url or set "
                    "spec.prometheus.url",
                }
            )
        end = time.time()
        assert self.session is not None
        charts = await chart_data(
            self.session,
            url,
            item["namespace"],
            item["name"],
            self.options.rate_window,
            end - range_seconds,
            end,
        )
        return web.json_response(
            {"prometheusUrl": url, "start": end - range_seconds, "end": end, "charts": charts}
        )

    async def action(self, req: web.Request) -> web.Response:
        if not self.options.enable_actions:
            return json_error(403, "actions are disabled: start the dashboard with --enable-actions")
        if req.content_type != "application/json":
            return json_error(415, "send the action as application/json")
        if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
            return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(await req.content.read(MAX_BODY_BYTES + 1) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return json_error(400, f"body is not JSON: {exc}")
        if not isinstance(body, dict) or body.get("action") not in ACTIONS:
            return json_error(400, f'body must be {{"action": one of {", ".join(ACTIONS)}}}')
        item = self._known(req)
        if isinstance(item, web.Response):
            return item
        action: str = body["action"]
        mds = self.mds.in_namespace(item["namespace"])
        try:
            ack = await asyncio.to_thread(
                request_action, mds, item["name"], action, self.options.action_wait_seconds
            )
        except CliError as exc:
            return json_error(502, str(exc))
        answer = {"action": action, "request": ack.value, "result": ack.result, "message": ack.message}
        if ack.result is None:
            answer["message"] = (
                f"the operator did not acknowledge within {self.options.action_wait_seconds:g}s "
                f"(is it running and watching namespace {item['namespace']}?)"
            )
            return web.json_response(answer, status=202)
        return web.json_response(answer)

    # ---- the application -----------------------------------------------------------------------
    def allowed_hosts(self) -> set[str] | None:
        """Host headers the server answers; None when it listens beyond loopback (any host)."""
        if self.options.address not in LOOPBACK_NAMES:
            return None
        port = self.options.port
        return {f"{name}:{port}" for name in LOOPBACK_NAMES if name != "::1"}

    async def guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        hosts = self.allowed_hosts()
        if hosts is not None and request.host not in hosts:
            return json_error(421, f"unexpected Host {request.host!r}: open the dashboard at its own address")
        origin = request.headers.get("Origin")
        if (
            request.method not in ("GET", "HEAD")
            and origin is not None
            and origin != f"http://{request.host}"
        ):
            return json_error(403, f"cross-origin request from {origin} refused")
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if not request.path.startswith("/api/") or exc.status < 400:
                raise
            return json_error(exc.status, exc.reason)

    def app(self) -> web.Application:
        @web.middleware
        async def guard(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            return await self.guard(request, handler)

        app = web.Application(middlewares=[guard], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/", self.page)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/api/modeldeployments", self.list_items)
        app.router.add_get("/api/events", self.events)
        app.router.add_get("/api/modeldeployments/{namespace}/{name}/charts", self.chart_data)
        app.router.add_post("/api/modeldeployments/{namespace}/{name}/actions", self.action)
        app.cleanup_ctx.append(self._lifecycle)
        return app

    async def _lifecycle(self, _: web.Application) -> AsyncIterator[None]:
        self.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.watch.start()
        yield
        self.watch.stop()
        for queue in self.listeners:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(json.dumps({"type": "bye"}))
        await self.session.close()


def serve(mds: ModelDeployments, options: DashboardOptions, announce: Callable[[str], None]) -> None:
    """Run the dashboard until interrupted."""
    dashboard = Dashboard(mds, options)
    host = f"[{options.address}]" if ":" in options.address else options.address
    web.run_app(
        dashboard.app(),
        host=options.address,
        port=options.port,
        print=lambda _: announce(
            f"modeldeploy dashboard on http://{host}:{options.port}/ "
            f"({'actions enabled' if options.enable_actions else 'read-only'}); Ctrl-C to stop"
        ),
        shutdown_timeout=1.0,
    )
