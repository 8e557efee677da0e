"""The request path: read the body, decide the route, forward, guard the canary, copy to the shadow.

Responses with a known length are buffered (model responses are small, and the shadow comparison
needs the body); others are streamed to the client as they arrive. Every response carries
`x-modeldeploy-revision` (the revision that produced it). Errors made by the sidecar itself are
JSON: {"error": <kind>, "message": <text>, "revision": <revision>}, with header
`x-modeldeploy-error: <kind>` so clients can tell them from the model's own errors.

Guardrails (data_path.py): a request this sidecar serves locally has its body checked against the
data contract and observed for drift before the model is called; a contract violation under policy
`reject` is answered here with 422 and the model never sees the request. A client request (not one
forwarded by another sidecar) is sampled for the prediction log; a sampled one is handed to the log
writer's queue once its response is ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from modeldeploy.serving.contract import Violation
from modeldeploy.serving.data_path import DataPath
from modeldeploy.serving.metrics import CANARY, LOCAL, SidecarMetrics
from modeldeploy.serving.prediction_record import Prediction, trace_id
from modeldeploy.serving.router import FORWARDED_HEADER, SHADOW_HEADER, Decision, Router, Target
from modeldeploy.serving.settings import SidecarSettings
from modeldeploy.serving.shadow import ShadowCopy, ShadowMirror
from modeldeploy.serving.upstream import UpstreamError, Upstreams, request_headers, response_headers

log = logging.getLogger("modeldeploy.sidecar.proxy")

REVISION_HEADER = "x-modeldeploy-revision"
REQUEST_ID_HEADER = "x-request-id"
ERROR_HEADER = "x-modeldeploy-error"
"""On every error the sidecar answers itself (its kind); absent on the model's answers."""
_ERROR_KINDS = {
    408: "request_timeout",
    413: "body_too_large",
    503: "upstream_unavailable",
    504: "upstream_timeout",
}


def error_response(status: int, message: str, revision: str, kind: str | None = None) -> web.Response:
    error = kind or _ERROR_KINDS.get(status, "error")
    body: dict[str, Any] = {"error": error, "message": message, "revision": revision}
    return web.json_response(body, status=status, headers={REVISION_HEADER: revision, ERROR_HEADER: error})


