import io
import json
import sys
from pathlib import Path

import pytest

from turborank import InputError
from turborank.cli import main, read_documents


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_rank_prints_ranked_json(capsys, small_dir, small_reranker):
    docs = ["Eco-friendly kitchenware", "Natural organic skincare for sensitive skin", "Tech gadgets"]
    code, out, _ = run(
        capsys, "rank", "--model", str(small_dir), "--device", "cpu", "organic skincare", *docs
    )
    assert code == 0
    results = json.loads(out)
    expected = small_reranker.rerank("organic skincare", docs)
    assert [r["index"] for r in results] == [r.index for r in expected]
    assert results[0]["document"] == docs[expected[0].index]
    assert results[0]["relevance_score"] == pytest.approx(expected[0].relevance_score, abs=1e-6)


def test_rank_reads_documents_from_plain_and_jsonl_files(capsys, small_dir, tmp_path):
    plain = tmp_path / "docs.txt"
    plain.write_text("first document\n\nsecond document\n")
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"text": "third document", "id": 7}\n"fourth document"\n')
    code, out, _ = run(
        capsys,
        "rank",
        "-m",
        str(small_dir),
        "--device",
        "cpu",
        "query",
        "--documents",
        str(plain),
        "--top-n",
        "1",
        "--no-documents",
    )
    assert code == 0 and len(json.loads(out)) == 1 and "document" not in json.loads(out)[0]
    assert read_documents(jsonl) == ["third document", "fourth document"]


def test_bad_jsonl_names_file_and_line(capsys, small_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": \n')
    code, _, err = run(capsys, "rank", "-m", str(small_dir), "q", "--documents", str(bad))
    assert code == 2 and f"{bad}:2: invalid JSON" in err


def test_missing_model_is_a_clean_error(capsys, tmp_path):
    code, _, err = run(capsys, "rank", "-m", str(tmp_path / "missing"), "q", "doc")
    assert code == 2 and "no checkpoint directory" in err


def test_info(capsys, small_dir):
    code, out, _ = run(capsys, "info", str(small_dir), "--json", "--device", "cpu")
    info = json.loads(out)
    assert code == 0 and info["layers"] == 2 and info["max_length"] == 8192 and info["dtype"] == "float32"
    code, out, _ = run(capsys, "info", str(small_dir), "--device", "cpu")
    assert "parameters" in out and "8,192" in out


@pytest.mark.parametrize(
    "argv",
    [
        ("rank", "--threads", "0", "q", "a"),
        ("rank", "--threads", "-3", "q", "a"),
        ("info", "--threads", "0"),
    ],
)
def test_bad_thread_count_is_a_clean_error(capsys, small_dir, argv):
    code, _, err = run(capsys, *argv, "--model", str(small_dir), "--device", "cpu")
    assert code == 2 and err.startswith("turborank: error: num_threads must be a positive integer")


def test_bad_device_is_a_clean_error(capsys, small_dir):
    code, _, err = run(capsys, "rank", "-m", str(small_dir), "q", "a", "--device", "foo")
    assert code == 2 and "turborank: error: device must be 'auto', 'cpu', 'cuda' or 'cuda:N'" in err


def stdin_bytes(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")
    )


def test_undecodable_stdin_is_a_clean_error(capsys, monkeypatch, small_dir):
    stdin_bytes(monkeypatch, b"\xff\xfe\n")
    code, _, err = run(capsys, "rank", "-m", str(small_dir), "--threads", "1", "q", "-d", "-")
    assert code == 2 and "turborank: error: cannot read documents from stdin: 'utf-8' codec" in err


def test_undecodable_argument_is_a_clean_error(capsys, small_dir):
    # What Python makes of a non-UTF-8 argv byte (surrogateescape) reaches the API's text check.
    code, _, err = run(capsys, "rank", "-m", str(small_dir), "q", "fine", "bad \udcff")
    assert code == 2 and "documents[1] holds a lone UTF-16 surrogate" in err


def test_plain_text_lines_may_start_with_quotes_or_braces(capsys, small_dir, tmp_path):
    quotes = tmp_path / "quotes.txt"
    quotes.write_text('"Hello," she said.\n{not json}\n"a JSON string"\n')
    assert read_documents(quotes) == ['"Hello," she said.', "{not json}", '"a JSON string"']
    code, out, _ = run(
        capsys, "rank", "-m", str(small_dir), "--device", "cpu", "q", "--documents", str(quotes)
    )
    assert code == 0 and {r["document"] for r in json.loads(out)} == set(read_documents(quotes))


def test_documents_format_jsonl_by_name_or_when_every_line_is_json(monkeypatch, tmp_path):
    text = '{"text": "one"}\n"two"\n'
    (tmp_path / "docs.ndjson").write_text(text)
    (tmp_path / "docs.txt").write_text(text)
    (tmp_path / "mixed.txt").write_text(text + '"Three," she said.\n')
    assert read_documents(tmp_path / "docs.ndjson") == ["one", "two"]
    assert read_documents(tmp_path / "docs.txt") == ["one", "two"]  # every line is JSON: as before
    assert read_documents(tmp_path / "mixed.txt") == ['{"text": "one"}', '"two"', '"Three," she said.']
    assert read_documents(tmp_path / "docs.txt", "lines") == ['{"text": "one"}', '"two"']
    assert read_documents(tmp_path / "docs.ndjson", "lines") == ['{"text": "one"}', '"two"']
    stdin_bytes(monkeypatch, text.encode())
    assert read_documents(Path("-")) == ["one", "two"]  # JSONL piped in keeps working
    with pytest.raises(InputError, match=r"mixed.txt:3: invalid JSON"):
        read_documents(tmp_path / "mixed.txt", "jsonl")
    (tmp_path / "numbers.jsonl").write_text('"ok"\n42\n')
    with pytest.raises(InputError, match=r"numbers.jsonl:2: a JSONL document is a JSON string or an object"):
        read_documents(tmp_path / "numbers.jsonl")


def test_result_index_counts_documents_not_lines(capsys, small_dir, tmp_path):
    docs = tmp_path / "docs.txt"
    docs.write_text("alpha\n\n   \nbeta\n")
    assert read_documents(docs) == ["alpha", "beta"]
    argv = ("rank", "-m", str(small_dir), "--device", "cpu", "q", "first", "--documents", str(docs))
    code, out, _ = run(capsys, *argv)
    by_index = {r["index"]: r["document"] for r in json.loads(out)}
    assert code == 0 and by_index == {0: "first", 1: "alpha", 2: "beta"}


def test_missing_extras_are_clean_errors(capsys, monkeypatch, tmp_path):
    # A None entry makes importlib's find_spec report the module as absent, installed or not.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    code, _, err = run(capsys, "score", str(tmp_path / "pairs.jsonl"), str(tmp_path / "o.jsonl"))
    assert (
        code == 2
        and err == "turborank: error: turborank score needs pyarrow: pip install 'turborank[score]'\n"
    )
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    code, _, err = run(capsys, "serve")
    assert code == 2 and err.startswith("turborank: error: turborank serve needs") and "uvicorn" in err
