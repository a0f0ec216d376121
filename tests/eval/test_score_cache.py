"""The score cache: an interrupted run resumes where it stopped, and a rerun scores nothing."""

from __future__ import annotations

import pytest
from eval_helpers import write_beir

from turborank.eval.cache import ScoreCache
from turborank.eval.runner import evaluate_dataset
from turborank.eval.scoring import Scores
from turborank.eval.suites import dataset_spec

CORPUS = {f"d{i}": ("", f"document {i} about topic {i % 3} " * (i + 1)) for i in range(8)}
QUERIES = {f"q{i}": f"topic {i}" for i in range(3)}
QRELS = {f"q{i}": {f"d{i}": 1, f"d{i + 3}": 1} for i in range(3)}


class CountingScorer:
    """Scores by document length; counts pairs, and can fail after a number of queries (an interrupt)."""

    concurrency = 1
    settings = {"kind": "fake"}

    def __init__(self, identity="fake", fail_after=None):
        self.identity = identity
        self.label = identity
        self.pairs = 0
        self.calls = 0
        self.fail_after = fail_after

    def score(self, query, documents):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.pairs += len(documents)
        return Scores([float(len(d)) for d in documents], len(documents))


@pytest.fixture
def spec(tmp_path):
    return dataset_spec(write_beir(tmp_path / "tiny", CORPUS, QUERIES, QRELS))


def test_interrupted_run_resumes_and_rerun_is_free(spec, tmp_path):
    path = tmp_path / "cache" / "scores.sqlite"
    interrupted = CountingScorer(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate_dataset(spec, [interrupted], ScoreCache(path), k=8, progress=False)
    assert interrupted.pairs == 16  # two queries of eight candidates were scored and kept

    resumed = CountingScorer()
    first = evaluate_dataset(spec, [resumed], ScoreCache(path), k=8, progress=False)
    assert resumed.pairs == 8  # only the third query

    again = CountingScorer()
    second = evaluate_dataset(spec, [again], ScoreCache(path), k=8, progress=False)
    assert again.pairs == 0
    assert second[1].measures == first[1].measures
    assert second[1].latency == first[1].latency  # timings come from the cache too
    assert first[1].latency["queries"] == 3 and first[1].latency["documents"] == 24

    other = CountingScorer(identity="other-model")
    evaluate_dataset(spec, [other], ScoreCache(path), k=8, progress=False)
    assert other.pairs == 24  # another identity never reads these scores


def test_larger_k_scores_only_the_new_candidates(spec):
    cache = ScoreCache(None)
    scorer = CountingScorer()
    evaluate_dataset(spec, [scorer], cache, k=4, progress=False)
    evaluate_dataset(spec, [scorer], cache, k=8, progress=False)
    assert scorer.pairs == 3 * 8
