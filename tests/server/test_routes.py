"""Every route and schema variant over real HTTP; scores must equal ``Reranker.rerank``."""

from __future__ import annotations

import pytest

QUERY = "what is attention with linear biases"
DOCS = [
    "ALiBi adds a linear bias to attention scores instead of position embeddings.",
    "Paris is the capital of France.",
    "BERT uses absolute position embeddings up to 512 tokens.",
    "The cat sat on the mat.",
]


def assert_same_ranking(results, expected, score_key="relevance_score"):
    assert [r["index"] for r in results] == [e.index for e in expected]
    for got, want in zip(results, expected, strict=True):
        assert got[score_key] == pytest.approx(want.relevance_score, abs=1e-5)


def test_jina_strings_match_library(client, small_reranker):
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
    assert response.status_code == 200
    body = response.json()
    expected = small_reranker.rerank(QUERY, DOCS)
    assert_same_ranking(body["results"], expected)
    assert [r["document"] for r in body["results"]] == [{"text": e.document} for e in expected]
    assert body["model"] == "small" and body["object"] == "list"
    assert body["usage"]["total_tokens"] == small_reranker.plan(QUERY, DOCS).num_tokens
    assert body["id"] == response.headers["x-request-id"]
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)


def test_jina_mixed_documents_echo_fields_and_top_n(client, small_reranker):
    documents = [DOCS[0], {"text": DOCS[1], "id": "doc-1", "tags": [1, 2]}, {"text": DOCS[2]}]
    body = client.post("/v1/rerank", json={"query": QUERY, "documents": documents, "top_n": 2}).json()
    expected = small_reranker.rerank(QUERY, DOCS[:3], top_n=2)
    assert_same_ranking(body["results"], expected)
    echoed = {r["index"]: r["document"] for r in body["results"]}
    if 1 in echoed:
        assert echoed[1] == {"text": DOCS[1], "id": "doc-1", "tags": [1, 2]}
    assert all(r["document"]["text"] == DOCS[r["index"]] for r in body["results"])


def test_jina_return_documents_false_and_query_object(client, small_reranker):
    body = client.post(
        "/v1/rerank", json={"query": {"text": QUERY}, "documents": DOCS, "return_documents": False}
    ).json()
    assert all(set(r) == {"index", "relevance_score"} for r in body["results"])
    assert_same_ranking(body["results"], small_reranker.rerank(QUERY, DOCS))


def test_cohere_v1_rank_fields_and_chunks(client, small_reranker):
    documents = [{"title": "ALiBi", "body": DOCS[0]}, {"title": "Paris", "body": DOCS[1]}]
    body = client.post(
        "/v1/rerank",
        json={
            "model": "small",
            "query": QUERY,
            "documents": documents,
            "rank_fields": ["title", "body"],
            "max_chunks_per_doc": 10,
            "return_documents": True,
        },
    ).json()
    texts = [f"{d['title']}\n{d['body']}" for d in documents]
    assert_same_ranking(body["results"], small_reranker.rerank(QUERY, texts))
    assert body["results"][0]["document"] == documents[body["results"][0]["index"]]
    assert body["meta"]["api_version"]["version"] == "1"
    assert body["meta"]["billed_units"]["search_units"] == 1


def test_cohere_v2_routes_by_model(client, mini_reranker):
    response = client.post(
        "/v2/rerank", json={"model": "mini", "query": QUERY, "documents": DOCS, "top_n": 3}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "results", "meta"}
    assert all(set(r) == {"index", "relevance_score"} for r in body["results"])
    assert_same_ranking(body["results"], mini_reranker.rerank(QUERY, DOCS, top_n=3))
    assert body["meta"]["tokens"]["input_tokens"] == mini_reranker.plan(QUERY, DOCS).num_tokens


def test_cohere_v2_max_tokens_per_doc_truncates(client, small_reranker):
    long_doc = " ".join(["attention"] * 100)
    body = client.post(
        "/v2/rerank",
        json={"model": "small", "query": QUERY, "documents": [long_doc, DOCS[1]], "max_tokens_per_doc": 24},
    ).json()
    assert_same_ranking(body["results"], small_reranker.rerank(QUERY, [long_doc, DOCS[1]], max_length=24))
    assert body["meta"]["tokens"]["input_tokens"] <= 2 * 24


def test_multi_model_routing_gives_each_models_scores(client, small_reranker, mini_reranker):
    small = client.post("/v1/rerank", json={"model": "small", "query": QUERY, "documents": DOCS}).json()
    mini = client.post("/v1/rerank", json={"model": "mini", "query": QUERY, "documents": DOCS}).json()
    assert mini["model"] == "mini" and small["model"] == "small"
    assert_same_ranking(small["results"], small_reranker.rerank(QUERY, DOCS))
    assert_same_ranking(mini["results"], mini_reranker.rerank(QUERY, DOCS))


def test_tei_bare_array_raw_scores_and_text(client, small_reranker):
    response = client.post(
        "/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True, "return_text": True}
    )
    assert response.status_code == 200
    ranks = response.json()
    expected = small_reranker.rerank(QUERY, DOCS)
    assert [r["index"] for r in ranks] == [e.index for e in expected]
    assert [r["score"] for r in ranks] == pytest.approx([e.logit for e in expected], abs=1e-5)
    assert [r["text"] for r in ranks] == [e.document for e in expected]
    assert int(response.headers["x-total-tokens"]) == small_reranker.plan(QUERY, DOCS).num_tokens
    plain = client.post("/rerank", json={"query": QUERY, "texts": DOCS}).json()
    assert all(set(r) == {"index", "score"} for r in plain)
    assert [r["score"] for r in plain] == pytest.approx([e.relevance_score for e in expected], abs=1e-5)


def test_large_request_is_split_not_refused(client, small_reranker):
    documents = [f"document number {i} about {DOCS[i % 4]}" for i in range(600)]
    body = client.post("/v1/rerank", json={"query": QUERY, "documents": documents, "top_n": 5}).json()
    assert_same_ranking(body["results"], small_reranker.rerank(QUERY, documents, top_n=5))


def test_models_health_and_request_id(client):
    models = client.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["small", "mini"]
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["models"] == {"small": "ok", "mini": "ok"}
    response = client.get("/v1/models", headers={"X-Request-Id": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"


def test_metrics_report_requests_batches_and_queue(client):
    client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
    client.post("/v1/rerank", json={"query": "", "documents": DOCS})
    text = client.get("/metrics").text
    assert 'turborank_requests_total{route="/v1/rerank",status="200"}' in text
    assert 'turborank_requests_total{route="/v1/rerank",status="400"}' in text
    assert 'turborank_request_duration_seconds_count{route="/v1/rerank"}' in text
    assert 'turborank_request_documents_count{model="small"}' in text
    assert 'turborank_request_tokens_sum{model="small"}' in text
    assert 'turborank_batch_size_count{model="small"}' in text
    assert 'turborank_batch_tokens_sum{model="small"}' in text
    assert 'turborank_queue_tokens{model="small"} 0.0' in text
