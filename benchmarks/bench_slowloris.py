"""Bounded slowloris run against ``turborank serve`` on loopback: do stalled connections get closed, and
does a normal client still get answers meanwhile?

Opens ``--partial`` connections that send half a request head, ``--stalled-body`` that send a head
promising a body that never comes, and ``--silent`` that send nothing; then, once a second for
``--duration`` seconds, counts how many of them the server still holds open, the server's open file
descriptors, and times one ``GET /health/live`` and one small rerank from a fresh client. Every socket
and request has a timeout and the run stops by itself. Server flags after ``--`` are passed through
(e.g. ``-- --read-timeout 10 --max-connections 512``).

    python benchmarks/bench_slowloris.py [--duration 20] [--silent 1000] [-- SERVER FLAGS]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_server import free_port, wait_ready

REPO = Path(__file__).resolve().parents[1]
SMALL_REQUEST = {"query": "q", "documents": ["a short document"]}
HEAD = b"POST /v1/rerank HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"


def start(port: int, flags: list[str], log: Path) -> subprocess.Popen:
    model = REPO / "tests" / "fixtures" / "small"
    command = [sys.executable, "-m", "turborank.cli", "serve", "--model", f"small={model}"]
    command += ["--port", str(port), "--threads", "1", *flags]
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return wait_ready(process, f"http://127.0.0.1:{port}", log)


def open_attackers(port: int, partial: int, stalled_body: int, silent: int) -> list[socket.socket]:
    sockets = []
    for kind, count in (("partial", partial), ("body", stalled_body), ("silent", silent)):
        for _ in range(count):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                continue  # refused at connect: counts as not held
            sock.setblocking(False)
            try:
                if kind == "partial":
                    sock.sendall(HEAD[:40])
                elif kind == "body":
                    sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n{")
            except OSError:
                pass
            sockets.append(sock)
    return sockets


def still_open(sock: socket.socket) -> bool:
    """False once the server closed it (EOF or reset); answers (503, 408) are read and dropped."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def timed(call) -> str:
    started = time.perf_counter()
    try:
        status = call().status_code
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    return f"{status} in {time.perf_counter() - started:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds to watch (bounded run)")
    parser.add_argument("--partial", type=int, default=50)
    parser.add_argument("--stalled-body", type=int, default=50)
    parser.add_argument("--silent", type=int, default=1000)
    args, server_flags = parser.parse_known_args()
    server_flags = [f for f in server_flags if f != "--"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        server = start(port, server_flags, Path(tmp) / "server.log")
        try:
            idle_fds = len(os.listdir(f"/proc/{server.pid}/fd"))
            sockets = open_attackers(port, args.partial, args.stalled_body, args.silent)
            print(f"server flags: {server_flags or '(defaults)'}; idle server fds {idle_fds}")
            print(f"attack sockets opened: {len(sockets)}")
            started = time.monotonic()
            while time.monotonic() - started < args.duration:
                held = sum(still_open(s) for s in sockets)
                fds = len(os.listdir(f"/proc/{server.pid}/fd"))
                live = timed(lambda: httpx.get(url + "/health/live", timeout=5))
                rerank = timed(lambda: httpx.post(url + "/v1/rerank", json=SMALL_REQUEST, timeout=10))
                elapsed = time.monotonic() - started
                print(
                    f"t={elapsed:5.1f} s  held {held:5d}  server fds {fds:5d}  live {live}  rerank {rerank}"
                )
                time.sleep(1.0)
        finally:
            for sock in sockets:
                sock.close()
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
