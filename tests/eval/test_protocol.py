"""Evaluation rules: BEIR's identical-id rule, the protocol read from eval.json (with flags over it),
labels that say what ran, and throughput in documents and windows."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import pytest
from eval_helpers import SMALL_MODEL, write_beir

from turborank import Reranker
from turborank.cli import main
from turborank.eval.cache import ScoreCache
from turborank.eval.data import DatasetError, load_beir, read_trec_run
from turborank.eval.report import format_rate
from turborank.eval.runner import evaluate_dataset, first_stage
from turborank.eval.scoring import LocalScorer, Scores, rerank_options
from turborank.eval.suites import dataset_spec

# ArguAna-like: each query *is* an argument of the corpus (same id, same text); its counter-argument
# is the relevant document, so BM25 ranks the query's own argument first unless BEIR's rule drops it.
ARGUMENTS = {
    "a1": ("", "school uniforms stop bullying over clothes and save parents money"),
    "a2": ("", "uniforms do not stop bullying; children find other things to mock, and money is not saved"),
    "a3": ("", "nuclear power is a clean source of energy with low carbon emissions"),
    "a4": ("", "nuclear energy leaves waste for millennia, so clean is the wrong word for it"),
    "a5": ("", "homework teaches discipline to children"),
    "a6": ("", "space exploration is worth its cost"),
}
QUERIES = {"a1": ARGUMENTS["a1"][1], "a3": ARGUMENTS["a3"][1]}
QRELS = {"a1": {"a2": 1}, "a3": {"a4": 1}}


class TextMatchScorer:
    """Scores a document 1 when it is the query's own text: a reranker that would put it first."""

    label = identity = "text-match"
    settings = {"kind": "fake"}
    concurrency = 1

    def score(self, query, documents):
        return Scores([1.0 if document == query else 0.0 for document in documents], len(documents))


@pytest.fixture
def arguana(tmp_path):
    return write_beir(tmp_path / "arguana-like", ARGUMENTS, QUERIES, QRELS)


def records_of(folder, scorers=(), output_dir=None, **overrides):
    spec = replace(dataset_spec(folder), **overrides)
    return evaluate_dataset(spec, list(scorers), ScoreCache(None), output_dir, k=3, progress=False)


def test_the_query_own_document_is_dropped_from_first_stage_and_reranking(arguana, tmp_path):
    first, reranked = records_of(arguana, [TextMatchScorer()], tmp_path)
    assert first.rules["ignore_identical_ids"] and first.rules["identical_ids_dropped"] == 2
    assert first.rules["protocol"] == "defaults"
    assert first.measures["MRR@10"] == 1.0  # the counter-argument first once the query's own is gone
    reranked_run = read_trec_run(reranked.run_file)
    assert all(len(docs) == 3 and qid not in docs for qid, docs in reranked_run.items())


def test_without_the_rule_the_query_own_document_ranks_first(arguana, tmp_path):
    first, reranked = records_of(arguana, [TextMatchScorer()], tmp_path, ignore_identical_ids=False)
    assert not first.rules["ignore_identical_ids"] and first.rules["identical_ids_dropped"] == 0
    assert first.measures["MRR@10"] == 0.5
    reranked_run = read_trec_run(reranked.run_file)
    assert all(max(docs, key=docs.get) == qid for qid, docs in reranked_run.items())


def test_the_first_stage_still_gives_k_candidates_after_dropping(arguana, tmp_path):
    out = tmp_path / "out"
    args = ["eval", "--dataset", str(arguana), "--k", "3", "--no-rerank", "--quiet", "--output-dir", str(out)]
    assert main(args) == 0
    run = read_trec_run(out / "runs" / "BM25" / "arguana-like.test.trec")
    assert all(len(docs) == 3 and qid not in docs for qid, docs in run.items())
    record = json.loads((out / "results.json").read_text())["records"][0]
    assert record["rules"] == {
        "protocol": "defaults",
        "relevance_level": 1,
        "ignore_identical_ids": True,
        "identical_ids_dropped": 2,
    }


def test_shipped_run_files_are_cleaned_and_labelled_by_their_stem(arguana):
    lines = [f"{q} Q0 {d} {r} {10 - r} x" for q in QUERIES for r, d in enumerate([q, "a2", "a4", "a5"], 1)]
    (arguana / "bm25_top100.test.trec").write_text("\n".join(lines) + "\n")
    (first,) = records_of(arguana)
    assert first.system == "bm25_top100" and first.rules["identical_ids_dropped"] == 2
    assert first.measures["MRR@10"] == 0.75  # a2 first for a1; for a3, a4 after a2


