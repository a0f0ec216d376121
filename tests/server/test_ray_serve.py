"""``serve --ray``: two Ray Serve replicas answer like the plain server, and survive losing one."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from turborank.errors import InputError
from turborank.server.config import ServerConfig

from .conftest import SMALL, free_port, httpx, serve

ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")
pytestmark = pytest.mark.ray

from ray import serve as ray_serve  # noqa: E402

from turborank.server.ray_serve import APP_NAME, build_deployment, deployment_options  # noqa: E402

KEY = "secret"
CONFIG = ServerConfig(model=[f"small={SMALL}"], device="cpu", threads=1, api_key=KEY, request_timeout=120)
AUTH = {"Authorization": f"Bearer {KEY}"}
DOCUMENTS = ["Paris is the capital of France.", "Berlin is in Germany.", "A river runs through it."]
REQUESTS = [
    ("/v1/rerank", {"model": "small", "query": "capital of France?", "documents": DOCUMENTS, "top_n": 2}),
    ("/v1/rerank", {"query": "capital?", "documents": [{"text": "Paris", "id": 7}, "Rome"]}),
    ("/v2/rerank", {"model": "small", "query": "capital of France?", "documents": DOCUMENTS}),
    ("/rerank", {"query": "capital of France?", "texts": DOCUMENTS, "raw_scores": True, "return_text": True}),
    ("/v1/rerank", {"model": "nope", "query": "q", "documents": ["d"]}),  # 400 INPUT_MODEL_NOT_FOUND
    ("/rerank", {"query": "q", "texts": []}),  # TEI's error envelope
]


def without_ids(body):
    """A body with the per-request ids removed (Cohere's id, the error envelope's request_id)."""
    if isinstance(body, dict):
        return {k: without_ids(v) for k, v in body.items() if k not in ("id", "request_id")}
    if isinstance(body, list):
        return [without_ids(v) for v in body]
    return body


@pytest.fixture(scope="module")
def ray_url():
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    port = free_port()
    ray_serve.start(http_options={"host": "127.0.0.1", "port": port})
    # Two replicas of half a CPU and one torch thread each, on the 2-CPU local Ray.
    config = ServerConfig(**{**vars(CONFIG), "ray": True, "replicas": 2, "num_cpus": 0.5})
    ray_serve.run(build_deployment(config), name=APP_NAME, route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    ray_serve.shutdown()
    ray.shutdown()


def without_age(health: dict) -> dict:
    return {key: value for key, value in health.items() if key != "checked_seconds_ago"}


def test_every_dialect_answers_as_the_plain_server_does(ray_url):
    with (
        serve(CONFIG) as plain,
        plain.client() as direct,
        httpx.Client(base_url=ray_url, timeout=120) as on_ray,
    ):
        for path, body in REQUESTS:
            expected = direct.post(path, json=body, headers=AUTH)
            got = on_ray.post(path, json=body, headers=AUTH)
            assert got.status_code == expected.status_code, path
            assert without_ids(got.json()) == without_ids(expected.json()), path
            assert len(got.headers.get_list("x-request-id")) == 1
        assert on_ray.post("/v1/rerank", json=REQUESTS[0][1]).status_code == 401  # auth, as configured
        # Each server caches its own inference check: its age differs, the verdict must not.
        assert without_age(on_ray.get("/health").json()) == without_age(direct.get("/health").json())
        assert on_ray.get("/metrics").status_code == 200


def test_metrics_through_the_proxy_cover_every_replica(ray_url):
    # Replicas swap metrics on each health check (every 10 s); any replica then answers for all. A replica
    # shows up once it has served a request, which the router may delay on a loaded machine (a CI check
    # with other jobs on 2 cores took over 60 s), so the wait is generous: it bounds a hang, not speed.
    # Requests go four at a time: one alone finds both replicas idle, and a busy machine's router sent
    # every such request to the same replica for 180 s; queued ones it spreads.
    deadline = time.monotonic() + 180
    with httpx.Client(base_url=ray_url, timeout=60) as client, ThreadPoolExecutor(4) as pool:
        while True:
            list(pool.map(lambda _: client.post(REQUESTS[0][0], json=REQUESTS[0][1], headers=AUTH), range(4)))
            text = client.get("/metrics").text
            replicas = set(re.findall(r'turborank_requests_total\{[^}]*replica="([^"]+)"', text))
            if len(replicas) == 2:
                break
            assert time.monotonic() < deadline, f"replicas in /metrics: {replicas}"
            time.sleep(2)


def replica_pids() -> list[int]:
    """Live replica processes of this app (Ray names its worker processes after the actor)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue  # the process ended while we looked
        if title.startswith(f"ray::ServeReplica:{APP_NAME}:"):
            pids.append(int(cmdline.parent.name))
    return pids


def test_killing_a_replica_under_load_loses_only_requests_in_flight_on_it(ray_url):
    body = REQUESTS[0][1]
    with httpx.Client(base_url=ray_url, timeout=120) as client:
        expected = client.post("/v1/rerank", json=body, headers=AUTH).json()["results"]
        pids = replica_pids()
        assert len(pids) == 2

        def call(_: int) -> int | None:
            response = client.post("/v1/rerank", json=body, headers=AUTH)
            if response.status_code == 200:  # concurrent requests share batches: equal up to float noise
                results = response.json()["results"]
                assert [r["index"] for r in results] == [r["index"] for r in expected]
                assert [r["relevance_score"] for r in results] == pytest.approx(
                    [r["relevance_score"] for r in expected], abs=1e-6
                )
            return response.status_code

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, i) for i in range(60)]
            time.sleep(1.0)
            os.kill(pids[0], signal.SIGKILL)
            statuses = [f.result() for f in futures]
    failed = [s for s in statuses if s != 200]
    assert all(s >= 500 for s in failed)  # a clear 5xx, never a wrong answer
    assert len(failed) <= CONFIG.max_ongoing_requests  # at most what that replica had in flight
    assert statuses.count(200) >= 60 - CONFIG.max_ongoing_requests
    deadline = time.monotonic() + 120
    while len(replica_pids()) < 2:  # Ray replaces the dead replica
        assert time.monotonic() < deadline, "the killed replica was not replaced"
        time.sleep(2)


def test_replica_options_follow_the_flags():
    options = deployment_options(ServerConfig(num_cpus=2, max_replicas=4))
    assert options["ray_actor_options"]["runtime_env"]["env_vars"] == {"OMP_NUM_THREADS": "2"}
    assert options["autoscaling_config"]["min_replicas"] == 1 and "num_replicas" not in options
    assert deployment_options(ServerConfig(replicas=3))["num_replicas"] == 3
    with pytest.raises(InputError, match="--min-replicas needs --max-replicas"):
        deployment_options(ServerConfig(min_replicas=2))
