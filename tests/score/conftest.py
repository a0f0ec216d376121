"""Pair files in every input format, and a helper that runs ``turborank score`` through the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from turborank.cli import main  # noqa: E402

SMALL = str(Path(__file__).resolve().parents[1] / "fixtures" / "small")
WORDS = [
    "paris",
    "capital",
    "france",
    "berlin",
    "germany",
    "river",
    "city",
    "the",
    "of",
    "a",
    "is",
    "and",
    "in",
    "on",
    "model",
    "rerank",
    "score",
]


def make_rows(count: int, per_query: int = 10, seed: int = 0) -> list[dict]:
    """Rows with an id, a query shared by ``per_query`` consecutive rows and documents of 1-60 words."""
    rng = random.Random(seed)
    queries = [f"q{n} " + " ".join(rng.choices(WORDS, k=4)) for n in range(count // per_query + 1)]
    return [
        {
            "id": i,
            "query": queries[i // per_query],
            "document": " ".join(rng.choices(WORDS, k=rng.randint(1, 60))),
        }
        for i in range(count)
    ]


def write_rows(rows: list[dict], path: Path) -> Path:
    """Write rows as JSONL, CSV or Parquet, by the path's suffix."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif path.suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(pa.Table.from_pylist(rows), path)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=97)  # row groups unlike chunks
    return path


def run_score(*args: str, model: str = SMALL) -> tuple[int, dict | None]:
    """``turborank score ARGS --model MODEL --device cpu --quiet``: exit code and the printed summary."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["score", *args, "--model", model, "--device", "cpu", "--quiet"])
    # The summary is the last line: a Ray run may print raylet warnings ahead of it on stdout.
    lines = out.getvalue().strip().splitlines()
    return code, json.loads(lines[-1]) if lines else None


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pq.read_table(path).to_pylist()
