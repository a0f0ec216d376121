"""Dynamic batching, back-pressure, disconnects, timeouts and failures, with a gated (slow) backend."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from turborank.errors import BackendError
from turborank.server.config import ServerConfig

from .conftest import SMALL, gated_loader, serve

DOCS = [f"document {i} talks about topic {i % 7} at some length" for i in range(10)]


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def scheduler(running):
    return running.app.state.service.models["small"].scheduler


@pytest.fixture
def gated():
    """A server whose backend holds every batch until the test opens the gate."""
    holder: dict = {}

    def start(**overrides):
        config = ServerConfig(model=[f"small={SMALL}"], device="cpu", **overrides)
        return serve(config, gated_loader(holder)), holder

    return start


def post_async(pool, url, path, payload, timeout=30):
    return pool.submit(httpx.post, url + path, json=payload, timeout=timeout)


def test_concurrent_requests_share_batches(gated, small_reranker):
    context, holder = gated()
    with context as running, ThreadPoolExecutor(9) as pool:
        backend = holder["backend"]
        backend.gate.clear()
        first = post_async(pool, running.url, "/v1/rerank", {"query": "q0", "documents": DOCS})
        backend.entered.wait(10)  # the first batch is running; the next 8 requests queue behind it
        rest = [
            post_async(pool, running.url, "/v1/rerank", {"query": f"q{i}", "documents": DOCS})
            for i in range(1, 9)
        ]
        wait_until(lambda: len(scheduler(running).queue) == 80)
        backend.gate.set()
        responses = [first.result(), *(f.result() for f in rest)]
    assert all(r.status_code == 200 for r in responses)
    assert backend.batch_sizes[0] == 10 and backend.batch_sizes[1:] == [80]
    for i, response in enumerate(responses):
        expected = small_reranker.rerank(f"q{i}", DOCS)
        got = response.json()["results"]
        assert [r["index"] for r in got] == [e.index for e in expected]
        assert [r["relevance_score"] for r in got] == pytest.approx(
            [e.relevance_score for e in expected], abs=1e-5
        )


def test_request_larger_than_budget_is_split(gated):
    context, holder = gated(max_batch_tokens=256, max_queue_tokens=64)
    with context as running, running.client() as client:
        response = client.post("/v1/rerank", json={"query": "q", "documents": DOCS * 5})
    assert response.status_code == 200 and len(response.json()["results"]) == 50
    assert len(holder["backend"].batch_sizes) > 1 and sum(holder["backend"].batch_sizes) == 50


def test_full_queue_answers_429_with_retry_after_and_stays_responsive(gated):
    context, holder = gated(max_queue_tokens=150)
    with context as running, ThreadPoolExecutor(2) as pool, running.client() as client:
        backend = holder["backend"]
        backend.gate.clear()
        first = post_async(pool, running.url, "/v1/rerank", {"query": "q", "documents": DOCS[:2]})
        backend.entered.wait(10)
        queued = post_async(pool, running.url, "/v1/rerank", {"query": "q", "documents": DOCS})
        wait_until(lambda: scheduler(running).pending_tokens > 0)
        refused = client.post("/v1/rerank", json={"query": "q", "documents": DOCS})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["code"] == "RATE_TOKEN_LIMIT_EXCEEDED"
        tei = client.post("/rerank", json={"query": "q", "texts": DOCS})
        assert tei.status_code == 429 and tei.json()["error_type"] == "overloaded"
        assert client.get("/v1/models").status_code == 200  # the loop serves while a batch runs
        backend.gate.set()
        assert first.result().status_code == 200 and queued.result().status_code == 200


def test_disconnected_client_frees_its_work(gated):
    context, holder = gated()
    with context as running, ThreadPoolExecutor(2) as pool:
        backend = holder["backend"]
        backend.gate.clear()
        first = post_async(pool, running.url, "/v1/rerank", {"query": "q", "documents": DOCS[:1]})
        backend.entered.wait(10)
        quitter = post_async(pool, running.url, "/v1/rerank", {"query": "q", "documents": DOCS}, timeout=0.5)
        with pytest.raises(httpx.TimeoutException):
            quitter.result()
        wait_until(lambda: scheduler(running).pending_tokens == 0)
        backend.gate.set()
        assert first.result().status_code == 200
        time.sleep(0.2)
    assert backend.batch_sizes == [1]  # the quitter's 10 pairs were never scored


def test_request_timeout_is_504(gated):
    context, holder = gated(request_timeout=0.3)
    with context as running, running.client() as client:
        holder["backend"].gate.clear()
        response = client.post("/v2/rerank", json={"model": "small", "query": "q", "documents": DOCS})
        holder["backend"].gate.set()
    assert response.status_code == 504 and response.json()["code"] == "SERVICE_TIMEOUT"


def test_backend_failure_is_500_and_health_503(gated):
    context, holder = gated(health_cache_seconds=0.01)  # the recovery below must not read a cached failure
    with context as running, running.client() as client:
        holder["backend"].fail_with = BackendError("the model produced NaN logits")
        response = client.post("/v1/rerank", json={"query": "q", "documents": DOCS})
        assert response.status_code == 500 and response.json()["code"] == "INTERNAL_ERROR"
        assert "NaN" in response.json()["detail"]
        tei = client.post("/rerank", json={"query": "q", "texts": DOCS})
        assert tei.status_code == 500 and tei.json()["error_type"] == "backend"
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["code"] == "SERVICE_UNAVAILABLE"
        holder["backend"].fail_with = None
        time.sleep(0.05)
        assert client.get("/health").status_code == 200


def test_graceful_shutdown_finishes_in_flight_requests(gated):
    """should_exit is what uvicorn's SIGTERM handler sets; tests/server/test_cli.py sends a real SIGTERM."""
    context, holder = gated()
    with context as running, ThreadPoolExecutor(1) as pool:
        backend = holder["backend"]
        backend.gate.clear()
        in_flight = post_async(pool, running.url, "/v1/rerank", {"query": "q", "documents": DOCS})
        backend.entered.wait(10)
        running.server.should_exit = True
        threading.Timer(0.3, backend.gate.set).start()
        response = in_flight.result()
        running.thread.join(20)
        assert response.status_code == 200 and len(response.json()["results"]) == 10
        assert not running.thread.is_alive()
        with pytest.raises(httpx.ConnectError):
            httpx.get(running.url + "/health", timeout=2)