def test_the_flag_turns_the_rule_off(arguana, tmp_path):
    out = tmp_path / "out"
    args = ["eval", "--dataset", str(arguana), "--k", "3", "--no-rerank", "--quiet", "--output-dir", str(out)]
    assert main([*args, "--no-ignore-identical-ids"]) == 0
    record = json.loads((out / "results.json").read_text())["records"][0]
    assert (
        record["rules"]["ignore_identical_ids"] is False and record["rules"]["protocol"] == "defaults + flags"
    )
    run = read_trec_run(out / "runs" / "BM25" / "arguana-like.test.trec")
    assert all(qid in docs for qid, docs in run.items())


# A TREC DL year in BEIR layout the harness has never heard of: grade 1 means "related", not relevant.
DL_CORPUS = {"p1": ("", "related passage"), "p2": ("", "relevant passage"), "p3": ("", "other passage")}
DL_QUERIES = {"100": "passage"}
DL_QRELS = {"100": {"p1": 1, "p2": 2}}


def dl_folder(tmp_path, protocol=None):
    folder = write_beir(tmp_path / "dl20-beir", DL_CORPUS, DL_QUERIES, DL_QRELS)
    lines = [f"100 Q0 {d} {r} {10 - r} run" for r, d in enumerate(["p1", "p2", "p3"], 1)]
    (folder / "bm25_top100.test.trec").write_text("\n".join(lines) + "\n")
    if protocol is not None:
        (folder / "eval.json").write_text(json.dumps(protocol))
    return folder


def test_eval_json_sets_the_protocol(tmp_path):
    protocol = {"relevance_level": 2, "k": 2, "measures": ["MRR@10", "Hit@1"], "ignore_identical_ids": False}
    spec = dataset_spec(dl_folder(tmp_path, protocol))
    assert (spec.relevance_level, spec.k, spec.measures) == (2, 2, ("MRR@10", "Hit@1"))
    assert not spec.ignore_identical_ids and spec.protocol == "eval.json"
    (first,) = evaluate_dataset(spec, [], ScoreCache(None), progress=False)
    assert first.k == 2 and first.measures == {
        "NDCG@10": pytest.approx(first.measures["NDCG@10"]),
        "MRR@10": 0.5,
        "Hit@1": 0.0,
    }
    assert first.rules["protocol"] == "eval.json" and first.rules["relevance_level"] == 2


def test_without_eval_json_grade_one_counts_and_the_flag_overrides(tmp_path, capsys):
    folder = dl_folder(tmp_path)
    assert dataset_spec(folder).relevance_level == 1
    out = tmp_path / "out"
    args = ["eval", "--dataset", str(folder), "--no-rerank", "--quiet", "--measures", "MRR@10"]
    assert main([*args, "--output-dir", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["records"][0]["measures"]["MRR@10"] == 1.0
    assert main([*args, "--relevance-level", "2", "--output-dir", str(out)]) == 0
    record = json.loads((out / "results.json").read_text())["records"][0]
    assert record["measures"]["MRR@10"] == 0.5 and record["relevance_level"] == 2
    assert record["rules"]["protocol"] == "defaults + flags"


def test_known_folders_keep_their_protocol_without_eval_json(tmp_path):
    folder = write_beir(tmp_path / "trec-dl19-passage-rerank", DL_CORPUS, DL_QUERIES, DL_QRELS)
    spec = dataset_spec(folder)
    assert (spec.relevance_level, spec.ignore_identical_ids, spec.protocol) == (2, False, "known folder")
    (folder / "eval.json").write_text('{"relevance_level": 3}')
    assert dataset_spec(folder).relevance_level == 3 and dataset_spec(folder).protocol == "eval.json"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"relevance": 2}', "unknown key 'relevance'; known keys: split, keep_unjudged, k"),
        ('{"k": "100"}', "'k' must be a JSON int"),
        ('{"ignore_identical_ids": 1}', "'ignore_identical_ids' must be a JSON bool"),
        ('{"relevance_level": true}', "'relevance_level' must be a JSON int"),
        ('{"k": 0}', "'k' must be at least 1"),
        ('{"measures": ["NDCG"]}', "needs a cutoff"),
        ('{"measures": []}', "non-empty list"),
        ('{"headline": "nDCG@10"}', "'headline': unknown measure 'nDCG@10'"),
        ("[2]", "expected a JSON object"),
        ("{relevance_level: 2}", "cannot read it as JSON"),
    ],
)
def test_a_bad_eval_json_names_the_file_and_the_fix(tmp_path, content, message):
    folder = dl_folder(tmp_path)
    (folder / "eval.json").write_text(content)
    with pytest.raises(DatasetError, match="eval.json") as error:
        dataset_spec(folder)
    assert message in str(error.value)


