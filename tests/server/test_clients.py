"""Real client libraries from PyPI, unmodified except for base URL and model name, against the server.

They come with the ``clients`` extra (``pip install -e '.[clients]'``); each test skips, naming the
package, when its client is not installed. Scores must equal ``Reranker.rerank`` on the same model.
"""

from __future__ import annotations

import os

import pytest

from .test_routes import DOCS, QUERY

# litellm fetches a price list from GitHub at import; offline that costs seconds of retries.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

KEY = "unused"  # auth is off on the test server; clients insist on some key


def client(module: str, package: str, how: str = "pip install -e '.[clients]'"):
    return pytest.importorskip(module, reason=f"{package} is not installed ({how})")


# Two clients pin dependencies below what the clients extra installs, so the extra leaves them out;
# installed by hand (pip install --no-deps PACKAGE) they work and their tests run.
BY_HAND = "not in the clients extra: it pins {}; pip install --no-deps {} to run this test"


def check(got: list[tuple[int, float]], reranker, top_n: int | None = None) -> None:
    """(index, score) pairs in the client's order against the library's ranking."""
    expected = reranker.rerank(QUERY, DOCS, top_n=top_n)
    assert [index for index, _ in got] == [e.index for e in expected]
    want = [e.relevance_score for e in expected]
    assert [score for _, score in got] == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("provider", ["infinity", "hosted_vllm", "cohere", "jina_ai"])
def test_litellm_rerank(server, small_reranker, provider):
    litellm = client("litellm", "litellm")
    response = litellm.rerank(
        model=f"{provider}/small", query=QUERY, documents=DOCS, top_n=2, api_base=server.url, api_key=KEY
    )
    check([(r["index"], r["relevance_score"]) for r in response.results], small_reranker, top_n=2)


def test_infinity_client(server, mini_reranker):
    client("infinity_client", "infinity-client", BY_HAND.format("httpx<0.28", "infinity-client"))
    from infinity_client import Client
    from infinity_client.api.default import rerank
    from infinity_client.models import RerankInput

    body = RerankInput(query=QUERY, documents=DOCS, return_documents=True, model="mini")
    result = rerank.sync(client=Client(base_url=server.url), body=body)
    check([(r.index, r.relevance_score) for r in result.results], mini_reranker)
    assert [r.document for r in result.results] == [DOCS[r.index] for r in result.results]
    raw = rerank.sync(
        client=Client(base_url=server.url), body=RerankInput(query=QUERY, documents=DOCS, raw_scores=True)
    )
    assert raw.model == "small"  # Infinity's "default/not-specified" means the default model


def test_langchain_infinity_rerank(server, small_reranker):
    client("infinity_client", "infinity-client", BY_HAND.format("httpx<0.28", "infinity-client"))
    compressors = client(
        "langchain_community.document_compressors",
        "langchain-community",
        "its InfinityRerank needs infinity-client; pip install langchain-community to run this test",
    )
    from infinity_client import Client
    from langchain_core.documents import Document

    reranker = compressors.InfinityRerank(client=Client(base_url=server.url), model="small", top_n=2)
    ranked = reranker.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
    check([(DOCS.index(d.page_content), d.metadata["relevance_score"]) for d in ranked], small_reranker, 2)


def test_langchain_cohere_rerank(server, small_reranker):
    cohere = client("cohere", "cohere")
    compressors = client("langchain_classic.retrievers.document_compressors", "langchain-classic")
    from langchain_core.documents import Document

    sdk = cohere.Client(api_key=KEY, base_url=server.url)
    reranker = compressors.CohereRerank(client=sdk, model="small", top_n=3)
    ranked = reranker.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
    check([(DOCS.index(d.page_content), d.metadata["relevance_score"]) for d in ranked], small_reranker, 3)


def llama_nodes():
    from llama_index.core.schema import NodeWithScore, TextNode

    return [NodeWithScore(node=TextNode(text=d)) for d in DOCS]


