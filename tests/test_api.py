import numpy as np
import pytest

from turborank import InputError, Reranker
from turborank.api import sigmoid

QUERY = "Organic skincare products for sensitive skin"
DOCS = [
    "Eco-friendly kitchenware for modern homes",
    "Natural organic skincare range for sensitive skin",
    "Organic cotton baby clothes for sensitive skin",
    "Tech gadgets for smart homes: 2024 edition",
]


def test_compute_score_single_pair_gives_a_float_in_both_input_forms(small_reranker):
    # The reference returns a bare float whenever exactly one score results (spec section 7).
    bare = small_reranker.compute_score([QUERY, DOCS[0]])
    nested = small_reranker.compute_score([[QUERY, DOCS[0]]])
    assert isinstance(bare, float) and 0 < bare < 1
    assert isinstance(nested, float) and nested == bare


def test_compute_score_keeps_input_order_and_matches_logits(small_reranker):
    pairs = [[QUERY, d] for d in DOCS]
    scores = small_reranker.compute_score(pairs)
    logits = small_reranker.compute_score(pairs, normalize=False)
    singles = [small_reranker.compute_score(p) for p in pairs]
    np.testing.assert_allclose(scores, singles, atol=1e-6)
    np.testing.assert_allclose(scores, sigmoid(np.array(logits, dtype=np.float32)), atol=1e-7)


def test_rerank_sorts_by_score_and_agrees_with_compute_score(small_reranker):
    results = small_reranker.rerank(QUERY, DOCS)
    scores = small_reranker.compute_score([[QUERY, d] for d in DOCS])
    assert [r.index for r in results] == sorted(range(len(DOCS)), key=lambda i: -scores[i])
    for r in results:
        assert r.document == DOCS[r.index]
        assert r.relevance_score == pytest.approx(scores[r.index], abs=1e-6)
        assert r.relevance_score == pytest.approx(float(sigmoid(np.float32(r.logit))), abs=1e-7)


def test_rerank_top_n_and_without_documents(small_reranker):
    full = small_reranker.rerank(QUERY, DOCS)
    top = small_reranker.rerank(QUERY, DOCS, top_n=2, return_documents=False)
    assert [r.index for r in top] == [r.index for r in full[:2]]
    assert all(r.document is None for r in top)
    assert "document" not in top[0].to_dict()
    assert len(small_reranker.rerank(QUERY, DOCS, top_n=50)) == len(DOCS)


def test_ties_keep_input_order(small_reranker):
    results = small_reranker.rerank(QUERY, ["same text"] * 5)
    assert [r.index for r in results] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.rerank("", DOCS), "query must be a non-empty string"),
        (lambda r: r.rerank(QUERY, "not a list"), "documents must be a list"),
        (lambda r: r.rerank(QUERY, ["ok", 3]), r"documents\[1\] must be a string"),
        (lambda r: r.rerank(QUERY, DOCS, top_n=0), "top_n must be a positive integer"),
        (lambda r: r.compute_score([[QUERY, 1]]), r"sentence_pairs\[0\]"),
        (lambda r: r.compute_score("text"), "sentence_pairs must be"),
        (lambda r: r.compute_score([[QUERY, "d"]], batch_size=0), "batch_size must be"),
        (lambda r: r.compute_score([[QUERY, "d"]], max_length=2), "max_length must be"),
        (lambda r: r.compute_score([[QUERY, "d"]], truncation="middle"), "truncation must be one of"),
    ],
)
def test_bad_input_gets_a_clear_error(small_reranker, call, message):
    with pytest.raises(InputError, match=message):
        call(small_reranker)


def test_empty_document_list(small_reranker):
    assert small_reranker.rerank(QUERY, []) == []
    assert small_reranker.compute_score([]) == []


def test_max_length_truncates_the_document(small_reranker):
    long_doc = "organic skincare " * 400
    (encoding,) = small_reranker.encode([(QUERY, long_doc)], max_length=64)
    assert len(encoding) == 64 and encoding.truncated
    assert small_reranker.max_length == 8192
    (full,) = small_reranker.encode([(QUERY, long_doc)])
    assert len(full) > 64 and not full.truncated


def test_absolute_position_models_default_to_their_declared_length(small_dir, tmp_path):
    """tokenizer_config.json's model_max_length is the default for BERT-style models; ALiBi models
    (the golden fixture declares 512) keep their 8,192 tokens."""
    import json

    from turborank.checkpoint import load_model, save_checkpoint

    model = load_model(small_dir)
    model.config.position_embedding_type, model.config.max_position_embeddings = "absolute", 64
    directory = save_checkpoint(type(model)(model.config), small_dir, tmp_path / "bert")
    config_path = directory / "tokenizer_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "model_max_length": 32}))
    reranker = Reranker.from_pretrained(directory, device="cpu")
    assert (reranker.max_length, reranker.max_positions) == (32, 64)
    assert reranker.info()["max_length"] == 32 and reranker.info()["max_positions"] == 64
    long_doc = "organic skincare " * 100
    assert len(reranker.encode([(QUERY, long_doc)])[0]) == 32
    assert len(reranker.encode([(QUERY, long_doc)], max_length=64)[0]) == 64  # up to the position table
    with pytest.raises(InputError, match="exceeds this model's 64 position embeddings"):
        reranker.encode([(QUERY, long_doc)], max_length=65)
    assert Reranker.from_pretrained(small_dir, device="cpu").max_length == 8192


