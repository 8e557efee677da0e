"""Pooled HTTP clients to the local model, the canary and the shadow, and the header rules.

Two connection pools: one for live traffic (local model and canary), one for shadow copies, so
shadow traffic can never take a connection the primary path needs. Bodies are passed through as
bytes (no automatic decompression), hop-by-hop headers are dropped in both directions.
"""

from __future__ import annotations

from collections.abc import Iterable

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from modeldeploy.serving.metrics import LOCAL
from modeldeploy.serving.settings import SidecarSettings

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Recomputed for the outgoing message by aiohttp.
_RECOMPUTED = frozenset({"host", "content-length"})


class UpstreamError(Exception):
    """No usable response from an upstream: `status` is 504 (timeout) or 503 (unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def request_headers(
    incoming: CIMultiDictProxy[str], extra: Iterable[tuple[str, str]], remote: str | None
) -> CIMultiDict[str]:
    """Headers for the upstream request: incoming minus hop-by-hop, plus forwarding headers."""
    connection_tokens = {t.strip().lower() for t in incoming.get("connection", "").split(",") if t.strip()}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in _RECOMPUTED or lower in connection_tokens:
            continue
        out.add(name, value)
    if remote:
        prior = incoming.get("x-forwarded-for")
        out["X-Forwarded-For"] = f"{prior}, {remote}" if prior else remote
    for name, value in extra:
        out[name] = value
    return out


def response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """Headers for the client response: upstream's minus hop-by-hop and the recomputed length."""
    connection_tokens = {t.strip().lower() for t in upstream.get("connection", "").split(",") if t.strip()}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower == "content-length" or lower in connection_tokens:
            continue
        out.add(name, value)
    return out


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Upstreams:
    """The client sessions. Create inside the running event loop; `close()` at shutdown."""

    def __init__(self, settings: SidecarSettings) -> None:
        self._settings = settings
        timeout = aiohttp.ClientTimeout(
            total=settings.upstream_timeout, sock_connect=settings.connect_timeout
        )
        self.live = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.pool_size, keepalive_timeout=30, ttl_dns_cache=10),
            timeout=timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.shadow = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.shadow_concurrency, keepalive_timeout=30, ttl_dns_cache=10
            ),
            timeout=aiohttp.ClientTimeout(
                total=settings.shadow_timeout, sock_connect=settings.connect_timeout
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    def proxy_for(self, route: str) -> str | None:
        return None if route == LOCAL else self._settings.http_proxy

    async def open(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        headers: CIMultiDict[str],
        body: bytes,
        proxy: str | None,
    ) -> aiohttp.ClientResponse:
        """Send the request and return the response with headers read (the caller releases it).

        Raises UpstreamError(504) on timeout and UpstreamError(503) when the upstream cannot be
        reached or closes the connection without a response.
        """
        try:
            return await session.request(
                method,
                url,
                headers=headers,
                data=body if body else None,
                proxy=proxy,
                allow_redirects=False,
            )
        except TimeoutError as exc:
            raise UpstreamError(504, f"upstream {url} did not answer in time ({describe(exc)})") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(503, f"upstream {url} unavailable ({describe(exc)})") from exc

    async def read_body(self, response: aiohttp.ClientResponse) -> bytes:
        """Read the whole body; a timeout or broken connection here is an UpstreamError too."""
        try:
            return await response.read()
        except TimeoutError as exc:
            raise UpstreamError(504, f"upstream {response.url} timed out sending its body") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(503, f"upstream {response.url} broke off its body ({describe(exc)})") from exc

    async def close(self) -> None:
        await self.live.close()
        await self.shadow.close()
