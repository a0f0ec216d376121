"""Invariance fine-tuning: teach a reranker that unrelated text around a passage changes nothing.

    python -m turborank.distill.invariance --init DIR --work runs/inv --out runs/inv-model
    python -m turborank.distill.invariance --init DIR --work runs/inv --stage build   # the groups alone

The groups alone (``--stage build``) can join a recipe run instead (``recipe --extra-train``), next to
the teacher's groups, so the teacher keeps the ranking while they teach the invariance.

Every training passage appears twice in its group: alone, and inside whole sentences of unrelated text
placed before, after or around it (the pair still fits ``max_length``). Both copies are regressed (MSE
on logits) to the *starting* model's logit of the passage alone, so the model is its own frozen
teacher: the clean copies hold on to what it knows, the surrounded copies learn to keep it. This is
issue 12's dilution criterion (score inside noise >= 0.8 x score alone) made a loss, with no teacher
to distil and nothing to label, which is why it can run after any recipe stage.

Train splits only: WikiQA train answer candidates, SciFact train claims and NFCorpus train/dev
queries against sentence passages of their corpora, QMSum train queries against passages of the train
meetings; the noise is WikiQA train sentences and SciFact and NFCorpus passages. The recipe's dev
questions (``recipe.split_labelled``) are left out of both, so its dev set still judges the result.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..api import DEFAULT_MODEL_DIR
from ..errors import InputError, TurborankError, is_whole, require
from ..eval.data import BeirDataset, Document, load_beir, read_corpus
from .cache import PairLogitCache
from .command import add_dataclass_arguments, field_help
from .data import (
    Group,
    groups_from_candidates,
    groups_from_queries,
    read_groups,
    sentence_passages,
    surrounded_by_noise,
    write_groups,
)
from .finish import keep_reading
from .recipe import (
    NFCORPUS,
    QMSUM,
    SHARED_DATA,
    WIKIQA_TRAIN,
    RecipeConfig,
    nfcorpus_train_queries,
    qmsum_groups,
    split_labelled,
)
from .teachers import LocalTeacher, read_through
from .train import TrainConfig

log = logging.getLogger(__name__)

SURROUNDED = "#noise"  # doc id suffix of a passage's copy inside unrelated text


@dataclass
class InvarianceConfig:
    init: Path = DEFAULT_MODEL_DIR  # the model to continue (default: the shipped one), its own frozen teacher
    data_dir: Path = SHARED_DATA  # the shared data folder (train splits only are read)
    work_dir: Path = Path("runs/invariance")  # groups, the reference logits and the training state
    out_dir: Path = Path("runs/invariance-model")
    seed: int = 0  # dev split, queries, noise, data order and training
    docs_per_query: int = 4  # passages per query; each comes clean and surrounded, so groups hold twice that
    copies: int = 2  # times each query appears, its passages surrounded by different noise each time
    # Most words of query, passage and noise together: about 200 tokens, inside the 256-token training
    # pairs, so truncation never cuts the passage off a copy whose noise comes first.
    max_words: int = 150
    passage_words: int = 80  # SciFact, NFCorpus and QMSum passages: sentences (lines) up to this many words
    n_nfcorpus: int = 1_500  # NFCorpus train/dev queries sampled
    n_qmsum: int = 600  # QMSum train queries (questions and summaries) sampled
    noise_passages: int = 3_000  # SciFact passages and as many NFCorpus ones in the noise, beside WikiQA's
    max_steps: int = 900  # optimizer steps of 4 groups (32 pairs): 27 minutes on 2 Xeon (AMX) cores
    lr: float = 2e-5
    max_length: int = 256  # training pair length (the shipped model reads pairs up to 256 tokens whole)
    num_threads: int | None = None  # torch CPU threads; None: torch's default (every core)


# InvarianceConfig fields that are command-line flags of the same name (``max_steps`` -> ``--max-steps``);
# the paths have flags of their own.
PATHS = {"init": "init", "data": "data_dir", "work": "work_dir", "out": "out_dir"}
FLAGS = tuple(name for name in InvarianceConfig.__dataclass_fields__ if name not in PATHS.values())


@dataclass(frozen=True)
class TrainText:
    """The SciFact train split and the sentence passages of both biomedical corpora, read and cut once:
    the training groups query them and the noise samples them."""

    scifact: BeirDataset
    scifact_passages: dict[str, Document]
    nfcorpus_passages: dict[str, Document]


def read_train_text(config: InvarianceConfig) -> TrainText:
    data, words = Path(config.data_dir), config.passage_words
    scifact = load_beir(data / "beir-scifact", "train")
    nfcorpus = read_corpus(data / NFCORPUS / "corpus.jsonl")
    return TrainText(scifact, sentence_passages(scifact.corpus, words), sentence_passages(nfcorpus, words))


def base_groups(config: InvarianceConfig, text: TrainText, dev_queries: set[str]) -> list[Group]:
    """Queries with ``docs_per_query`` passages each, from train splits only, no dev question among them."""
    data, seed, k = Path(config.data_dir), config.seed, config.docs_per_query
    wikiqa = groups_from_candidates(data / WIKIQA_TRAIN, k_negatives=k - 1, seed=seed)
    groups = [g for g in wikiqa if g.query not in dev_queries]
    scifact = text.scifact
    claims = {q: t for q, t in scifact.queries.items() if t not in dev_queries and q in scifact.qrels}
    groups += groups_from_queries(claims, text.scifact_passages, k, source="scifact-train:sentences")
    queries = sorted(nfcorpus_train_queries(data / NFCORPUS).items())
    sample = dict(random.Random(seed).sample(queries, min(config.n_nfcorpus, len(queries))))
    groups += groups_from_queries(sample, text.nfcorpus_passages, k, source="nfcorpus-train:sentences")
    groups += qmsum_groups(data / QMSUM, config.n_qmsum, k, seed, config.passage_words)
    return [g for g in groups if len(g.doc_ids) == k]


def noise_texts(config: InvarianceConfig, text: TrainText, dev_queries: set[str]) -> list[str]:
    """Unrelated text from train splits: each non-dev WikiQA question's candidate sentences (one text per
    question), then seeded samples of SciFact and NFCorpus sentence passages."""
    texts = []
    for line in (Path(config.data_dir) / WIKIQA_TRAIN).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["query"] not in dev_queries:
            texts.append(" ".join(row["candidates"]))
    for seed, passages in ((1, text.scifact_passages), (2, text.nfcorpus_passages)):
        texts += [d.text for d in random.Random(seed).sample(list(passages.values()), config.noise_passages)]
    return texts


def paired_groups(
    groups: Sequence[Group],
    reference: Mapping[tuple[str, str], float],
    noise: Sequence[str],
    config: InvarianceConfig,
) -> list[Group]:
    """``copies`` shuffled groups per query: each passage clean, then surrounded by noise, both scored
    with ``reference``'s logit of the clean pair."""
    rng = random.Random(config.seed)
    out = []
    for copy in range(config.copies):
        for group in groups:
            room = config.max_words - len(group.query.split())
            ids, texts, targets = [], [], []
            for doc_id, text in zip(group.doc_ids, group.doc_texts, strict=True):
                ids += [doc_id, f"{doc_id}{SURROUNDED}"]
                texts += [text, surrounded_by_noise(text, noise, rng, room, unrelated_to=group.query)]
                targets += [reference[(group.query, text)]] * 2
            labels: list[int | None] = [None] * len(texts)
            source = f"invariance:{group.source}"
            out.append(Group(f"{group.qid}#c{copy}", group.query, ids, texts, labels, targets, source))
    rng.shuffle(out)
    return out


