"""``turborank`` command line. Parsers live here; each command imports its heavy modules lazily."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import InputError, TurborankError, require

# --documents-format auto: a FILE with one of these suffixes is JSONL, anything else (stdin too) is lines.
DOCUMENT_FORMATS = ("auto", "lines", "jsonl")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def read_documents(path: Path, documents_format: str = "auto") -> list[str]:
    """The documents of a file (``-``: stdin), one per non-blank line; blank lines are skipped.

    ``lines``: each line is a document as written (it may start with a quote or a brace). ``jsonl``: each
    line is a JSON string or an object with a string "text" field, and a line that is not is an error
    naming it. ``auto``: jsonl for a name ending in .jsonl or .ndjson; otherwise (stdin too) jsonl only
    when every line is such a JSON document, else lines, so one line of prose that starts with a quote
    makes the whole file plain text instead of an error.
    """
    if documents_format not in DOCUMENT_FORMATS:
        raise InputError(f"documents format must be one of {DOCUMENT_FORMATS}, got {documents_format!r}")
    lines = [(number, line) for number, line in enumerate(_read_text(path).splitlines(), 1) if line.strip()]
    if documents_format == "lines":
        return [line for _, line in lines]
    if documents_format == "auto" and path.suffix.lower() not in JSONL_SUFFIXES:
        try:
            return [_json_document(line, f"{path}:{number}") for number, line in lines]
        except InputError:
            return [line for _, line in lines]
    return [_json_document(line, f"{path}:{number}") for number, line in lines]


def _read_text(path: Path) -> str:
    """A file, or stdin for ``-``, decoded as strict UTF-8: stdin's own decoding may turn bad bytes into lone
    surrogates (surrogateescape), which no tokenizer accepts."""
    stdin = str(path) == "-"
    try:
        data = sys.stdin.buffer.read() if stdin else path.read_bytes()
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read documents from {'stdin' if stdin else path}: {exc}") from exc


def _json_document(line: str, where: str) -> str:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: invalid JSON ({exc.msg})") from exc
    if isinstance(value, dict):
        value = value.get("text")
    if not isinstance(value, str):
        raise InputError(
            f'{where}: a JSONL document is a JSON string or an object with a string "text" field'
        )
    return value


def require_extra(check: Callable[[], None]) -> None:
    """Run a ``require_*`` check of an optional extra; its ImportError, which names the pip command, becomes a
    one-line CLI error instead of a traceback."""
    try:
        check()
    except ImportError as exc:
        raise TurborankError(str(exc)) from exc


def check_positive_flags(args: argparse.Namespace, names: Sequence[str]) -> None:
    """Refuse a numeric flag below 1: argparse only checks that it is a number, and 0 would otherwise be
    taken as "unset" by ``value or default``."""
    for name in names:
        value = getattr(args, name)
        require(f"--{name.replace('_', '-')}", value, value is None or value >= 1, "at least 1")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        "-m",
        default=None,
        help="checkpoint directory or hub id (default: the model shipped with turborank)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--dtype", default=None, help="float32 (default), bfloat16, float16 or auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument(
        "--backend",
        default="auto",
        help="auto (default: torch, and on CUDA unpadded attention for ALiBi batches past 3,072 tokens), "
        "torch (padded), onnx or onnx-int8 (ONNX Runtime on the CPU, export cached next to the "
        "checkpoint), or unpadded (variable-length attention, for CUDA)",
    )


def add_long_document_arguments(parser: argparse.ArgumentParser) -> None:
    """--long-documents and the chunking options; ``long_documents_from_args`` reads them back."""
    from .chunking import AGGREGATIONS, LONG_DOCUMENT_MODES

    parser.add_argument(
        "--long-documents",
        choices=LONG_DOCUMENT_MODES,
        default="auto",
        help="truncate to --max-length, chunk (score overlapping windows, aggregate them), or auto "
        "(default): what the model declares (chunk for the default model, else truncate)",
    )
    parser.add_argument(
        "--window-length",
        type=int,
        default=None,
        help="pair tokens per window of a document too long for --max-length (default: what the model "
        "declares, else --max-length)",
    )
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="document tokens per window (default: all that fit)"
    )
    parser.add_argument(
        "--chunk-stride", type=int, default=None, help="tokens between window starts (default: 3/4 window)"
    )
    parser.add_argument(
        "--max-chunks-per-doc", type=int, default=None, help="windows scored per document (default: all)"
    )
    parser.add_argument("--aggregation", choices=list(AGGREGATIONS), default="max")


def long_documents_from_args(args: argparse.Namespace):  # noqa: ANN201 - LongDocuments, imported lazily
    from .chunking import LongDocuments

    return LongDocuments(
        mode=args.long_documents,
        window_length=args.window_length,
        chunk_size=args.chunk_size,
        chunk_stride=args.chunk_stride,
        max_chunks_per_doc=args.max_chunks_per_doc,
        aggregation=args.aggregation,
    )


def load_reranker(args: argparse.Namespace):  # noqa: ANN201 - imported lazily to keep --help fast
    from .api import Reranker

    return Reranker.from_pretrained(
        args.model,
        device=args.device,
        dtype=args.dtype,
        num_threads=args.threads,
        backend=getattr(args, "backend", "auto"),
    )


def cmd_rank(args: argparse.Namespace) -> int:
    documents = list(args.documents)
    if args.documents_file:
        documents += read_documents(Path(args.documents_file), args.documents_format)
    if not documents:
        raise TurborankError("no documents: pass them after the query or with --documents FILE")
    reranker = load_reranker(args)
    results = reranker.rerank(
        args.query,
        documents,
        top_n=args.top_n,
        max_length=args.max_length,
        truncation=args.truncation,
        return_documents=not args.no_documents,
        long_documents=long_documents_from_args(args),
    )
    json.dump([r.to_dict() for r in results], sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    args.model = args.model_name or args.model
    info = load_reranker(args).info()
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
            print(f"{key:<{width}}  {shown}")
    return 0


def add_rank(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rank",
        help="rank documents against a query, print JSON",
        description="Rank documents against a query and print the results as JSON.",
    )
    p.add_argument("query")
    p.add_argument("documents", nargs="*", help="documents as arguments")
    p.add_argument(
        "--documents",
        "-d",
        dest="documents_file",
        metavar="FILE",
        help="file of documents, - for stdin: one per line, or JSONL (see --documents-format). Blank lines "
        "are skipped; a result's index is the document's position among all documents (those given as "
        "arguments first, then the file's non-blank lines), not its line number",
    )
    p.add_argument(
        "--documents-format",
        choices=DOCUMENT_FORMATS,
        default="auto",
        help='lines: each line is a document as written; jsonl: each line a JSON string or {"text": ...}; '
        "auto (default): jsonl for a FILE ending in .jsonl or .ndjson, else jsonl only when every line is "
        "JSON of that form (stdin too), otherwise lines",
    )
    p.add_argument("--top-n", type=int, default=None)
    p.add_argument(
        "--max-length", type=int, default=None, help="tokens per pair (default: the model's limit)"
    )
    p.add_argument("--truncation", choices=["only_second", "longest_first"], default="only_second")
    p.add_argument("--no-documents", action="store_true", help="leave document texts out of the output")
    add_long_document_arguments(p)
    add_model_arguments(p)
    p.set_defaults(func=cmd_rank)


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a model's architecture, size and limits")
    p.add_argument(
        "model_name",
        nargs="?",
        default=None,
        metavar="MODEL",
        help="checkpoint directory or hub id (default: the shipped model)",
    )
    p.add_argument("--json", action="store_true")
    add_model_arguments(p)
    p.set_defaults(func=cmd_info)


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import require_dependencies
    from .server.config import from_sources

    require_extra(require_dependencies)
    config = from_sources(args)
    if config.ray:
        from .server.ray_serve import run
    else:
        from .server.app import run

    run(config)
    return 0


def add_serve(sub: argparse._SubParsersAction) -> None:
    from .server.config import add_arguments

    p = sub.add_parser(
        "serve",
        help="serve models over HTTP (Jina, Cohere and TEI rerank APIs)",
        description="Serve rerank models over HTTP. Every flag can also be set as a TURBORANK_* env var.",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_serve)


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval.command import run_eval, run_report

    return run_report(args) if args.eval_command == "report" else run_eval(args)


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure a model or rerank endpoint on BEIR-format data (NDCG@10, MRR, hit rate, latency)",
        description="Rerank a first stage (shipped run or BM25 top-k) and measure it with trec_eval. "
        "Writes TREC runs, results.json and results.md under --output-dir. "
        "'turborank eval report RESULTS...' merges result JSONs into one table.",
    )
    what = p.add_argument_group("what to evaluate")
    what.add_argument("--suite", action="append", choices=["beir", "loco", "rag"], help="repeatable")
    what.add_argument("--dataset", action="append", metavar="DIR", help="a BEIR-format folder (repeatable)")
    what.add_argument("--split", default=None, help="qrels split (default: test, or the folder's own)")
    what.add_argument(
        "--data-root", default=None, help="suites' datasets ($TURBORANK_EVAL_DATA or ../shared/data)"
    )
    what.add_argument(
        "--sample-queries",
        type=int,
        default=None,
        metavar="N",
        help="a seeded sample of N queries per dataset, for sets too slow to rerank whole (tables say so)",
    )
    stage = p.add_argument_group("first stage")
    stage.add_argument(
        "--first-stage",
        default="auto",
        metavar="auto|bm25|RUN",
        help="auto: the dataset's shipped BM25 run, else bm25s; bm25: always bm25s; or a TREC run file",
    )
    stage.add_argument(
        "--k", type=int, default=None, help="candidates to rerank (default 100; rag 10; msmarco 20)"
    )
    stage.add_argument("--measures", nargs="+", default=None, help="e.g. NDCG@10 MRR@10 MAP Recall@100 Hit@5")
    stage.add_argument(
        "--relevance-level",
        type=int,
        default=None,
        help="lowest grade binary measures count as relevant (default: eval.json's, TREC DL 2, else 1)",
    )
    stage.add_argument(
        "--ignore-identical-ids",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop a candidate whose id is the query's id, as BEIR does (default: on, except TREC DL and "
        "MS MARCO, or as the dataset's eval.json says)",
    )
    model = p.add_argument_group("reranker (default: the shipped model)")
    add_model_arguments(model)
    model.add_argument(
        "--max-length", type=int, default=None, help="tokens per pair (loco: 512, 2048 and 8192)"
    )
    model.add_argument("--truncation", choices=["only_second", "longest_first"], default="only_second")
    model.add_argument("--long-documents", choices=["auto", "truncate", "chunk"], default=None)
    model.add_argument("--endpoint", metavar="URL", help="score through a rerank server instead of --model")
    model.add_argument("--api-format", choices=["jina", "cohere", "tei"], default="jina")
    model.add_argument("--api-key", default=None, help="bearer token (or $TURBORANK_EVAL_API_KEY)")
    model.add_argument("--api-model", default=None, help="the 'model' field sent to the endpoint")
    model.add_argument("--concurrency", type=int, default=4, help="endpoint requests in flight")
    model.add_argument("--no-rerank", action="store_true", help="measure the first stage only")
    model.add_argument("--label", default=None, help="row name in the tables (default: the model's name)")
    out = p.add_argument_group("output")
    out.add_argument("--output-dir", default="eval-results", help="default: eval-results")
    out.add_argument("--cache", default=None, help="score cache file (default: OUTPUT_DIR/scores.sqlite)")
    out.add_argument("--no-cache", action="store_true", help="keep scores in memory only")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    reports = p.add_subparsers(dest="eval_command", metavar="{report}")
    r = reports.add_parser("report", help="merge result JSONs into one markdown table")
    r.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files")
    r.add_argument("--output", "-o", default=None, help="also write the table to this file")
    p.set_defaults(func=cmd_eval)


def cmd_distill(args: argparse.Namespace) -> int:
    from .distill.command import run_distill

    return run_distill(args)


def add_distill(sub: argparse._SubParsersAction) -> None:
    from .distill.command import add_arguments

    p = sub.add_parser(
        "distill",
        help="distil a fast student reranker from a teacher (local model, API, score file, offline hybrid)",
        description="Build training groups, score them once with a teacher (cached, resumable), train a "
        "student (resumable) and write a checkpoint in the published layout with a model card.",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_distill)


def cmd_score(args: argparse.Namespace) -> int:
    from .score import require_pyarrow
    from .score.command import run_score

    require_extra(require_pyarrow)
    return run_score(args)


def add_score(sub: argparse._SubParsersAction) -> None:
    from .score.command import add_arguments

    p = sub.add_parser(
        "score",
        help="score a JSONL/CSV/Parquet file of (query, document) pairs; resumable, optionally on Ray",
        description="Score every (query, document) row of a file and write it back with score and logit "
        "columns, in input order (--top-n: each query's best rows). Streams in bounded memory; an "
        "interrupted run resumes where it stopped.",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_score)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="turborank", description="Fast cross-encoder reranking.")
    parser.add_argument("--version", action="version", version=f"turborank {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_rank(sub)
    add_info(sub)
    add_serve(sub)
    add_eval(sub)
    add_distill(sub)
    add_score(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TurborankError as exc:
        print(f"turborank: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
