"""uvicorn's HTTP/1.1 protocol with the two guards it lacks: a deadline for the request head and a cap
on open connections (over it, the oldest connection still waiting for a head makes room).

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but never a connection whose request
head is still arriving, so slowloris clients (partial headers, or nothing at all) hold their file
descriptors forever; ``limit_concurrency`` answers 503 to new *requests* but leaves every socket open.
The h11 implementation is used because it bounds the head's size (``h11_max_incomplete_event_size``);
httptools buffers headers without limit. Body deadlines are the app's (``RequestContext``), so a slow
body gets a 408 in the route's error envelope.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import PROBLEMS, NotReady

MAX_HEAD_BYTES = 16 * 1024  # request line + headers; nginx's default buffers hold 4 x 8 KiB


def _refusal(max_connections: int) -> bytes:
    """The 503 written to a connection over the cap, before any request of it was read."""
    body = json.dumps(
        {
            "detail": f"the server has {max_connections} open connections (--max-connections): retry later",
            "code": PROBLEMS[NotReady].code,
            "request_id": "",
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """H11Protocol that closes connections whose head is late and refuses those over the cap.

    Subclassed per server by ``guarded_protocol`` with the two settings as class attributes, because
    uvicorn builds one protocol instance per connection from the class alone.
    """

    read_timeout: float = 10.0
    max_connections: int = 512
    refusal: bytes = _refusal(512)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.head_deadline: asyncio.TimerHandle | None = None
        self.connected_at = self.loop.time()
        super().connection_made(transport)
        if len(self.connections) > self.max_connections and not self._evict_a_waiting_connection():
            transport.write(self.refusal)
            transport.close()
            return
        self._watch_head()

    def _evict_a_waiting_connection(self) -> bool:
        """Close the oldest other connection that is only waiting for a request head (stalled, or idle
        between keep-alive requests) so the new client gets its place, as nginx reuses idle connections
        when it runs out; a stalling client then cannot lock others out. False if every one is busy."""
        waiting = [
            c
            for c in self.connections
            if c is not self and isinstance(c, GuardedH11Protocol) and c._awaiting_head()
        ]
        if not waiting:
            return False
        min(waiting, key=lambda c: c.connected_at).transport.close()
        return True

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watching()
        super().connection_lost(exc)

    def _awaiting_head(self) -> bool:
        return not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete)

    def _watch_head(self) -> None:
        """Arm the deadline when a head is awaited (new connection, or bytes of the next request after
        a keep-alive pause), disarm it once the head is complete. Never re-armed per byte."""
        if not self._awaiting_head():
            self._stop_watching()
        elif self.head_deadline is None:
            self.head_deadline = self.loop.call_later(self.read_timeout, self._head_too_late)

    def _stop_watching(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_too_late(self) -> None:
        self.head_deadline = None
        if self._awaiting_head():
            self.transport.close()


def guarded_protocol(read_timeout: float, max_connections: int) -> type[GuardedH11Protocol]:
    """A GuardedH11Protocol class carrying this server's --read-timeout and --max-connections."""
    settings = {
        "read_timeout": read_timeout,
        "max_connections": max_connections,
        "refusal": _refusal(max_connections),
    }
    return type("GuardedH11Protocol", (GuardedH11Protocol,), settings)
