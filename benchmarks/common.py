"""Shared helpers of the benchmarks: the turbo-shaped random model, workloads, the CPU and its ISA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from workloads import TURBO, peak_rss_mb, write_checkpoint

from turborank.cpu import cpu_features
from turborank.tokenization import PairEncoding

__all__ = ["TURBO", "best_rounds", "hardware", "peak_rss_mb", "pairs_of_lengths", "turbo_checkpoint"]


def hardware() -> str:
    """The CPU model, the ISA extensions that pick turborank's kernels (AVX2 / AVX-512 / VNNI / AMX) and
    the torch threads and version: figures from different CPUs differ 2-3x, so every benchmark prints it."""
    return f"{cpu_features().describe()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def best_rounds(
    times: dict[str, list[float]], logits: dict[str, np.ndarray], baseline: str
) -> Iterator[tuple[str, float, float, float]]:
    """Per path: its best time, the speedup against the baseline's best and max |dlogit| against it."""
    base = min(times[baseline])
    for name, rounds in times.items():
        best = min(rounds)
        yield name, best, base / best, float(np.abs(logits[name] - logits[baseline]).max())


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
