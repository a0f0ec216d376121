"""Long inputs on the turbo shape: time and peak RSS per sequence length and per workload.

Every case runs in its own subprocess, so each peak RSS (VmHWM) belongs to that case alone; the
RSS after loading the model is reported too, so the increment is visible. Speedups are against the
plain torch fp32 path on the same case, measured in the same run.
Run: python benchmarks/bench_long.py [--backends torch onnx onnx-int8] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import hardware, pairs_of_lengths, peak_rss_mb, turbo_checkpoint

# name -> (pair lengths): one pair per length, then the two workloads.
CASES = {
    "1 x 512": [512],
    "1 x 2048": [2048],
    "1 x 8192": [8192],
    "10 x 2048": [2048] * 10,
    "2 x 8192": [8192] * 2,
}


def run_case(directory: Path, backend: str, case: str) -> dict:
    """In the child: load, warm up on a short pair, time the case once, report peak RSS in MB."""
    from turborank import Reranker

    reranker = Reranker.from_pretrained(directory, device="cpu", backend=backend)
    reranker.engine.run(pairs_of_lengths([64]))
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
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    directory = turbo_checkpoint(args.model_dir)
    if args.child:
        print(json.dumps(run_case(directory, *args.child)))
        return

    print("# turbo shape, random weights; one subprocess per case (peak RSS = VmHWM of that process)")
    print(f"# {hardware()}")
    print(f"{'case':<10} {'backend':<10} {'seconds':>8} {'speedup':>8} {'loaded MB':>10} {'peak MB':>8}")
    for case in args.cases:
        base = None
        for backend in args.backends:
            child = [sys.executable, __file__, "--model-dir", str(directory), "--child", backend, case]
            done = subprocess.run(child, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            base = base or result["seconds"]
            print(
                f"{case:<10} {backend:<10} {result['seconds']:>8.2f} {base / result['seconds']:>7.2f}x "
                f"{result['loaded_mb']:>10.0f} {result['peak_mb']:>8.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
