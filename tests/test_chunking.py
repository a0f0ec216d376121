"""Long documents: windowing, aggregation, and a needle at the end of a 20,000-token document."""

import json

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from turborank import InputError, Reranker
from turborank.chunking import AGGREGATIONS, LongDocuments, aggregate, chunk_pair, window_starts
from turborank.cli import main
from turborank.engine import Batch

NEEDLE = "zebra"  # one WordPiece token in the fixture vocabulary
FILLER_WORD = "the "  # one token each


class NeedleBackend:
    """Scores a pair +5 when the needle token is among its real tokens, else -5: a scorer we control,
    so a test can tell which windows reached the model."""

    is_padded = True

    def __init__(self, needle_id: int):
        self.needle_id = needle_id
        self.model = torch.nn.Linear(1, 1)  # for Reranker.info()

    def predict(self, batch: Batch) -> torch.Tensor:
        found = ((batch.input_ids == self.needle_id) & batch.attention_mask.bool()).any(dim=1)
        return (found.float() * 10 - 5)[:, None]


@pytest.fixture(scope="module")
def needle_reranker():
    reranker = Reranker.from_pretrained(FIXTURES / "small", device="cpu")
    (needle_id,) = reranker.tokenizer.encode_texts([NEEDLE])[0]
    reranker.engine.backend = NeedleBackend(needle_id)
    return reranker


@pytest.fixture(scope="module")
def long_document():
    return FILLER_WORD * 19_999 + NEEDLE  # 20,000 tokens, the relevant passage at the very end


@pytest.mark.parametrize(
    ("num_tokens", "size", "stride", "cap", "expected"),
    [
        (10, 4, 3, None, [0, 3, 6]),  # the last window ends exactly at the end
        (11, 4, 3, None, [0, 3, 6, 7]),  # an extra window aligned to the end covers the tail
        (3, 4, 3, None, [0]),  # shorter than a window
        (0, 4, 3, None, [0]),  # empty document: one (empty) window
        (20, 5, 5, None, [0, 5, 10, 15]),  # no overlap
        (20, 5, 5, 2, [0, 5]),  # capped to the first windows
    ],
)
def test_window_starts(num_tokens, size, stride, cap, expected):
    assert window_starts(num_tokens, size, stride, cap) == expected


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("max", [3.0, 5.0, -1.0]), ("mean_top_k", [2.5, 5.0, -1.0]), ("first", [1.0, 5.0, -1.0])],
)
def test_aggregation_modes_on_hand_values(aggregation, expected):
    logits = np.array([1.0, 3.0, 2.0, 5.0, -1.0], dtype=np.float32)  # windows of doc 0, doc 1, doc 2
    owners = [0, 0, 0, 1, 2]
    document_logits, counts = aggregate(logits, owners, 3, aggregation, top_k=2)
    np.testing.assert_allclose(document_logits, expected)
    assert counts.tolist() == [3, 1, 1]


def test_aggregation_groups_interleaved_owners_in_window_order():
    # Windows of two documents interleaved, as a scheduler might return them: "first" is window order.
    document_logits, counts = aggregate(np.array([7.0, 1.0, 2.0, 9.0]), [1, 0, 1, 0], 2, "first")
    assert document_logits.tolist() == [1.0, 7.0] and counts.tolist() == [2, 2]


