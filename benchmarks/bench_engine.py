"""Engine throughput on the turbo shape (6x384, 12 heads, GeGLU, vocab 61,056), random weights.

Workloads (issue 2): (a) one query, 100 documents of 30-500 tokens; (b) 100 documents of 200 tokens;
(c) 10 documents of 2,048 tokens; (d) one 8,192-token pair, with peak RSS of a fresh process.
Each figure is a ratio against baselines measured in the same run:
  naive         the same module, fixed batches of 32 in input order, padded to the longest;
  CrossEncoder  sentence-transformers with a classic BERT of the same size (where installed; it
                stops at 512 positions, so not for (c));
  engine/BERT   turborank's engine running that same classic BERT, for a like-for-like comparison.
  bf16          turborank on the turbo shape with dtype="bfloat16" on the CPU (fast where the CPU has
                AMX / AVX512-BF16; float32 stays the default).

    python benchmarks/bench_engine.py [--repeats 3] [--cases abcd]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import workloads as w
from common import hardware

from turborank import Reranker

QUERY = "what is the history of the city government and its community"


def best_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def naive(reranker: Reranker, docs: list[str]) -> None:
    encodings = reranker.encode([(QUERY, d) for d in docs])
    for start in range(0, len(encodings), 32):
        reranker.engine.run_batch(encodings[start : start + 32])


def cross_encoder(bert_dir: Path):  # noqa: ANN201 - optional dependency
    try:
        from sentence_transformers import CrossEncoder
    except ImportError:
        return None
    from transformers import BertConfig, BertForSequenceClassification

    from turborank.checkpoint import read_weights

    c = w.BERT_SAME_SHAPE
    hf_dir = bert_dir.parent / "hf-bert"
    config = BertConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.hidden_size,
        num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.intermediate_size,
        max_position_embeddings=c.max_position_embeddings,
        num_labels=1,
    )
    model = BertForSequenceClassification(config)
    model.load_state_dict(
        {k: v.float() for k, v in read_weights(bert_dir / "model.safetensors").items()}, strict=False
    )
    model.save_pretrained(hf_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (hf_dir / name).write_bytes((w.TOKENIZER_DIR / name).read_bytes())
    return CrossEncoder(str(hf_dir), max_length=512, device="cpu")


def case_docs(case: str) -> list[str]:
    if case == "a":
        return w.documents(w.mixed_lengths(100, 30, 500, seed=1), seed=1)
    if case == "b":
        return w.documents([200] * 100, seed=2)
    if case == "c":
        return w.documents([2048] * 10, seed=3)
    raise ValueError(case)


def measure_throughput(case: str, models: dict[str, Reranker], ce, repeats: int) -> dict:  # noqa: ANN001
    docs = case_docs(case)
    pairs = len(docs)
    row = {"case": case, "pairs": pairs}
    row["engine"] = pairs / best_time(lambda: models["turbo"].rerank(QUERY, docs), repeats)
    row["naive"] = pairs / best_time(lambda: naive(models["turbo"], docs), repeats)
    row["bf16"] = pairs / best_time(lambda: models["turbo_bf16"].rerank(QUERY, docs), repeats)
    if case != "c":  # the classic BERT stops at 512 positions
        row["engine_bert"] = pairs / best_time(lambda: models["bert"].rerank(QUERY, docs), repeats)
    if ce is not None and case != "c":
        row["crossencoder"] = pairs / best_time(
            lambda: ce.predict([(QUERY, d) for d in docs], batch_size=32, show_progress_bar=False), repeats
        )
    return row


def table_row(case: str, row: dict) -> list[str]:
    ce, bert = row.get("crossencoder"), row.get("engine_bert")
    return [
        f"({case})",
        f"{row['engine']:.1f}",
        f"{row['naive']:.1f}",
        f"{row['engine'] / row['naive']:.2f}",
        f"{ce:.1f}" if ce else "n/a",
        f"{row['engine'] / ce:.2f}" if ce else "",
        f"{bert:.1f}" if bert else "n/a",
        f"{bert / ce:.2f}" if ce and bert else "",
        f"{row['bf16']:.1f}",
        f"{row['bf16'] / ce:.2f}" if ce else "",
    ]


def long_pair_child(model_dir: str, tokens: int) -> None:
    """Runs in a fresh process so its peak RSS is this one pair's alone."""
    reranker = Reranker.from_pretrained(model_dir, device="cpu")
    doc = w.documents([tokens - 20], seed=4)[0]
    start = time.perf_counter()
    reranker.compute_score([QUERY, doc])
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": w.peak_rss_mb()}))


def measure_long_pair(model_dir: Path, tokens: int = 8192) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--long-pair-child", str(model_dir), str(tokens)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="abcd")
    parser.add_argument("--long-pair-child", nargs=2, metavar=("MODEL_DIR", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.long_pair_child:
        long_pair_child(args.long_pair_child[0], int(args.long_pair_child[1]))
        return

    print(f"hardware: {hardware()}")
    with tempfile.TemporaryDirectory() as tmp:
        turbo_dir = w.write_checkpoint(w.TURBO, Path(tmp) / "turbo")
        bert_dir = w.write_checkpoint(w.BERT_SAME_SHAPE, Path(tmp) / "bert")
        models = {
            "turbo": Reranker.from_pretrained(turbo_dir, device="cpu"),
            "turbo_bf16": Reranker.from_pretrained(turbo_dir, device="cpu", dtype="bfloat16"),
            "bert": Reranker.from_pretrained(bert_dir, device="cpu"),
        }
        ce = cross_encoder(bert_dir)
        print("CrossEncoder:", "sentence-transformers installed" if ce else "not installed (skipped)")
        print("pairs/s; ratios against baselines measured in this run")
        header = ["case", "turbo", "naive", "x naive", "CE", "x CE", "BERT", "BERT x CE", "bf16", "bf16 x CE"]
        print("".join(f"{h:>10}" for h in header))
        for case in args.cases.replace("d", ""):
            print(
                "".join(
                    f"{c:>10}" for c in table_row(case, measure_throughput(case, models, ce, args.repeats))
                )
            )
        if "d" in args.cases:
            long = measure_long_pair(turbo_dir)
            print(
                f"(d)   one 8,192-token pair: {long['seconds']:.2f} s, peak RSS {long['peak_rss_mb']:.0f} MB "
                "(fresh process, model load included)"
            )


if __name__ == "__main__":
    main()
