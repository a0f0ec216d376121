"""``turborank score`` in one process: equal to compute_score, top-n, resume, bad rows, formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from turborank.score import local
from turborank.score.inputs import PairFile
from turborank.score.scoring import Columns

from .conftest import make_rows, pa, pq, read_output, run_score, write_rows


def expected_scores(reranker, rows: list[dict]) -> np.ndarray:
    return np.array(reranker.compute_score([[r["query"], r["document"]] for r in rows]))


def test_thousands_of_pairs_equal_compute_score_in_input_order(tmp_path, small_reranker):
    rows = make_rows(3000)
    source = write_rows(rows, tmp_path / "pairs.parquet")
    code, summary = run_score(str(source), str(tmp_path / "out.parquet"))
    assert code == 0 and summary["rows_scored"] == 3000 and summary["rows_skipped"] == 0
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == ["id", "query", "document", "score", "logit"]
    assert out["id"].to_pylist() == list(range(3000))
    np.testing.assert_allclose(out["score"].to_numpy(), expected_scores(small_reranker, rows), atol=1e-6)
    logits = small_reranker.compute_score([[r["query"], r["document"]] for r in rows[:5]], normalize=False)
    np.testing.assert_allclose(out["logit"].to_numpy()[:5], logits, atol=1e-5)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_text_formats_in_and_jsonl_out(tmp_path, small_reranker, suffix):
    rows = make_rows(120)
    source = write_rows(rows, tmp_path / f"pairs{suffix}")
    code, _ = run_score(str(source), str(tmp_path / "out.jsonl"), "--batch-size", "50")
    assert code == 0
    out = read_output(tmp_path / "out.jsonl")
    assert [r["id"] for r in out] == list(range(120))
    assert all(set(r) == {"id", "query", "document", "score", "logit"} for r in out)
    np.testing.assert_allclose([r["score"] for r in out], expected_scores(small_reranker, rows), atol=1e-6)


def test_renamed_columns_and_kept_columns(tmp_path):
    rows = [{"qid": 1, "q": "capital of France", "text": "Paris", "extra": "x"}]
    source = write_rows(rows, tmp_path / "pairs.jsonl")
    code, _ = run_score(
        str(source), str(tmp_path / "out.jsonl"), "--query-column", "q", "--document-column", "text",
        "--keep-columns", "qid",
    )  # fmt: skip
    assert code == 0
    assert list(read_output(tmp_path / "out.jsonl")[0]) == ["qid", "q", "text", "score", "logit"]


def test_top_n_keeps_each_querys_best_rows_ranked_in_query_order(tmp_path):
    rows = make_rows(95, per_query=10)
    source = write_rows(rows, tmp_path / "pairs.jsonl")
    run_score(str(source), str(tmp_path / "all.parquet"), "--batch-size", "16")
    code, _ = run_score(str(source), str(tmp_path / "top.parquet"), "--batch-size", "16", "--top-n", "3")
    assert code == 0
    everything, top = read_output(tmp_path / "all.parquet"), read_output(tmp_path / "top.parquet")
    queries = list(dict.fromkeys(r["query"] for r in rows))
    expected = []
    for query in queries:  # groups straddle the 16-row chunks; each must still be ranked whole
        group = sorted((r for r in everything if r["query"] == query), key=lambda r: -r["score"])[:3]
        expected += [{**r, "rank": rank} for rank, r in enumerate(group, 1)]
    assert top == expected


def test_top_n_refuses_a_file_not_grouped_by_query(tmp_path):
    rows = make_rows(30, per_query=10)
    rows.append(dict(rows[0], id=99))
    source = write_rows(rows, tmp_path / "pairs.jsonl")
    code, _ = run_score(str(source), str(tmp_path / "top.jsonl"), "--top-n", "2")
    assert code == 2


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_without_rescoring_finished_chunks(tmp_path, monkeypatch):
    rows = make_rows(100)
    source = write_rows(rows, tmp_path / "pairs.jsonl")
    out = tmp_path / "out.parquet"
    scored_chunks: list[int] = []  # the first id of each chunk scored
    interrupt_at = [2]  # chunks scored before the "crash"; None: no crash
    real_score_table = local.score_table

    def recording_score_table(reranker, table, options):
        if len(scored_chunks) == interrupt_at[0]:
            raise Interrupt
        scored_chunks.append(table["id"][0].as_py())
        return real_score_table(reranker, table, options)

    monkeypatch.setattr(local, "score_table", recording_score_table)
    with pytest.raises(Interrupt):
        run_score(str(source), str(out), "--batch-size", "25")
    assert not out.exists() and len(list((tmp_path / "out.parquet.partial").glob("part-*"))) == 2

    scored_chunks.clear()
    interrupt_at[0] = None
    code, summary = run_score(str(source), str(out), "--batch-size", "25")
    assert code == 0 and scored_chunks == [50, 75] and summary["chunks_resumed"] == 2
    assert not (tmp_path / "out.parquet.partial").exists()
    uninterrupted = tmp_path / "again.parquet"
    run_score(str(source), str(uninterrupted), "--batch-size", "25")
    assert read_output(out) == read_output(uninterrupted)


def test_a_resume_with_other_settings_is_refused(tmp_path, capsys):
    source = write_rows(make_rows(10), tmp_path / "pairs.jsonl")
    (tmp_path / "out.jsonl.partial").mkdir()
    (tmp_path / "out.jsonl.partial" / "manifest.json").write_text(json.dumps({"input": "other"}))
    assert run_score(str(source), str(tmp_path / "out.jsonl"))[0] == 2
    assert "another input or other settings" in capsys.readouterr().err


def test_an_existing_output_needs_overwrite(tmp_path, capsys):
    source = write_rows(make_rows(10), tmp_path / "pairs.jsonl")
    (tmp_path / "out.jsonl").write_text("keep me")
    assert run_score(str(source), str(tmp_path / "out.jsonl"))[0] == 2
    assert "--overwrite" in capsys.readouterr().err
    assert run_score(str(source), str(tmp_path / "out.jsonl"), "--overwrite")[0] == 0


def bad_jsonl(tmp_path):
    lines = [json.dumps(r) for r in make_rows(60)]
    lines[41] = json.dumps({"id": 41, "query": "q", "document": 7})
    lines[45] = "{not json"
    lines[50] = json.dumps({"id": 50, "document": "no query"})
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_bad_row_is_named_and_rows_scored_before_it_are_kept(tmp_path, capsys):
    source = bad_jsonl(tmp_path)
    out = tmp_path / "out.jsonl"
    assert run_score(str(source), str(out), "--batch-size", "20")[0] == 2
    error = capsys.readouterr().err
    assert "line 42: 'document' is a int, not a string" in error and "--on-error skip" in error
    assert len(list((tmp_path / "out.jsonl.partial").glob("part-*"))) == 2  # rows 1-40 stay scored

    code, summary = run_score(str(source), str(out), "--batch-size", "20", "--on-error", "skip")
    assert code == 0 and summary["chunks_resumed"] == 2
    assert summary["rows_scored"] == 57 and summary["rows_skipped"] == 3
    assert summary["bad_rows"] == [
        "line 42: 'document' is a int, not a string",
        "line 46: invalid JSON (Expecting property name enclosed in double quotes)",
        "line 51: 'query' is missing",
    ]
    assert [r["id"] for r in read_output(out)] == [i for i in range(60) if i not in (41, 45, 50)]


def test_bad_rows_in_csv_and_parquet_are_named_by_row(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text('id,query,document\n1,q,"a doc"\n2,q,\n3,q,""\n4,q\n', encoding="utf-8")
    assert run_score(str(csv), str(tmp_path / "a.jsonl"))[0] == 2
    assert "line 5: expected 3 fields, got 2" in capsys.readouterr().err
    code, summary = run_score(str(csv), str(tmp_path / "a.jsonl"), "--on-error", "skip")
    assert summary["bad_rows"] == ["line 5: expected 3 fields, got 2", "row 2: 'document' is missing"]
    assert [r["id"] for r in read_output(tmp_path / "a.jsonl")] == [1, 3]  # a quoted "" is an empty text

    table = pa.table({"query": ["q", None, "q"], "document": ["a", "b", "c"]})
    pq.write_table(table, tmp_path / "bad.parquet")
    assert run_score(str(tmp_path / "bad.parquet"), str(tmp_path / "b.jsonl"))[0] == 2
    assert "row 2: 'query' is missing" in capsys.readouterr().err


def test_unusable_files_get_one_clear_error(tmp_path, capsys):
    pq.write_table(pa.table({"query": [1, 2], "document": ["a", "b"]}), tmp_path / "ints.parquet")
    write_rows([{"q": "a", "document": "b"}], tmp_path / "noquery.jsonl")
    (tmp_path / "pairs.txt").write_text("x")
    cases = {
        "ints.parquet": "column 'query' holds int64, not text",
        "noquery.jsonl": "has a 'query' field: name the right one with --query-column",
        "pairs.txt": "pass --input-format",
        "missing.jsonl": "does not exist",
    }
    for name, message in cases.items():
        assert run_score(str(tmp_path / name), str(tmp_path / "o.jsonl"))[0] == 2
        assert message in capsys.readouterr().err


def test_chunks_are_streamed_in_fixed_sizes(tmp_path):
    rows = make_rows(250)
    for suffix in (".jsonl", ".csv", ".parquet"):
        chunks = PairFile.open(write_rows(rows, tmp_path / f"p{suffix}")).chunks(Columns(), 100)
        first = next(chunks)  # a generator: the rest of the file is not read yet
        sizes = [first.table.num_rows] + [c.table.num_rows for c in chunks]
        assert sizes == [100, 100, 50], suffix
