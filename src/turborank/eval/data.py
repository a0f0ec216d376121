"""Read BEIR-format datasets and TREC run files; write TREC runs.

BEIR layout: ``corpus.jsonl`` ({_id, title, text}), ``queries.jsonl`` ({_id, text}) and
``qrels/<split>.tsv`` (header ``query-id corpus-id score``). Every error names the file, the line
and what to fix, because these files are usually hand-built conversions.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import TurborankError

log = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]  # query id -> doc id -> score (higher is better)
Qrels = dict[str, dict[str, int]]  # query id -> doc id -> graded relevance


class DatasetError(TurborankError):
    """A dataset or run file is missing, malformed, or refers to ids that do not exist."""


@dataclass(frozen=True)
class Document:
    """One corpus entry. ``full_text`` is what BM25 indexes and what rerankers read."""

    title: str
    text: str

    @property
    def full_text(self) -> str:
        # BEIR's own convention (and bm25s' BEIR utilities): title, a space, then the body.
        return f"{self.title} {self.text}" if self.title else self.text


@dataclass
class BeirDataset:
    """A corpus, the queries of one split and their graded judgments."""

    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: Qrels
    directory: Path | None = None
    split: str | None = None
    # Judged documents that are not in the corpus (pooled sets such as TREC DL): they stay in the qrels,
    # so recall-based measures see them as relevant documents that were never retrieved.
    unjudgeable: int = field(default=0)

    @property
    def name(self) -> str:
        return self.directory.name if self.directory else "dataset"


def load_beir(directory: str | Path, split: str = "test", keep_unjudged: bool = False) -> BeirDataset:
    """Load a BEIR-format folder.

    Args:
        directory: folder with ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.
        split: the qrels file stem (``test``, ``dev``, ``test-summary``, ...). When the folder has no
            ``qrels/`` at all, every query is kept and ``qrels`` is empty (reranking without judgments).
        keep_unjudged: keep every query of ``queries.jsonl``, not only the judged ones. For folders whose
            queries all belong to this split but whose qrels omit some (MS MARCO pools judged only in the
            top 20): those queries then count as 0 in the means, as in the official evaluation.

    Returns:
        The dataset; ``queries`` holds only the queries judged in that split.

    Raises:
        DatasetError: a missing file or split, a malformed line (with file and line number), a qrels
            line naming an unknown query, or a qrels file with no judgments.

    Example:
        >>> data = load_beir("../shared/data/beir-scifact", split="test")
        >>> len(data.queries), len(data.corpus)
        (300, 5183)
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: no such dataset folder (expected a BEIR layout: corpus.jsonl, ...)")
    corpus = read_corpus(directory / "corpus.jsonl")
    queries = _read_queries(directory / "queries.jsonl")
    qrels_dir = directory / "qrels"
    if not qrels_dir.is_dir():
        return BeirDataset(corpus, queries, {}, directory, None)
    qrels_path = qrels_dir / f"{split}.tsv"
    if not qrels_path.is_file():
        available = ", ".join(sorted(p.stem for p in qrels_dir.glob("*.tsv"))) or "none"
        raise DatasetError(f"{qrels_path}: no qrels for split {split!r}; splits here: {available}")
    qrels = read_qrels(qrels_path, queries)
    unjudgeable = sum(doc not in corpus for docs in qrels.values() for doc in docs)
    if unjudgeable:
        log.info("%s: %d judged documents are not in the corpus (pooled set)", qrels_path, unjudgeable)
    split_queries = queries if keep_unjudged else {qid: queries[qid] for qid in qrels}
    return BeirDataset(corpus, split_queries, qrels, directory, split, unjudgeable)


def sample_queries(data: BeirDataset, n: int, seed: int = 0) -> BeirDataset:
    """``n`` of the split's queries, drawn by a seeded generator from their sorted ids (the same ones on
    every machine), with their judgments; all of them when the split has no more than ``n``.

    For sets too slow to rerank whole on a CPU (QMSum's transcripts average 12.8k tokens): the first
    stage is measured on the same sample, so the two rows still compare like for like.

    Raises:
        DatasetError: ``n`` below 1.
    """
    if n < 1:
        raise DatasetError(f"a query sample needs at least 1 query, got {n}")
    chosen = set(random.Random(seed).sample(sorted(data.queries), min(n, len(data.queries))))
    return replace(
        data,
        queries={qid: text for qid, text in data.queries.items() if qid in chosen},
        qrels={qid: docs for qid, docs in data.qrels.items() if qid in chosen},
    )