def test_longest_first_is_available(small_reranker):
    long_query = "skin " * 100
    (default,) = small_reranker.encode([(long_query, "short document text")], max_length=64)
    (strict,) = small_reranker.encode(
        [(long_query, "short document text")], max_length=64, truncation="longest_first"
    )
    # Default: the query keeps at most half of max_length and the document survives whole.
    assert len(default) == 1 + 32 + 1 + 3 + 1
    assert len(strict) == 64  # longest_first: the long query eats the room, as in the reference


def test_default_dtype_is_float32_on_cpu(small_dir):
    reranker = Reranker.from_pretrained(small_dir, device="auto")
    assert str(reranker.device) in ("cpu", "cuda") and reranker.info()["dtype"] in ("float32",)
    with pytest.raises(InputError, match="dtype must be one of"):
        Reranker.from_pretrained(small_dir, device="cpu", dtype="int3")


def test_info(small_reranker):
    info = small_reranker.info()
    assert info["layers"] == 2 and info["hidden_size"] == 64 and info["max_length"] == 8192
    assert info["parameters"] > 0 and info["weights_file"] == "model.safetensors"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_threads": 0}, r"num_threads must be a positive integer \(>= 1\) or None, got 0"),
        ({"num_threads": -2}, "num_threads must be a positive integer"),
        ({"max_batch_tokens": 0}, "max_batch_tokens must be a positive integer"),
        ({"max_batch_tokens": -5}, "max_batch_tokens must be a positive integer"),
        ({"device": "foo"}, r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'foo'"),
        ({"device": "cuda:x"}, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ({"device": "meta"}, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ],
)
def test_from_pretrained_refuses_bad_settings(small_dir, settings, message):
    with pytest.raises(InputError, match=message):
        Reranker.from_pretrained(small_dir, **{"device": "cpu", **settings})


def test_a_cuda_device_the_machine_lacks_is_refused(small_dir):
    with pytest.raises(InputError, match="cuda:99"):
        Reranker.from_pretrained(small_dir, device="cuda:99")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.compute_score([QUERY, "\ud800"]), r"sentence_pairs\[1\] holds a lone UTF-16 surrogate"),
        (
            lambda r: r.compute_score([[QUERY, "a"], ["\udcff", "b"]]),
            r"sentence_pairs\[1\]\[0\] holds a lone",
        ),
        (lambda r: r.rerank("\ud800", ["a"]), "query holds a lone UTF-16 surrogate"),
        (
            lambda r: r.rerank(QUERY, ["a", "b\ud800c"]),
            r"documents\[1\] holds a lone .*U\+D800 at character 1",
        ),
        (lambda r: r.rerank(QUERY, ["\ud800"], long_documents="chunk"), r"documents\[0\] holds a lone"),
        (lambda r: r.predict([(QUERY, "a"), (QUERY, "\ud800")]), r"sentence_pairs\[1\]\[1\] holds a lone"),
        (lambda r: r.rank(QUERY, ["a", "\ud800"]), r"documents\[1\] holds a lone"),
    ],
)
def test_text_the_tokenizer_cannot_encode_is_named(small_reranker, call, message):
    with pytest.raises(InputError, match=message):
        call(small_reranker)


def test_a_single_pair_error_names_the_bad_element(small_reranker):
    with pytest.raises(InputError, match=r"sentence_pairs\[1\] must be a string, got int"):
        small_reranker.compute_score([QUERY, 5])
    with pytest.raises(InputError, match=r"sentence_pairs must be a \[query, document\] pair"):
        small_reranker.compute_score([QUERY, "a", "b"])
    with pytest.raises(InputError, match=r"sentence_pairs\[1\] must be a \[query, document\] pair.*'oops'"):
        small_reranker.compute_score([[QUERY, "a"], "oops"])


def test_truncation_is_checked_when_nothing_is_cut(small_reranker):
    # Chunked reading never truncates, so a typo used to pass unnoticed there.
    with pytest.raises(InputError, match="truncation must be one of"):
        small_reranker.rerank(QUERY, DOCS, truncation="foo", long_documents="chunk")
    with pytest.raises(InputError, match="truncation must be one of"):
        small_reranker.compute_score([QUERY, DOCS[0]], truncation="foo", long_documents="chunk")
