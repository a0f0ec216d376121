"""/rerank in Infinity's and vLLM's dialects, vLLM's /score and /v1/score, TEI's /info (raw HTTP)."""

from __future__ import annotations

import pytest

QUERY = "what is attention with linear biases"
DOCS = [
    "ALiBi adds a linear bias to attention scores instead of position embeddings.",
    "Paris is the capital of France.",
    "BERT uses absolute position embeddings up to 512 tokens.",
]


def ranked(body):
    return [(r["index"], r["relevance_score"]) for r in body["results"]]


def expected_ranking(reranker, raw=False, top_n=None):
    return [
        (e.index, pytest.approx(e.logit if raw else e.relevance_score, abs=1e-5))
        for e in reranker.rerank(QUERY, DOCS, top_n=top_n)
    ]


def test_infinity_body_gets_infinity_answer(client, small_reranker):
    body = {"query": QUERY, "documents": DOCS, "return_documents": True, "raw_scores": False, "top_n": 2}
    response = client.post("/rerank", json={**body, "model": "default/not-specified"})
    assert response.status_code == 200
    answer = response.json()
    assert ranked(answer) == expected_ranking(small_reranker, top_n=2)
    assert [r["document"] for r in answer["results"]] == [DOCS[i] for i, _ in ranked(answer)]  # plain strings
    assert answer["object"] == "rerank" and answer["model"] == "small" and answer["created"] > 0
    assert answer["usage"]["total_tokens"] == small_reranker.plan(QUERY, DOCS).num_tokens


def test_infinity_raw_scores_and_no_documents(client, small_reranker):
    answer = client.post("/rerank", json={"query": QUERY, "documents": DOCS, "raw_scores": True}).json()
    assert ranked(answer) == expected_ranking(small_reranker, raw=True)
    assert all("document" not in r for r in answer["results"])  # Infinity's default: return_documents=false


def test_vllm_body_gets_vllm_answer(client, mini_reranker):
    body = {"model": "mini", "query": QUERY, "documents": DOCS, "truncate_prompt_tokens": -1, "top_n": 0}
    answer = client.post("/rerank", json=body).json()
    assert ranked(answer) == expected_ranking(mini_reranker)
    assert [r["document"] for r in answer["results"]] == [{"text": DOCS[i]} for i, _ in ranked(answer)]
    logits = client.post("/rerank", json={**body, "use_activation": False}).json()
    assert ranked(logits) == expected_ranking(mini_reranker, raw=True)


def test_vllm_truncate_prompt_tokens_cuts_pairs(client, small_reranker):
    answer = client.post(
        "/rerank", json={"query": QUERY, "documents": DOCS, "truncate_prompt_tokens": 12, "priority": 1}
    ).json()
    expected = small_reranker.rerank(QUERY, DOCS, max_length=12)
    assert ranked(answer) == [(e.index, pytest.approx(e.relevance_score, abs=1e-5)) for e in expected]
    assert answer["usage"]["total_tokens"] == 3 * 12


def test_shared_body_answers_in_the_form_both_clients_parse(client, small_reranker):
    # litellm's infinity/ and hosted_vllm/ both send exactly this; Infinity parses documents as strings
    # and vLLM as objects, so results carry none.
    body = {"model": "small", "query": QUERY, "documents": DOCS, "return_documents": True}
    answer = client.post("/rerank", json=body).json()
    assert ranked(answer) == expected_ranking(small_reranker)
    assert all(set(r) == {"index", "relevance_score"} for r in answer["results"])
    assert {"id", "model", "usage", "results", "object", "created"} <= set(answer)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"documents": DOCS, "raw_scores": True, "use_activation": False},
            422,
            "mixes Infinity's raw_scores",
        ),
        ({"documents": DOCS, "truncation_side": "left"}, 422, "truncation_side: 'left' is not supported"),
        ({"documents": []}, 400, "documents must hold at least one document"),
        ({"documents": DOCS, "model": "rerank-v3.5"}, 400, "served models are ['mini', 'small']"),
        ({"docs": DOCS}, 422, "texts: Field required"),
    ],
)
def test_rerank_errors_keep_tei_envelope(client, body, status, message):
    response = client.post("/rerank", json={"query": QUERY, **body})
    assert response.status_code == status
    assert message in response.json()["error"] and response.json()["error_type"]