def reference_logits(
    groups: Sequence[Group], init: Path, work: Path, max_length: int
) -> dict[tuple[str, str], float]:
    """The starting model's raw logit of every clean (query, passage) pair, kept on disk (resumable)."""
    teacher = LocalTeacher(init, max_length=max_length)
    logits: dict[tuple[str, str], float] = {}
    pairs = sorted({(g.query, text) for g in groups for text in g.doc_texts})
    with PairLogitCache.in_dir(work, "reference", teacher.identity) as cache:
        read_through(pairs, logits, cache, teacher.score_pairs)
    return logits


def build(config: InvarianceConfig) -> Path:
    """The training groups file (built once per work directory)."""
    work = Path(config.work_dir)
    path = work / "train.jsonl"
    if path.is_file():
        return path
    work.mkdir(parents=True, exist_ok=True)
    recipe = RecipeConfig(data_dir=Path(config.data_dir), seed=config.seed)
    dev_queries = {g.query for g in split_labelled(recipe, random.Random(config.seed))[2]}
    text = read_train_text(config)
    groups = base_groups(config, text, dev_queries)
    log.info("%d queries with %d passages each", len(groups), config.docs_per_query)
    reference = reference_logits(groups, Path(config.init), work, config.max_length)
    write_groups(paired_groups(groups, reference, noise_texts(config, text, dev_queries), config), path)
    return path


