"""On-disk score cache: one row per (scorer identity, query id, doc id), so runs resume and repeat for free.

SQLite from the standard library: one file, safe to interrupt (each query is one transaction), and
readable with any SQLite tool. The scorer identity names everything that changes a score (model
weights hash, max_length, dtype, endpoint...), so a changed setting never reads stale scores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    scorer TEXT NOT NULL, query_id TEXT NOT NULL, doc_id TEXT NOT NULL, score REAL NOT NULL,
    PRIMARY KEY (scorer, query_id, doc_id)
);
CREATE TABLE IF NOT EXISTS timings (
    scorer TEXT NOT NULL, query_id TEXT NOT NULL, seconds REAL NOT NULL, pairs INTEGER NOT NULL,
    windows INTEGER, PRIMARY KEY (scorer, query_id)
);
"""


class ScoreCache:
    """Scores and per-query timings keyed by scorer identity; ``path=None`` keeps them in memory only.

    Example:
        >>> cache = ScoreCache(None)
        >>> cache.put("model@abc", "q1", {"d1": 0.5}, seconds=0.01)
        >>> cache.get("model@abc", "q1", ["d1", "d2"])
        {'d1': 0.5}
    """

    def __init__(self, path: str | Path | None):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # The runner may score from worker threads; all writes happen on the calling thread.
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._add_windows_column()

    def get(self, scorer: str, query_id: str, doc_ids: Sequence[str]) -> dict[str, float]:
        """The cached scores among ``doc_ids`` (missing ones are simply absent)."""
        rows = self._db.execute(
            "SELECT doc_id, score FROM scores WHERE scorer = ? AND query_id = ?", (scorer, query_id)
        ).fetchall()
        wanted = set(doc_ids)
        return {doc: score for doc, score in rows if doc in wanted}

    def put(
        self,
        scorer: str,
        query_id: str,
        scores: Mapping[str, float],
        seconds: float | None = None,
        windows: int | None = None,
    ) -> None:
        """Store one query's new scores, and the time they took when all of its pairs were scored at once
        (``windows``: the model inputs they took, when known)."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                [(scorer, query_id, doc, float(score)) for doc, score in scores.items()],
            )
            if seconds is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO timings (scorer, query_id, seconds, pairs, windows) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (scorer, query_id, seconds, len(scores), windows),
                )

    def timing(self, scorer: str, query_id: str) -> tuple[float, int, int | None] | None:
        """(seconds, documents, windows or None) recorded when this query was scored in one go."""
        row = self._db.execute(
            "SELECT seconds, pairs, windows FROM timings WHERE scorer = ? AND query_id = ?",
            (scorer, query_id),
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def _add_windows_column(self) -> None:
        # Cache files written before windows were counted keep their scores; their timings read as unknown.
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(timings)")}
        if "windows" not in columns:
            with self._db:
                self._db.execute("ALTER TABLE timings ADD COLUMN windows INTEGER")

    def close(self) -> None:
        self._db.close()
