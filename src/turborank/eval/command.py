"""``turborank eval`` and ``turborank eval report``: turn parsed arguments into runs, results and tables."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from ..cli import check_positive_flags
from ..errors import InputError
from .cache import ScoreCache
from .metrics import check_measures
from .report import format_rate, read_results, render, write_results
from .runner import evaluate_dataset
from .scoring import LocalScorer, RemoteScorer, Scorer, rerank_options
from .suites import LOCO_MAX_LENGTHS, DatasetSpec, dataset_spec, resolve_suite

DATA_ROOT_ENV = "TURBORANK_EVAL_DATA"


def default_data_root() -> Path:
    """``$TURBORANK_EVAL_DATA``, else ``../shared/data`` (the project's shared data, next to the repo)."""
    return Path(os.environ.get(DATA_ROOT_ENV, "../shared/data"))


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate the requested suites and datasets; write runs, results.json and results.md."""
    _check_flags(args)
    specs = _specs(args)
    out = Path(args.output_dir)
    cache = ScoreCache(None if args.no_cache else Path(args.cache or out / "scores.sqlite"))
    records = []
    try:
        scorer_sets = _scorers(args, specs)
        for spec in specs:
            scorers = scorer_sets["loco" if spec.suite == "loco" else "default"]
            for record in evaluate_dataset(
                spec,
                scorers,
                cache,
                out,
                first_stage_choice=args.first_stage,
                k=args.k,
                measures=args.measures,
                progress=not args.quiet,
                sample=args.sample_queries,
            ):
                records.append(record.to_dict())
                _print_record(record.to_dict())
    finally:
        cache.close()
    write_results(records, out / "results.json", sys.argv, cache=str(cache.path) if cache.path else None)
    (out / "results.md").write_text(render(records), encoding="utf-8")
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'}\n")
    print(render(records))
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Merge result JSONs into one markdown report."""
    text = render(read_results(args.results))
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


# Flags that configure the local model; an --endpoint run would silently ignore them.
LOCAL_MODEL_FLAGS = ("model", "dtype", "threads", "max_length", "long_documents")


def _check_flags(args: argparse.Namespace) -> None:
    """Refuse numbers below 1 (``--k 0`` would fall back to the default) and flags an endpoint ignores."""
    check_positive_flags(args, ("k", "sample_queries", "concurrency", "max_length"))
    if args.endpoint:
        given = [name for name in LOCAL_MODEL_FLAGS if getattr(args, name) is not None]
        if given:
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
            raise InputError(
                f"{flags}: local model settings, which --endpoint (scoring through a server) would ignore; "
                "drop them, and name the server's model with --api-model"
            )


def _specs(args: argparse.Namespace) -> list[DatasetSpec]:
    if not args.suite and not args.dataset:
        raise InputError("nothing to evaluate: pass --suite beir|loco|rag and/or --dataset DIR")
    specs: list[DatasetSpec] = []
    data_root = Path(args.data_root) if args.data_root else default_data_root()
    for suite in args.suite or []:
        found, missing = resolve_suite(suite, data_root)
        if missing:
            print(f"suite {suite}: not under {data_root}: {', '.join(missing)}", file=sys.stderr)
        if not found:
            print(f"suite {suite}: no dataset found under {data_root} (set --data-root)", file=sys.stderr)
        specs += found
    specs += [dataset_spec(d, args.split) for d in args.dataset or []]
    if args.split and args.suite:
        specs = [replace(s, split=args.split) if s.suite else s for s in specs]
    if not specs:
        raise InputError(f"no dataset to evaluate under {data_root}: pass --data-root or --dataset DIR")
    return _with_rule_flags(specs, args)


def _with_rule_flags(specs: list[DatasetSpec], args: argparse.Namespace) -> list[DatasetSpec]:
    """The flags that override every dataset's protocol (eval.json, known folder or defaults)."""
    if args.measures:
        try:
            check_measures(args.measures)
        except ValueError as exc:
            raise InputError(f"--measures: {exc}") from None
    if args.relevance_level is not None and args.relevance_level < 1:
        raise InputError(
            f"--relevance-level must be at least 1 (the lowest relevant grade), got {args.relevance_level}"
        )
    flags = {"relevance_level": args.relevance_level, "ignore_identical_ids": args.ignore_identical_ids}
    overrides = {name: value for name, value in flags.items() if value is not None}
    if not overrides:
        return specs
    return [replace(spec, **overrides, protocol=f"{spec.protocol} + flags") for spec in specs]


def _scorers(args: argparse.Namespace, specs: list[DatasetSpec]) -> dict[str, list[Scorer]]:
    """Rerankers for ordinary datasets, and for LoCo (one per max_length when none is forced)."""
    if args.no_rerank:
        return {"default": [], "loco": []}
    if args.endpoint:
        from .remote import RemoteReranker

        client = RemoteReranker(
            args.endpoint,
            args.api_format,
            api_key=args.api_key or os.environ.get("TURBORANK_EVAL_API_KEY"),
            model=args.api_model,
            concurrency=args.concurrency,
        )
        scorer = RemoteScorer(client, args.label)
        return {"default": [scorer], "loco": [scorer]}
    from ..cli import load_reranker

    reranker = load_reranker(args)

    def local(max_length: int | None, label: str | None) -> LocalScorer:
        # The one place rerank options are built; a new Reranker.rerank keyword is one more flag here.
        options = rerank_options(max_length, args.truncation, args.long_documents)
        return LocalScorer(reranker, options, label)

    scorers: dict[str, list[Scorer]] = {"default": [local(args.max_length, args.label)]}
    if any(s.suite == "loco" for s in specs) and args.max_length is None:
        lengths = [n for n in LOCO_MAX_LENGTHS if n <= reranker.max_positions or reranker.config.uses_alibi]
        base = args.label or scorers["default"][0].label
        scorers["loco"] = [local(n, f"{base} @{n}") for n in lengths]
    else:
        scorers["loco"] = scorers["default"]
    return scorers


def _print_record(record: dict) -> None:
    measures = "  ".join(f"{k} {v:.4f}" for k, v in record["measures"].items())
    latency = record.get("latency")
    speed = ""
    if latency:
        speed = f"  {format_rate(latency['documents_per_s'])} documents/s"
        if latency["windows"] is not None and latency["windows"] != latency["documents"]:
            speed += f" ({format_rate(latency['windows_per_s'])} windows/s)"
        speed += f" p50 {latency['p50_ms']:.0f} ms"
    print(f"{record['dataset']} ({record['split']}) {record['system']}: {measures}{speed}", file=sys.stderr)
