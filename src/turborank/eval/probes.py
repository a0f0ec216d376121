"""Dilution probes: does a relevant passage keep its score when unrelated text surrounds it?

A probe is a (query, answer, noise) triple: a question, the sentence that answers it, and sentences
about other things. Each answer is scored alone and inside ``n`` tokens of noise placed before it,
after it, or on both sides; a reranker that is robust to dilution gives the answer inside noise at
least 0.8 of its score alone (the criterion of issue 12). Real RAG chunks are hundreds of tokens with
one relevant sentence, so this is the common case, not an edge case.

Probes are built from WikiQA's test split (answer-selection questions with their labelled answer
sentence; noise drawn from the candidate sentences of *other* questions, Wikipedia text on other
topics). The training recipe reads only WikiQA's train split.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PLACES = ("before", "after", "around")
NOISE_TOKENS = (0, 50, 100, 200, 500, 1000)
PASS_RATIO = 0.8  # score inside noise / score alone that counts as "kept its score"


@dataclass(frozen=True)
class Probe:
    query: str
    answer: str
    noise: tuple[str, ...]  # sentences on other topics, in the order they are used


def wikiqa_probes(
    path: str | Path, n: int | None = None, seed: int = 0, noise_sentences: int = 120
) -> list[Probe]:
    """One probe per answerable question of a WikiQA candidates file ({qid, query, candidates, labels}).

    The answer is the question's first labelled sentence; the noise is a seeded sample of the other
    questions' candidate sentences (never from the same question, so it cannot hold the answer).
    """
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    probes = []
    for i, row in enumerate(rows):
        answers = [c for c, label in zip(row["candidates"], row["labels"], strict=True) if label]
        if not answers:
            continue
        others = [s for j, other in enumerate(rows) if j != i for s in other["candidates"]]
        probes.append(Probe(row["query"], answers[0], tuple(rng.sample(others, noise_sentences))))
    return probes if n is None else probes[:n]


def diluted(probe: Probe, tokens: int, place: str, count_tokens: Callable[[str], int]) -> str:
    """The answer inside about ``tokens`` tokens of the probe's noise (whole sentences), at ``place``."""
    if place not in PLACES:
        raise ValueError(f"place must be one of {PLACES}, got {place!r}")
    noise, total = [], 0
    for sentence in probe.noise:
        if total >= tokens:
            break
        noise.append(sentence)
        total += count_tokens(sentence)
    if total < tokens:
        raise ValueError(f"probe for {probe.query!r} has only {total} tokens of noise, {tokens} asked")
    cut = len(noise) if place == "before" else 0 if place == "after" else len(noise) // 2
    return " ".join([*noise[:cut], probe.answer, *noise[cut:]])


@dataclass
class CurvePoint:
    tokens: int
    place: str
    mean_ratio: float  # mean score inside noise / mean score alone
    share_kept: float  # share of probes whose own ratio is >= PASS_RATIO


def dilution_curve(
    score: Callable[[list[tuple[str, str]]], Sequence[float]],
    probes: Sequence[Probe],
    count_tokens: Callable[[str], int],
    noise_tokens: Sequence[int] = NOISE_TOKENS,
    places: Sequence[str] = PLACES,
) -> list[CurvePoint]:
    """Score every probe alone and diluted; one point per (noise length, place).

    ``score`` maps (query, document) pairs to relevance scores in [0, 1] (a reranker's compute_score
    with whatever settings are under test).
    """
    alone = list(score([(p.query, p.answer) for p in probes]))
    points = []
    for tokens in noise_tokens:
        for place in places if tokens else places[:1]:
            texts = [diluted(p, tokens, place, count_tokens) for p in probes]
            noisy = list(score([(p.query, t) for p, t in zip(probes, texts, strict=True)]))
            kept = sum(n >= PASS_RATIO * a for n, a in zip(noisy, alone, strict=True))
            points.append(CurvePoint(tokens, place, sum(noisy) / max(sum(alone), 1e-12), kept / len(probes)))
    return points
