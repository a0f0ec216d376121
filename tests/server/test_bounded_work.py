"""Work per request is bounded before it is done: long texts are cut before tokenizing, admission is
checked first, tokenizing counts against --request-timeout and runs on a bounded pool (item 4); memory
stays bounded around 5 MB documents (item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from turborank import Reranker
from turborank.server.config import ServerConfig

from .conftest import SMALL, GatedBackend, free_port, serve, wait_ready

FIVE_MB = "a long document about reranking with attention and linear biases " * 80_000  # 5.3 MB


class SpyTokenizer:
    """Wraps a ``tokenizers.Tokenizer``: records the longest text and the concurrency, can hold calls."""

    def __init__(self, inner):
        self.inner = inner
        self.longest = 0
        self.active = 0
        self.most_active = 0
        self.hold = threading.Event()
        self.hold.set()
        self.held = threading.Event()
        self._lock = threading.Lock()

    def encode_batch(self, texts, **kwargs):
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            self.longest = max([self.longest, *map(len, texts)])
        try:
            if not self.hold.is_set():
                self.held.set()
                self.hold.wait(timeout=60)
            return self.inner.encode_batch(texts, **kwargs)
        finally:
            with self._lock:
                self.active -= 1

    def __getattr__(self, name):
        return getattr(self.inner, name)


def spied(holder: dict, **overrides):
    config = ServerConfig(model=[f"small={SMALL}"], device="cpu", **overrides)

    def load(config: ServerConfig) -> dict[str, Reranker]:
        reranker = Reranker.from_pretrained(SMALL, device="cpu", max_batch_tokens=config.max_batch_tokens)
        holder["tokenizer"] = reranker.tokenizer.tokenizer = SpyTokenizer(reranker.tokenizer.tokenizer)
        holder["backend"] = reranker.engine.backend = GatedBackend(reranker.engine.backend)
        return {"small": reranker}

    return serve(config, load)


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
def test_a_5_mb_document_is_cut_before_tokenizing(path):
    holder: dict = {}
    with spied(holder) as running, running.client() as client:
        documents_field = "texts" if path == "/rerank" else "documents"
        response = client.post(path, json={"query": "reranking", documents_field: [FIVE_MB, "short"]})
        assert response.status_code == 200
        assert holder["tokenizer"].longest < 100_000  # a prefix, not the 5.3 MB


def test_chunked_5_mb_document_tokenizes_only_the_windows_it_scores():
    holder: dict = {}
    with spied(holder, max_chunks_per_doc=3, max_tokens_per_doc=256) as running, running.client() as client:
        body = {"query": "reranking", "documents": [FIVE_MB], "max_chunks_per_doc": 3}
        response = client.post("/v1/rerank", json=body)
        assert response.status_code == 200
        assert holder["tokenizer"].longest < 100_000


def test_a_full_queue_refuses_before_tokenizing():
    holder: dict = {}
    with spied(holder, max_queue_tokens=200, max_batch_tokens=64) as running, ThreadPoolExecutor(1) as pool:
        backend, tokenizer = holder["backend"], holder["tokenizer"]
        backend.gate.clear()
        documents = [f"document {i} " + "word " * 20 for i in range(20)]
        queued = pool.submit(
            httpx.post, running.url + "/v1/rerank", json={"query": "q", "documents": documents}
        )
        assert backend.entered.wait(10)
        tokenizer.longest = 0
        refused = httpx.post(
            running.url + "/v1/rerank", json={"query": "q", "documents": [FIVE_MB]}, timeout=30
        )
        assert refused.status_code == 429 and "retry-after" in refused.headers
        assert tokenizer.longest == 0  # refused before the tokenizer saw it
        backend.gate.set()
        assert queued.result().status_code == 200


def test_tokenizing_counts_against_the_deadline_on_a_bounded_pool():
    holder: dict = {}
    with spied(holder, request_timeout=1.0, tokenizer_threads=1) as running, ThreadPoolExecutor(2) as pool:
        tokenizer = holder["tokenizer"]
        tokenizer.hold.clear()
        post = {"query": "q", "documents": ["d"]}
        first = pool.submit(httpx.post, running.url + "/v1/rerank", json=post, timeout=30)
        second = pool.submit(httpx.post, running.url + "/v1/rerank", json=post, timeout=30)
        assert tokenizer.held.wait(10)
        try:
            # Both answer while the tokenizer is still held (a stuck tokenizer no longer holds the answer).
            answers = [first.result(timeout=20), second.result(timeout=20)]
        finally:
            tokenizer.hold.set()
        assert [a.status_code for a in answers] == [504, 504]
        assert answers[0].json()["code"] == "SERVICE_TIMEOUT"
        assert tokenizer.most_active == 1  # the second request waited for the one tokenizer thread


def rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def test_memory_stays_bounded_around_5_mb_documents(tmp_path):
    """A real `turborank serve` process; RSS from /proc (VmHWM is the peak since the process started)."""
    port = free_port()
    env = {
        **os.environ,
        "TURBORANK_PORT": str(port),
        "TURBORANK_MODEL": f"small={SMALL}",
        "TURBORANK_MAX_TOKENS_PER_DOC": "512",  # the fixture's 8,192 would measure attention, not input
    }
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "turborank.cli", "serve", "--device", "cpu", "--threads", "1"],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, tmp_path / "server.log", path="/health/ready")
        for _ in range(3):  # warm: the first requests allocate what every later one reuses
            httpx.post(url + "/v1/rerank", json={"query": "q", "documents": ["d" * 2000] * 20}, timeout=60)
        idle = rss_mb(process.pid)["VmRSS"]
        payloads = [
            {"query": "reranking", "documents": [FIVE_MB]},
            {"query": "reranking", "documents": [FIVE_MB[:1_700_000]] * 3},
            {"query": "reranking", "documents": [FIVE_MB], "max_chunks_per_doc": 10},
        ]
        for payload in payloads * 2:
            assert httpx.post(url + "/v1/rerank", json=payload, timeout=120).status_code == 200
        after = rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
    print(f"idle RSS {idle:.0f} MB, peak {after['VmHWM']:.0f} MB, after {after['VmRSS']:.0f} MB")
    assert after["VmHWM"] < 2 * idle
    assert after["VmRSS"] < 1.5 * idle