def test_bad_rule_flags_are_refused(tmp_path, capsys):
    args = ["eval", "--dataset", str(dl_folder(tmp_path)), "--no-rerank", "--output-dir", str(tmp_path)]
    assert main([*args, "--relevance-level", "0"]) == 2
    assert "--relevance-level must be at least 1" in capsys.readouterr().err
    assert main([*args, "--measures", "NDCG@10", "Precision"]) == 2
    assert "unknown measure 'Precision'" in capsys.readouterr().err


def test_a_run_file_is_labelled_by_its_name_not_by_what_it_mentions(tmp_path):
    folder = dl_folder(tmp_path)
    teacher = tmp_path / "TEACHER_RankGPT_gpt-4_on_BM25.trec"
    teacher.write_text("100 Q0 p2 1 9 gpt\n100 Q0 p1 2 8 gpt\n")
    spec = dataset_spec(folder)
    data = load_beir(folder)
    assert first_stage(spec, data, str(teacher))[1] == "TEACHER_RankGPT_gpt-4_on_BM25"
    assert first_stage(spec, data)[1] == "bm25_top100"


def test_model_rows_name_a_non_default_backend_and_dtype():
    assert LocalScorer(Reranker.from_pretrained(SMALL_MODEL, device="cpu"), rerank_options()).label == "small"
    bf16 = Reranker.from_pretrained(SMALL_MODEL, device="cpu", dtype="bfloat16", backend="torch")
    assert LocalScorer(bf16, rerank_options()).label == "small (torch, bfloat16)"
    assert LocalScorer(bf16, rerank_options(), "mine").label == "mine"


def test_chunked_runs_report_documents_and_windows_per_second(tmp_path, capsys):
    long_text = "filler words about the weather and nothing else . " * 120
    corpus = {f"d{i}": ("", long_text + f"fact number {i}") for i in range(3)}
    folder = write_beir(tmp_path / "long", corpus, {"q": "fact number 1"}, {"q": {"d1": 1}})
    args = ["eval", "--dataset", str(folder), "--model", str(SMALL_MODEL), "--device", "cpu", "--quiet"]
    args += ["--max-length", "64", "--long-documents", "chunk", "--output-dir", str(tmp_path / "out")]
    assert main(args) == 0
    latency = json.loads((tmp_path / "out" / "results.json").read_text())["records"][1]["latency"]
    assert latency["documents"] == 3 and latency["windows"] > 3 * 10
    assert latency["windows_per_s"] == pytest.approx(latency["documents_per_s"] * latency["windows"] / 3)
    err = capsys.readouterr().err
    assert f"{format_rate(latency['documents_per_s'])} documents/s" in err and "windows/s" in err


def test_rates_keep_three_significant_digits():
    assert [format_rate(x) for x in (0.04213, 0.4213, 4.213, 42.13, 421.3, 4213.0)] == [
        "0.0421",
        "0.421",
        "4.21",
        "42.1",
        "421",
        "4,213",
    ]


def test_a_cache_file_from_before_windows_were_counted_still_opens(tmp_path):
    path = tmp_path / "scores.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE timings (scorer TEXT, query_id TEXT, seconds REAL, pairs INTEGER)")
        db.execute("INSERT INTO timings VALUES ('m', 'q1', 0.5, 10)")
    cache = ScoreCache(path)
    assert cache.timing("m", "q1") == (0.5, 10, None)
    cache.put("m", "q2", {"d": 1.0}, seconds=0.1, windows=4)
    assert cache.timing("m", "q2") == (0.1, 1, 4)
    cache.close()


def test_a_sampled_evaluation_measures_both_stages_on_the_sample(arguana, tmp_path):
    out = tmp_path / "out"
    args = ["eval", "--dataset", str(arguana), "--k", "3", "--no-rerank", "--quiet", "--output-dir", str(out)]
    assert main([*args, "--sample-queries", "1"]) == 0
    record = json.loads((out / "results.json").read_text())["records"][0]
    assert record["queries"] == 1 and record["sampled"] is True
    assert len(read_trec_run(out / "runs" / "BM25" / "arguana-like.test.trec")) == 1
    assert "1 sampled queries" in (out / "results.md").read_text()
    assert main([*args, "--sample-queries", "1000"]) == 0  # more than the split has: the split itself
    record = json.loads((out / "results.json").read_text())["records"][0]
    assert record["queries"] > 1 and record["sampled"] is False
    assert "sampled" not in (out / "results.md").read_text()