class ClientBodyError(Exception):
    """The client's request body cannot be used: too large, too slow, malformed or cut off."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def contract_response(violation: Violation, revision: str) -> web.Response:
    body = {"error": "contract violation", **violation.as_json(), "revision": revision}
    headers = {REVISION_HEADER: revision, ERROR_HEADER: "contract_violation"}
    return web.json_response(body, status=422, headers=headers)


@dataclass(frozen=True, slots=True)
class _Sample:
    """A request chosen for the prediction log: when it arrived and its trace id."""

    arrived: float
    trace_id: str
    generated: bool


class Proxy:
    """The catch-all handler of the traffic port."""

    def __init__(
        self,
        settings: SidecarSettings,
        router: Router,
        upstreams: Upstreams,
        shadow: ShadowMirror,
        metrics: SidecarMetrics,
        data_path: DataPath,
    ) -> None:
        self._settings = settings
        self._data_path = data_path
        self._router = router
        self._upstreams = upstreams
        self._shadow = shadow
        self._metrics = metrics
        self.draining = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        self._metrics.inflight.inc()
        try:
            return await self._handle(request, started)
        finally:
            self._metrics.inflight.dec()

    async def _handle(self, request: web.Request, started: float) -> web.StreamResponse:
        own = self._settings.revision
        try:
            body = await self._read_body(request)
        except ClientBodyError as exc:
            self._metrics.observe_request(own, LOCAL, exc.status, time.perf_counter() - started)
            refused = error_response(exc.status, exc.message, own, exc.kind)
            refused.force_close()  # the rest of the body may still be on its way
            return refused
        sample = self._sample(request)
        decision = self._router.decide(request.headers)
        if decision.primary.route == LOCAL:
            rejected = self._inspect(request, body, started)
            if rejected is not None:
                self._log_prediction(sample, body, rejected, None, started)
                return rejected
        copy = self._shadow_copy(request, body, decision)
        result: tuple[int, bytes] | None = None
        try:
            response, result = await self._serve(request, body, decision, started)
        finally:
            if copy is not None:
                copy.primary_done(result)
        self._log_prediction(sample, body, response, result, started)
        return response

    def _inspect(self, request: web.Request, body: bytes, started: float) -> web.Response | None:
        """Contract and drift for a request served locally; the 422 response when it is rejected."""
        if not self._data_path.inspects:
            return None
        violation = self._data_path.inspect(request.method, body)
        if violation is None:
            return None
        own = self._settings.revision
        self._metrics.observe_request(own, LOCAL, 422, time.perf_counter() - started)
        return contract_response(violation, own)

    def _sample(self, request: web.Request) -> _Sample | None:
        """Whether this request goes to the prediction log: client requests only, at the sample rate."""
        if FORWARDED_HEADER in request.headers or not self._data_path.predictions.sampled():
            return None
        trace, generated = trace_id(request.headers)
        return _Sample(time.time(), trace, generated)

    def _log_prediction(
        self,
        sample: _Sample | None,
        body: bytes,
        response: web.StreamResponse,
        result: tuple[int, bytes] | None,
        started: float,
    ) -> None:
        if sample is None:
            return
        revision = response.headers.get(REVISION_HEADER, self._settings.revision)
        if result is not None:
            answer: bytes | None = result[1]
        elif isinstance(response, web.Response) and isinstance(response.body, bytes):
            answer = response.body
        else:
            answer = None
        if sample.generated and not response.prepared:
            response.headers[REQUEST_ID_HEADER] = sample.trace_id
        self._data_path.predictions.submit(
            Prediction(
                timestamp=sample.arrived,
                revision=revision,
                route=LOCAL if revision == self._settings.revision else CANARY,
                latency_seconds=time.perf_counter() - started,
                status=response.status,
                trace_id=sample.trace_id,
                request=body,
                response=answer,
            )
        )

    async def _read_body(self, request: web.Request) -> bytes:
        """The whole request body, within the size limit and the body deadline."""
        settings = self._settings
        try:
            async with asyncio.timeout(settings.body_timeout):
                return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ClientBodyError(
                413, "body_too_large", f"request body exceeds the limit of {settings.max_body_bytes} bytes"
            ) from None
        except TimeoutError:
            message = f"request body not received within {settings.body_timeout:g} s"
            raise ClientBodyError(408, "request_timeout", message) from None
        except web.RequestPayloadError as exc:
            raise ClientBodyError(400, "bad_request_body", f"malformed request body: {exc}") from None
        except ConnectionResetError:
            message = "client closed the connection before sending the whole body"
            raise ClientBodyError(400, "client_disconnected", message) from None

    def _shadow_copy(self, request: web.Request, body: bytes, decision: Decision) -> ShadowCopy | None:
        table = self._router.table
        if decision.shadow is None or table is None:
            return None
        extra = [(FORWARDED_HEADER, self._settings.revision), (SHADOW_HEADER, "1")]
        headers = request_headers(request.headers, extra, request.remote)
        copy = ShadowCopy(decision.shadow, request.method, request.path_qs, headers, body, table.comparison)
        self._shadow.submit(copy)
        return copy

    async def _serve(
        self, request: web.Request, body: bytes, decision: Decision, started: float
    ) -> tuple[web.StreamResponse, tuple[int, bytes] | None]:
        target = decision.primary
        if target.route == CANARY:
            attempt_started = time.perf_counter()
            try:
                upstream = await self._open(request, body, target)
            except UpstreamError as exc:
                self._canary_outcome(target, failed=True)
                self._metrics.observe_request(
                    target.revision, CANARY, exc.status, time.perf_counter() - attempt_started
                )
                if not self._retryable(request):
                    return error_response(exc.status, exc.message, target.revision), None
                log.info("canary %s failed (%s); retrying locally", target.revision, exc.message)
            else:
                failed = upstream.status >= 500
                self._canary_outcome(target, failed=failed)
                if not (failed and self._retryable(request)):
                    return await self._relay(request, upstream, target, attempt_started)
                self._metrics.observe_request(
                    target.revision, CANARY, upstream.status, time.perf_counter() - attempt_started
                )
                upstream.release()
                log.info("canary %s answered %d; retrying locally", target.revision, upstream.status)
            target = self._router.local
            rejected = self._inspect(request, body, started)
            if rejected is not None:
                return rejected, None
        try:
            upstream = await self._open(request, body, target)
        except UpstreamError as exc:
            self._metrics.observe_request(target.revision, LOCAL, exc.status, time.perf_counter() - started)
            return error_response(exc.status, exc.message, target.revision), None
        return await self._relay(request, upstream, target, started)

    def _observe(self, target: Target, status: int, started: float) -> None:
        self._metrics.observe_request(target.revision, target.route, status, time.perf_counter() - started)

    def _retryable(self, request: web.Request) -> bool:
        return request.method in self._settings.retry_methods

    def _canary_outcome(self, target: Target, *, failed: bool) -> None:
        self._router.record_canary(target.revision, failed)

    async def _open(self, request: web.Request, body: bytes, target: Target) -> aiohttp.ClientResponse:
        extra = [] if target.route == LOCAL else [(FORWARDED_HEADER, self._settings.revision)]
        headers = request_headers(request.headers, extra, request.remote)
        return await self._upstreams.open(
            self._upstreams.live,
            request.method,
            target.url + request.path_qs,
            headers,
            body,
            self._upstreams.proxy_for(target.route),
        )

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, target: Target, started: float
    ) -> tuple[web.StreamResponse, tuple[int, bytes] | None]:
        """Pass the upstream response to the client (buffered when its length is known)."""
        headers = response_headers(upstream.headers)
        headers[REVISION_HEADER] = target.revision
        if self.draining:
            headers["Connection"] = "close"
        status = upstream.status
        length = upstream.content_length
        if length is not None or request.method == "HEAD" or status in (204, 304):
            try:
                payload = await self._upstreams.read_body(upstream)
            except UpstreamError as exc:
                self._observe(target, exc.status, started)
                return error_response(exc.status, exc.message, target.revision), None
            finally:
                upstream.release()
            response = web.Response(status=status, reason=upstream.reason, body=payload, headers=headers)
            self._observe(target, status, started)
            return response, (status, payload)
        return await self._stream(request, upstream, target, started, headers)

    async def _stream(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        target: Target,
        started: float,
        headers: CIMultiDict[str],
    ) -> tuple[web.StreamResponse, tuple[int, bytes] | None]:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        collected: list[bytes] | None = []
        size = 0
        limit = self._settings.compare_max_bytes
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
                if collected is not None:
                    size += len(chunk)
                    if size > limit:
                        collected = None
                    else:
                        collected.append(chunk)
            await response.write_eof()
        except (aiohttp.ClientError, TimeoutError, ConnectionResetError) as exc:
            # Headers are gone already: the only honest signal left is a broken connection.
            log.warning("stream from %s broke off: %s", target.url, exc)
            self._observe(target, 502, started)
            if request.transport is not None:
                request.transport.close()
            return response, None
        finally:
            upstream.release()
        self._observe(target, upstream.status, started)
        return response, None if collected is None else (upstream.status, b"".join(collected))
