"""Shared pieces of the benchmarks: model shapes, documents of exact token lengths, memory.

Random weights give the real models' speed: cost depends on shapes, not values.
"""

from __future__ import annotations

import random
import resource
from dataclasses import replace
from pathlib import Path

import torch

from turborank.checkpoint import save_checkpoint
from turborank.distill.students import PRESETS
from turborank.model import JinaBertConfig, JinaBertForSequenceClassification

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = REPO / "tests" / "fixtures" / "small"  # WordPiece; its ids all fall inside the turbo vocab

TURBO = PRESETS["turbo"]  # jina-reranker-v1-turbo-en: 6 x 384, 12 heads, GeGLU 1,536, vocab 61,056
# A classic BERT cross-encoder of the same size, as sentence-transformers' CrossEncoder would run it.
BERT_SAME_SHAPE = replace(
    TURBO, feed_forward_type="original", position_embedding_type="absolute", max_position_embeddings=512
)

# Lower-case words that the WordPiece vocabulary keeps whole: one word, one token.
WORDS = (
    "time",
    "year",
    "people",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
)


def write_checkpoint(
    config: JinaBertConfig, directory: Path, seed: int = 0, dtype: torch.dtype = torch.bfloat16
) -> Path:
    """A random-weight checkpoint in the published layout (bf16 weights, like the real files)."""
    model = JinaBertForSequenceClassification(config)
    model.init_weights(torch.Generator().manual_seed(seed))
    return save_checkpoint(model, TOKENIZER_DIR, directory, dtype=dtype)


def text_of_tokens(n: int, rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def documents(lengths: list[int], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [text_of_tokens(n, rng) for n in lengths]


def mixed_lengths(count: int, low: int, high: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(count)]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    Read from /proc/self/status (VmHWM), not ``getrusage``: Linux carries ``ru_maxrss`` across
    ``execve``, so a subprocess started by a large parent would report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
