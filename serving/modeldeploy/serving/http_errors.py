"""Errors the sidecar answers itself, as JSON, and quiet logging of malformed requests.

- `json_errors(revision)`: a middleware for both listeners. aiohttp's own HTTP errors (404 on the
  metrics port, 405 for a wrong method) and any unexpected exception in a handler become the
  sidecar's JSON error shape ({"error", "message", "revision"}) instead of text/plain.
- `QuietParserErrors`: aiohttp logs every request it cannot parse (bad request line, header
  names, too many or too long headers, broken chunked framing) at ERROR with a full traceback,
  so any client could flood the log. Those records become one INFO line without the traceback.
  Such requests never reach a handler: aiohttp answers them 400 (text/plain) and closes the
  connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from modeldeploy.serving.proxy import error_response

log = logging.getLogger("modeldeploy.sidecar.http")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_KINDS = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout", 413: "body_too_large"}


def json_errors(revision: str) -> Middleware:
    """Middleware: HTTP errors raised by aiohttp and unexpected exceptions answered as JSON."""

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(
                exc.status, f"{exc.reason}: {request.method} {request.path}", revision, _KINDS.get(exc.status)
            )
            if allow := exc.headers.get("Allow"):
                response.headers["Allow"] = allow
            return response
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return error_response(500, "internal error in the sidecar (see its log)", revision, "internal")

    return middleware


class QuietParserErrors(logging.Filter):
    """Turns aiohttp's traceback for an unparseable request into one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            what = record.getMessage()
            first_line = (exc.message or "").strip().splitlines()[:1]
            record.msg = "%s: %d %s"
            record.args = (what, exc.code, first_line[0] if first_line else type(exc).__name__)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def server_logger() -> logging.Logger:
    """The logger given to aiohttp's request handlers (see QuietParserErrors)."""
    logger = logging.getLogger("modeldeploy.sidecar.http.server")
    if not any(isinstance(f, QuietParserErrors) for f in logger.filters):
        logger.addFilter(QuietParserErrors())
    return logger
