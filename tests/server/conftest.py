"""Real uvicorn servers on 127.0.0.1 (random free port, in a thread) for the server tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

import uvicorn  # noqa: E402

from turborank import Reranker  # noqa: E402
from turborank.server.app import connection_options, create_app, load_models  # noqa: E402
from turborank.server.config import ServerConfig  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SMALL, MINI = str(FIXTURES / "small"), str(FIXTURES / "mini12")


@dataclass
class Running:
    url: str
    app: object
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30), **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True  # what uvicorn's SIGTERM handler does
        self.thread.join(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(process, url: str, log: Path, path: str = "/health", seconds: float = 120) -> None:
    """Poll a `turborank serve` subprocess until ``path`` answers 200; fail with its log if it exits."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(url + path, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not become ready"
        time.sleep(0.2)


@contextmanager
def serve(config: ServerConfig, loader: Callable = load_models) -> Iterator[Running]:
    """Start create_app(config, loader) under uvicorn in a thread; stop it on exit."""
    app = create_app(config, loader)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            **connection_options(config),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    running = Running(f"http://127.0.0.1:{port}", app, server, thread)
    try:
        yield running
    finally:
        running.stop()


class GatedBackend:
    """Wraps a real backend: records each batch and holds it until ``gate`` is set (a slow model)."""

    def __init__(self, inner):
        self.inner = inner
        self.is_padded = inner.is_padded
        self.model = inner.model
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.batch_sizes: list[int] = []
        self.fail_with: Exception | None = None

    def predict(self, batch):
        self.batch_sizes.append(int(batch.input_ids.shape[0]))
        self.entered.set()
        if not self.gate.wait(timeout=30):
            raise RuntimeError("test gate never opened")
        if self.fail_with is not None:
            raise self.fail_with
        return self.inner.predict(batch)


def gated_loader(holder: dict) -> Callable:
    """A loader serving the small model as "small" behind a GatedBackend put in holder["backend"]."""

    def load(config: ServerConfig) -> dict[str, Reranker]:
        reranker = Reranker.from_pretrained(SMALL, device="cpu", max_batch_tokens=config.max_batch_tokens)
        reranker.engine.max_batch_size = config.max_batch_size
        holder["backend"] = GatedBackend(reranker.engine.backend)
        reranker.engine.backend = holder["backend"]
        return {"small": reranker}

    return load


@pytest.fixture(scope="session")
def mini_reranker():
    return Reranker.from_pretrained(MINI, device="cpu")


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    """Two real models: "small" (the default) and "mini"; auth off."""
    with serve(ServerConfig(model=[f"small={SMALL}", f"mini={MINI}"], device="cpu")) as running:
        yield running


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c
