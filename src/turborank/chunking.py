"""Long documents: split into overlapping windows, score each window, aggregate per document.

A document that fits next to the query in ``max_length`` tokens is read whole, in one pair. A longer one
is cut into windows of ``chunk_size`` tokens (by default all that fit next to the query in
``window_length`` tokens, or in ``max_length``) whose starts are ``chunk_stride`` apart; the query is
repeated in every window, and each window becomes one ordinary pair encoding. The engine batches
windows like any other pair, so the scheduler needs no special case: ``ScoringPlan.owners`` maps every
window back to its document and the per-document logit is an aggregate of its windows' logits (taken
in logit space; the score is the sigmoid of the result).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .errors import InputError, check_positive
from .tokenization import PairEncoding, PairTokenizer

# The two ways to read a document longer than a pair; "auto": what the checkpoint declares
# (``checkpoint.declared_long_documents``), else truncate.
READING_MODES = ("truncate", "chunk")
LONG_DOCUMENT_MODES = ("auto", *READING_MODES)
DEFAULT_TOP_K = 3  # windows averaged by mean_top_k


def _max(values: np.ndarray, top_k: int) -> float:
    return float(values.max())


def _mean_top_k(values: np.ndarray, top_k: int) -> float:
    return float(np.sort(values)[::-1][:top_k].mean())


def _first(values: np.ndarray, top_k: int) -> float:
    return float(values[0])


# Aggregation of one document's window logits (in window order) into the document's logit.
AGGREGATIONS: dict[str, Callable[[np.ndarray, int], float]] = {
    "max": _max,  # the best passage decides: a long document is as relevant as its best part
    "mean_top_k": _mean_top_k,  # rewards documents relevant in several places
    "first": _first,  # the opening window only: truncation that still reports chunk counts
}


@dataclass(frozen=True)
class LongDocuments:
    """How to treat documents longer than the pair's token budget.

    ``truncate`` keeps the first window only (with ``chunk_size`` None this is plain truncation to
    ``max_length``); ``chunk`` scores every window, up to ``max_chunks_per_doc``.
    """

    mode: str = "chunk"
    # Pair tokens per window (query, document part, special tokens) of a document too long for max_length;
    # None: max_length. A model can read short passages best whole and long texts in short windows, where
    # an answer shares its window with less unrelated text (the default model declares its own).
    window_length: int | None = None
    # Document tokens per window. None: everything that fits max_length after the query and the special
    # tokens. Larger values are capped to that room, so a window never truncates.
    chunk_size: int | None = None
    # Tokens between window starts. None: three quarters of the window (a quarter overlaps), so a passage
    # cut at one window's edge is whole in the next as long as it is shorter than the overlap.
    chunk_stride: int | None = None
    # Windows scored per document at most (the first ones). None: every window, so cost grows with length.
    max_chunks_per_doc: int | None = None
    aggregation: str = "max"
    top_k: int = DEFAULT_TOP_K

    def __post_init__(self) -> None:
        if self.mode not in LONG_DOCUMENT_MODES:
            raise InputError(f"long_documents must be one of {LONG_DOCUMENT_MODES}, got {self.mode!r}")
        if self.aggregation not in AGGREGATIONS:
            raise InputError(f"aggregation must be one of {tuple(AGGREGATIONS)}, got {self.aggregation!r}")
        for name in ("window_length", "chunk_size", "chunk_stride", "max_chunks_per_doc", "top_k"):
            check_positive(getattr(self, name), name)
        if self.chunk_size and self.chunk_stride and self.chunk_stride > self.chunk_size:
            raise InputError(
                f"chunk_stride={self.chunk_stride} > chunk_size={self.chunk_size} would skip text between "
                "windows: use a stride no larger than the chunk size"
            )

    @property
    def max_windows(self) -> int | None:
        return 1 if self.mode == "truncate" else self.max_chunks_per_doc


def resolve_long_documents(
    value: str | LongDocuments, model_default: str = "truncate", window_length: int | None = None
) -> LongDocuments | None:
    """``"truncate"`` -> None (plain truncation); ``"chunk"`` -> default chunking; options pass through.

    ``"auto"`` (alone or as a ``LongDocuments`` mode) takes ``model_default``, the checkpoint's own mode;
    ``window_length``, the checkpoint's own window, fills options that set none.
    """
    if isinstance(value, LongDocuments):
        if value.mode == "auto":
            value = replace(value, mode=model_default)
        return value if value.window_length else replace(value, window_length=window_length)
    if value == "auto":
        value = model_default
    if value == "truncate":
        return None
    if value == "chunk":
        return LongDocuments(window_length=window_length)
    raise InputError(f"long_documents must be one of {LONG_DOCUMENT_MODES} or a LongDocuments, got {value!r}")


def window_starts(num_tokens: int, size: int, stride: int, max_windows: int | None = None) -> list[int]:
    """Start offsets of windows of ``size`` tokens, ``stride`` apart, the last one ending at the end.

    Example:
        >>> window_starts(10, 4, 3)
        [0, 3, 6]
        >>> window_starts(11, 4, 3)
        [0, 3, 6, 7]
    """
    if size < 1 or stride < 1:
        raise InputError(f"window size and stride must be positive, got size={size}, stride={stride}")
    last = max(num_tokens - size, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts[:max_windows] if max_windows is not None else starts


def chunk_pair(
    tokenizer: PairTokenizer,
    query_ids: Sequence[int],
    document_ids: Sequence[int],
    max_length: int,
    max_query_length: int,
    options: LongDocuments,
) -> list[PairEncoding]:
    """The whole pair when the document fits ``max_length`` next to the (capped) query, else one pair
    encoding per window of the document, the query repeated in each."""
    if len(document_ids) <= _room(tokenizer, query_ids, max_length, max_query_length):
        return [tokenizer.join(query_ids, document_ids, max_length, max_query_length)]
    window = min(options.window_length or max_length, max_length)
    room = _room(tokenizer, query_ids, window, max_query_length)
    size = min(options.chunk_size or room, room)
    stride = options.chunk_stride or max(1, size * 3 // 4)
    starts = window_starts(len(document_ids), size, stride, options.max_windows)
    return [tokenizer.join(query_ids, document_ids[s : s + size], window, max_query_length) for s in starts]


def _room(tokenizer: PairTokenizer, query_ids: Sequence[int], length: int, max_query_length: int) -> int:
    """Document tokens that fit in a pair of ``length`` tokens next to the (capped) query."""
    budget = tokenizer.text_budget(length)
    return budget - min(len(query_ids), max_query_length, budget - 1)


def chunk_pairs(
    tokenizer: PairTokenizer,
    pairs: Sequence[tuple[str, str]],
    max_length: int,
    max_query_length: int,
    options: LongDocuments,
) -> tuple[list[PairEncoding], list[int]]:
    """Windows of every pair, and the pair index each window belongs to (the plan's ``owners``)."""
    texts = list(dict.fromkeys(text for pair in pairs for text in pair))
    reach = _token_reach(tokenizer.text_budget(max_length), options)
    encoded = dict(zip(texts, tokenizer.encode_texts(texts, reach), strict=True))
    encodings: list[PairEncoding] = []
    owners: list[int] = []
    for index, (query, document) in enumerate(pairs):
        windows = chunk_pair(
            tokenizer, encoded[query], encoded[document], max_length, max_query_length, options
        )
        encodings.extend(windows)
        owners.extend([index] * len(windows))
    return encodings, owners


def _token_reach(budget: int, options: LongDocuments) -> int | None:
    """Document tokens that the first ``max_windows`` windows can cover (None: every window is scored).

    A window holds at most ``budget`` tokens and starts at most max(budget, stride) after the previous
    one; one token more tells ``window_starts`` that the text goes on, as the whole text would.
    """
    if options.max_windows is None:
        return None
    stride = max(budget, options.chunk_stride or 0)
    return budget + stride * (options.max_windows - 1) + 1


def aggregate(
    logits: np.ndarray, owners: Sequence[int], num_documents: int, aggregation: str = "max", top_k: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Per-document logits from per-window logits, and each document's window count.

    Args:
        logits: (E,) one logit per window, windows of a document in order.
        owners: (E,) the document index of each window.
        num_documents: D; every document must own at least one window.
        aggregation: a key of ``AGGREGATIONS``.
        top_k: windows averaged by ``mean_top_k``.

    Returns:
        (D,) float32 document logits and (D,) int64 window counts.

    Example:
        >>> aggregate(np.array([1.0, 3.0, 2.0]), [0, 0, 1], 2, "first")
        (array([1., 2.], dtype=float32), array([2, 1]))
    """
    if aggregation not in AGGREGATIONS:
        raise InputError(f"aggregation must be one of {tuple(AGGREGATIONS)}, got {aggregation!r}")
    owners_array = np.asarray(owners, dtype=np.int64)
    counts = np.bincount(owners_array, minlength=num_documents)
    if len(logits) != len(owners_array) or (counts == 0).any():
        raise AssertionError("every document needs at least one scored window: this is a bug")
    if (counts == 1).all():  # nothing was chunked: skip the per-document loop
        out = np.empty(num_documents, dtype=np.float32)
        out[owners_array] = logits
        return out, counts
    order = np.argsort(owners_array, kind="stable")  # keeps window order within each document
    groups = np.split(np.asarray(logits, dtype=np.float32)[order], np.cumsum(counts)[:-1])
    reduce = AGGREGATIONS[aggregation]
    return np.array([reduce(g, top_k) for g in groups], dtype=np.float32), counts
