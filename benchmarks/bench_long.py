"""Long inputs on the turbo shape: time and peak RSS per sequence length and per workload.

Every case runs in its own subprocess, so each peak RSS (VmHWM) belongs to that case alone; the
RSS after loading the model is reported too, so the increment is visible. Speedups are against the
first backend listed on the same case, measured in the same run. ``reference-sdpa`` is the reference
implementation's SDPA path on the same weights: the dense (nh, S, S) ALiBi built at load (the reference
keeps it from construction on) and ``attn_mask = mask + alibi``, one (B, nh, S, S) tensor per forward,
in one fused SDPA call per layer (spec: shared/spec/jinabert.md, sections 4-5), in the reference's
batches (``compute_score``'s 32 pairs, no token budget).
Each case runs ``--repeats`` times per backend, interleaved (a fresh process each time), and the best
time counts: one timing on 2 cores varied by up to 0.4x in the speedup at 10 x 2,048.
Run: python benchmarks/bench_long.py [--backends reference-sdpa torch onnx onnx-int8] [--cases ...]
     [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import hardware, pairs_of_lengths, peak_rss_mb, turbo_checkpoint

from turborank import model as model_module

# name -> (pair lengths): one pair per length, then the two workloads.
CASES = {
    "1 x 512": [512],
    "1 x 2048": [2048],
    "1 x 8192": [8192],
    "10 x 2048": [2048] * 10,
    "2 x 8192": [8192] * 2,
}


REFERENCE = "reference-sdpa"
REFERENCE_BATCH_SIZE = 32  # the reference compute_score's default


class ReferenceBias:
    """The reference's SDPA attention mask: one dense (B, nh, S, S) ``mask + alibi`` block per forward."""

    alibi: torch.Tensor  # (1, nh, S, S), built once at load
    keys_reversed = False
    relative = None  # no DeBERTa position terms: ALiBi is the only position signal

    def __init__(self, attention_mask: torch.Tensor, num_heads: int, slopes, dtype: torch.dtype):  # noqa: ANN001
        length = attention_mask.shape[1]
        key_mask = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        self.block = key_mask + self.alibi[:, :, :length, :length].to(dtype)
        self.length = length

    def blocks(self, whole: bool = False):  # noqa: ANN201 - the AttentionBias interface
        return iter([(0, self.length, self.block)])


def use_reference_attention(num_heads: int, length: int) -> None:
    """Swap the model's blockwise bias for the reference's dense one, ALiBi precomputed for ``length``."""
    ReferenceBias.alibi = model_module.alibi_bias(
        model_module.alibi_slopes(num_heads), torch.arange(length), length
    )[None]
    model_module.AttentionBias = ReferenceBias


def run_case(directory: Path, backend: str, case: str) -> dict:
    """In the child: load, warm up on a short pair, time the case once, report peak RSS in MB."""
    from turborank import Reranker

    reranker = Reranker.from_pretrained(
        directory, device="cpu", backend="torch" if backend == REFERENCE else backend
    )
    reranker.engine.run(pairs_of_lengths([64]))
    if backend == REFERENCE:
        use_reference_attention(reranker.config.num_attention_heads, max(CASES[case]))
        reranker.engine.max_batch_tokens = 1 << 40
        reranker.engine.max_batch_size = REFERENCE_BATCH_SIZE
    loaded = peak_rss_mb()
    encodings = pairs_of_lengths(CASES[case])
    start = time.perf_counter()
    reranker.engine.run(encodings)
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    return {"seconds": seconds, "loaded_mb": loaded, "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/turborank-turbo"))
    parser.add_argument("--backends", nargs="+", default=[REFERENCE, "torch", "onnx", "onnx-int8"])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per backend and case")
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    directory = turbo_checkpoint(args.model_dir)
    if args.child:
        print(json.dumps(run_case(directory, *args.child)))
        return

    print("# turbo shape, random weights; one subprocess per case (peak RSS = VmHWM of that process)")
    print(f"# {hardware()}; best of {args.repeats} interleaved runs, peak RSS the highest")
    print(f"{'case':<10} {'backend':<14} {'seconds':>8} {'speedup':>8} {'loaded MB':>10} {'peak MB':>8}")
    for case in args.cases:
        runs: dict[str, list[dict]] = {backend: [] for backend in args.backends}
        for _ in range(args.repeats):
            for backend in args.backends:
                child = [sys.executable, __file__, "--model-dir", str(directory), "--child", backend, case]
                done = subprocess.run(child, capture_output=True, text=True, check=True)
                runs[backend].append(json.loads(done.stdout.strip().splitlines()[-1]))
        base = min(r["seconds"] for r in runs[args.backends[0]])
        for backend, results in runs.items():
            best = min(r["seconds"] for r in results)
            loaded, peak = (max(r[key] for r in results) for key in ("loaded_mb", "peak_mb"))
            print(
                f"{case:<10} {backend:<14} {best:>8.2f} {base / best:>7.2f}x {loaded:>10.0f} {peak:>8.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
