"""``turborank`` command line. Parsers live here; each command imports its heavy modules lazily."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import TurborankError


def read_documents(path: Path) -> list[str]:
    """One document per line, or JSONL whose lines are strings or objects with a "text" field."""
    if str(path) == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TurborankError(f"cannot read documents from {path}: {exc}") from exc
    documents = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.lstrip().startswith(("{", '"')):
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TurborankError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
            if isinstance(value, dict):
                if not isinstance(value.get("text"), str):
                    raise TurborankError(f'{path}:{number}: a JSON document needs a string "text" field')
                value = value["text"]
            documents.append(str(value))
        else:
            documents.append(line)
    return documents


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
        default="torch",
        help="torch (default), onnx or onnx-int8 (ONNX Runtime on the CPU, export cached next to the "
        "checkpoint), or unpadded (variable-length attention, for CUDA)",
    )


def add_long_document_arguments(parser: argparse.ArgumentParser) -> None:
    """--long-documents and the chunking options; ``long_documents_from_args`` reads them back."""
    from .chunking import AGGREGATIONS, LONG_DOCUMENT_MODES

    parser.add_argument(
        "--long-documents",
        choices=LONG_DOCUMENT_MODES,
        default="truncate",
        help="truncate (default) to --max-length, or chunk: score overlapping windows, aggregate them",
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
        backend=getattr(args, "backend", "torch"),
    )


def cmd_rank(args: argparse.Namespace) -> int:
    documents = list(args.documents)
    if args.documents_file:
        documents += read_documents(Path(args.documents_file))
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
        help='file with one document per line, or JSONL (strings or {"text": ...}); - for stdin',
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

    require_dependencies()
    from .server.app import run

    run(from_sources(args))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turborank", description="Fast cross-encoder reranking.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_rank(sub)
    add_info(sub)
    add_serve(sub)
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
