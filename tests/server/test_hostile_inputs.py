"""Inputs that used to give 500: lone surrogates and non-finite numbers, in every dialect; strict types,
the schema's minimums and bodies without a JSON Content-Type (issue 16, items 1 and 7)."""

from __future__ import annotations

import pytest

from .test_errors import ROUTES, check_error

JSON = {"content-type": "application/json"}


def raw_body(
    path: str, query: str = '"a question"', documents: str = '["a document"]', extra: str = ""
) -> bytes:
    """A JSON body written by hand, so it can hold what json.dumps would never write."""
    q, d, required = ROUTES[path]
    model = ', "model": "small"' if required else ""
    return f'{{"{q}": {query}, "{d}": {documents}{model}{extra}}}'.encode()


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("query", "documents", "field"),
    [
        ('"a"', '["\\ud800"]', "[0]"),
        ('"\\udfff question"', '["a document"]', "query"),
        ('"a"', '["fine", "half a pair \\ud83d"]', "[1]"),
    ],
)
def test_lone_surrogates_are_named_4xx(client, path, query, documents, field):
    response = client.post(path, content=raw_body(path, query, documents), headers=JSON)
    check_error(response, path, 400, "INPUT_INVALID_BODY", field)
    assert "surrogate" in response.text


def test_lone_surrogate_in_an_echoed_field(client):
    body = b'{"query": "q", "documents": [{"text": "b", "x": "\\ud800"}]}'
    response = client.post("/v1/rerank", content=body, headers=JSON)
    check_error(response, "/v1/rerank", 400, "INPUT_INVALID_BODY", "documents[0].x")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize(
    ("path", "extra", "field"),
    [
        ("/v1/rerank", ', "top_n": {}', "top_n"),
        ("/v2/rerank", ', "top_n": {}', "top_n"),
        ("/v2/rerank", ', "max_tokens_per_doc": {}', "max_tokens_per_doc"),
        ("/v2/rerank", ', "priority": {}', "priority"),
        ("/v1/rerank", ', "max_chunks_per_doc": {}', "max_chunks_per_doc"),
        ("/rerank", ', "truncate": {}', "truncate"),
    ],
)
def test_non_finite_numbers_are_named_4xx(client, path, extra, field, constant):
    response = client.post(path, content=raw_body(path, extra=extra.format(constant)), headers=JSON)
    check_error(response, path, 400, "INPUT_INVALID_BODY", field)
    assert "finite" in response.text


@pytest.mark.parametrize("constant", ["NaN", "1e400"])
def test_non_finite_number_in_an_echoed_field(client, constant):
    body = f'{{"query": "q", "documents": [{{"text": "b", "score": {constant}}}]}}'.encode()
    response = client.post("/v1/rerank", content=body, headers=JSON)
    check_error(response, "/v1/rerank", 400, "INPUT_INVALID_BODY", "documents[0].score")


@pytest.mark.parametrize("path", ROUTES)
def test_valid_unicode_still_scores(client, path):
    """Astral characters written as a surrogate pair are valid JSON and valid text."""
    documents = '["emoji \\ud83d\\ude00 and text", "plain"]'
    response = client.post(path, content=raw_body(path, documents=documents), headers=JSON)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
@pytest.mark.parametrize(("field", "value"), [("top_n", '"5"'), ("top_n", "2.0"), ("top_n", "true")])
def test_numbers_are_strict(client, path, field, value):
    response = client.post(path, content=raw_body(path, extra=f', "{field}": {value}'), headers=JSON)
    check_error(response, path, 422, "INPUT_VALIDATION_FAILED", field)


@pytest.mark.parametrize(
    ("path", "field"),
    [("/v1/rerank", "return_documents"), ("/v1/rerank", "truncation"), ("/rerank", "raw_scores")],
)
@pytest.mark.parametrize("value", ['"yes"', "1", '"true"'])
def test_booleans_are_strict(client, path, field, value):
    response = client.post(path, content=raw_body(path, extra=f', "{field}": {value}'), headers=JSON)
    check_error(response, path, 422, "INPUT_VALIDATION_FAILED", field)


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_body_without_json_content_type_says_so(client, path, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(path, content=raw_body(path), headers=headers)
    check_error(response, path, 400, "INPUT_INVALID_BODY", "Content-Type: application/json")


def test_schema_declares_what_the_server_checks(server):
    import httpx

    spec = httpx.get(f"{server.url}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name, query, documents in [
        ("JinaRequest", "query", "documents"),
        ("CohereV2Request", "query", "documents"),
        ("TeiRequest", "query", "texts"),
    ]:
        properties = schemas[name]["properties"]
        assert properties[documents]["minItems"] == 1
        texts = properties[query].get("anyOf", [properties[query]])
        assert any(t.get("minLength") == 1 and t.get("pattern") == r"\S" for t in texts), properties[query]