@pytest.mark.parametrize("path", ["/score", "/v1/score"])
def test_score_one_to_many(client, small_reranker, path):
    response = client.post(path, json={"model": "small", "text_1": QUERY, "text_2": DOCS})
    assert response.status_code == 200
    answer = response.json()
    assert [d["index"] for d in answer["data"]] == [0, 1, 2]  # input order, not ranked
    expected = small_reranker.compute_score([[QUERY, d] for d in DOCS])
    assert [d["score"] for d in answer["data"]] == pytest.approx(expected, abs=1e-5)
    assert (
        answer["object"] == "list" and answer["data"][0]["object"] == "score" and answer["model"] == "small"
    )
    assert answer["usage"]["total_tokens"] == small_reranker.plan(QUERY, DOCS).num_tokens


def test_score_one_to_one_with_several_queries(client, small_reranker):
    text_1 = ["capital of France", QUERY, "capital of France", QUERY]
    text_2 = [DOCS[1], DOCS[0], DOCS[2], DOCS[1]]
    answer = client.post("/v1/score", json={"text_1": text_1, "text_2": text_2}).json()
    expected = small_reranker.compute_score([list(pair) for pair in zip(text_1, text_2, strict=True)])
    assert [d["score"] for d in answer["data"]] == pytest.approx(expected, abs=1e-5)
    logits = client.post(
        "/score", json={"queries": text_1, "documents": text_2, "use_activation": False}
    ).json()
    raw = small_reranker.compute_score(
        [list(pair) for pair in zip(text_1, text_2, strict=True)], normalize=False
    )
    assert [d["score"] for d in logits["data"]] == pytest.approx(raw, abs=1e-5)


def test_score_single_pair_and_errors(client, small_reranker):
    answer = client.post("/score", json={"text_1": QUERY, "text_2": DOCS[0]}).json()
    assert answer["data"][0]["score"] == pytest.approx(
        small_reranker.compute_score([QUERY, DOCS[0]]), abs=1e-5
    )
    mismatch = client.post("/score", json={"text_1": [QUERY, QUERY], "text_2": DOCS})
    assert mismatch.status_code == 422 and "1:N" in mismatch.json()["detail"]
    assert client.post("/score", json={"text_1": QUERY, "text_2": []}).status_code == 400


def test_tei_info(client, small_reranker):
    info = client.get("/info").json()
    assert info["model_id"] == "small" and info["model_dtype"] == "float32"
    assert info["model_type"] == {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}
    assert info["max_input_length"] == small_reranker.max_length and info["auto_truncate"] is True
    assert info["max_client_batch_size"] == 10000 and info["version"]


@pytest.mark.parametrize(
    "extra", [{}, {"return_documents": True}, {"use_activation": False}, {"truncate_prompt_tokens": -1}]
)
def test_infinity_placeholder_model_means_the_default_on_every_documents_body(client, extra):
    # Only Infinity's own form (with raw_scores) used to accept it; the others answered 400.
    body = {"query": QUERY, "documents": DOCS, "model": "default/not-specified", **extra}
    response = client.post("/rerank", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "small"


@pytest.mark.parametrize(
    ("path", "body", "names"),
    [
        ("/rerank", {"query": QUERY, "documents": DOCS, "texts": DOCS[:1]}, "texts and documents"),
        ("/score", {"queries": QUERY, "documents": DOCS, "text_1": "other"}, "text_1 and queries"),
        ("/v1/score", {"text_1": QUERY, "text_2": DOCS, "documents": DOCS[:1]}, "text_2 and documents"),
    ],
)
def test_two_names_for_one_input_are_refused(client, path, body, names):
    # Used to be answered with one of them, the other silently ignored.
    response = client.post(path, json=body)
    assert response.status_code == 422
    message = response.json()["error" if path == "/rerank" else "detail"]
    assert f"{names} are two names for the same input" in message
