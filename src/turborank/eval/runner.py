"""Evaluate one dataset: first stage, rerank its top k through the score cache, measure both.

Every result is a flat ``Record`` (one system on one dataset split), so results from many runs
merge into one table by simply concatenating record lists.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .bm25 import BM25Index
from .cache import ScoreCache
from .data import (
    BeirDataset,
    DatasetError,
    Run,
    drop_identical_ids,
    load_beir,
    read_trec_run,
    sample_queries,
    top_k,
    write_trec_run,
)
from .metrics import evaluate
from .scoring import Scorer, Scores
from .suites import DatasetSpec

log = logging.getLogger(__name__)

FIRST_STAGE_RUNS = ("bm25_top100.{split}.trec", "runs/BM25.trec", "runs/BM25_top*.trec")


@dataclass
class Latency:
    """Scoring time per query, from the cache's timings (queries scored in one go, this run or earlier).

    ``documents`` are (query, document) pairs; ``windows`` the model inputs they took, more than the
    documents when long documents are chunked (None when the scorer cannot tell, as for an endpoint).
    """

    queries: int
    documents: int
    windows: int | None
    seconds: float
    documents_per_s: float
    windows_per_s: float | None
    p50_ms: float
    p95_ms: float


@dataclass
class Record:
    """One system's measures on one dataset split."""

    system: str
    dataset: str
    split: str
    stage: str  # "first-stage" or "reranked"
    first_stage: str  # where the candidates came from
    k: int
    queries: int
    headline: str
    measures: dict[str, float]
    relevance_level: int = 1
    sampled: bool = False  # queries is a seeded sample of the split (data.sample_queries)
    suite: str | None = None
    card_name: str | None = None
    latency: dict[str, Any] | None = None
    run_file: str | None = None
    settings: dict[str, Any] | None = None
    note: str | None = None
    rules: dict[str, Any] | None = None  # the evaluation rules that applied, and where they came from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_stage(
    spec: DatasetSpec, data: BeirDataset, choice: str = "auto", k: int = 100
) -> tuple[Run, str, str]:
    """The candidates to rerank: a run shipped with the dataset, bm25s, or a given TREC file.

    Args:
        spec: the dataset.
        data: its loaded split.
        choice: "auto" (a shipped BM25 run when there is one, else bm25s), "bm25", or a run file path.
        k: documents per query bm25s retrieves (a run file is taken whole).

    Returns:
        (run over the split's queries, system label, description of the source).
    """
    path = _shipped_run(spec) if choice == "auto" else None if choice == "bm25" else Path(choice)
    if path is None:
        start = time.perf_counter()
        run = BM25Index.build(data.corpus).search(data.queries, k=k)
        log.info(
            "%s: bm25s over %d documents in %.1fs", spec.name, len(data.corpus), time.perf_counter() - start
        )
        return run, "BM25", "bm25s (k1 0.9, b 0.4, English stopwords + Snowball)"
    full = read_trec_run(path, corpus=data.corpus)
    # A run may cover several splits; the split's own queries are what is evaluated.
    run = {qid: docs for qid, docs in full.items() if qid in data.queries}
    if not run:
        raise DatasetError(f"{path}: none of its queries belong to split {spec.split!r} of {spec.directory}")
    # The file's own name: "bm25" in it may well be an LLM reranking *of* BM25.
    label = path.stem.removesuffix(f".{spec.split}")
    return run, label, str(path)


def rerank(
    scorer: Scorer,
    data: BeirDataset,
    candidates: Run,
    cache: ScoreCache,
    description: str = "",
    progress: bool = True,
) -> tuple[Run, Latency | None]:
    """Score every candidate the cache does not hold yet; return the reranked run and its latency."""
    todo = []
    reranked: Run = {}
    for qid, docs in candidates.items():
        doc_ids = list(docs)
        cached = cache.get(scorer.identity, qid, doc_ids)
        reranked[qid] = cached
        missing = [d for d in doc_ids if d not in cached]
        if missing:
            todo.append((qid, missing, len(missing) == len(doc_ids)))

    def work(item: tuple[str, list[str], bool]) -> tuple[str, list[str], bool, Scores, float]:
        qid, missing, whole = item
        start = time.perf_counter()
        scores = scorer.score(data.queries[qid], [data.corpus[d].full_text for d in missing])
        return qid, missing, whole, scores, time.perf_counter() - start

    total = sum(len(m) for _, m, _ in todo)
    with (
        tqdm(total=total, unit="pair", desc=description, disable=not progress or not total) as bar,
        ThreadPoolExecutor(scorer.concurrency) as pool,
    ):
        # Results come back in order on this thread, which alone writes the cache.
        for qid, missing, whole, scores, seconds in pool.map(work, todo):
            new = dict(zip(missing, scores.values, strict=True))
            # A query's time means something only when all of its pairs were scored together.
            cache.put(scorer.identity, qid, new, seconds if whole else None, scores.windows)
            reranked[qid].update(new)
            bar.update(len(missing))
    return reranked, _latency(cache, scorer.identity, candidates)


