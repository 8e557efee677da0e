"""A loopback stand-in for cluster networking (kube-proxy + DNS) in the local test cluster.

KWOK pods run no containers, so the e2e harness starts each pod's processes on loopback ports.
Traffic addressed to a Service (`http://<service>.<namespace>.svc:<port>/...`) reaches this
HTTP forward proxy, which picks a ready endpoint of that Service in round robin and forwards
the request there. Clients use it as an ordinary HTTP proxy (absolute-form request URIs), or
send the Service host in the Host header.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "host",
    "content-length",
}


@dataclass
class Endpoints:
    """service host ("name.namespace") -> list of "127.0.0.1:port" of ready pods."""

    table: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cursors: dict[str, Iterator[int]] = field(default_factory=dict)

    def set(self, service: str, addresses: list[str]) -> None:
        with self._lock:
            if self.table.get(service) != addresses:
                self.table[service] = list(addresses)
                self._cursors[service] = itertools.cycle(range(max(len(addresses), 1)))

    def pick(self, service: str) -> str | None:
        with self._lock:
            addresses = self.table.get(service) or []
            if not addresses:
                return None
            return addresses[next(self._cursors[service]) % len(addresses)]


def service_key(host: str) -> str:
    """'iris-abc.ml.svc.cluster.local:8080' -> 'iris-abc.ml'."""
    name = host.split(":")[0]
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else name


class ServiceProxy:
    def __init__(self, endpoints: Endpoints, port: int) -> None:
        self.endpoints = endpoints
        self.port = port
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60), connector=aiohttp.TCPConnector(limit=0)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        target = urlsplit(str(request.url)) if request.url.is_absolute() else None
        host = (target.netloc if target and target.netloc else request.headers.get("Host", "")) or ""
        address = self.endpoints.pick(service_key(host))
        if address is None:
            return web.json_response({"error": f"no ready endpoints for service {host!r}"}, status=503)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = host
        body = await request.read()
        try:
            async with self._session.request(
                request.method, f"http://{address}{request.rel_url}", headers=headers, data=body
            ) as upstream:
                payload = await upstream.read()
                out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(status=upstream.status, body=payload, headers=out_headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return web.json_response({"error": f"endpoint {address} of {host}: {exc}"}, status=503)