def read_qrels(path: Path, queries: Mapping[str, str] | None = None) -> Qrels:
    """Read a BEIR qrels TSV (``query-id corpus-id score`` with a header line) into graded judgments."""
    qrels: Qrels = {}
    for number, line in _lines(path):
        parts = line.split("\t")
        if number == 1 and parts[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue
        if len(parts) != 3:
            raise DatasetError(
                f"{path}:{number}: expected 3 tab-separated fields (query-id, corpus-id, score), "
                f"got {len(parts)}"
            )
        qid, doc, score = (p.strip() for p in parts)
        try:
            grade = int(float(score))
        except ValueError:
            raise DatasetError(f"{path}:{number}: relevance {score!r} is not a number") from None
        if queries is not None and qid not in queries:
            raise DatasetError(f"{path}:{number}: query id {qid!r} is not in queries.jsonl")
        qrels.setdefault(qid, {})[doc] = grade
    if not qrels:
        raise DatasetError(
            f"{path}: no judgments; a qrels file needs at least one 'query-id corpus-id score' line"
        )
    return qrels


def read_trec_run(
    path: str | Path, queries: Mapping[str, str] | None = None, corpus: Mapping[str, object] | None = None
) -> Run:
    """Read a TREC run (``qid Q0 docid rank score tag`` per line).

    Args:
        path: the run file.
        queries: when given, every query id must be one of these.
        corpus: when given, every document id must be one of these (a reranker needs the text).

    Returns:
        query id -> doc id -> score. The ranks in the file are ignored: trec_eval orders by score too.

    Raises:
        DatasetError: a malformed line or an unknown id, with file and line number.
    """
    path = Path(path)
    run: Run = {}
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise DatasetError(
                f"{path}:{number}: expected 6 fields 'qid Q0 docid rank score tag', got {len(parts)}"
            )
        qid, _, doc, _, score, _ = parts
        try:
            value = float(score)
        except ValueError:
            raise DatasetError(f"{path}:{number}: score {score!r} is not a number") from None
        if queries is not None and qid not in queries:
            raise DatasetError(f"{path}:{number}: query id {qid!r} is not in the dataset's queries")
        if corpus is not None and doc not in corpus:
            raise DatasetError(f"{path}:{number}: document id {doc!r} is not in corpus.jsonl")
        run.setdefault(qid, {})[doc] = value
    if not run:
        raise DatasetError(f"{path}: empty run file")
    return run


def write_trec_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str) -> None:
    """Write a run in TREC format, each query's documents in trec_eval's order (see ``ranked``)."""
    if not tag or any(c.isspace() for c in tag):
        raise DatasetError(f"run tag must be a non-empty word without spaces, got {tag!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for qid in sorted(run):
            for rank, (doc, score) in enumerate(ranked(run[qid]), 1):
                out.write(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n")


def ranked(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """(doc id, score) by descending score; ties by descending doc id, exactly as trec_eval orders them."""
    return sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)


def drop_identical_ids(run: Mapping[str, Mapping[str, float]]) -> tuple[Run, int]:
    """The run without any document whose id equals its query's id, and how many were dropped.

    BEIR's rule (``EvaluateRetrieval.evaluate(ignore_identical_ids=True)``, its default, and its
    retrievers' top k + 1): in sets whose queries are corpus documents (ArguAna, Quora) the query's own
    document would otherwise rank first.
    """
    kept = {qid: {doc: score for doc, score in docs.items() if doc != qid} for qid, docs in run.items()}
    return kept, sum(len(docs) for docs in run.values()) - sum(len(docs) for docs in kept.values())


def top_k(run: Mapping[str, Mapping[str, float]], k: int) -> Run:
    """Keep each query's k best documents, cut in trec_eval's order so measures at k agree with it."""
    return {qid: dict(ranked(docs)[:k]) for qid, docs in run.items()}


def read_corpus(path: Path) -> dict[str, Document]:
    """Read a BEIR corpus.jsonl (``_id``, ``title``, ``text``); errors name the file and line."""
    corpus = {}
    for number, row in _jsonl(path):
        text = row.get("text")
        if not isinstance(text, str):
            raise DatasetError(f'{path}:{number}: a corpus line needs a string "text" field')
        title = row.get("title") or ""
        corpus[_id(row, path, number)] = Document(str(title), text)
    if not corpus:
        raise DatasetError(f"{path}: empty corpus")
    return corpus


def _read_queries(path: Path) -> dict[str, str]:
    queries = {}
    for number, row in _jsonl(path):
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f'{path}:{number}: a query line needs a non-empty string "text" field')
        queries[_id(row, path, number)] = text
    if not queries:
        raise DatasetError(f"{path}: no queries")
    return queries


def _id(row: dict, path: Path, number: int) -> str:
    value = row.get("_id")
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise DatasetError(f'{path}:{number}: missing "_id" (a string or integer)')
    return str(value)


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    for number, line in _lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based line numbers."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line.rstrip("\n")
