"""On-disk caches, so a teacher scores each (query, document) once, across runs and interruptions.

``TeacherCache`` stores scores keyed by (query id, document id) in sqlite, with the teacher's identity
recorded; opening it with another identity fails instead of mixing two teachers' scores.
``score_groups`` fills ``Group.teacher`` from the cache and scores only groups that are missing
scores, committing as it goes: an interrupted run resumes where it stopped.
``EmbeddingCache`` keeps bi-encoder vectors by text hash, the costly part of the hybrid teacher, and
``PairLogitCache`` its cross-encoder member's logits by pair hash, so another choice of the teacher's
weights (a new identity, so a new score cache) reuses the member's work instead of redoing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TurborankError
from .data import Group
from .teachers import Teacher

COMMIT_EVERY = 64  # groups between commits: bounds the work an interruption loses
PREFETCH_GROUPS = 256  # groups whose texts are embedded together by teachers that batch (HybridTeacher)


class CacheError(TurborankError):
    """A cache belongs to another teacher or encoder, or is unreadable."""


class _Store:
    """An sqlite file with a ``meta`` table holding the owner's identity."""

    def __init__(self, path: str | Path, identity: str, schema: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.identity = identity
        # A generous lock timeout: a teacher-eval process may share the embedding cache with training.
        # One connection, used by one thread at a time (the eval harness calls scorers from a worker).
        self.db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute(schema)
        row = self.db.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('identity', ?)", (identity,))
            self.db.commit()
        elif row[0] != identity:
            self.db.close()
            raise CacheError(
                f"{self.path} holds values from {row[0]!r}, not {identity!r}: use another cache path "
                "for this teacher, or delete the file to start over"
            )

    def _lookup(self, query: str, items: Sequence, key: Callable[[Any], str]) -> dict:
        """The stored value of each item that has one, by ``query`` on ``key(item)``."""
        found = {}
        for item in items:
            row = self.db.execute(query, (key(item),)).fetchone()
            if row is not None:
                found[item] = row[0]
        return found

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.commit()
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TeacherCache(_Store):
    """Teacher scores keyed by (qid, doc_id), in one sqlite file per teacher identity.

    Example:
        >>> with TeacherCache("runs/teacher.sqlite", teacher.identity) as cache:
        ...     groups = score_groups(groups, teacher, cache)
    """

    def __init__(self, path: str | Path, teacher_identity: str):
        super().__init__(
            path,
            teacher_identity,
            "CREATE TABLE IF NOT EXISTS scores (qid TEXT, doc_id TEXT, score REAL NOT NULL, "
            "PRIMARY KEY (qid, doc_id))",
        )

    def get(self, qid: str, doc_ids: Sequence[str]) -> list[float | None]:
        """Cached scores in ``doc_ids`` order; None where a document has no score yet."""
        rows = self.db.execute("SELECT doc_id, score FROM scores WHERE qid = ?", (qid,)).fetchall()
        known = dict(rows)
        return [known.get(d) for d in doc_ids]

    def put(self, qid: str, doc_ids: Sequence[str], scores: Sequence[float]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO scores VALUES (?, ?, ?)",
            [(qid, d, float(s)) for d, s in zip(doc_ids, scores, strict=True)],
        )

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]


def score_groups(
    groups: Sequence[Group], teacher: Teacher, cache: TeacherCache, progress: bool = True
) -> list[Group]:
    """Copies of ``groups`` with ``teacher`` filled in, scoring only what the cache lacks.

    A group missing any score is scored as a whole (teachers such as HybridTeacher normalise within
    the list, so mixing old and new scores of one list would mix scales). Teachers with
    ``score_ids(qid, doc_ids)`` (score files) are asked by id, others by text.

    Raises:
        CacheError: the cache was written by another teacher.
    """
    if cache.identity != teacher.identity:
        raise CacheError(f"cache {cache.path} is for {cache.identity!r}, teacher is {teacher.identity!r}")
    from tqdm.auto import tqdm

    cached = [cache.get(g.qid, g.doc_ids) for g in groups]
    todo = [i for i, scores in enumerate(cached) if any(s is None for s in scores)]
    bar = tqdm(total=len(todo), desc="teacher", unit="group", disable=not progress)
    for start in range(0, len(todo), PREFETCH_GROUPS):
        chunk = todo[start : start + PREFETCH_GROUPS]
        if hasattr(teacher, "prefetch"):
            teacher.prefetch([t for i in chunk for t in (groups[i].query, *groups[i].doc_texts)])
        if hasattr(teacher, "prefetch_pairs"):
            teacher.prefetch_pairs([(groups[i].query, d) for i in chunk for d in groups[i].doc_texts])
        for n, i in enumerate(chunk, 1):
            group = groups[i]
            if hasattr(teacher, "score_ids"):
                scores = teacher.score_ids(group.qid, group.doc_ids)
            else:
                scores = teacher.score(group.query, list(group.doc_texts))
            cache.put(group.qid, group.doc_ids, scores)
            cached[i] = [float(s) for s in scores]
            if n % COMMIT_EVERY == 0:
                cache.commit()
            bar.update(1)
        cache.commit()
    bar.close()
    return [dataclasses.replace(g, teacher=list(s)) for g, s in zip(groups, cached, strict=True)]


class EmbeddingCache(_Store):
    """Unit vectors by sha1 of the text, for one encoder identity (float32 blobs)."""

    def __init__(self, path: str | Path, encoder_identity: str):
        super().__init__(
            path,
            encoder_identity,
            "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)",
        )

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors of those texts that have one."""
        found = self._lookup("SELECT vector FROM vectors WHERE key = ?", texts, self.key)
        return {text: np.frombuffer(blob, dtype=np.float32) for text, blob in found.items()}

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
            [(self.key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in vectors.items()],
        )
        self.db.commit()


class PairLogitCache(_Store):
    """Logits by sha1 of the (query, text) pair, for one cross-encoder identity."""

    def __init__(self, path: str | Path, scorer_identity: str):
        super().__init__(
            path,
            scorer_identity,
            "CREATE TABLE IF NOT EXISTS logits (key TEXT PRIMARY KEY, logit REAL NOT NULL)",
        )

    @classmethod
    def in_dir(cls, directory: Path, prefix: str, scorer_identity: str) -> PairLogitCache:
        """The cache file ``<prefix>-<digest>.sqlite`` in ``directory``, one per scorer identity, so a
        changed scorer starts a file of its own and an unchanged one is read again."""
        digest = hashlib.sha1(scorer_identity.encode()).hexdigest()[:8]
        return cls(directory / f"{prefix}-{digest}.sqlite", scorer_identity)

    @staticmethod
    def key(pair: tuple[str, str]) -> str:
        query, text = pair
        return hashlib.sha1(f"{query}\x00{text}".encode()).hexdigest()

    def get_many(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """Cached logits of those pairs that have one."""
        return self._lookup("SELECT logit FROM logits WHERE key = ?", pairs, self.key)

    def put_many(self, logits: dict[tuple[str, str], float]) -> None:
        rows = [(self.key(pair), float(value)) for pair, value in logits.items()]
        self.db.executemany("INSERT OR REPLACE INTO logits VALUES (?, ?)", rows)
        self.db.commit()