def test_mean_top_k_uses_all_windows_when_fewer_than_k():
    document_logits, _ = aggregate(np.array([1.0, 2.0]), [0, 0], 1, "mean_top_k", top_k=5)
    assert document_logits.tolist() == [1.5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "split"}, "long_documents"),
        ({"aggregation": "median"}, "aggregation"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"max_chunks_per_doc": -1}, "max_chunks_per_doc"),
        ({"chunk_size": 8, "chunk_stride": 9}, "skip text"),
        ({"top_k": 1.5}, "top_k"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        LongDocuments(**kwargs)


def test_windows_repeat_the_query_and_cover_the_document(needle_reranker):
    tokenizer = needle_reranker.tokenizer
    query = tokenizer.encode_texts(["where is the zebra"])[0]
    document = list(range(1000, 1100))
    windows = chunk_pair(tokenizer, query, document, 32, 16, LongDocuments(chunk_size=30, chunk_stride=20))
    room = 32 - tokenizer.template.num_special_tokens - len(query)
    assert room < 30  # the requested size is capped to what fits next to the query
    covered = []
    for encoding in windows:
        assert len(encoding) == 32
        assert encoding.input_ids[1 : 1 + len(query)] == query
        covered.extend(encoding.input_ids[2 + len(query) : -1])  # [CLS] q [SEP] window [SEP]
    assert set(covered) == set(document) and len(covered) > len(document)  # overlapping windows
    assert windows[-1].input_ids[-2] == document[-1]


def test_needle_at_the_end_is_found_by_chunk_and_missed_by_truncate(needle_reranker, long_document):
    documents = ["a short unrelated text", long_document]
    truncated = needle_reranker.rerank("which animal is it?", documents)
    chunked = needle_reranker.rerank("which animal is it?", documents, long_documents="chunk")
    assert {r.index: r.relevance_score < 0.5 for r in truncated} == {0: True, 1: True}
    assert [r.num_chunks for r in truncated] == [1, 1]
    assert chunked[0].index == 1 and chunked[0].relevance_score > 0.99
    # 20,000 tokens in windows of 8,192 - 3 specials - 5 query tokens, starts 6,138 apart: 0, 6138, 11816.
    assert chunked[0].num_chunks == 3 and chunked[1].num_chunks == 1
    assert chunked[0].to_dict()["num_chunks"] == 3


def test_chunk_cap_and_first_aggregation_lose_the_needle(needle_reranker, long_document):
    capped = LongDocuments(max_chunks_per_doc=2)
    first = LongDocuments(aggregation="first")
    for options in (capped, first):
        (result,) = needle_reranker.rerank("which animal?", [long_document], long_documents=options)
        assert result.relevance_score < 0.5
    (result,) = needle_reranker.rerank("which animal?", [long_document], long_documents=capped)
    assert result.num_chunks == 2


def test_small_windows_with_a_max_length(needle_reranker):
    document = FILLER_WORD * 300 + NEEDLE
    options = LongDocuments(chunk_size=64, chunk_stride=64)
    (result,) = needle_reranker.rerank("which animal", [document], max_length=128, long_documents=options)
    assert result.num_chunks == 5 and result.relevance_score > 0.99  # 301 tokens / 64 per window


def test_plan_run_finish_equals_rerank(needle_reranker, long_document):
    documents = [long_document, "zebra", "nothing"]
    plan = needle_reranker.plan("which animal", documents, long_documents="chunk")
    assert plan.owners == [0, 0, 0, 1, 2]
    logits = needle_reranker.engine.run(plan.encodings)
    finished = needle_reranker.finish(plan, logits, documents, None)
    assert finished == needle_reranker.rerank("which animal", documents, long_documents="chunk")


def test_compute_score_chunks_each_pair(needle_reranker, long_document):
    pairs = [["which animal", long_document], ["which animal", "no animal here"]]
    truncated = needle_reranker.compute_score(pairs)
    chunked = needle_reranker.compute_score(pairs, long_documents="chunk")
    assert truncated[0] < 0.5 and chunked[0] > 0.99 and chunked[1] < 0.5


def test_truncate_is_unchanged_for_real_models(small_reranker):
    pairs = [("query text", "a document " * 50), ("another query", "short")]
    plain = small_reranker.compute_score(pairs)
    first_window = small_reranker.compute_score(pairs, long_documents=LongDocuments(mode="truncate"))
    np.testing.assert_allclose(plain, first_window, atol=1e-6)


def test_unknown_long_documents_value(small_reranker):
    with pytest.raises(InputError, match="long_documents"):
        small_reranker.rerank("q", ["d"], long_documents="summarize")


def test_every_aggregation_has_a_hand_test():
    assert set(AGGREGATIONS) == {"max", "mean_top_k", "first"}


def test_cli_rank_long_document_flags(capsys, small_dir):
    document = "word " * 200
    code = main(
        [
            "rank",
            "query",
            document,
            "short document",
            "--model",
            str(small_dir),
            "--device",
            "cpu",
            "--max-length",
            "64",
            "--long-documents",
            "chunk",
            "--chunk-size",
            "40",
            "--chunk-stride",
            "30",
            "--max-chunks-per-doc",
            "3",
            "--aggregation",
            "mean_top_k",
            "--no-documents",
        ]
    )
    assert code == 0
    results = {r["index"]: r for r in json.loads(capsys.readouterr().out)}
    assert results[0]["num_chunks"] == 3 and results[1]["num_chunks"] == 1


@pytest.fixture()
def chunking_checkpoint(tmp_path):
    """The small fixture, declaring in config.json that long documents are read in windows."""
    import shutil

    directory = tmp_path / "declares-chunk"
    shutil.copytree(FIXTURES / "small", directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "turborank": {"long_documents": "chunk"}}))
    return directory


def test_auto_follows_what_the_checkpoint_declares(chunking_checkpoint, long_document):
    from turborank.checkpoint import declared_long_documents

    assert declared_long_documents(chunking_checkpoint) == "chunk"
    assert declared_long_documents(FIXTURES / "small") == "truncate"
    reranker = Reranker.from_pretrained(chunking_checkpoint, device="cpu")
    assert reranker.long_documents == "chunk" and reranker.info()["long_documents"] == "chunk"
    (needle_id,) = reranker.tokenizer.encode_texts([NEEDLE])[0]
    reranker.engine.backend = NeedleBackend(needle_id)
    pairs = [["which animal", long_document]]
    assert reranker.compute_score(pairs) > 0.99  # auto = chunk here
    assert reranker.compute_score(pairs, long_documents="truncate") < 0.5
    # a LongDocuments whose mode is auto keeps its other settings and takes the declared mode
    capped = LongDocuments(mode="auto", max_chunks_per_doc=2)
    assert reranker.compute_score(pairs, long_documents=capped) < 0.5
    (result,) = reranker.rerank("which animal", [long_document])
    assert result.num_chunks == 3


