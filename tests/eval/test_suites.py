"""Suites: which folders they find, what they report missing, and LoCo's max_length sweep."""

from __future__ import annotations

import json

import pytest
from eval_helpers import SHARED_DATA, SMALL_MODEL, shared_dataset, write_beir

from turborank.cli import main
from turborank.eval.data import read_trec_run
from turborank.eval.suites import BEIR_CARD, dataset_spec, resolve_suite


def test_beir_card_has_17_datasets_and_local_folders_resolve(tmp_path):
    assert len(BEIR_CARD) == 17
    write_beir(tmp_path / "beir-scifact", {"d": ("", "text")}, {"q": "query"}, {"q": {"d": 1}})
    write_beir(tmp_path / "fiqa", {"d": ("", "text")}, {"q": "query"}, {"q": {"d": 1}})
    found, missing = resolve_suite("beir", tmp_path)
    assert [(s.card_name, s.directory.name) for s in found] == [("fiqa", "fiqa"), ("scifact", "beir-scifact")]
    assert len(missing) == 15 and "trec-covid" in missing and "scifact" not in missing


def test_known_folder_protocols():
    shared_dataset("rag-llama2-paper-qa")
    rag = dataset_spec(SHARED_DATA / "rag-llama2-paper-qa")
    assert (rag.k, rag.headline) == (10, "Hit@5")
    msmarco = dataset_spec(SHARED_DATA / "msmarco-dev-600q-bm25top20")
    assert (msmarco.split, msmarco.keep_unjudged, msmarco.k) == ("dev", True, 20)
    assert dataset_spec(SHARED_DATA / "trec-dl19-passage-rerank").relevance_level == 2


def test_loco_suite_sweeps_max_length(tmp_path, capsys):
    # One long meeting (about 3,000 tokens) whose relevant part sits past the first 512 tokens.
    filler = "we talked about the budget and the schedule again . " * 300
    corpus = {
        "m1": ("", filler + "the remote control should have a rubber case"),
        "m2": ("", "the team discussed speech recognition errors " * 20),
        "m3": ("", "marketing wants a fancy remote " * 20),
    }
    queries = {"q1": "rubber case for the remote control", "q2": "speech recognition errors"}
    write_beir(tmp_path / "data" / "longdoc-qmsum", corpus, queries, {"q1": {"m1": 1}, "q2": {"m2": 1}})
    out = tmp_path / "out"
    argv = ["eval", "--suite", "loco", "--data-root", str(tmp_path / "data"), "--model", str(SMALL_MODEL)]
    assert main([*argv, "--device", "cpu", "--quiet", "--output-dir", str(out)]) == 0
    assert "suite loco: not under" in capsys.readouterr().err  # the four LoCo sets not present
    records = json.loads((out / "results.json").read_text())["records"]
    reranked = [r for r in records if r["stage"] == "reranked"]
    assert [r["system"] for r in reranked] == ["small @512", "small @2048", "small @8192"]
    assert [r["settings"]["max_length"] for r in reranked] == [512, 2048, 8192]
    assert all(r["card_name"] == "qmsum" and r["suite"] == "loco" for r in records)
    # Each max_length is its own cache identity and really scores differently: only the long meeting
    # (m1, ~3,300 tokens) is cut, so only its scores change with max_length.
    runs = [read_trec_run(out / "runs" / f"small_{n}" / "longdoc-qmsum.test.trec") for n in (512, 2048, 8192)]
    for qid in queries:
        assert runs[0][qid]["m1"] != runs[1][qid]["m1"] != runs[2][qid]["m1"]
        # Unchanged up to float rounding: batch composition (padding) differs between the three runs.
        assert runs[0][qid]["m2"] == pytest.approx(runs[1][qid]["m2"], abs=1e-5)
        assert runs[1][qid]["m2"] == pytest.approx(runs[2][qid]["m2"], abs=1e-5)
