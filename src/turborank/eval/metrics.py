"""Retrieval measures through pytrec_eval (trec_eval's own C code), never re-derived by hand.

Measure names follow the model card and ir_measures: ``NDCG@10``, ``MRR@10``, ``MAP``, ``Recall@100``,
``Hit@5``. Each maps to a trec_eval measure; MRR@k is trec_eval's ``recip_rank`` on each query's top k,
which is its definition.

Averages are over every judged query (trec_eval ``-c``), or over a given query set: a query the
run left empty, or one with no judgments, scores 0 instead of silently leaving the mean, so a
reranker cannot gain by dropping hard queries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from .data import Qrels, top_k

DEFAULT_MEASURES = ("NDCG@10", "MRR@10", "MAP", "Recall@100", "Hit@10")

# Our name (without @k) -> (trec_eval measure, whether it takes a cutoff).
_TREC_EVAL = {
    "NDCG": ("ndcg_cut", True),
    "MRR": ("recip_rank", False),
    "MAP": ("map", False),
    "Recall": ("recall", True),
    "P": ("P", True),
    "Hit": ("success", True),
}
_NAME = re.compile(r"^(?P<base>[A-Za-z]+)(?:@(?P<k>[1-9][0-9]*))?$")


def evaluate_per_query(
    run: Mapping[str, Mapping[str, float]],
    qrels: Qrels,
    measures: Sequence[str] = DEFAULT_MEASURES,
    queries: Iterable[str] | None = None,
    relevance_level: int = 1,
) -> dict[str, dict[str, float]]:
    """Each judged query's value of each measure.

    Args:
        run: query id -> doc id -> score; higher scores rank first (trec_eval breaks ties by doc id).
        qrels: query id -> doc id -> graded relevance (>= 1 counts as relevant for binary measures).
        measures: names such as ``NDCG@10``, ``MRR@10``, ``MAP``, ``Recall@100``, ``Hit@5``, ``P@5``.
        queries: the query ids to report (default: those in ``qrels``); unjudged ones score 0.
        relevance_level: lowest grade that counts as relevant for binary measures (MRR, MAP, recall,
            hit); TREC DL uses 2. NDCG always uses the grades themselves.

    Returns:
        query id -> measure name -> value, for every query in ``queries``.

    Raises:
        ValueError: an unknown measure name (the message lists the known ones) or empty qrels.

    Example:
        >>> evaluate_per_query({"q": {"a": 2.0, "b": 1.0}}, {"q": {"b": 1}}, ["MRR@10"])
        {'q': {'MRR@10': 0.5}}
    """
    import pytrec_eval  # noqa: PLC0415 - optional dependency

    if not qrels:
        raise ValueError("qrels are empty: there is nothing to evaluate against")
    parsed = [_parse(name) for name in measures]
    out: dict[str, dict[str, float]] = {qid: {} for qid in (qrels if queries is None else queries)}
    # One evaluator per distinct run truncation: only MRR@k needs the run cut to its top k.
    by_depth: dict[int | None, list[tuple[str, str]]] = {}
    for name, trec_measure, key, depth in parsed:
        by_depth.setdefault(depth, []).append((name, trec_measure, key))
    for depth, group in by_depth.items():
        evaluator = pytrec_eval.RelevanceEvaluator(
            qrels, {m for _, m, _ in group}, relevance_level=relevance_level
        )
        scored = evaluator.evaluate(_as_plain(run if depth is None else top_k(run, depth)))
        for qid in out:
            values = scored.get(qid, {})
            for name, _, key in group:
                out[qid][name] = float(values.get(key, 0.0))
    return out


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Qrels,
    measures: Sequence[str] = DEFAULT_MEASURES,
    queries: Iterable[str] | None = None,
    relevance_level: int = 1,
) -> dict[str, float]:
    """Mean of each measure over every judged query, or over ``queries`` (see ``evaluate_per_query``).

    Example:
        >>> run = {"q1": {"a": 2.0, "b": 1.0}, "q2": {"c": 1.0}}
        >>> evaluate(run, {"q1": {"b": 1}, "q2": {"c": 1}}, ["Hit@1"])
        {'Hit@1': 0.5}
    """
    per_query = evaluate_per_query(run, qrels, measures, queries, relevance_level)
    if not per_query:
        raise ValueError("no queries to average over")
    return {name: sum(values[name] for values in per_query.values()) / len(per_query) for name in measures}


def check_measures(names: Sequence[str]) -> None:
    """Raise ``ValueError``, naming the known measures, unless ``names`` is a non-empty list of measures."""
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"measures must be a non-empty list of names such as NDCG@10, got {names!r}")
    for name in names:
        _parse(name)


def _parse(name: str) -> tuple[str, str, str, int | None]:
    """'NDCG@10' -> (name, trec_eval measure to request, key in its output, run depth to cut to)."""
    match = _NAME.match(name)
    base = match["base"] if match else None
    if base not in _TREC_EVAL:
        known = ", ".join(f"{b}@k" if cut else b for b, (_, cut) in _TREC_EVAL.items())
        raise ValueError(f"unknown measure {name!r}; known: {known} (e.g. NDCG@10)")
    trec_measure, takes_cutoff = _TREC_EVAL[base]
    k = int(match["k"]) if match["k"] else None
    if takes_cutoff:
        if k is None:
            raise ValueError(f"measure {name!r} needs a cutoff, e.g. {base}@10")
        return name, f"{trec_measure}.{k}", f"{trec_measure}_{k}", None
    # MRR@k and MAP@k: trec_eval's uncut measure over the run cut to its top k.
    return name, trec_measure, trec_measure, k


def _as_plain(run: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    # pytrec_eval's C extension accepts only real dicts of float scores.
    return {qid: {doc: float(score) for doc, score in docs.items()} for qid, docs in run.items()}
