"""Loading BEIR folders and TREC runs, and the errors for broken files (file and line in the message)."""

from __future__ import annotations

import pytest
from eval_helpers import write_beir

from turborank.eval.data import DatasetError, Document, load_beir, read_trec_run, top_k, write_trec_run

CORPUS = {"d1": ("Cats", "Cats purr."), "d2": ("", "Dogs bark."), "d3": ("Birds", "Birds sing.")}
QUERIES = {"q1": "what do cats do", "q2": "dogs", "q3": "a training query"}


@pytest.fixture
def folder(tmp_path):
    root = write_beir(tmp_path / "tiny", CORPUS, QUERIES, {"q1": {"d1": 2}, "q2": {"d2": 1, "d9": 1}})
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td3\t1\n")
    return root


def test_load_split(folder):
    data = load_beir(folder, "test")
    assert set(data.queries) == {"q1", "q2"}  # only the split's queries
    assert data.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1, "d9": 1}}
    assert data.corpus["d1"] == Document("Cats", "Cats purr.")
    assert data.corpus["d1"].full_text == "Cats Cats purr."
    assert data.corpus["d2"].full_text == "Dogs bark."  # no leading space without a title
    assert data.unjudgeable == 1  # d9 is judged but not in the corpus (a pooled set)
    assert set(load_beir(folder, "train").queries) == {"q3"}
    assert len(load_beir(folder, "test", keep_unjudged=True).queries) == 3


def test_missing_split_lists_the_available_ones(folder):
    with pytest.raises(DatasetError, match=r"no qrels for split 'dev'; splits here: test, train"):
        load_beir(folder, "dev")


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_beir(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (
            "corpus.jsonl",
            '{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": \n',
            r"corpus.jsonl:2: invalid JSON",
        ),
        (
            "corpus.jsonl",
            '{"_id": "d1", "text": "ok"}\n\n{"title": "x", "text": "y"}\n',
            r"corpus.jsonl:3: missing",
        ),
        (
            "corpus.jsonl",
            '{"_id": "d1", "body": "ok"}\n',
            r'corpus.jsonl:1: a corpus line needs a string "text"',
        ),
        ("corpus.jsonl", "", r"corpus.jsonl: empty corpus"),
        ("queries.jsonl", '["q1", "text"]\n', r"queries.jsonl:1: expected a JSON object"),
        (
            "queries.jsonl",
            '{"_id": "q1", "text": "  "}\n',
            r"queries.jsonl:1: a query line needs a non-empty",
        ),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1 d1 1\n", r"test.tsv:2: expected 3 tab-separated"),
        (
            "qrels/test.tsv",
            "query-id\tcorpus-id\tscore\nq1\td1\thigh\n",
            r"test.tsv:2: relevance 'high' is not",
        ),
        (
            "qrels/test.tsv",
            "query-id\tcorpus-id\tscore\nq1\td1\t1\nq7\td1\t1\n",
            r"test.tsv:3: query id 'q7'",
        ),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\n", r"test.tsv: no judgments"),
    ],
)
def test_malformed_files(folder, file, content, message):
    (folder / file).write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_beir(folder, "test")


def test_no_qrels_folder_keeps_every_query(folder):
    for path in (folder / "qrels").iterdir():
        path.unlink()
    (folder / "qrels").rmdir()
    data = load_beir(folder)
    assert data.qrels == {} and len(data.queries) == 3


def test_run_round_trip(tmp_path):
    run = {"q1": {"d1": 0.5, "d2": 2.0, "d3": 2.0}, "q2": {"d2": -1.0}}
    path = tmp_path / "out" / "run.trec"
    write_trec_run(run, path, "mine")
    lines = path.read_text().splitlines()
    # Descending score, ties in trec_eval's order (larger doc id first), ranks from 1.
    assert lines[:3] == ["q1 Q0 d3 1 2.000000 mine", "q1 Q0 d2 2 2.000000 mine", "q1 Q0 d1 3 0.500000 mine"]
    assert read_trec_run(path) == run
    assert top_k(run, 1) == {"q1": {"d3": 2.0}, "q2": {"d2": -1.0}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 t\n", r"run.trec:2: expected 6 fields"),
        ("q1 Q0 d1 1 high t\n", r"run.trec:1: score 'high' is not a number"),
        ("q1 Q0 d1 1 1 t\nq9 Q0 d1 2 0.5 t\n", r"run.trec:2: query id 'q9'"),
        ("q1 Q0 d1 1 1 t\n\nq1 Q0 d7 2 0.5 t\n", r"run.trec:3: document id 'd7' is not in corpus"),
        ("\n", r"run.trec: empty run file"),
    ],
)
def test_malformed_runs(folder, tmp_path, content, message):
    data = load_beir(folder)
    path = tmp_path / "run.trec"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_trec_run(path, data.queries, data.corpus)


def test_bad_run_tag(tmp_path):
    with pytest.raises(DatasetError, match="run tag"):
        write_trec_run({"q": {"d": 1.0}}, tmp_path / "r.trec", "two words")


def test_a_query_sample_is_seeded_and_keeps_its_judgments():
    from turborank.eval.data import BeirDataset, Document, sample_queries

    queries = {f"q{i}": f"query {i}" for i in range(10)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(10)}
    data = BeirDataset({f"d{i}": Document("", f"doc {i}") for i in range(10)}, queries, qrels)
    sample = sample_queries(data, 4)
    assert len(sample.queries) == 4 and set(sample.qrels) == set(sample.queries) <= set(queries)
    assert (
        sample.corpus is data.corpus and len(data.queries) == 10
    )  # the corpus is whole, the input untouched
    assert sample_queries(data, 4).queries == sample.queries  # the same queries on every call
    assert sample_queries(data, 4, seed=1).queries != sample.queries
    assert sample_queries(data, 50).queries == queries
    with pytest.raises(DatasetError, match="at least 1"):
        sample_queries(data, 0)
