"""GPU paths on the turbo shape: padded vs unpadded attention, fp32 vs bf16, and golden parity.

Workloads: the issue's three (100 pairs of 30-500 tokens, 10 pairs of 2,048 and 2 of 8,192), and 5 of
3,072 and 4 of 4,096, where padded and unpadded attention cross over (``backends.UNPADDED_ABOVE``, which
``auto`` uses). Every figure is pairs per second, with the ratio against the padded fp32 path measured in
the same run; rounds are interleaved across paths and the best round counts. The parity table scores the
vendored golden fixtures on every path and dtype against the reference implementation's logits.
Run (needs CUDA): python benchmarks/bench_gpu.py [--rounds 5] [--model-dir /tmp/turborank-turbo]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from common import best_rounds, hardware, pairs_of_lengths, turbo_checkpoint

from turborank import Reranker
from turborank.tokenization import PairEncoding

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
PATHS = {  # name -> (backend, dtype)
    "padded fp32": ("torch", torch.float32),
    "padded bf16": ("torch", torch.bfloat16),
    "unpadded fp32": ("unpadded", torch.float32),
    "unpadded bf16": ("unpadded", torch.bfloat16),
    "auto bf16": ("auto", torch.bfloat16),  # padded up to backends.UNPADDED_ABOVE tokens, unpadded beyond
}
PARITY_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def workloads() -> dict[str, list[PairEncoding]]:
    mixed = np.random.default_rng(1).integers(30, 501, 100).tolist()
    return {
        "100 x 30-500": pairs_of_lengths(mixed),
        "10 x 2048": pairs_of_lengths([2048] * 10),
        "5 x 3072": pairs_of_lengths([3072] * 5),
        "4 x 4096": pairs_of_lengths([4096] * 4),
        "2 x 8192": pairs_of_lengths([8192] * 2),
    }


def time_paths(directory: Path, rounds: int) -> None:
    rerankers = {
        name: Reranker.from_pretrained(directory, device="cuda", dtype=dtype, backend=backend)
        for name, (backend, dtype) in PATHS.items()
    }
    header = f"{'workload':<14} {'path':<14} {'best s':>8} {'pairs/s':>9} {'speedup':>8} {'peak GiB':>9}"
    print(f"{header} {'max |dlogit|':>13}")
    for workload, encodings in workloads().items():
        for reranker in rerankers.values():  # warm-up: kernels, torch.compile for each new shape class
            reranker.engine.run(encodings)
        times: dict[str, list[float]] = {name: [] for name in rerankers}
        logits, peaks = {}, {}
        for _ in range(rounds):
            for name, reranker in rerankers.items():
                torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                logits[name] = reranker.engine.run(encodings)[:, 0]  # returns on the CPU: synchronized
                times[name].append(time.perf_counter() - start)
                peaks[name] = torch.cuda.max_memory_allocated() / 2**30
        for name, best, speedup, deviation in best_rounds(times, logits, "padded fp32"):
            print(
                f"{workload:<14} {name:<14} {best:>8.4f} {len(encodings) / best:>9.1f} {speedup:>7.2f}x "
                f"{peaks[name]:>9.2f} {deviation:>13.2e}",
                flush=True,
            )


def golden_parity() -> None:
    print(f"\n{'fixture':<8} {'backend':<9} {'dtype':<9} {'max |logit - reference|':>24}")
    for name in ("small", "mini12"):
        expected = json.loads((FIXTURES / name / "expected.json").read_text())
        pairs = [(p["query"], p["document"]) for p in expected["pairs"]]
        for backend in ("torch", "unpadded"):
            for dtype in PARITY_DTYPES:
                reranker = Reranker.from_pretrained(
                    FIXTURES / name, device="cuda", dtype=dtype, backend=backend
                )
                deviation = np.abs(reranker.predict_logits(pairs)[:, 0] - expected["logits"]).max()
                print(f"{name:<8} {backend:<9} {str(dtype).removeprefix('torch.'):<9} {deviation:>24.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/turborank-turbo"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device; the CPU paths are in bench_backends.py and bench_long.py")
    directory = turbo_checkpoint(args.model_dir)
    print(f"# turbo shape, random weights; {torch.cuda.get_device_name()}; host {hardware()}")
    print(f"# best of {args.rounds} interleaved rounds; speedup and dlogit vs padded fp32 in this run")
    time_paths(directory, args.rounds)
    golden_parity()


if __name__ == "__main__":
    main()
