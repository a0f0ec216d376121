"""Overlap host work with the model: tokenize (and pad) the next piece while the current one runs.

A GPU that waits for the CPU to tokenize and pad is idle for that time. ``prefetch`` runs a preparation
step on a background thread, a bounded number of items ahead of the consumer; the ``tokenizers`` library
and torch both release the GIL, so the two threads really run at once. ``score_pairs`` uses it for large
inputs: chunks of pairs are tokenized one chunk ahead while the engine scores the current chunk (and the
engine pads its next batch while the model runs, ``Engine.run``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    from .api import Reranker

Item = TypeVar("Item")
Prepared = TypeVar("Prepared")

# Pairs tokenized per chunk: sorting and packing within 4,096 pairs leaves as little padding as over the
# whole input, and the first chunk's tokenization is the only host work the model waits for.
CHUNK_PAIRS = 4096


def prefetch(
    prepare: Callable[[Item], Prepared], items: Iterable[Item], depth: int = 1
) -> Iterator[tuple[Item, Prepared]]:
    """Yield ``(item, prepare(item))`` in order, preparing up to ``depth`` items ahead on one thread.

    An exception in ``prepare`` is raised to the consumer at that item; a consumer that stops early
    cancels whatever was not started yet.
    """
    if depth < 1:
        raise InputError(f"depth must be at least 1, got {depth}")
    source = iter(items)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turborank-prefetch")
    pending: deque[tuple[Item, Future[Prepared]]] = deque()
    try:
        for item in source:
            pending.append((item, pool.submit(prepare, item)))
            if len(pending) > depth:
                head, future = pending.popleft()
                yield head, future.result()
        while pending:
            head, future = pending.popleft()
            yield head, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def score_pairs(
    reranker: Reranker,
    pairs: Sequence[tuple[str, str]],
    max_length: int | None = None,
    truncation: str = "only_second",
    chunk_pairs: int = CHUNK_PAIRS,
) -> np.ndarray:
    """Raw logits (N, num_labels) in input order, tokenizing each chunk of pairs while the previous one
    is scored: for inputs of many thousands of pairs on a GPU, where tokenization would leave it idle."""
    if chunk_pairs < 1:
        raise InputError(f"chunk_pairs must be a positive number of pairs, got {chunk_pairs}")
    chunks = [pairs[start : start + chunk_pairs] for start in range(0, len(pairs), chunk_pairs)]
    parts = [
        reranker.engine.run(encodings)
        for _, encodings in prefetch(lambda chunk: reranker.encode(chunk, max_length, truncation), chunks)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
