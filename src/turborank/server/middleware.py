"""One ASGI middleware for what every request shares: request id, body limit, metrics, one log line.

Written once here instead of in each handler (TEI repeats it per route). Pure ASGI rather than
``BaseHTTPMiddleware`` so the handler still sees the client's ``http.disconnect``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import BodyTimeout, BodyTooLarge, InternalError, NotReady, ServerError
from .metrics import Metrics

access_log = logging.getLogger("turborank.server.access")
log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # an incoming X-Request-Id is kept only if tame

ErrorRenderer = Callable[[ServerError, Scope], Response]


@dataclass
class ShutdownTally:
    """Requests still running when --graceful-timeout ran out (uvicorn cancels them); logged at exit."""

    cut: int = 0


class RequestContext:
    """Assign the request id, enforce --max-body-bytes and --read-timeout, time, count and log every HTTP
    request, and answer the requests that shutdown cuts short."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_body_bytes: int,
        render_error: ErrorRenderer,
        read_timeout: float,
        shutdown: ShutdownTally,
    ):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.render_error = render_error
        self.read_timeout = read_timeout
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        state["request_id"] = _request_id(scope)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                MutableHeaders(scope=message).append("X-Request-Id", state["request_id"])
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                error = BodyTooLarge(
                    f"the body is larger than {self.max_body_bytes} bytes (--max-body-bytes): "
                    "send fewer or shorter documents per request"
                )
                await self.render_error(error, scope)(scope, receive, send_with_id)
            else:
                await self.app(scope, _replay(body, receive), send_with_id)
        except BodyTimeout as error:
            error.headers = {"Connection": "close"}  # the rest of the body may still come: drop the socket
            await self.render_error(error, scope)(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # Only uvicorn cancels request tasks: shutdown passed --graceful-timeout. The request gets a
            # proper 503 instead of uvicorn's plain-text 500, and the task ends normally since it answered.
            if response_started:
                raise
            self.shutdown.cut += 1
            error = NotReady(
                "the server is shutting down and this request did not finish within --graceful-timeout: "
                "retry it (another replica will answer)"
            )
            error.headers = {"Retry-After": "1"}
            await self.render_error(error, scope)(scope, receive, send_with_id)
        except Exception:  # noqa: BLE001 - the last line: a bug becomes a 500 in the dialect's envelope
            log.exception("unhandled error in request %s", state["request_id"])
            if not response_started:
                error = InternalError("internal error; this is a bug, please report it with the request id")
                await self.render_error(error, scope)(scope, receive, send_with_id)
        finally:
            self._record(scope, state, status, time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None once it passes the limit (checked on Content-Length first).

        Raises:
            BodyTimeout: the body did not arrive within --read-timeout.
        """
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return None
        chunks, size = [], 0
        deadline = time.monotonic() + self.read_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError as exc:
                raise BodyTimeout(
                    f"the body did not arrive within {self.read_timeout:g} s (--read-timeout); "
                    "send the whole body at once"
                ) from exc
            if message["type"] != "http.request":
                break  # disconnected before the body was complete; the handler will notice
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _record(self, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        route = scope.get("route")
        label = getattr(route, "path", "unmatched")
        self.metrics.requests.labels(label, str(status)).inc()
        self.metrics.latency.labels(label).observe(seconds)
        fields = {
            "event": "request",
            "request_id": state["request_id"],
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "model": state.get("model"),
            "documents": state.get("documents"),
            "tokens": state.get("tokens"),
        }
        access_log.info(json.dumps(fields))


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the buffered body over once, then passes on (e.g. http.disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
