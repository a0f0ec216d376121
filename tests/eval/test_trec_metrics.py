"""Measures on a hand-made run whose values are worked out by hand below (trec_eval conventions:
gain = grade, discount log2(rank + 1), relevant = grade >= 1)."""

from __future__ import annotations

import math

import pytest

from turborank.eval.metrics import evaluate, evaluate_per_query

QRELS = {"q1": {"d1": 1, "d3": 2, "d2": 0}, "q2": {"d5": 1}, "q3": {"d9": 1}}
RUN = {
    # q1 ranks: d2 (grade 0), d3 (grade 2), d4 (unjudged), d1 (grade 1).
    "q1": {"d2": 4.0, "d3": 3.0, "d4": 2.0, "d1": 1.0},
    # q2: ten non-relevant documents, then d5 at rank 11 (outside every @10 cut).
    "q2": {**{f"x{i}": 20.0 - i for i in range(10)}, "d5": 1.0},
    # q3 is judged but the run has nothing for it: it must count as 0, not vanish from the means.
}

Q1_DCG = 2 / math.log2(3) + 1 / math.log2(5)
Q1_IDCG = 2 / math.log2(2) + 1 / math.log2(3)
Q1_NDCG = Q1_DCG / Q1_IDCG  # 0.6433


def test_per_query_values_by_hand():
    values = evaluate_per_query(RUN, QRELS, ["NDCG@10", "MRR@10", "MRR", "Hit@1", "Hit@3", "Recall@100"])
    assert values["q1"]["NDCG@10"] == pytest.approx(Q1_NDCG, abs=1e-9)
    assert values["q1"]["MRR@10"] == pytest.approx(1 / 2)
    assert values["q1"]["Hit@1"] == 0.0
    assert values["q1"]["Hit@3"] == 1.0
    assert values["q2"]["NDCG@10"] == 0.0
    assert values["q2"]["MRR@10"] == 0.0  # first relevant at rank 11
    assert values["q2"]["MRR"] == pytest.approx(1 / 11)  # the uncut MRR still sees it
    assert values["q2"]["Recall@100"] == 1.0
    assert values["q3"] == {m: 0.0 for m in values["q3"]}


def test_means_count_unretrieved_queries_as_zero():
    means = evaluate(RUN, QRELS, ["NDCG@10", "MRR@10", "Hit@3", "MAP"])
    assert means["NDCG@10"] == pytest.approx(Q1_NDCG / 3)
    assert means["MRR@10"] == pytest.approx(0.5 / 3)
    assert means["Hit@3"] == pytest.approx(1 / 3)
    # MAP: q1 precision at its relevant ranks 2 and 4 is 1/2 and 2/4; q2's only relevant doc is at 11.
    assert means["MAP"] == pytest.approx(((1 / 2 + 2 / 4) / 2 + 1 / 11) / 3)


def test_query_set_with_unjudged_queries():
    means = evaluate(RUN, QRELS, ["MRR@10"], queries=["q1", "q2", "q3", "q4"])
    assert means["MRR@10"] == pytest.approx(0.5 / 4)


def test_ties_follow_trec_eval_order():
    # Equal scores: trec_eval ranks the larger doc id first, and MRR@1's cut must agree with it.
    run = {"q": {"a": 1.0, "b": 1.0}}
    assert evaluate(run, {"q": {"b": 1}}, ["MRR@1", "MRR"]) == {"MRR@1": 1.0, "MRR": 1.0}
    assert evaluate(run, {"q": {"a": 1}}, ["MRR@1", "MRR"]) == {"MRR@1": 0.0, "MRR": 0.5}


@pytest.mark.parametrize("name", ["nDCG", "NDCG", "Hit", "MRR@0", "BLEU@4"])
def test_bad_measure_names(name):
    with pytest.raises(ValueError, match="measure"):
        evaluate(RUN, QRELS, [name])


def test_empty_qrels_rejected():
    with pytest.raises(ValueError, match="qrels are empty"):
        evaluate(RUN, {}, ["NDCG@10"])


def test_relevance_level_for_binary_measures():
    run, qrels = {"q": {"a": 2.0, "b": 1.0}}, {"q": {"a": 1, "b": 2}}
    assert evaluate(run, qrels, ["MRR@10"]) == {"MRR@10": 1.0}
    # TREC DL counts grade 1 as not relevant: the first relevant passage is then at rank 2.
    assert evaluate(run, qrels, ["MRR@10"], relevance_level=2) == {"MRR@10": 0.5}
