"""Which datasets a suite means, where they live locally, and how each is evaluated.

The model card reports NDCG@10 on 17 BEIR datasets, NDCG@10 on 5 LoCo datasets and hit rate on
LlamaIndex's RAG benchmark. Locally (``../shared/data``) only some of these exist, sometimes as
stand-ins; ``resolve_suite`` runs what it finds and names what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .data import DatasetError
from .metrics import DEFAULT_MEASURES

RAG_MEASURES = ("Hit@1", "Hit@3", "Hit@5", "Hit@10", "MRR@5", "MRR@10", "NDCG@10")
LOCO_MAX_LENGTHS = (512, 2048, 8192)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset split to evaluate, with the protocol it is evaluated under."""

    name: str  # column name in the tables
    directory: Path
    split: str
    suite: str | None = None
    card_name: str | None = None  # the dataset's name in the model card's benchmark
    keep_unjudged: bool = False  # see load_beir
    k: int = 100  # first-stage candidates to rerank
    measures: tuple[str, ...] = DEFAULT_MEASURES
    headline: str = "NDCG@10"
    relevance_level: int = 1  # lowest grade counted as relevant by binary measures
    note: str | None = None


@dataclass(frozen=True)
class Known:
    """How a known local folder is evaluated (its protocol when found under the data root)."""

    split: str = "test"
    keep_unjudged: bool = False
    k: int = 100
    measures: tuple[str, ...] = DEFAULT_MEASURES
    headline: str = "NDCG@10"
    relevance_level: int = 1
    note: str | None = None
    card_name: str | None = None


KNOWN = {
    "beir-scifact": Known(card_name="scifact"),
    "nfcorpus-original-preprocessed": Known(
        card_name="nfcorpus",
        note="original release text (lower-cased, stopwords removed): a poor input for cross-encoders",
    ),
    "longdoc-qmsum": Known(card_name="qmsum", note="QMSum meetings stand in for LoCoV1 qmsum"),
    "rag-llama2-paper-qa": Known(
        k=10,
        measures=RAG_MEASURES,
        headline="Hit@5",
        card_name="llama2-paper",
        note="LlamaIndex protocol: first stage top 10, reranked, hit rate and MRR",
    ),
    # TREC DL's graded qrels: passages graded 1 are "related", not relevant, for MAP/MRR/recall.
    "trec-dl19-passage-rerank": Known(card_name="dl19", relevance_level=2),
    "trec-dl21-passage-rerank": Known(card_name="dl21", relevance_level=2),
    # 60 of the 600 queries have their positive outside the top 20 and no qrels line: they count as 0.
    "msmarco-dev-600q-bm25top20": Known(split="dev", keep_unjudged=True, k=20, card_name="msmarco"),
}

# The card does not list its 17 BEIR datasets; these are BEIR's 18 zero-shot test sets (Thakur et al.,
# 2021, table 1) without BioASQ, whose corpus needs a licensed download. Values: local folder names
# (ours first, then the usual BEIR zip names).
BEIR_CARD = {
    "trec-covid": ("trec-covid",),
    "nfcorpus": ("nfcorpus-original-preprocessed", "nfcorpus"),
    "nq": ("nq",),
    "hotpotqa": ("hotpotqa",),
    "fiqa": ("fiqa",),
    "signal1m": ("signal1m",),
    "trec-news": ("trec-news",),
    "robust04": ("robust04",),
    "arguana": ("arguana",),
    "webis-touche2020": ("webis-touche2020",),
    "cqadupstack": ("cqadupstack",),
    "quora": ("quora",),
    "dbpedia-entity": ("dbpedia-entity",),
    "scidocs": ("scidocs",),
    "fever": ("fever",),
    "climate-fever": ("climate-fever",),
    "scifact": ("beir-scifact", "scifact"),
}
# LoCoV1's five long-document sets; only a QMSum stand-in exists locally.
LOCO_CARD = {
    "summ_screen_fd": ("summ_screen_fd",),
    "gov_report": ("gov_report",),
    "qmsum": ("longdoc-qmsum", "qmsum"),
    "qasper_title": ("qasper_title",),
    "qasper_abstract": ("qasper_abstract",),
}
RAG_CARD = {"llamaindex-rag": ("rag-llama2-paper-qa",)}
SUITES = {"beir": BEIR_CARD, "loco": LOCO_CARD, "rag": RAG_CARD}


def dataset_spec(directory: str | Path, split: str | None = None, suite: str | None = None) -> DatasetSpec:
    """The evaluation protocol for a BEIR folder: a known folder's own, else NDCG@10 over BM25 top 100.

    Args:
        directory: the BEIR-format folder.
        split: qrels split; default: the known folder's, else ``test``, else the folder's only split.
        suite: the suite it is evaluated under, if any.

    Raises:
        DatasetError: the folder does not exist, or has several splits and none was chosen.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: no such dataset folder (expected a BEIR layout: corpus.jsonl, ...)")
    known = KNOWN.get(directory.name, Known())
    return DatasetSpec(
        name=directory.name,
        directory=directory,
        split=split or _default_split(directory, known.split),
        suite=suite,
        card_name=known.card_name,
        keep_unjudged=known.keep_unjudged,
        k=known.k,
        measures=known.measures,
        headline=known.headline,
        relevance_level=known.relevance_level,
        note=known.note,
    )


def resolve_suite(name: str, data_root: Path) -> tuple[list[DatasetSpec], list[str]]:
    """The suite's datasets found under ``data_root``, and the card names not found.

    Raises:
        DatasetError: an unknown suite name (the message lists the known ones).
    """
    if name not in SUITES:
        raise DatasetError(f"unknown suite {name!r}; suites: {', '.join(SUITES)}")
    found, missing = [], []
    for card_name, folders in SUITES[name].items():
        directory = next((data_root / f for f in folders if (data_root / f / "corpus.jsonl").is_file()), None)
        if directory is None:
            missing.append(card_name)
        else:
            found.append(replace(dataset_spec(directory, suite=name), card_name=card_name))
    return found, missing


def _default_split(directory: Path, preferred: str) -> str:
    qrels = directory / "qrels"
    if not qrels.is_dir() or (qrels / f"{preferred}.tsv").is_file():
        return preferred
    splits = sorted(p.stem for p in qrels.glob("*.tsv"))
    if len(splits) == 1:
        return splits[0]
    raise DatasetError(f"{directory}: no {preferred!r} split; pick one with --split ({', '.join(splits)})")