def test_shutdown_past_the_graceful_timeout_answers_503(gated, caplog):
    """Requests still running when --graceful-timeout ends get 503 + Retry-After in their envelope, not
    uvicorn's plain-text 500, and the log counts them (item 3)."""
    context, holder = gated(graceful_timeout=0.5)
    with context as running, ThreadPoolExecutor(2) as pool:
        backend = holder["backend"]
        backend.gate.clear()
        jina = post_async(pool, running.url, "/v1/rerank", {"query": "q", "documents": DOCS})
        tei = post_async(pool, running.url, "/rerank", {"query": "q", "texts": DOCS})
        backend.entered.wait(10)
        running.server.should_exit = True
        responses = [jina.result(), tei.result()]
        backend.gate.set()  # lets the batch held in the backend end, so shutdown can finish
        running.thread.join(30)
    assert [r.status_code for r in responses] == [503, 503]
    assert all(r.headers["retry-after"] == "1" for r in responses)
    assert (
        responses[0].json()["code"] == "SERVICE_UNAVAILABLE" and "graceful" in responses[0].json()["detail"]
    )
    assert responses[1].json()["error_type"] == "unhealthy"
    cut = [r.getMessage() for r in caplog.records if '"event": "requests_cut"' in r.getMessage()]
    assert cut == ['{"event": "requests_cut", "count": 2}']
