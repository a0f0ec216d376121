"""``turborank score``: flags, and the choice between the single-process and the Ray driver."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class RayOptions:
    """Where the Ray job runs and the size of its actor pool."""

    address: str | None = None  # None: start a local Ray
    concurrency: int = 1  # actors, each with its own copy of the model
    num_cpus: float = 1.0  # per actor; torch threads default to it
    num_gpus: float = 0.0  # per actor
    id_column: str | None = None  # a unique row id: Ray Data's checkpointing resumes by it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The score command's flags; the model and long-document flags are the shared ones from the CLI."""
    from ..cli import add_long_document_arguments, add_model_arguments

    parser.add_argument("input", help="JSONL, CSV, TSV or Parquet file of pairs")
    parser.add_argument("output", help="Parquet or JSONL file (with --ray: a directory of such files)")
    files = parser.add_argument_group("files")
    files.add_argument("--input-format", choices=["jsonl", "csv", "tsv", "parquet"], default=None)
    files.add_argument("--output-format", choices=["parquet", "jsonl"], default=None)
    files.add_argument("--query-column", default="query", help="default: query")
    files.add_argument("--document-column", default="document", help="default: document")
    files.add_argument(
        "--keep-columns",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="input columns copied to the output besides the pair (default: every column)",
    )
    files.add_argument(
        "--id-column", default=None, help="a unique row id; with --ray, what a rerun resumes by"
    )
    files.add_argument(
        "--on-error",
        choices=ON_ERROR,
        default="raise",
        help="raise (default): stop at the first bad row and name it; skip: leave bad rows out, count them",
    )
    files.add_argument("--overwrite", action="store_true", help="replace an existing output")
    files.add_argument("--quiet", action="store_true", help="no progress bar")
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--top-n", type=int, default=None, help="keep each query's best N rows, ranked")
    scoring.add_argument(
        "--batch-size",
        type=int,
        default=1024,
        help="rows read and scored at a time (sorted by length inside; also the resume unit; default 1024)",
    )
    scoring.add_argument(
        "--max-length", type=int, default=None, help="tokens per pair (default: the model's)"
    )
    scoring.add_argument("--truncation", choices=["only_second", "longest_first"], default="only_second")
    add_long_document_arguments(scoring)
    add_model_arguments(scoring)
    ray = parser.add_argument_group("Ray (pip install 'turborank[ray]')")
    ray.add_argument("--ray", action="store_true", help="score on a Ray cluster with Ray Data")
    ray.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    ray.add_argument("--concurrency", type=int, default=1, help="actors, each loading the model once")
    ray.add_argument(
        "--num-cpus", type=float, default=1.0, help="CPUs per actor (torch threads default to it)"
    )
    ray.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per actor")


def run_score(args: argparse.Namespace) -> int:
    """Score the file as the flags say; print a JSON summary on stdout. Needs pyarrow, which the CLI
    checks first (``require_pyarrow``)."""
    from ..cli import long_documents_from_args
    from .scoring import Columns, ModelOptions, ScoreOptions

    _check_flags(args)
    columns = Columns(
        args.query_column, args.document_column, tuple(args.keep_columns) if args.keep_columns else None
    )
    ray_options = RayOptions(args.address, args.concurrency, args.num_cpus, args.num_gpus, args.id_column)
    threads = args.threads or (max(1, round(args.num_cpus)) if args.ray else None)
    model = ModelOptions(args.model, args.device, args.dtype, threads, args.backend)
    options = ScoreOptions(columns, model, args.max_length, args.truncation, long_documents_from_args(args))
    if args.ray:
        from .ray_job import run_on_ray

        summary = run_on_ray(_job(args, options), ray_options)
    else:
        from .local import run

        summary = run(_job(args, options))
    # One write, on its own last line: Ray's raylet warnings reach stdout from another thread, and json.dump's
    # piecewise writes could interleave with them.
    sys.stdout.write(json.dumps(summary, default=vars) + "\n")
    return 0


def _job(args: argparse.Namespace, options):  # noqa: ANN001, ANN202 - ScoreOptions/ScoreJob, imported lazily
    from .inputs import PairFile
    from .local import ScoreJob, output_format_of

    output = Path(args.output)
    return ScoreJob(
        source=PairFile.open(args.input, args.input_format),
        output=output,
        # Ray writes a directory, whose name need not say the format: Parquet unless told.
        output_format=output_format_of(output, args.output_format, "parquet" if args.ray else None),
        options=options,
        chunk_rows=args.batch_size,
        skip_bad_rows=args.on_error == "skip",
        top_n=args.top_n,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )


def _check_flags(args: argparse.Namespace) -> None:
    from ..cli import check_positive_flags

    check_positive_flags(args, ("batch_size", "top_n", "concurrency", "max_length"))
    if args.num_cpus <= 0 or args.num_gpus < 0:
        raise InputError("--num-cpus must be above 0 and --num-gpus at least 0")
