"""End to end: the small test model evaluated in-process and through a running turborank server
(Jina, Cohere and TEI dialects) gives the same measures; the CLI writes runs, JSON and tables;
``eval report`` merges them."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager

import pytest
from eval_helpers import SMALL_MODEL, write_beir

from turborank import Reranker
from turborank.cli import main
from turborank.eval.cache import ScoreCache
from turborank.eval.runner import evaluate_dataset
from turborank.eval.scoring import LocalScorer, RemoteScorer, rerank_options
from turborank.eval.suites import dataset_spec

CORPUS = {
    f"d{i}": (title, text)
    for i, (title, text) in enumerate(
        [
            ("Paris", "Paris is the capital and largest city of France."),
            ("Berlin", "Berlin is the capital of Germany and its largest city."),
            ("Cats", "The domestic cat is a small carnivorous mammal that purrs."),
            ("Dogs", "Dogs were domesticated from wolves and bark at strangers."),
            ("", "Photosynthesis converts light energy into chemical energy in plants."),
            ("Rome", "Rome was the capital of the Roman Empire and is the capital of Italy."),
            ("Jazz", "Jazz originated in New Orleans in the late nineteenth century."),
            ("Python", "Python is a programming language that emphasises readability."),
            ("", "The Amazon river carries more water than any other river on Earth."),
            ("Tea", "Tea is an aromatic drink prepared by pouring hot water over leaves."),
        ]
    )
}
QUERIES = {
    "q1": "what is the capital of France",
    "q2": "why do cats purr",
    "q3": "which river carries the most water",
    "q4": "capital city of Italy",
    "q5": "where did jazz music start",
}
QRELS = {
    "q1": {"d0": 2, "d1": 0},
    "q2": {"d2": 1},
    "q3": {"d8": 1},
    "q4": {"d5": 2, "d0": 0},
    "q5": {"d6": 1},
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_beir(tmp_path_factory.mktemp("data") / "tiny", CORPUS, QUERIES, QRELS)


@pytest.fixture(scope="module")
def reranker():
    return Reranker.from_pretrained(SMALL_MODEL, device="cpu")


@contextmanager
def turborank_server():
    """A real turborank server (uvicorn in a thread) serving the small model as "small"."""
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    from turborank.server.app import create_app
    from turborank.server.config import ServerConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServerConfig(model=[f"small={SMALL_MODEL}"], device="cpu"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def server_url():
    with turborank_server() as url:
        yield url


def measures_of(records):
    return {r["system"]: r["measures"] for r in (rec.to_dict() for rec in records)}


def test_local_and_server_give_the_same_measures(folder, reranker, server_url):
    from turborank.eval.remote import RemoteReranker

    spec = dataset_spec(folder)
    local = LocalScorer(reranker, rerank_options(), "local")
    remotes = [
        RemoteScorer(RemoteReranker(server_url, fmt, model="small", concurrency=2), fmt)
        for fmt in ("jina", "cohere", "tei")
    ]
    records = evaluate_dataset(spec, [local, *remotes], ScoreCache(None), k=10, progress=False)
    measured = measures_of(records)
    assert set(measured) == {"BM25", "local", "jina", "cohere", "tei"}
    for fmt in ("jina", "cohere", "tei"):
        assert measured[fmt] == pytest.approx(measured["local"], abs=1e-9), fmt
    # Reranking every candidate keeps recall: the same documents, another order.
    assert measured["local"]["Recall@100"] == measured["BM25"]["Recall@100"]
    # Raw logits from TEI equal the library's logits (same model, same truncation).
    tei = RemoteReranker(server_url, "tei")
    documents = [" ".join(CORPUS[d]).strip() for d in ("d0", "d1", "d2")]
    expected = [r.logit for r in sorted(reranker.rerank(QUERIES["q1"], documents), key=lambda r: r.index)]
    assert tei.score(QUERIES["q1"], documents) == pytest.approx(expected, abs=1e-4)


def test_cli_local_and_endpoint_then_report(folder, server_url, tmp_path, capsys):
    local_out, remote_out = tmp_path / "local", tmp_path / "remote"
    common = ["eval", "--dataset", str(folder), "--k", "10", "--quiet"]
    assert (
        main([*common, "--model", str(SMALL_MODEL), "--device", "cpu", "--output-dir", str(local_out)]) == 0
    )
    endpoint = ["--endpoint", server_url, "--api-format", "tei", "--label", "small-served"]
    assert main([*common, *endpoint, "--output-dir", str(remote_out)]) == 0

    local = json.loads((local_out / "results.json").read_text())
    remote = json.loads((remote_out / "results.json").read_text())
    (first_stage, model), (_, served) = local["records"], remote["records"]
    assert first_stage["system"] == "BM25" and first_stage["stage"] == "first-stage"
    assert model["measures"] == pytest.approx(served["measures"], abs=1e-9)
    assert model["settings"]["weights_sha256"] and model["settings"]["dtype"] == "float32"
    assert model["settings"]["max_length"] == 8192 and model["k"] == 10
    assert served["settings"]["api_format"] == "tei" and served["settings"]["endpoint"].endswith("/rerank")
    latency = model["latency"]
    assert latency["documents"] == latency["windows"] == 50 and latency["p95_ms"] >= latency["p50_ms"] > 0
    assert served["latency"]["windows"] is None and served["latency"]["windows_per_s"] is None
    assert local["environment"]["libraries"]["pytrec-eval-terrier"]
    run_lines = (local_out / "runs" / "small" / "tiny.test.trec").read_text().splitlines()
    assert len(run_lines) == 50 and run_lines[0].endswith(" small")

    capsys.readouterr()
    table_file = tmp_path / "table.md"
    assert (
        main(
            [
                "eval",
                "report",
                str(local_out / "results.json"),
                str(remote_out / "results.json"),
                "-o",
                str(table_file),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert table == table_file.read_text()
    summary = table.split("\n\n")[1].splitlines()
    assert summary[0] == "| Model | tiny (test) NDCG@10 |"
    assert [row.split(" | ")[0] for row in summary[2:]] == ["| `BM25`", "| `small`", "| `small-served`"]
    ndcg = f"{model['measures']['NDCG@10'] * 100:.2f}"
    assert summary[3] == f"| `small` | {ndcg} |" and summary[4] == f"| `small-served` | {ndcg} |"


def test_cli_errors_are_reported(tmp_path, capsys):
    assert main(["eval", "--no-rerank", "--output-dir", str(tmp_path)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert (
        main(["eval", "--dataset", str(tmp_path / "missing"), "--no-rerank", "--output-dir", str(tmp_path)])
        == 2
    )
    assert "no such dataset folder" in capsys.readouterr().err


def test_long_documents_option_reaches_the_library(reranker):
    # A document longer than max_length: "chunk" scores its windows and keeps the best, "truncate" its start.
    document = "filler words about nothing much . " * 200 + "Paris is the capital of France."
    truncate = LocalScorer(reranker, rerank_options(max_length=64, long_documents="truncate"))
    chunk = LocalScorer(reranker, rerank_options(max_length=64, long_documents="chunk"))
    assert truncate.identity != chunk.identity and "long_documents=chunk" in chunk.identity
    assert chunk.settings["max_length"] == 64 and chunk.settings["long_documents"] == "chunk"
    (expected,) = reranker.rerank("capital of France", [document], max_length=64, long_documents="chunk")
    chunked, truncated = (scorer.score("capital of France", [document]) for scorer in (chunk, truncate))
    assert chunked.values == [pytest.approx(expected.logit)] and truncated.values != chunked.values
    # The work is windows: a chunked document counts each window it took, a truncated one counts one.
    assert chunked.windows == expected.num_chunks > 1 and truncated.windows == 1
