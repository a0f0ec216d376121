import json

import pytest

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
