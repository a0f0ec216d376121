"""The official ``cohere`` SDK, pointed at the local server, calls rerank on v1 and v2."""

from __future__ import annotations

import pytest

cohere = pytest.importorskip("cohere")

QUERY = "what is attention with linear biases"
DOCS = ["ALiBi biases attention linearly.", "Paris is in France.", "BERT has absolute positions."]


def test_cohere_v1_client(server, small_reranker):
    client = cohere.Client(api_key="unused", base_url=server.url)
    response = client.rerank(model="small", query=QUERY, documents=DOCS, top_n=2, return_documents=True)
    expected = small_reranker.rerank(QUERY, DOCS, top_n=2)
    assert [r.index for r in response.results] == [e.index for e in expected]
    assert [r.relevance_score for r in response.results] == pytest.approx(
        [e.relevance_score for e in expected], abs=1e-5
    )
    assert [r.document.text for r in response.results] == [e.document for e in expected]
    assert response.id and response.meta.billed_units.search_units == 1


def test_cohere_v2_client(server, mini_reranker):
    client = cohere.ClientV2(api_key="unused", base_url=server.url)
    response = client.rerank(model="mini", query=QUERY, documents=DOCS, max_tokens_per_doc=4096)
    expected = mini_reranker.rerank(QUERY, DOCS)
    assert [r.index for r in response.results] == [e.index for e in expected]
    assert [r.relevance_score for r in response.results] == pytest.approx(
        [e.relevance_score for e in expected], abs=1e-5
    )
    assert response.meta.tokens.input_tokens == mini_reranker.plan(QUERY, DOCS).num_tokens


def test_cohere_sdk_sees_errors(server):
    client = cohere.ClientV2(api_key="unused", base_url=server.url)
    with pytest.raises(cohere.BadRequestError) as info:
        client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS)
    assert info.value.body["code"] == "INPUT_MODEL_NOT_FOUND"
