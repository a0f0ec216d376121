"""Every error case, in every dialect's envelope, with the status from the one table."""

from __future__ import annotations

import pytest

from turborank.server.config import ServerConfig
from turborank.server.errors import PROBLEMS, EmptyInput, TooManyDocuments

from .conftest import SMALL, serve

ROUTES = {  # path -> (query field, documents field, extra required fields)
    "/v1/rerank": ("query", "documents", {}),
    "/v2/rerank": ("query", "documents", {"model": "small"}),
    "/rerank": ("query", "texts", {}),
}


def body(path, query="a question", documents=("a document",), **extra):
    q, d, required = ROUTES[path]
    return {**required, q: query, d: list(documents) if isinstance(documents, tuple) else documents, **extra}


def check_error(response, path, status, code, field=None):
    assert response.status_code == status, response.text
    payload = response.json()
    if path == "/rerank":
        assert set(payload) == {"error", "error_type"}
        message = payload["error"]
    else:
        assert payload["code"] == code
        assert payload["request_id"] == response.headers["x-request-id"]
        message = payload["detail"]
    if field is not None:
        assert field in message, message


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("case", "status", "code", "field"),
    [
        ({"query": ""}, 400, "INPUT_EMPTY", "query"),
        ({"query": "   "}, 400, "INPUT_EMPTY", "query"),
        ({"documents": []}, 400, "INPUT_EMPTY", "documents"),
        ({"documents": "not a list"}, 422, "INPUT_VALIDATION_FAILED", None),
        ({"documents": ["ok", 7]}, 422, "INPUT_VALIDATION_FAILED", "1"),
        ({"query": 12}, 422, "INPUT_VALIDATION_FAILED", "query"),
    ],
)
def test_input_errors(client, path, case, status, code, field):
    q, d, _ = ROUTES[path]
    kwargs = {"query": case.get("query", "a question"), "documents": case.get("documents", ["a document"])}
    field = {"query": q, "documents": d}.get(field, field)
    response = client.post(path, json=body(path, **kwargs))
    check_error(response, path, status, code, field)


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
@pytest.mark.parametrize("top_n", [0, -3, "x"])
def test_top_n_below_one(client, path, top_n):
    check_error(
        client.post(path, json=body(path, top_n=top_n)), path, 422, "INPUT_VALIDATION_FAILED", "top_n"
    )


@pytest.mark.parametrize("path", ROUTES)
def test_non_utf8_and_invalid_json_bodies(client, path):
    raw = b'{"query": "\xff\xfe", "documents": ["a"], "texts": ["a"], "model": "small"}'
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    check_error(response, path, 400, "INPUT_INVALID_BODY", "body")
    response = client.post(path, content=b'{"query": ', headers={"content-type": "application/json"})
    check_error(response, path, 400, "INPUT_INVALID_BODY", "JSON")


@pytest.mark.parametrize("path", ROUTES)
def test_unknown_model(client, path):
    response = client.post(path, json=body(path, model="jina-reranker-v1-base-en"))
    check_error(response, path, 400, "INPUT_MODEL_NOT_FOUND", "jina-reranker-v1-base-en")


def test_cohere_v2_requires_model(client):
    check_error(
        client.post("/v2/rerank", json={"query": "q", "documents": ["d"]}),
        "/v2/rerank",
        422,
        "INPUT_VALIDATION_FAILED",
        "model",
    )


def test_object_document_without_text(client):
    response = client.post("/v1/rerank", json={"query": "q", "documents": [{"title": "no text"}]})
    check_error(response, "/v1/rerank", 422, "INPUT_VALIDATION_FAILED", "documents[0].text")


def test_tei_left_truncation_is_refused_by_name(client):
    response = client.post("/rerank", json={"query": "q", "texts": ["d"], "truncation_direction": "left"})
    check_error(response, "/rerank", 422, "", "truncation_direction")


def test_unknown_route_and_method(client):
    check_error(client.get("/v9/rerank"), "/v9/rerank", 404, "RESOURCE_NOT_FOUND")
    check_error(client.get("/v1/rerank"), "/v1/rerank", 405, "METHOD_NOT_ALLOWED")


@pytest.fixture(scope="module")
def limited():
    config = ServerConfig(
        model=[f"small={SMALL}"], device="cpu", max_documents=5, max_body_bytes=4000, max_tokens_per_doc=32
    )
    with serve(config) as running, running.client() as c:
        yield c


