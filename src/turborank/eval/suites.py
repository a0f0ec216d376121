"""Which datasets a suite means, where they live locally, and how each is evaluated.

The model card reports NDCG@10 on 17 BEIR datasets, NDCG@10 on 5 LoCo datasets and hit rate on
LlamaIndex's RAG benchmark. Locally (``../shared/data``) only some of these exist, sometimes as
stand-ins; ``resolve_suite`` runs what it finds and names what is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .data import DatasetError
from .metrics import DEFAULT_MEASURES, check_measures

RAG_MEASURES = ("Hit@1", "Hit@3", "Hit@5", "Hit@10", "MRR@5", "MRR@10", "NDCG@10")
LOCO_MAX_LENGTHS = (512, 2048, 8192)
PROTOCOL_FILE = "eval.json"  # a dataset folder's own protocol (see read_protocol)


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
    # BEIR's rule (its evaluator's default): a candidate whose id is the query's own id is dropped, so a
    # query taken from the corpus (ArguAna, Quora) is not "retrieved" as its own best match.
    ignore_identical_ids: bool = True
    note: str | None = None
    protocol: str = "defaults"  # where the protocol came from: defaults, known folder, eval.json, flags


@dataclass(frozen=True)
class Known:
    """A dataset's protocol: a known local folder's, or the fields of its ``eval.json``."""

    split: str = "test"
    keep_unjudged: bool = False
    k: int = 100
    measures: tuple[str, ...] = DEFAULT_MEASURES
    headline: str = "NDCG@10"
    relevance_level: int = 1
    ignore_identical_ids: bool = True
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
    # TREC DL's graded qrels: passages graded 1 are "related", not relevant, for MAP/MRR/recall. MS MARCO
    # numbers queries and passages independently, so an equal id is a coincidence, not the query itself.
    "trec-dl19-passage-rerank": Known(card_name="dl19", relevance_level=2, ignore_identical_ids=False),
    "trec-dl21-passage-rerank": Known(card_name="dl21", relevance_level=2, ignore_identical_ids=False),
    # 60 of the 600 queries have their positive outside the top 20 and no qrels line: they count as 0.
    "msmarco-dev-600q-bm25top20": Known(
        split="dev", keep_unjudged=True, k=20, card_name="msmarco", ignore_identical_ids=False
    ),
}
# eval.json keys and the JSON types each accepts.
PROTOCOL_TYPES: dict[str, type] = {
    "split": str,
    "keep_unjudged": bool,
    "k": int,
    "measures": list,
    "headline": str,
    "relevance_level": int,
    "ignore_identical_ids": bool,
    "note": str,
    "card_name": str,
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
    """The evaluation protocol for a BEIR folder: its ``eval.json`` over a known folder's protocol, over
    the defaults (NDCG@10 over the first stage's top 100, grade >= 1 relevant, identical ids ignored).

    Args:
        directory: the BEIR-format folder.
        split: qrels split; default: the protocol's, else ``test``, else the folder's only split.
        suite: the suite it is evaluated under, if any.

    Raises:
        DatasetError: the folder does not exist, has several splits and none was chosen, or has an
            invalid ``eval.json``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: no such dataset folder (expected a BEIR layout: corpus.jsonl, ...)")
    known = KNOWN.get(directory.name)
    protocol, source = (known, "known folder") if known else (Known(), "defaults")
    declared = read_protocol(directory)
    if declared:
        protocol, source = replace(protocol, **declared), PROTOCOL_FILE
    return DatasetSpec(
        name=directory.name,
        directory=directory,
        split=split or _default_split(directory, protocol.split),
        suite=suite,
        protocol=source,
        **{f.name: getattr(protocol, f.name) for f in fields(Known) if f.name != "split"},
    )


def read_protocol(directory: Path) -> dict[str, Any]:
    """The fields set by the folder's ``eval.json`` (none when it has no such file).

    Keys (all optional): ``relevance_level`` (lowest grade binary measures count as relevant), ``k``
    (first-stage depth), ``measures``, ``headline``, ``ignore_identical_ids``, ``split``,
    ``keep_unjudged``, ``note``, ``card_name``.

    Raises:
        DatasetError: invalid JSON, an unknown key, a value of the wrong type or an unknown measure.
    """
    path = directory / PROTOCOL_FILE
    if not path.is_file():
        return {}
    try:
        declared = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read it as JSON ({exc})") from None
    if not isinstance(declared, dict):
        raise DatasetError(f'{path}: expected a JSON object such as {{"relevance_level": 2}}')
    for key, value in declared.items():
        _check_protocol_value(path, key, value)
    if "measures" in declared:
        declared["measures"] = tuple(declared["measures"])
    return declared


def _check_protocol_value(path: Path, key: str, value: Any) -> None:
    if key not in PROTOCOL_TYPES:
        raise DatasetError(f"{path}: unknown key {key!r}; known keys: {', '.join(PROTOCOL_TYPES)}")
    expected = PROTOCOL_TYPES[key]
    # bool is an int in Python; JSON true must not pass as a depth or a grade.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise DatasetError(f"{path}: {key!r} must be a JSON {expected.__name__}, got {value!r}")
    if key in ("k", "relevance_level") and value < 1:
        raise DatasetError(f"{path}: {key!r} must be at least 1, got {value}")
    if key in ("measures", "headline"):
        try:
            check_measures(value if key == "measures" else [value])
        except ValueError as exc:
            raise DatasetError(f"{path}: {key!r}: {exc}") from None


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