def test_llamaindex_jina_rerank(server, small_reranker):
    jina = client("llama_index.postprocessor.jinaai_rerank", "llama-index-postprocessor-jinaai-rerank")
    reranker = jina.JinaRerank(base_url=f"{server.url}/v1", api_key=KEY, model="small", top_n=2)
    ranked = reranker.postprocess_nodes(llama_nodes(), query_str=QUERY)
    check([(DOCS.index(n.node.text), n.score) for n in ranked], small_reranker, top_n=2)


def test_llamaindex_tei_rerank(server, small_reranker):
    tei = client("llama_index.postprocessor.tei_rerank", "llama-index-postprocessor-tei-rerank")
    ranked = tei.TextEmbeddingInference(base_url=server.url, top_n=2).postprocess_nodes(
        llama_nodes(), query_str=QUERY
    )
    check([(DOCS.index(n.node.text), n.score) for n in ranked], small_reranker, top_n=2)


def test_llamaindex_cohere_rerank(server, small_reranker):
    # llama-index-postprocessor-cohere-rerank pins cohere<7, below the cohere SDK the other tests use,
    # so the clients extra leaves it out; with it installed by hand this test runs.
    cohere_rerank = client(
        "llama_index.postprocessor.cohere_rerank", "llama-index-postprocessor-cohere-rerank"
    )
    reranker = cohere_rerank.CohereRerank(api_key=KEY, model="small", top_n=2, base_url=server.url)
    ranked = reranker.postprocess_nodes(llama_nodes(), query_str=QUERY)
    check([(DOCS.index(n.node.text), n.score) for n in ranked], small_reranker, top_n=2)


def haystack_documents():
    from haystack import Document

    return [Document(content=d) for d in DOCS]


def test_haystack_cohere_ranker(server, small_reranker):
    cohere_ranker = client("haystack_integrations.components.rankers.cohere", "cohere-haystack")
    from haystack.utils import Secret

    ranker = cohere_ranker.CohereRanker(
        model="small", top_k=2, api_key=Secret.from_token(KEY), api_base_url=server.url
    )
    ranked = ranker.run(query=QUERY, documents=haystack_documents())["documents"]
    check([(DOCS.index(d.content), d.score) for d in ranked], small_reranker, top_n=2)


def test_haystack_jina_ranker(server, mini_reranker):
    jina_ranker = client("haystack_integrations.components.rankers.jina", "jina-haystack")
    from haystack.utils import Secret

    ranker = jina_ranker.JinaRanker(
        model="mini", top_k=2, api_key=Secret.from_token(KEY), base_url=f"{server.url}/v1/rerank"
    )
    ranked = ranker.run(query=QUERY, documents=haystack_documents())["documents"]
    check([(DOCS.index(d.content), d.score) for d in ranked], mini_reranker, top_n=2)


def test_haystack_tei_ranker(server, small_reranker):
    tei_ranker = client(
        "haystack_integrations.components.rankers.huggingface_api", "huggingface-api-haystack"
    )
    ranked = tei_ranker.HuggingFaceTEIRanker(url=server.url, top_k=2).run(
        query=QUERY, documents=haystack_documents()
    )["documents"]
    check([(DOCS.index(d.content), d.score) for d in ranked], small_reranker, top_n=2)


@pytest.mark.parametrize(
    ("provider", "path"),
    [("jina", "/v1/rerank"), ("cohere", "/v1/rerank"), ("text-embeddings-inference", "/rerank")],
)
def test_rerankers_with_url(server, small_reranker, provider, path):
    rerankers = client("rerankers", "rerankers")
    ranker = rerankers.Reranker("small", model_type=provider, api_key=KEY, url=server.url + path, verbose=0)
    ranked = ranker.rank(QUERY, DOCS).results
    check([(DOCS.index(r.document.text), r.score) for r in ranked], small_reranker)
