"""Reading pair files in chunks (bounded memory) and finding their bad rows.

Each reader yields ``Chunk``s of at most ``chunk_rows`` rows in file order, so chunk k always covers the
same rows of an unchanged file: that is what lets an interrupted run resume by chunk number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import InputError
from .scoring import Columns

FORMATS = ("jsonl", "csv", "tsv", "parquet")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}
SUFFIXES |= {".parquet": "parquet", ".pq": "parquet"}
CSV_BLOCK_BYTES = 1 << 20


@dataclass
class Chunk:
    """Rows ``first_row`` .. ``first_row + num_rows - 1`` (0-based) of the file, and their problems."""

    table: pa.Table
    first_row: int
    problems: dict[int, str] = field(default_factory=dict)  # row in chunk -> what is wrong with it
    lines: list[int] | None = None  # JSONL: the file line of each row, for messages
    unreadable: list[str] = field(default_factory=list)  # CSV lines that are not rows (wrong field count)
    ids: list | None = None  # under Ray, where rows have no file position: the --id-column values

    def label(self, row: int) -> str:
        """How a message names a row: its line in a JSONL file, its id under Ray, else its 1-based row."""
        if self.lines is not None:
            return f"line {self.lines[row]}"
        if self.ids is not None:
            return f"id {self.ids[row]!r}"
        return f"row {self.first_row + row + 1}"

    def split_bad_rows(self) -> tuple[pa.Table, list[str]]:
        """The good rows, and what is wrong with each bad one (in file order)."""
        problems = self.unreadable + [self.problems[row] for row in sorted(self.problems)]
        if not self.problems:
            return self.table, problems
        good = [row not in self.problems for row in range(self.table.num_rows)]
        return self.table.filter(pa.array(good)), problems


@dataclass(frozen=True)
class PairFile:
    """An input file and how to read it."""

    path: Path
    format: str

    @classmethod
    def open(cls, path: str | Path, format: str | None = None) -> PairFile:
        """Check the file exists and resolve its format (from the suffix unless given).

        Raises:
            InputError: missing file, or a format that is neither given nor known from the suffix.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"input file {path} does not exist")
        resolved = format or format_of(path)
        if resolved not in FORMATS:
            raise InputError(f"--input-format must be one of {', '.join(FORMATS)}, got {resolved!r}")
        return cls(path, resolved)

    def num_rows(self) -> int | None:
        """Rows in the file when its metadata says so (Parquet), else None."""
        return pq.ParquetFile(self.path).metadata.num_rows if self.format == "parquet" else None

    def chunks(self, columns: Columns, chunk_rows: int) -> Iterator[Chunk]:
        """Chunks of ``chunk_rows`` rows with their problems found (missing, null or non-string pairs).

        Raises:
            InputError: the file as a whole is unusable (a pair column is absent or not text).
        """
        if self.format == "jsonl":
            yield from _jsonl_chunks(self.path, columns, chunk_rows)
            return
        unreadable: list[str] = []
        if self.format == "parquet":
            batches = pq.ParquetFile(self.path).iter_batches(batch_size=chunk_rows)
        else:
            batches = _csv_batches(self.path, self.format, columns, unreadable)
        first_row = 0
        for table in _rebatch(batches, chunk_rows):
            if first_row == 0:
                check_pair_columns(table.schema, columns, self.path)
            chunk = Chunk(table, first_row, unreadable=list(unreadable))
            unreadable.clear()
            chunk.problems = null_problems(chunk, columns)
            yield chunk
            first_row += table.num_rows


def format_of(path: Path) -> str:
    """The format named by a file's suffix.

    Raises:
        InputError: the suffix is not one turborank reads.
    """
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise InputError(
            f"cannot tell the format of {path} from its suffix: pass --input-format {'|'.join(FORMATS)}"
        ) from None


