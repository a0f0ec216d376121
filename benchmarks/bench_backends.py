"""ONNX Runtime fp32 / int8 against the plain torch fp32 path on 100 pairs of 30-500 tokens.

Each backend scores the same pair encodings through the same engine (token-budget batches, each
backend's default budget); rounds are interleaved so that load from other processes hits every
backend alike, and the best round counts. ``--shape 16x256`` times 16 pairs of 256 tokens instead.
``--backends torch onnx-int8/u8s8 onnx-int8/u8s7`` times both int8 schemes on any CPU.
Run: python benchmarks/bench_backends.py [--rounds 5] [--shape ROWSxTOKENS] [--model-dir /tmp/turborank-turbo]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from common import hardware, pairs_of_lengths, turbo_checkpoint

from turborank import Reranker
from turborank.onnx_backend import INT8_SCHEME_ENV


def load(directory: Path, name: str) -> Reranker:
    """``onnx-int8/u8s7`` forces an int8 scheme (``onnx_backend.INT8_SCHEMES``); plain names pick by ISA."""
    backend, _, scheme = name.partition("/")
    os.environ[INT8_SCHEME_ENV] = scheme or "auto"
    return Reranker.from_pretrained(directory, device="cpu", backend=backend)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/turborank-turbo"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--shape", help="ROWS pairs of TOKENS tokens instead of the mixed set")
    args = parser.parse_args()

    directory = turbo_checkpoint(args.model_dir)
    if args.shape:
        rows, length = map(int, args.shape.split("x"))
        lengths = [length] * rows
        workload = f"{rows} pairs of {length} tokens"
    else:
        lengths = np.random.default_rng(1).integers(30, 501, 100).tolist()
        workload = f"100 pairs of 30-500 tokens ({sum(lengths):,} tokens)"
    encodings = pairs_of_lengths(lengths)
    rerankers = {name: load(directory, name) for name in args.backends}
    logits, times = {}, {b: [] for b in args.backends}
    for reranker in rerankers.values():
        reranker.engine.run(encodings[:4])  # warm-up: allocator, thread pools, ORT kernels
    for _ in range(args.rounds):
        for name, reranker in rerankers.items():
            start = time.perf_counter()
            logits[name] = reranker.engine.run(encodings)[:, 0]
            times[name].append(time.perf_counter() - start)

    print(f"# turbo shape, random weights; {workload}")
    print(f"# {hardware()}; best of {args.rounds} interleaved rounds; speedup vs torch fp32 in this run")
    base = min(times["torch"])
    header = f"{'backend':<14} {'budget':>7} {'best s':>7} {'median s':>9} {'pairs/s':>8} {'speedup':>8}"
    print(f"{header} {'max |dlogit|':>13}")
    for name, reranker in rerankers.items():
        best, median = min(times[name]), float(np.median(times[name]))
        deviation = np.abs(logits[name] - logits["torch"]).max()
        print(
            f"{name:<14} {reranker.engine.max_batch_tokens:>7} {best:>7.3f} {median:>9.3f} "
            f"{len(lengths) / best:>8.1f} {base / best:>7.2f}x {deviation:>13.2e}"
        )


if __name__ == "__main__":
    main()
