"""What both drivers share: the scoring settings, scoring one table of pairs, and top-n per query."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..api import Reranker, sigmoid
from ..chunking import LongDocuments
from ..errors import InputError

SCORE, LOGIT, RANK = "score", "logit", "rank"  # the columns turborank adds
PAIRS_PER_PASS = 32  # compute_score's default cap on pairs per forward pass, so scores equal its own


@dataclass(frozen=True)
class Columns:
    """Where the pairs are in the input, and which other columns reach the output (None: all)."""

    query: str = "query"
    document: str = "document"
    keep: tuple[str, ...] | None = None

    def output_names(self, input_names: list[str]) -> list[str]:
        """The input columns copied to the output, in input order.

        Raises:
            InputError: a kept column is not in the input, or the input already has a column turborank adds.
        """
        for name in (self.query, self.document, *(self.keep or ())):
            if name not in input_names:
                raise InputError(
                    f"the input has no column {name!r} (it has {', '.join(input_names)}): "
                    "name the right one with --query-column / --document-column / --keep-columns"
                )
        for added in (SCORE, LOGIT, RANK):
            if added in input_names:
                raise InputError(f"the input already has a {added!r} column: rename it, turborank adds one")
        if self.keep is None:
            return list(input_names)
        wanted = {self.query, self.document, *self.keep}
        return [name for name in input_names if name in wanted]


@dataclass(frozen=True)
class ModelOptions:
    """``Reranker.from_pretrained`` arguments; picklable, so Ray actors load the same model."""

    model: str | None = None
    device: str = "auto"
    dtype: str | None = None
    threads: int | None = None
    backend: str = "auto"

    def load(self) -> Reranker:
        return Reranker.from_pretrained(
            self.model, device=self.device, dtype=self.dtype, num_threads=self.threads, backend=self.backend
        )


@dataclass(frozen=True)
class ScoreOptions:
    """``compute_score`` arguments (the same defaults), the columns, and the model."""

    columns: Columns = field(default_factory=Columns)
    model: ModelOptions = field(default_factory=ModelOptions)
    max_length: int | None = None
    truncation: str = "only_second"
    long_documents: LongDocuments | str = "auto"


def score_table(reranker: Reranker, table: pa.Table, options: ScoreOptions) -> pa.Table:
    """The table's output columns plus ``score`` and ``logit``, row for row.

    Every row must hold a string query and document (the readers' validation sees to that).
    Scores equal ``compute_score`` on the same pairs: the same encoding and batching, sigmoid in float32.
    """
    columns = options.columns
    output = table.select(columns.output_names(table.column_names))
    if table.num_rows == 0:
        return _with_scores(output, np.zeros(0, dtype=np.float32))
    pairs = list(zip(table[columns.query].to_pylist(), table[columns.document].to_pylist(), strict=True))
    logits = reranker.compute_score(
        pairs,
        batch_size=PAIRS_PER_PASS,
        max_length=options.max_length,
        normalize=False,
        truncation=options.truncation,
        long_documents=options.long_documents,
    )
    return _with_scores(output, np.atleast_1d(np.asarray(logits, dtype=np.float32)))


def _with_scores(table: pa.Table, logits: np.ndarray) -> pa.Table:
    # float64 holding float32 values: each equals the Python float compute_score returns.
    scores = sigmoid(logits).astype(np.float64)
    table = table.append_column(SCORE, pa.array(scores, type=pa.float64()))
    return table.append_column(LOGIT, pa.array(logits.astype(np.float64), type=pa.float64()))


def top_n_of_group(group: pa.Table, top_n: int) -> pa.Table:
    """One query's rows, best score first (ties in input order), cut to ``top_n``, with a 1-based rank."""
    order = pc.sort_indices(group, sort_keys=[(SCORE, "descending")])  # stable: ties keep input order
    best = group.take(order[:top_n])
    return best.append_column(RANK, pa.array(np.arange(1, best.num_rows + 1), type=pa.int64()))
