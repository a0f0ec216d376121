"""Model names clients send: --model-alias, --served-model-name, --accept-any-model-name, /v1/models."""

from __future__ import annotations

import argparse

import pytest

from turborank.errors import InputError
from turborank.server.config import ServerConfig, add_arguments, from_sources

from .conftest import MINI, SMALL, serve

QUERY = "what is attention with linear biases"
DOCS = ["ALiBi biases attention linearly.", "Paris is in France.", "BERT has absolute positions."]


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_aliases_from_flags_and_env():
    args = parse(
        ["--model", "turbo=/m/t", "--model-alias", "rerank-english-v3.0=turbo", "--model-alias", "x=turbo"]
    )
    assert from_sources(args, {}).model_aliases() == {"rerank-english-v3.0": "turbo", "x": "turbo"}
    env = {"TURBORANK_MODEL": "turbo=/m/t,tiny=/m/tiny", "TURBORANK_MODEL_ALIAS": "a=turbo, b=tiny"}
    assert from_sources(None, env).model_aliases() == {"a": "turbo", "b": "tiny"}


def test_served_model_name_is_vllm_style():
    # vLLM writes several names after one flag; the first is the model's name, the rest are aliases.
    config = from_sources(
        parse(["--model", "turbo=/m/t", "--served-model-name", "jina-reranker-v1-turbo-en", "r"])
    )
    assert config.model_specs() == [("jina-reranker-v1-turbo-en", "/m/t")]
    assert config.model_aliases() == {"r": "jina-reranker-v1-turbo-en", "turbo": "jina-reranker-v1-turbo-en"}
    assert ServerConfig(served_model_name=["shipped"]).model_aliases() == {"default": "shipped"}
    assert parse(["--model", "a=/x", "--model", "b=/y"]).model == ["a=/x", "b=/y"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model_alias": ["no-equals-sign"]}, "must be ALIAS=NAME"),
        ({"model_alias": ["=turbo"]}, "must be ALIAS=NAME"),
        ({"model_alias": ["x=tiny"]}, r"'tiny' is not a served model; served models are \['turbo'\]"),
        ({"model_alias": ["turbo=turbo"]}, "already taken"),
        ({"model_alias": ["x=turbo", "x=other"], "model": ["turbo=/a", "other=/b"]}, "already taken"),
        ({"served_model_name": ["new", "other"], "model": ["turbo=/a", "other=/b"]}, "already taken"),
    ],
)
def test_bad_aliases_fail_at_startup(settings, message):
    settings.setdefault("model", ["turbo=/m/t"])
    with pytest.raises(InputError, match=message):
        ServerConfig(**settings)


@pytest.fixture(scope="module")
def aliased():
    config = ServerConfig(
        model=[f"small={SMALL}", f"mini={MINI}"],
        model_alias=["rerank-english-v3.0=small", "jina-reranker-v1-tiny-en=mini"],
        device="cpu",
    )
    with serve(config) as running, running.client() as client:
        yield client


def test_alias_routes_to_its_model(aliased, mini_reranker):
    body = aliased.post(
        "/v1/rerank", json={"model": "jina-reranker-v1-tiny-en", "query": QUERY, "documents": DOCS}
    ).json()
    expected = mini_reranker.rerank(QUERY, DOCS)
    assert [r["index"] for r in body["results"]] == [e.index for e in expected]
    assert [r["relevance_score"] for r in body["results"]] == pytest.approx(
        [e.relevance_score for e in expected], abs=1e-5
    )
    assert body["model"] == "mini"


def test_unknown_name_lists_what_is_served(aliased):
    response = aliased.post("/v2/rerank", json={"model": "rerank-v3.5", "query": QUERY, "documents": DOCS})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "INPUT_MODEL_NOT_FOUND"
    assert "served models are ['mini', 'small']" in body["detail"]
    assert "aliases ['jina-reranker-v1-tiny-en', 'rerank-english-v3.0']" in body["detail"]
    assert "--accept-any-model-name" in body["detail"]


def test_models_lists_aliases(aliased):
    cards = {card["id"]: card for card in aliased.get("/v1/models").json()["data"]}
    assert list(cards) == ["small", "mini", "rerank-english-v3.0", "jina-reranker-v1-tiny-en"]
    assert cards["small"]["aliases"] == ["rerank-english-v3.0"] and cards["small"]["root"] == "small"
    assert cards["jina-reranker-v1-tiny-en"]["root"] == "mini"
    assert cards["jina-reranker-v1-tiny-en"]["max_length"] == cards["mini"]["max_length"]


def test_accept_any_model_name_uses_the_default(small_reranker):
    config = ServerConfig(model=[f"small={SMALL}"], accept_any_model_name=True, device="cpu")
    with serve(config) as running, running.client() as client:
        body = client.post(
            "/v2/rerank", json={"model": "rerank-v3.5", "query": QUERY, "documents": DOCS}
        ).json()
    assert body["results"][0]["relevance_score"] == pytest.approx(
        small_reranker.rerank(QUERY, DOCS)[0].relevance_score, abs=1e-5
    )


def test_served_model_name_renames_the_default():
    config = ServerConfig(
        model=[f"small={SMALL}"], served_model_name=["bge-reranker-base", "alt"], device="cpu"
    )
    with serve(config) as running, running.client() as client:
        for name in ("bge-reranker-base", "alt", "small", None):
            body = client.post("/v1/rerank", json={"model": name, "query": QUERY, "documents": DOCS}).json()
            assert body["model"] == "bge-reranker-base"
        assert [card["id"] for card in client.get("/v1/models").json()["data"]] == [
            "bge-reranker-base",
            "alt",
            "small",
        ]
