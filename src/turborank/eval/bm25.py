"""BM25 first stage with bm25s: the settings every number in ../shared/data/*/PROVENANCE.md uses.

Lucene BM25 with k1 0.9 and b 0.4 (Anserini's BEIR defaults), English stopwords, Snowball
stemming (PyStemmer), title plus text. Documents with a zero score are kept so a query always gets
min(k, corpus size) candidates, as in the reference runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .data import Document, Run

K1 = 0.9
B = 0.4


def _require() -> tuple[Any, Any]:
    try:
        import bm25s  # noqa: PLC0415 - optional dependency
        import Stemmer  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(f"BM25 needs the eval extra: pip install 'turborank[eval]' ({exc})") from exc
    # bm25s sets its own logger to DEBUG on import, which puts a line per index build into any
    # application log configured at INFO (the distillation teacher builds one per group).
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s, Stemmer.Stemmer("english")


@dataclass
class BM25Index:
    """An in-memory bm25s index over a corpus.

    Example:
        >>> index = BM25Index.build({"d1": Document("", "cats purr"), "d2": Document("", "dogs bark")})
        >>> index.search({"q": "a purring cat"}, k=1)
        {'q': {'d1': 0.46...}}
    """

    retriever: Any
    doc_ids: list[str]
    stemmer: Any

    @classmethod
    def build(cls, corpus: Mapping[str, Document], k1: float = K1, b: float = B) -> BM25Index:
        """Tokenize (stopwords, stemming) and index every document's ``full_text``."""
        bm25s, stemmer = _require()
        doc_ids = list(corpus)
        tokens = bm25s.tokenize(
            [corpus[d].full_text for d in doc_ids], stopwords="en", stemmer=stemmer, show_progress=False
        )
        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        retriever.index(tokens, show_progress=False)
        return cls(retriever, doc_ids, stemmer)

    def search(self, queries: Mapping[str, str], k: int = 100) -> Run:
        """Top-k documents per query.

        Args:
            queries: query id -> text.
            k: documents per query (capped at the corpus size).

        Returns:
            query id -> doc id -> BM25 score.
        """
        bm25s, _ = _require()
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        query_ids = list(queries)
        if not query_ids:
            return {}
        # Tokens as strings: bm25s maps them through the index vocabulary and ignores unseen words.
        tokens = bm25s.tokenize(
            [queries[q] for q in query_ids],
            stopwords="en",
            stemmer=self.stemmer,
            return_ids=False,
            show_progress=False,
        )
        found, scores = self.retriever.retrieve(tokens, k=min(k, len(self.doc_ids)), show_progress=False)
        return {
            qid: {self.doc_ids[int(i)]: float(s) for i, s in zip(found[row], scores[row], strict=True)}
            for row, qid in enumerate(query_ids)
        }