def _rebatch(batches: Iterator[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.Table]:
    """Regroup record batches of any size into tables of exactly ``chunk_rows`` rows (the last: fewer)."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows).combine_chunks()
            rest = table.slice(chunk_rows)
            pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending).combine_chunks()


def _csv_batches(
    path: Path, format: str, columns: Columns, unreadable: list[str]
) -> Iterator[pa.RecordBatch]:
    """Stream a CSV/TSV file; pair columns stay text, an unquoted empty field is missing.

    Lines with the wrong number of fields are left out and described in ``unreadable``.
    """
    delimiter = "\t" if format == "tsv" else ","

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        unreadable.append(
            f"line {row.number}: expected {row.expected_columns} fields, got {row.actual_columns}"
        )
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid_row),
            convert_options=pacsv.ConvertOptions(
                column_types={columns.query: pa.string(), columns.document: pa.string()},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise InputError(f"cannot read {path} as {format.upper()}: {exc}") from exc
    yield from reader


def check_pair_columns(schema: pa.Schema, columns: Columns, path: Path | str) -> None:
    """Both pair columns exist and hold text.

    Raises:
        InputError: naming the column and the fix.
    """
    for name in (columns.query, columns.document):
        if name not in schema.names:
            raise InputError(
                f"{path} has no column {name!r} (it has {', '.join(schema.names)}): "
                "name the right one with --query-column / --document-column"
            )
        kind = schema.field(name).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
            raise InputError(f"{path}: column {name!r} holds {kind}, not text: convert it to strings first")


def null_problems(chunk: Chunk, columns: Columns) -> dict[int, str]:
    """Row in chunk -> problem, for each row whose query or document is missing."""
    problems: dict[int, str] = {}
    for name in (columns.document, columns.query):  # the query's problem wins when both are missing
        missing = pc.is_null(chunk.table[name]).to_numpy(zero_copy_only=False)
        for row in missing.nonzero()[0].tolist():
            problems[row] = f"{chunk.label(row)}: {name!r} is missing"
    return problems


def _jsonl_chunks(path: Path, columns: Columns, chunk_rows: int) -> Iterator[Chunk]:
    """Parse JSON lines ourselves, so that each problem names its line; blank lines are ignored.

    The first chunk fixes the columns and their types (pyarrow infers them); later rows are cast to them.
    """
    schema: pa.Schema | None = None
    first_row = 0
    rows: list[dict] = []
    lines: list[int] = []
    problems: dict[int, str] = {}
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            row, problem = _parse_jsonl_row(line, number, columns)
            if problem:
                problems[len(rows)] = problem
            rows.append(row)
            lines.append(number)
            if len(rows) == chunk_rows:
                schema = schema or _jsonl_schema(rows, columns, path)
                yield _jsonl_chunk(rows, schema, first_row, problems, lines, path)
                first_row += len(rows)
                rows, lines, problems = [], [], {}
    if rows:
        schema = schema or _jsonl_schema(rows, columns, path)
        yield _jsonl_chunk(rows, schema, first_row, problems, lines, path)


def _parse_jsonl_row(line: str, number: int, columns: Columns) -> tuple[dict, str | None]:
    """The row (pair values that are not strings become None) and its problem, if any."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return {}, f"line {number}: invalid JSON ({exc.msg})"
    if not isinstance(row, dict):
        return {}, f"line {number}: expected a JSON object with {columns.query!r} and {columns.document!r}"
    problem = None
    for name in (columns.document, columns.query):
        value = row.get(name)
        if value is None:
            problem = f"line {number}: {name!r} is missing"
        elif not isinstance(value, str):
            problem = f"line {number}: {name!r} is a {type(value).__name__}, not a string"
            row[name] = None
    return row, problem


def _jsonl_schema(rows: list[dict], columns: Columns, path: Path) -> pa.Schema:
    inferred = pa.Table.from_pylist(rows).schema
    names = list(inferred.names)
    for name in (columns.query, columns.document):
        if name not in names:
            raise InputError(
                f"no row among the first {len(rows)} of {path} has a {name!r} field: "
                "name the right one with --query-column / --document-column"
            )
    # Pair columns are text even when every value so far was missing.
    return pa.schema(
        [
            pa.field(n, pa.string()) if n in (columns.query, columns.document) else inferred.field(n)
            for n in names
        ]
    )


def _jsonl_chunk(
    rows: list[dict],
    schema: pa.Schema,
    first_row: int,
    problems: dict[int, str],
    lines: list[int],
    path: Path,
) -> Chunk:
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(
            f"{path}: lines {lines[0]}-{lines[-1]}: a field's type differs from the first rows' ({exc}): "
            "give each field one type throughout the file"
        ) from exc
    return Chunk(table, first_row, problems, lines)
