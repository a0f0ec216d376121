"""The single-process driver: read a chunk, score it, save it as a part; merge the parts at the end.

Parts are written atomically to ``OUTPUT.partial/`` (one Parquet file per input chunk, named by chunk
number), so an interrupted run loses at most the chunk in progress and a rerun scores only the missing
chunks. The manifest there records the input and the settings; a rerun with others is refused rather than
mixing scores. Memory holds one chunk (and, with ``--top-n``, one query's rows) whatever the file size.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ..api import Reranker
from ..errors import InputError
from .inputs import Chunk, PairFile
from .scoring import ScoreOptions, score_table, top_n_of_group

OUTPUT_FORMATS = ("parquet", "jsonl")
SKIPPED_KEY, PROBLEMS_KEY = b"turborank.skipped", b"turborank.problems"
PROBLEMS_KEPT = 5  # bad rows quoted in the summary; the rest are only counted


@dataclass
class ScoreJob:
    """One ``turborank score`` run: where from, where to, and how."""

    source: PairFile
    output: Path
    output_format: str
    options: ScoreOptions
    chunk_rows: int = 1024
    skip_bad_rows: bool = False
    top_n: int | None = None
    overwrite: bool = False
    progress: bool = True

    @property
    def work_dir(self) -> Path:
        return self.output.with_name(self.output.name + ".partial")

    def manifest(self) -> dict:
        """What a part depends on: a rerun may reuse parts only when all of it is unchanged."""
        stat = self.source.path.stat()
        return {
            "input": str(self.source.path.resolve()),
            "input_bytes": stat.st_size,
            "input_mtime_ns": stat.st_mtime_ns,
            "format": self.source.format,
            "chunk_rows": self.chunk_rows,
            "options": asdict(self.options),
        }


@dataclass
class Summary:
    """What a run did, printed as JSON at the end."""

    output: str
    rows_scored: int = 0
    rows_skipped: int = 0
    chunks_resumed: int = 0
    bad_rows: list[str] = field(default_factory=list)  # the first few, quoted


def output_format_of(path: Path, given: str | None, default: str | None = None) -> str:
    """The output format: given, else from the suffix (.jsonl/.json/.ndjson or .parquet/.pq), else default.

    Raises:
        InputError: neither given nor known from the suffix.
    """
    if given:
        if given not in OUTPUT_FORMATS:
            raise InputError(f"--output-format must be one of {', '.join(OUTPUT_FORMATS)}, got {given!r}")
        return given
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if default:
        return default
    raise InputError(f"cannot tell the output format of {path} from its suffix: pass --output-format")


def run(job: ScoreJob) -> Summary:
    """Score every chunk not already saved, then merge the parts into the output file.

    Raises:
        InputError: a bad row (without ``skip_bad_rows``), an unusable file, or a mismatched resume.
    """
    _prepare(job)
    summary = Summary(str(job.output))
    try:
        _score_missing_parts(job, summary)
    except BaseException:
        if not any(job.work_dir.glob("part-*.parquet")):  # nothing to resume: leave no trace
            shutil.rmtree(job.work_dir)
        raise
    _merge(job, summary)
    shutil.rmtree(job.work_dir)
    return summary


def _score_missing_parts(job: ScoreJob, summary: Summary) -> None:
    reranker: Reranker | None = None
    total = job.source.num_rows()
    with tqdm(total=total, unit="pairs", desc="score", disable=not job.progress, smoothing=0.1) as bar:
        for number, chunk in enumerate(job.source.chunks(job.options.columns, job.chunk_rows)):
            part = _part_path(job.work_dir, number)
            if part.exists():
                summary.chunks_resumed += 1
            else:
                reranker = reranker or job.options.model.load()
                _save_part(part, _score_chunk(job, chunk, reranker))
            bar.update(chunk.table.num_rows + len(chunk.unreadable))


def _prepare(job: ScoreJob) -> None:
    if job.output.exists() and not job.overwrite:
        raise InputError(f"{job.output} exists: pass --overwrite to replace it, or choose another output")
    manifest_path = job.work_dir / "manifest.json"
    manifest = job.manifest()
    if manifest_path.exists():
        saved = json.loads(manifest_path.read_text(encoding="utf-8"))
        if saved != json.loads(json.dumps(manifest, default=str)):
            raise InputError(
                f"{job.work_dir} holds parts of a run with another input or other settings: rerun with "
                f"those, or delete {job.work_dir} to start over"
            )
        return
    job.work_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(manifest_path, json.dumps(manifest, indent=2, default=str).encode("utf-8"))


def _score_chunk(job: ScoreJob, chunk: Chunk, reranker: Reranker) -> pa.Table:
    """The chunk's good rows scored, with how many were bad (and the first few) in the metadata."""
    table, problems = chunk.split_bad_rows()
    if problems and not job.skip_bad_rows:
        raise InputError(
            f"{job.source.path}: {problems[0]}: fix it, or pass --on-error skip to leave bad rows out "
            f"(rows scored so far are kept in {job.work_dir}; a rerun resumes after them)"
        )
    scored = score_table(reranker, table, job.options)
    metadata = {SKIPPED_KEY: str(len(problems)), PROBLEMS_KEY: json.dumps(problems[:PROBLEMS_KEPT])}
    return scored.replace_schema_metadata(metadata)


