"""Speed of the shipped default model against the turbo shape, on 100 documents of 200 tokens.

Both run through the same Reranker and engine in float32 on the CPU, each at its own defaults (the
default model reads documents the way its config declares: truncated or in windows); the turbo shape
(6x384, GeGLU, ALiBi, vocab 61,056) has random weights, which cost the same as real ones. With
``--baseline DIR`` another checkpoint (e.g. the previous default model) is timed in the same run too.
Prints documents per second and the ratios, measured in the same run.

    python benchmarks/bench_default_model.py [--repeats 3] [--threads N] [--model DIR] [--baseline DIR]
        [--backend onnx-int8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import workloads as w
from common import hardware

from turborank import Reranker

QUERY = "what is the history of the city government and its community"


def docs_per_second(reranker: Reranker, docs: list[str], repeats: int) -> float:
    reranker.rerank(QUERY, docs[:8])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        reranker.rerank(QUERY, docs, return_documents=False)
        best = min(best, time.perf_counter() - start)
    return len(docs) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--model", default=None, help="checkpoint to time (default: the shipped model)")
    parser.add_argument("--baseline", default=None, help="another checkpoint to time in the same run")
    parser.add_argument("--backend", default="auto", help="backend for every model (default: auto)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    docs = w.documents([200] * 100)
    default = Reranker.from_pretrained(args.model, backend=args.backend)
    with tempfile.TemporaryDirectory() as tmp:
        turbo = Reranker.from_pretrained(
            w.write_checkpoint(w.TURBO, Path(tmp) / "turbo"), backend=args.backend
        )
        # What the default model runs at its own defaults: one truncated pair, or windows, per document.
        windows, _, _ = default.encode_long([(QUERY, d) for d in docs])
        lengths = [len(e) for e in windows]
        print(f"hardware: {hardware()}; backend: {args.backend}")
        print(
            f"workload: 1 query x 100 documents of 200 tokens; the default model reads them as "
            f"{len(windows)} pairs of {sum(lengths) / len(lengths):.0f} tokens on average "
            f"(long_documents={default.long_documents}, max_length {default.max_length})"
        )
        rates = {}
        models = [("turbo shape", turbo), ("default model", default)]
        if args.baseline:
            models.append(("baseline", Reranker.from_pretrained(args.baseline, backend=args.backend)))
        for name, reranker in models:
            rates[name] = docs_per_second(reranker, docs, args.repeats)
            info = reranker.info()
            print(
                f"{name:14s} {info['architecture']}, {info['parameters'] / 1e6:.1f}M params: "
                f"{rates[name]:.0f} docs/s ({1000 * 100 / rates[name]:.0f} ms per request)"
            )
    print(f"default / turbo speed ratio: {rates['default model'] / rates['turbo shape']:.2f}")
    if args.baseline:
        ratio = rates["default model"] / rates["baseline"]
        print(f"default / baseline ({args.baseline}) speed ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
