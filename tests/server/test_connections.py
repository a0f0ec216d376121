"""Slowloris and connection floods over real sockets: stalled heads and bodies are closed, open connections
are capped, and the server keeps answering (item 5). Every socket wait is bounded, so the test ends by
itself whatever the server does."""

from __future__ import annotations

import json
import socket
import time
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest

from turborank.server.config import ServerConfig

from .conftest import SMALL, serve

READ_TIMEOUT = 1.0
MAX_CONNECTIONS = 20
WAIT = 15  # seconds a test socket waits for the server before the test gives up (and fails)
HEAD = b"POST /v1/rerank HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def guarded():
    config = ServerConfig(
        model=[f"small={SMALL}"], device="cpu", read_timeout=READ_TIMEOUT, max_connections=MAX_CONNECTIONS
    )
    with serve(config) as running:
        yield running


def connect(running) -> socket.socket:
    address = urlsplit(running.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=WAIT)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it never does)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_one_response(sock: socket.socket) -> bytes:
    """One whole response (head, then Content-Length bytes of body): the server may send the head and the
    body in separate writes, so a single recv can hold the head alone."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def status_and_body(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_stalled_heads_are_closed(guarded):
    with ExitStack() as stack:
        silent = [stack.enter_context(connect(guarded)) for _ in range(5)]
        partial = [stack.enter_context(connect(guarded)) for _ in range(5)]
        for sock in partial:
            sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: te")
        for sock in silent + partial:
            assert read_until_closed(sock) == b""  # closed without an answer; a timeout fails the test


def test_a_head_dripped_byte_by_byte_is_closed(guarded):
    with connect(guarded) as sock:
        sock.settimeout(0.3)
        sent = 0
        try:
            for byte in HEAD:  # 0.3 s a byte: far more time than READ_TIMEOUT allows
                sock.sendall(bytes([byte]))
                sent += 1
                try:
                    if sock.recv(1) == b"":
                        break
                except TimeoutError:
                    continue
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < len(HEAD)


def test_stalled_body_gets_408_in_the_envelope(guarded):
    with connect(guarded) as sock:
        sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n" + b'{"query": "q", ')
        status, body = status_and_body(read_until_closed(sock))
    assert status == 408 and body["code"] == "REQUEST_BODY_TIMEOUT" and "--read-timeout" in body["detail"]


def test_stalled_tei_body_gets_408_in_tei_envelope(guarded):
    with connect(guarded) as sock:
        sock.sendall(HEAD.replace(b"/v1/rerank", b"/rerank") + b"Content-Length: 100\r\n\r\n{")
        status, body = status_and_body(read_until_closed(sock))
    assert status == 408 and set(body) == {"error", "error_type"}


def test_stalled_connections_at_the_cap_make_room_for_new_clients(guarded):
    with ExitStack() as stack:
        stalled = [stack.enter_context(connect(guarded)) for _ in range(MAX_CONNECTIONS)]
        for sock in stalled:
            sock.sendall(b"POST /v1/rerank HTTP/1.1\r\n")
        with guarded.client() as client:  # served at once, not after READ_TIMEOUT
            response = client.post("/v1/rerank", json={"query": "q", "documents": ["d"]})
            assert response.status_code == 200
        assert read_until_closed(stalled[0]) == b""  # the oldest stalled one made room


def test_connections_over_the_cap_get_503_when_none_can_make_room(guarded):
    with ExitStack() as stack:
        busy = [stack.enter_context(connect(guarded)) for _ in range(MAX_CONNECTIONS)]
        for sock in busy:  # a complete head: these are requests in progress, never evicted
            sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n")
        # Until the server has read a head, its connection counts as waiting and may be evicted for the
        # extra one: on a loaded machine the extra could connect first (no answer, then an IndexError).
        time.sleep(0.5)
        with connect(guarded) as extra:
            status, body = status_and_body(read_until_closed(extra))
        assert status == 503 and body["code"] == "SERVICE_UNAVAILABLE"
        assert "--max-connections" in body["detail"]
        for sock in busy:
            assert status_and_body(read_until_closed(sock))[0] == 408


def test_endless_head_is_refused_before_it_fills_memory(guarded):
    with connect(guarded) as sock:
        sock.sendall(HEAD + b"X-Padding: " + b"a" * 20000)  # past 16 KiB and still no end of head
        response = read_until_closed(sock)
    assert response.split()[1] == b"400"


def test_keep_alive_connection_is_reused_then_closed_when_idle():
    config = ServerConfig(model=[f"small={SMALL}"], device="cpu", keep_alive_timeout=0.5)
    with serve(config) as running, connect(running) as sock:
        for _ in range(2):  # two requests on one connection
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            assert read_one_response(sock).startswith(b"HTTP/1.1 200")
        assert read_until_closed(sock) == b""
