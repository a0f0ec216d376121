"""RemoteReranker against in-process fake endpoints (httpx.MockTransport): formats, splitting, retries."""

from __future__ import annotations

import json
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")

from turborank.eval.remote import RemoteError, RemoteReranker, _retry_after  # noqa: E402


def client(handler, api_format="jina", **kwargs) -> RemoteReranker:
    return RemoteReranker("http://rerank.test", api_format, transport=httpx.MockTransport(handler), **kwargs)


def scores_by_length(texts):
    """A fake model: longer documents score higher, so the expected order is obvious."""
    return [float(len(t)) for t in texts]


def jina_handler(request):
    body = json.loads(request.content)
    scores = scores_by_length(body["documents"])
    results = sorted(
        ({"index": i, "relevance_score": s} for i, s in enumerate(scores)),
        key=lambda r: -r["relevance_score"],
    )
    return httpx.Response(200, json={"model": body.get("model"), "results": results})


def test_jina_request_and_response():
    seen = []

    def handler(request):
        seen.append((request.url.path, request.headers.get("authorization"), json.loads(request.content)))
        return jina_handler(request)

    with client(handler, api_key="secret", model="turbo") as c:
        assert c.score("q", ["aa", "a", "aaa"]) == [2.0, 1.0, 3.0]  # input order, not rank order
        assert c.score("q", []) == []
    path, auth, body = seen[0]
    assert path == "/v1/rerank" and auth == "Bearer secret"
    assert body == {
        "query": "q",
        "documents": ["aa", "a", "aaa"],
        "top_n": 3,
        "model": "turbo",
        "return_documents": False,
    }


def test_tei_asks_raw_scores_and_splits_long_lists():
    sizes = []

    def handler(request):
        body = json.loads(request.content)
        assert request.url.path == "/rerank" and body["raw_scores"] is True and body["truncate"] is True
        sizes.append(len(body["texts"]))
        scores = scores_by_length(body["texts"])
        return httpx.Response(
            200, json=[{"index": i, "score": s} for i, s in reversed(list(enumerate(scores)))]
        )

    documents = ["x" * n for n in range(1, 71)]
    with client(handler, "tei") as c:
        assert c.scores_are_logits
        assert c.score("q", documents) == [float(n) for n in range(1, 71)]
    assert sorted(sizes) == [6, 32, 32]  # TEI's default client batch limit is 32 texts


def test_cohere_and_explicit_path():
    def handler(request):
        body = json.loads(request.content)
        assert request.url.path == "/v2/rerank" and "return_documents" not in body
        return jina_handler(request)

    c = RemoteReranker(
        "http://rerank.test/v2/rerank", "cohere", model="m", transport=httpx.MockTransport(handler)
    )
    assert c.score("q", ["a", "bb"]) == [1.0, 2.0]


def test_retries_429_and_503_honouring_retry_after():
    statuses = iter([429, 503, 200])

    def handler(request):
        status = next(statuses)
        if status != 200:
            return httpx.Response(status, headers={"Retry-After": "0"}, text="busy")
        return jina_handler(request)

    assert client(handler).score("q", ["a"]) == [1.0]


def test_gives_up_after_max_retries():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503, headers={"Retry-After": "0"}, text="down")

    with pytest.raises(RemoteError, match=r"HTTP 503 after 3 tries: down"):
        client(handler, max_retries=2).score("q", ["a"])
    assert len(calls) == 3


def test_client_errors_are_not_retried():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(401, json={"detail": "bad key"})

    with pytest.raises(RemoteError, match=r"HTTP 401 after 1 tries"):
        client(handler).score("q", ["a"])
    assert len(calls) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"results": [{"index": 0, "relevance_score": 0.5}]},  # one score missing
        {"results": [{"index": 0}, {"index": 1}]},  # no score field
        {"data": []},  # not a rerank response
        {"results": [{"index": 0, "relevance_score": "nan"}, {"index": 1, "relevance_score": 1}]},
    ],
)
def test_malformed_responses(payload):
    with pytest.raises(RemoteError):
        client(lambda request: httpx.Response(200, json=payload)).score("q", ["a", "b"])


def test_concurrency_is_bounded():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def handler(request):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return jina_handler(request)

    with client(handler, concurrency=3, max_documents=1) as c:
        items = [(f"q{i}", ["a", "bb", "ccc", "dddd"]) for i in range(4)]
        assert c.score_many(items) == [[1.0, 2.0, 3.0, 4.0]] * 4
    assert 1 < state["peak"] <= 3


def test_retry_after_forms():
    assert _retry_after("2", 0) == 2.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 0) == 0.0  # a date in the past: go now
    assert _retry_after("soon", 1) == 1.0  # unreadable: exponential backoff (0.5 s * 2**attempt)
    assert _retry_after(None, 0) == 0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="api_format must be one of jina, cohere, tei"):
        RemoteReranker("http://x", "openai")
    with pytest.raises(ValueError, match="http://"):
        RemoteReranker("localhost:8080", "jina")