def _part_path(work_dir: Path, number: int) -> Path:
    return work_dir / f"part-{number:08d}.parquet"


def _save_part(path: Path, table: pa.Table) -> None:
    temporary = path.with_suffix(".tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _parts(job: ScoreJob, summary: Summary) -> Iterator[pa.Table]:
    """The saved parts in input order, counting their rows into the summary."""
    for part in sorted(job.work_dir.glob("part-*.parquet")):
        table = pq.read_table(part)
        metadata = table.schema.metadata or {}
        summary.rows_scored += table.num_rows
        summary.rows_skipped += int(metadata.get(SKIPPED_KEY, b"0"))
        room = PROBLEMS_KEPT - len(summary.bad_rows)
        summary.bad_rows += json.loads(metadata.get(PROBLEMS_KEY, b"[]"))[:room]
        yield table.replace_schema_metadata(None)


def _merge(job: ScoreJob, summary: Summary) -> None:
    """Write the parts (each query cut to its best ``top_n`` when asked) to the output, atomically."""
    tables = _parts(job, summary)
    if job.top_n is not None:
        tables = top_n_per_query(tables, job.options.columns.query, job.top_n)
    temporary = job.output.with_name(job.output.name + ".tmp")
    if job.output_format == "parquet":
        _write_parquet(tables, temporary)
    else:
        _write_jsonl(tables, temporary)
    os.replace(temporary, job.output)


def _write_parquet(tables: Iterator[pa.Table], path: Path) -> None:
    writer: pq.ParquetWriter | None = None
    try:
        for table in tables:
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no rows at all: still a valid, empty file
        pq.write_table(pa.table({}), path)


def _write_jsonl(tables: Iterator[pa.Table], path: Path) -> None:
    with path.open("w", encoding="utf-8") as stream:
        for table in tables:
            for row in table.to_pylist():
                stream.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def top_n_per_query(tables: Iterator[pa.Table], query_column: str, top_n: int) -> Iterator[pa.Table]:
    """Each query's best ``top_n`` rows, queries in input order; holds one query's rows at a time.

    Raises:
        InputError: a query's rows are not consecutive (the file is not grouped by query).
    """
    group: list[pa.Table] = []
    current: str | None = None
    finished: set[int] = set()  # hashes of queries already emitted
    for table in tables:
        queries = table[query_column].to_pylist()
        start = 0
        for end in range(1, len(queries) + 1):
            if end < len(queries) and queries[end] == queries[start]:
                continue
            if queries[start] != current:
                if group:
                    yield top_n_of_group(pa.concat_tables(group), top_n)
                    finished.add(hash(current))
                if hash(queries[start]) in finished:
                    raise InputError(
                        f"query {queries[start]!r:.80} comes back after other queries: --top-n needs each "
                        "query's rows together; sort the input by query (or leave --top-n out)"
                    )
                group, current = [], queries[start]
            group.append(table.slice(start, end - start))
            start = end
    if group:
        yield top_n_of_group(pa.concat_tables(group), top_n)
