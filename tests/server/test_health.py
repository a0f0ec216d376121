"""Probes that cost no inference (liveness) or one per period (readiness), over a real server (item 8)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from turborank.server.config import ServerConfig

from .conftest import SMALL, gated_loader, serve


@pytest.fixture
def counted():
    """A server whose backend records every batch it runs; readiness cached for a minute."""
    holder: dict = {}
    config = ServerConfig(model=[f"small={SMALL}"], device="cpu", health_cache_seconds=60)
    with serve(config, gated_loader(holder)) as running:
        yield running, holder["backend"]


def test_liveness_runs_no_inference(counted):
    running, backend = counted
    before = len(backend.batch_sizes)
    with running.client() as client:
        for _ in range(20):
            response = client.get("/health/live")
            assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert len(backend.batch_sizes) == before


def test_a_flood_of_readiness_probes_costs_one_inference(counted):
    running, backend = counted
    before = len(backend.batch_sizes)
    with ThreadPoolExecutor(16) as pool:
        responses = list(
            pool.map(lambda path: httpx.get(running.url + path, timeout=30), ["/health/ready"] * 48)
        )
    with running.client() as client:
        responses += [client.get("/health") for _ in range(16)]
    assert {r.status_code for r in responses} == {200}
    assert all(r.json()["models"] == {"small": "ok"} for r in responses)
    assert len(backend.batch_sizes) - before == 1


def test_readiness_fails_and_liveness_holds_when_the_model_fails(counted):
    running, backend = counted
    backend.fail_with = RuntimeError("device lost")
    running.app.state.readiness.checked_at = -float("inf")  # as if the cache period had passed
    with running.client() as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["code"] == "SERVICE_UNAVAILABLE"
        assert "failed" in ready.json()["detail"]
        assert client.get("/health/live").status_code == 200


def test_liveness_fails_when_a_batching_worker_died(counted):
    running, _ = counted
    scheduler = running.app.state.service.models["small"].scheduler
    scheduler._task.get_loop().call_soon_threadsafe(scheduler._task.cancel)  # on the server's own loop
    with running.client() as client:
        for _ in range(50):
            response = client.get("/health/live")
            if response.status_code != 200:
                break
        assert response.status_code == 503 and "restart" in response.json()["detail"]


def test_probe_routes_follow_public_health():
    config = ServerConfig(model=[f"small={SMALL}"], device="cpu", api_key="k", public_health=False)
    with serve(config) as running, running.client() as client:
        for path in ("/health", "/health/live", "/health/ready"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer k"}).status_code == 200
