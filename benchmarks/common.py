"""Shared helpers of the backend benchmarks: the turbo-shaped random model, workloads, hardware name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from workloads import TURBO, hardware, peak_rss_mb, write_checkpoint

from turborank.tokenization import PairEncoding

__all__ = ["TURBO", "hardware", "peak_rss_mb", "pairs_of_lengths", "turbo_checkpoint"]


def turbo_checkpoint(directory: Path) -> Path:
    """A turbo-shaped random-weight checkpoint in float32 (the exported ONNX graph is fp32), made once."""
    if (directory / "model.safetensors").is_file():
        return directory
    return write_checkpoint(TURBO, directory, dtype=torch.float32)


def pairs_of_lengths(lengths: list[int], seed: int = 0) -> list[PairEncoding]:
    """Pair encodings of exactly these lengths: [CLS] 16 query tokens [SEP] document [SEP]."""
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        body = rng.integers(1000, TURBO.vocab_size, n - 3).tolist()
        ids = [101, *body[:16], 102, *body[16:], 102]
        out.append(PairEncoding(ids, [0] * len(ids)))
    return out