@pytest.mark.parametrize("path", ROUTES)
def test_limits(limited, path):
    too_many = limited.post(path, json=body(path, documents=["d"] * 6))
    check_error(too_many, path, 413, "INPUT_TOO_MANY_DOCUMENTS", "5")
    too_big = limited.post(path, json=body(path, documents=["x" * 5000]))
    check_error(too_big, path, 413, "INPUT_BODY_TOO_LARGE", "4000")
    long_doc = " ".join(["word"] * 60)
    truncation = {"/v1/rerank": {"truncation": False}, "/v2/rerank": None, "/rerank": {"truncate": False}}[
        path
    ]
    if truncation is not None:
        refused = limited.post(path, json=body(path, documents=["short", long_doc], **truncation))
        check_error(refused, path, 422, "INPUT_TOO_LONG", f"{ROUTES[path][1]}[1]")
    truncated = limited.post(path, json=body(path, documents=["short", long_doc]))
    assert truncated.status_code == 200


def test_cohere_max_chunks_per_doc_scores_windows(limited, small_reranker):
    from turborank.chunking import LongDocuments

    documents = ["short one", " ".join(f"word{i % 9} attention" for i in range(60))]
    body = limited.post(
        "/v1/rerank", json={"query": "attention", "documents": documents, "max_chunks_per_doc": 3}
    ).json()
    chunked = LongDocuments(mode="chunk", max_chunks_per_doc=3)
    expected = small_reranker.rerank("attention", documents, max_length=32, long_documents=chunked)
    assert expected[[e.index for e in expected].index(1)].num_chunks == 3
    assert [r["index"] for r in body["results"]] == [e.index for e in expected]
    assert [r["relevance_score"] for r in body["results"]] == pytest.approx(
        [e.relevance_score for e in expected], abs=1e-5
    )
    plan = small_reranker.plan("attention", documents, max_length=32, long_documents=chunked)
    assert body["usage"]["total_tokens"] == plan.num_tokens > 2 * 32


def test_chunked_body_over_limit_is_refused(limited):
    def chunks():
        yield b'{"query": "q", "documents": ["'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"]}'

    response = limited.post("/v1/rerank", content=chunks(), headers={"content-type": "application/json"})
    check_error(response, "/v1/rerank", 413, "INPUT_BODY_TOO_LARGE")


def test_error_table_is_the_openapi(server):
    """The documented status codes of each rerank route are exactly the table's."""
    import httpx

    spec = httpx.get(f"{server.url}/openapi.json").json()
    statuses = {str(p.status) for p in PROBLEMS.values()}
    for path in ROUTES:
        documented = set(spec["paths"][path]["post"]["responses"]) - {"200"}
        assert documented == statuses
    assert PROBLEMS[EmptyInput].status == 400 and PROBLEMS[TooManyDocuments].status == 413


@pytest.mark.parametrize(
    ("path", "request_body", "field"),
    [
        ("/v2/rerank", {"model": "small", "documents": ["d"], "max_tokens_per_doc": 5}, "max_tokens_per_doc"),
        ("/rerank", {"documents": ["d"], "truncate_prompt_tokens": 3}, "truncate_prompt_tokens"),
        ("/score", {"text_2": ["d"], "text_1": "q", "truncate_prompt_tokens": 2}, "truncate_prompt_tokens"),
    ],
)
def test_pair_length_errors_name_the_clients_field(client, path, request_body, field):
    # Used to blame "max_length", a parameter of the library the client never sent.
    response = client.post(path, json={"query": "q", **request_body} if path != "/score" else request_body)
    check_error(response, path, 422, "INPUT_VALIDATION_FAILED", f"{field} must be at least 8")
    assert "max_length" not in response.text


def test_query_object_without_text_says_query(client):
    response = client.post("/v1/rerank", json={"query": {"image": "x"}, "documents": ["d"]})
    check_error(response, "/v1/rerank", 422, "INPUT_VALIDATION_FAILED", "query.text must be a string")
    assert "documents" not in response.json()["detail"]


@pytest.mark.parametrize("path", [*ROUTES, "/score"])
def test_empty_json_body_is_an_invalid_body(client, path):
    response = client.post(path, content=b"", headers={"content-type": "application/json"})
    check_error(response, path, 400, "INPUT_INVALID_BODY", "body: empty")  # was 422 "body: Field required"


@pytest.mark.parametrize("path", ROUTES)
def test_too_deeply_nested_json_is_named(client, path):
    nested = b"[" * 5000 + b"]" * 5000  # valid JSON, deeper than Python's parser goes
    raw = b'{"query": "q", "documents": ["d"], "texts": ["d"], "model": "small", "x": ' + nested + b"}"
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    check_error(response, path, 400, "INPUT_INVALID_BODY", "nested too deeply")  # was "not valid JSON"