def test_auto_truncates_where_nothing_is_declared(needle_reranker, long_document):
    assert needle_reranker.long_documents == "truncate"
    assert needle_reranker.compute_score(["which animal", long_document]) < 0.5
    (result,) = needle_reranker.rerank("which animal", [long_document], long_documents="auto")
    assert result.num_chunks == 1


@pytest.mark.parametrize(("server_mode", "expected"), [("auto", "chunk"), ("truncate", "truncate")])
def test_server_auto_chunks_for_a_model_that_declares_it(chunking_checkpoint, server_mode, expected):
    from turborank.server.config import ServerConfig
    from turborank.server.metrics import Metrics
    from turborank.server.service import RerankRequest, RerankService, ServedModel

    reranker = Reranker.from_pretrained(chunking_checkpoint, device="cpu")
    served = {"m": ServedModel("m", reranker, scheduler=None)}  # planning only: nothing is scheduled
    service = RerankService(ServerConfig(long_documents=server_mode), served, Metrics())
    options = service.plan_options(RerankRequest(query="q", documents=["d"]), reranker)
    service.close()
    mode = options["long_documents"]
    assert (mode.mode if isinstance(mode, LongDocuments) else mode) == expected


def test_a_document_that_fits_the_pair_is_read_whole_whatever_the_window(needle_reranker):
    tokenizer = needle_reranker.tokenizer
    query = tokenizer.encode_texts(["where is the zebra"])[0]
    fits = list(range(1000, 1040))
    options = LongDocuments(window_length=24, chunk_size=10)
    (whole,) = chunk_pair(tokenizer, query, fits, 64, 32, options)
    assert whole.input_ids[2 + len(query) : -1] == fits  # one pair, nothing cut
    too_long = list(range(1000, 1100))
    windows = chunk_pair(tokenizer, query, too_long, 64, 32, LongDocuments(window_length=24))
    room = 24 - tokenizer.template.num_special_tokens - len(query)
    assert {len(w) for w in windows} == {24}  # the window's length, not max_length's
    assert len(windows) == len(window_starts(len(too_long), room, room * 3 // 4))
    capped = chunk_pair(tokenizer, query, too_long, 32, 16, LongDocuments(window_length=48))
    assert {len(w) for w in capped} == {32}  # a window never outgrows max_length


def test_short_windows_find_a_needle_and_short_documents_stay_whole(needle_reranker):
    needle_at_end = FILLER_WORD * 300 + NEEDLE
    short = FILLER_WORD * 40 + NEEDLE
    results = needle_reranker.rerank(
        "which animal", [needle_at_end, short], max_length=128, long_documents=LongDocuments(window_length=48)
    )
    chunks = {r.index: r.num_chunks for r in results}
    assert all(r.relevance_score > 0.99 for r in results)
    assert chunks[1] == 1  # fits 128 tokens: one pair
    assert chunks[0] == len(window_starts(301, 48 - 3 - 2, (48 - 3 - 2) * 3 // 4))


def test_the_checkpoints_window_fills_options_that_name_none():
    from turborank.chunking import resolve_long_documents

    assert resolve_long_documents("auto", "chunk", 96) == LongDocuments(window_length=96)
    assert resolve_long_documents("chunk", "truncate", 96) == LongDocuments(window_length=96)
    assert resolve_long_documents("auto", "truncate", 96) is None
    assert resolve_long_documents(LongDocuments(mode="auto"), "chunk", 96).window_length == 96
    assert resolve_long_documents(LongDocuments(window_length=64), "chunk", 96).window_length == 64
    with pytest.raises(InputError, match="window_length"):
        LongDocuments(window_length=0)


def test_a_checkpoint_declares_its_window(tmp_path):
    import shutil

    directory = tmp_path / "model"
    shutil.copytree(FIXTURES / "small", directory)
    config = json.loads((directory / "config.json").read_text())
    config["turborank"] = {"long_documents": "chunk", "window_length": 48}
    (directory / "config.json").write_text(json.dumps(config))
    reranker = Reranker.from_pretrained(directory, device="cpu")
    assert reranker.window_length == 48 and reranker.info()["window_length"] == 48
    document = "word " * 300
    _, owners, options = reranker.encode_long([("a query", document)], max_length=128)
    assert options.window_length == 48 and len(owners) > 300 // 48
    _, owners, _ = reranker.encode_long(
        [("a query", document)], 128, long_documents=LongDocuments(window_length=128)
    )
    assert len(owners) < 300 // 48  # the caller's window wins
    assert Reranker.from_pretrained(FIXTURES / "small", device="cpu").window_length is None