def run(config: InvarianceConfig) -> Path:
    """Build the groups, then continue ``init`` on them; returns the output checkpoint."""
    from ..checkpoint import read_model_config
    from .students import build_student
    from .train import train

    groups = read_groups(build(config))
    # The starting model's own shape and positions: this continues it, it does not make a new student.
    model, tokenizer_dir = build_student(
        read_model_config(Path(config.init)), init=f"teacher:{config.init}", seed=config.seed
    )
    out = train(model, tokenizer_dir, groups, train_config(config), None)
    keep_reading(Path(config.init), out)
    return out


def train_config(config: InvarianceConfig) -> TrainConfig:
    """The training settings of the stage: each passage's logit regressed to its clean reference."""
    return TrainConfig(
        out_dir=Path(config.out_dir),
        run_dir=Path(config.work_dir) / "train",
        loss="pointwise_mse",  # each logit to its target, not only the order within a group
        supervised_weight=0.0,
        group_size=2 * config.docs_per_query,
        max_steps=config.max_steps,
        seed=config.seed,
        num_threads=config.num_threads,
        lr=config.lr,
        warmup_ratio=0.05,
        max_length=config.max_length,
        batch_groups=4,
        grad_accum=1,
        freeze_word_embeddings=True,
        dropout=0.0,
        eval_every=config.max_steps,  # no dev set inside: the last step is the output, judged afterwards
        save_every=100,
        log_every=20,
        cpu_bf16=True,
        progress=False,
    )


def check_before_work(config: InvarianceConfig) -> None:
    """Refuse what would fail only after the groups and reference logits were built (minutes)."""
    for name in ("max_steps", "docs_per_query", "copies", "max_words", "passage_words", "noise_passages"):
        value = getattr(config, name)
        require(name, value, is_whole(value) and value >= 1, "a positive integer")
    for name in ("n_nfcorpus", "n_qmsum"):
        value = getattr(config, name)
        require(name, value, is_whole(value) and value >= 0, "a count >= 0")
    train_config(config).validate()  # the rest, in the trainer's own terms
    if not (Path(config.init) / "config.json").is_file():
        raise InputError(f"--init {config.init}: not a checkpoint directory (no config.json there)")
    built = (Path(config.work_dir) / "train.jsonl").is_file()  # a built work directory needs no data
    if not built and not Path(config.data_dir).is_dir():
        raise InputError(f"--data {config.data_dir} is not a folder: point it at the shared data folder")


def build_parser() -> argparse.ArgumentParser:
    """The paths' flags, ``--stage``, then one flag per other InvarianceConfig field."""
    parser = argparse.ArgumentParser(
        prog="python -m turborank.distill.invariance", description=__doc__.split("\n")[0]
    )
    helps = field_help(InvarianceConfig)
    for flag, name in PATHS.items():
        default = InvarianceConfig.__dataclass_fields__[name].default
        parser.add_argument(
            f"--{flag}", type=Path, default=default, help=f"{helps[name]} (default: {default})"
        )
    parser.add_argument(
        "--stage",
        choices=("all", "build"),
        default="all",
        help="'build' writes the scored groups (<work>/train.jsonl) and stops: a recipe run can train on "
        "them next to its own (--extra-train)",
    )
    add_dataclass_arguments(parser, InvarianceConfig, FLAGS)
    return parser


def config_from(args: argparse.Namespace) -> InvarianceConfig:
    paths = {name: getattr(args, flag) for flag, name in PATHS.items()}
    return InvarianceConfig(**paths, **{name: getattr(args, name) for name in FLAGS})


def parse_config(argv: list[str] | None = None) -> InvarianceConfig:
    """The command line as an InvarianceConfig."""
    return config_from(build_parser().parse_args(argv))


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        check_before_work(config)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        print(build(config) if args.stage == "build" else run(config))
    except TurborankError as error:  # missing data or checkpoint: one line, no traceback
        parser.error(str(error))


if __name__ == "__main__":
    main()