def evaluate_dataset(
    spec: DatasetSpec,
    scorers: Sequence[Scorer],
    cache: ScoreCache,
    output_dir: Path | None = None,
    *,
    first_stage_choice: str = "auto",
    k: int | None = None,
    measures: Sequence[str] | None = None,
    progress: bool = True,
    sample: int | None = None,
) -> list[Record]:
    """First stage plus every scorer's reranking of its top k, each as a ``Record``.

    Args:
        spec: the dataset and its protocol.
        scorers: rerankers to compare (none: first stage only).
        cache: score cache shared by all datasets.
        output_dir: where TREC runs go (``runs/<system>/<dataset>.<split>.trec``); None writes none.
        first_stage_choice: see ``first_stage``.
        k: candidates per query (default: the dataset's protocol).
        measures: measures to report (default: the dataset's protocol).
        progress: show tqdm bars.
        sample: evaluate a seeded sample of this many queries (``data.sample_queries``), not the split;
            a sample that covers the whole split is the split, and its records say so.
    """
    k = k or spec.k
    measures = tuple(measures or spec.measures)
    if spec.headline not in measures:
        measures = (spec.headline, *measures)
    data = load_beir(spec.directory, spec.split, keep_unjudged=spec.keep_unjudged)
    if not data.qrels:
        raise DatasetError(f"{spec.directory}: no qrels/ folder, so there is nothing to measure against")
    judged = len(data.queries)
    if sample is not None:
        data = sample_queries(data, sample)
    # BEIR's retrievers fetch one more than k, so k remain once the query's own document is dropped.
    full_run, label, source = first_stage(spec, data, first_stage_choice, max(k, 100) + 1)
    dropped = 0
    if spec.ignore_identical_ids:
        full_run, dropped = drop_identical_ids(full_run)
    candidates = top_k(full_run, k)
    common = {
        "dataset": spec.name,
        "split": spec.split,
        "first_stage": source,
        "k": k,
        "queries": len(data.queries),
        "sampled": len(data.queries) < judged,
        "headline": spec.headline,
        "relevance_level": spec.relevance_level,
        "suite": spec.suite,
        "card_name": spec.card_name,
        "note": spec.note,
        "rules": {
            "protocol": spec.protocol,
            "relevance_level": spec.relevance_level,
            "ignore_identical_ids": spec.ignore_identical_ids,
            "identical_ids_dropped": dropped,
        },
    }
    records = [
        Record(
            system=label,
            stage="first-stage",
            # Measured on the same top k the rerankers see, so the two rows compare like for like.
            measures=evaluate(candidates, data.qrels, measures, data.queries, spec.relevance_level),
            run_file=_write(candidates, output_dir, label, spec),
            settings={"first_stage": source},
            **common,
        )
    ]
    for scorer in scorers:
        run, latency = rerank(scorer, data, candidates, cache, f"{scorer.label} | {spec.name}", progress)
        records.append(
            Record(
                system=scorer.label,
                stage="reranked",
                measures=evaluate(run, data.qrels, measures, data.queries, spec.relevance_level),
                latency=asdict(latency) if latency else None,
                run_file=_write(run, output_dir, scorer.label, spec),
                settings=scorer.settings,
                **common,
            )
        )
    return records


def _shipped_run(spec: DatasetSpec) -> Path | None:
    for pattern in FIRST_STAGE_RUNS:
        matches = sorted(spec.directory.glob(pattern.format(split=spec.split)))
        if matches:
            return matches[0]
    return None


def _latency(cache: ScoreCache, identity: str, candidates: Run) -> Latency | None:
    timings = [t for t in (cache.timing(identity, qid) for qid in candidates) if t is not None]
    if not timings:
        return None
    seconds = np.array([s for s, _, _ in timings])
    documents = sum(d for _, d, _ in timings)
    windows = None if any(w is None for _, _, w in timings) else sum(w for _, _, w in timings)
    total = float(seconds.sum())
    return Latency(
        queries=len(timings),
        documents=documents,
        windows=windows,
        seconds=total,
        documents_per_s=_per_second(documents, total),
        windows_per_s=None if windows is None else _per_second(windows, total),
        p50_ms=float(np.percentile(seconds, 50) * 1000),
        p95_ms=float(np.percentile(seconds, 95) * 1000),
    )


def _per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def slug(text: str) -> str:
    """A file-name-safe, space-free version of a system label (also the TREC run tag)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "run"


def _write(run: Run, output_dir: Path | None, system: str, spec: DatasetSpec) -> str | None:
    if output_dir is None:
        return None
    path = output_dir / "runs" / slug(system) / f"{spec.name}.{spec.split}.trec"
    write_trec_run(run, path, slug(system))
    return str(path)
