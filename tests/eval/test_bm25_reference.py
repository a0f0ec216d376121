"""BM25 first stage against the figures recorded in ../shared/data/*/PROVENANCE.md (within 0.01).

Every set is small enough (bm25s indexes each in about a second) to run in the default suite.
Datasets that ship a first-stage run are scored from that run, as PROVENANCE.md says to.
"""

from __future__ import annotations

import pytest
from eval_helpers import shared_dataset

from turborank.eval.bm25 import BM25Index
from turborank.eval.data import Document, load_beir, read_trec_run
from turborank.eval.metrics import evaluate

# (folder, split, provided run or None for our bm25s, keep unjudged queries, {measure: PROVENANCE figure})
REFERENCE = [
    ("beir-scifact", "test", None, False, {"NDCG@10": 0.6762, "Recall@100": 0.913, "MRR": 0.646}),
    ("beir-scifact", "train", None, False, {"NDCG@10": 0.6945}),
    ("nfcorpus-original-preprocessed", "test", None, False, {"NDCG@10": 0.3272, "Recall@100": 0.258}),
    ("longdoc-qmsum", "test", None, False, {"NDCG@10": 0.3871, "Hit@10": 0.554}),
    ("longdoc-qmsum", "val", None, False, {"NDCG@10": 0.3671}),
    ("longdoc-qmsum", "test-summary", None, False, {"NDCG@10": 0.8407}),
    ("longdoc-qmsum", "val-summary", None, False, {"NDCG@10": 0.7541}),
    (
        "rag-llama2-paper-qa",
        "test",
        None,
        False,
        {"Hit@5": 0.8817, "Hit@10": 0.9301, "MRR": 0.7175, "NDCG@10": 0.7677},
    ),
    ("trec-dl19-passage-rerank", "test", "runs/BM25.trec", False, {"NDCG@10": 0.506}),
    ("trec-dl21-passage-rerank", "test", "runs/BM25.trec", False, {"NDCG@10": 0.446}),
    # The 60 queries without a positive in the top 20 have no qrels line but count (as 0) in the figure.
    (
        "msmarco-dev-600q-bm25top20",
        "dev",
        "runs/BM25_top20.trec",
        True,
        {"NDCG@10": 0.4546, "MRR": 0.3796, "Recall@20": 0.900},
    ),
    ("msmarco-dev-600q-bm25top20", "graded-thesis", "runs/BM25_top20.trec", False, {"NDCG@10": 0.7541}),
]


@pytest.mark.parametrize(
    ("folder", "split", "run_file", "keep_unjudged", "expected"),
    REFERENCE,
    ids=[f"{r[0]}-{r[1]}" for r in REFERENCE],
)
def test_bm25_matches_provenance(folder, split, run_file, keep_unjudged, expected):
    data = load_beir(shared_dataset(folder), split, keep_unjudged=keep_unjudged)
    if run_file:
        run = read_trec_run(data.directory / run_file, corpus=data.corpus)
    else:
        run = BM25Index.build(data.corpus).search(data.queries, k=100)
        assert all(len(docs) == min(100, len(data.corpus)) for docs in run.values())
    measured = evaluate(run, data.qrels, list(expected), queries=data.queries)
    for measure, figure in expected.items():
        assert measured[measure] == pytest.approx(figure, abs=0.01), measure


def test_bm25_ranks_matching_document_first():
    corpus = {
        "cats": Document("Cats", "A cat purrs when it is content."),
        "dogs": Document("", "Dogs bark at strangers."),
        "birds": Document("Birds", "Birds sing in the morning."),
    }
    run = BM25Index.build(corpus).search({"q": "why do cats purr", "none": "zebra"}, k=2)
    assert list(run["q"])[0] == "cats"  # stemming maps "purr"/"purrs" and "cats"/"cat" together
    assert run["q"]["cats"] > 0
    assert (
        len(run["none"]) == 2
    )  # unmatched queries still get k candidates (score 0), like the reference runs
