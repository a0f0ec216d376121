"""Shared helpers of the backend benchmarks: the turbo-shaped random model, workloads, hardware name."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch

from turborank.checkpoint import save_checkpoint
from turborank.model import JinaBertConfig, JinaBertForSequenceClassification
from turborank.tokenization import PairEncoding

REPO = Path(__file__).resolve().parents[1]
TURBO = JinaBertConfig(
    vocab_size=61056, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
)


def turbo_checkpoint(directory: Path) -> Path:
    """A turbo-shaped (6 x 384, 12 heads, GeGLU 1536, vocab 61056) random-weight checkpoint, made once."""
    if (directory / "model.safetensors").is_file():
        return directory
    model = JinaBertForSequenceClassification(TURBO)
    model.init_weights(torch.Generator().manual_seed(0))
    return save_checkpoint(model, REPO / "tests" / "fixtures" / "small", directory, dtype=torch.float32)


def pairs_of_lengths(lengths: list[int], seed: int = 0) -> list[PairEncoding]:
    """Pair encodings of exactly these lengths: [CLS] 16 query tokens [SEP] document [SEP]."""
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        body = rng.integers(1000, TURBO.vocab_size, n - 3).tolist()
        ids = [101, *body[:16], 102, *body[16:], 102]
        out.append(PairEncoding(ids, [0] * len(ids)))
    return out


def hardware() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    model = names[0] if names else platform.processor()
    return f"{model}, {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()}"
