"""Production-like throughput: text in, scores out, >= 20,000 pairs, bf16, the server's own batch budget.

Two workloads (1 query against N documents of 200 tokens; N documents of 30-500 tokens), each scored as
``compute_score`` does it (tokenize everything, then run the engine) and pipelined
(``pipeline.score_pairs``: the next chunk is tokenized on a thread while the engine runs the current
one). Rounds are interleaved and the best counts; pairs/s include tokenization. Then where the time goes,
for the pipelined path: tokenization and host padding (timed alone on the CPU), host-to-device copies and
GPU kernels (torch.profiler), and the GPU's busy share of the wall time (profiled kernel time / wall;
``nvidia-smi``-style utilisation as well when nvidia-ml-py is installed).
Run (CUDA): python benchmarks/bench_gpu_throughput.py [--pairs 20480] [--rounds 3]
A CPU smoke run checks the script itself: --device cpu --dtype float32 --pairs 256 --rounds 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import workloads as w
from common import best_rounds, hardware, turbo_checkpoint

from turborank import Reranker
from turborank.pipeline import score_pairs
from turborank.server.config import ServerConfig

QUERY = "what is the history of the city and its people"


def workload_pairs(count: int) -> dict[str, list[tuple[str, str]]]:
    return {
        f"{count} x 200 tok": [(QUERY, d) for d in w.documents([200] * count)],
        f"{count} x 30-500 tok": [(QUERY, d) for d in w.documents(w.mixed_lengths(count, 30, 500))],
    }


def load(directory: Path, device: str, dtype: str) -> Reranker:
    """The reranker as ``turborank serve`` configures it: its default batch budget and batch size."""
    config = ServerConfig()
    reranker = Reranker.from_pretrained(
        directory, device=device, dtype=dtype, max_batch_tokens=config.max_batch_tokens
    )
    reranker.engine.max_batch_size = config.max_batch_size
    reranker.warm_up()
    return reranker


def timed(run: Callable[[], np.ndarray], device: str) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    logits = run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, logits


def gpu_utilisation() -> str:
    try:
        return f"{torch.cuda.utilization()}%"
    except Exception:  # noqa: BLE001 - needs nvidia-ml-py, absent on a bare machine
        return "n/a (pip install nvidia-ml-py)"


def breakdown(reranker: Reranker, pairs: list[tuple[str, str]], device: str) -> str:
    """Where one pipelined pass spends its time."""
    start = time.perf_counter()
    encodings = reranker.encode(pairs)
    tokenize = time.perf_counter() - start
    start = time.perf_counter()
    for indices in reranker.engine.plan(encodings):
        reranker.engine._collate([encodings[i] for i in indices])
    pad = time.perf_counter() - start
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        wall, _ = timed(lambda: score_pairs(reranker, pairs), device)
    events = profile.key_averages()
    copies = sum(e.device_time_total for e in events if "Memcpy HtoD" in e.key) / 1e6
    kernels = sum(e.self_device_time_total for e in events if "Memcpy" not in e.key) / 1e6
    return (
        f"tokenize {tokenize:.2f} s, pad {pad:.2f} s (host, alone); profiled pass {wall:.2f} s: "
        f"host-to-device {copies:.3f} s, GPU kernels {kernels:.2f} s, GPU busy {kernels / wall:.0%}, "
        f"utilisation {gpu_utilisation() if device.startswith('cuda') else 'n/a'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/turborank-turbo"))
    parser.add_argument("--pairs", type=int, default=20480)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device (or --device cpu --dtype float32 for a smoke run)")
    reranker = load(turbo_checkpoint(args.model_dir), args.device, args.dtype)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"# turbo shape, random weights, {args.dtype}; {where}; host {hardware()}")
    print(
        f"# batch budget {reranker.engine.max_batch_tokens:,} tokens / {reranker.engine.max_batch_size} pairs"
    )
    print(f"# best of {args.rounds} interleaved rounds; pairs/s include tokenization")
    print(f"# runs on {reranker.info()['runs_on']}")
    paths = {
        "tokenize, then score": lambda pairs: reranker.predict_logits(pairs),
        "pipelined": lambda pairs: score_pairs(reranker, pairs),
    }
    for name, pairs in workload_pairs(args.pairs).items():
        times: dict[str, list[float]] = {path: [] for path in paths}
        logits = {}
        for _ in range(args.rounds):
            for path, run in paths.items():
                seconds, logits[path] = timed(lambda run=run, pairs=pairs: run(pairs), args.device)
                times[path].append(seconds)
        for path, best, speedup, deviation in best_rounds(times, logits, "tokenize, then score"):
            print(
                f"{name:<18} {path:<22} {len(pairs) / best:>9,.0f} pairs/s {speedup:>6.2f}x "
                f"max |dlogit| {deviation:.1e}"
            )
        print(f"{name:<18} {breakdown(reranker, pairs, args.device)}", flush=True)


if __name__ == "__main__":
    main()
