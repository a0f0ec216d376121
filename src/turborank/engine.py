"""Batching engine: one planner packs pairs into token-budget batches, backends only run batches.

Pairs are sorted by length (longest first, so an out-of-memory shows on the first batch) and packed
until the padded size ``longest x count`` would pass ``max_batch_tokens``. One long document thus
never pads a batch of short ones, and results come back in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .errors import BackendError
from .pipeline import prefetch
from .tokenization import PairEncoding

# Padded tokens per forward pass, by device type. On a CPU small batches stay in cache: 2,048 ran the turbo
# shape 1.7x faster than 16,384 on 30-500-token documents (benchmarks/bench_engine.py); a GPU needs big
# batches to fill it (~100 MB of activations at 16,384 on the turbo shape).
DEFAULT_MAX_BATCH_TOKENS = {"cpu": 2048, "cuda": 16384}
DEFAULT_MAX_BATCH_SIZE = 256  # pairs per forward pass, whatever their length


def default_max_batch_tokens(device: torch.device) -> int:
    return DEFAULT_MAX_BATCH_TOKENS.get(device.type, DEFAULT_MAX_BATCH_TOKENS["cpu"])


@dataclass
class Batch:
    """Right-padded tensors for one forward pass, on the CPU; backends move them."""

    input_ids: torch.Tensor  # (B, S) int64
    attention_mask: torch.Tensor  # (B, S) int64, 1 on real tokens
    token_type_ids: torch.Tensor  # (B, S) int64

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


def collate(
    encodings: Sequence[PairEncoding], pad_token_id: int, use_token_type_ids: bool, pad_to_multiple: int = 1
) -> Batch:
    length = max(len(e) for e in encodings)
    length = -(-length // pad_to_multiple) * pad_to_multiple
    ids = torch.full((len(encodings), length), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(encodings), length), dtype=torch.long)
    types = torch.zeros((len(encodings), length), dtype=torch.long)
    for row, encoding in enumerate(encodings):
        n = len(encoding)
        ids[row, :n] = torch.tensor(encoding.input_ids)
        mask[row, :n] = 1
        if use_token_type_ids:
            types[row, :n] = torch.tensor(encoding.type_ids)
    return Batch(ids, mask, types)


def plan_batches(
    lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int, padded: bool = True
) -> list[list[int]]:
    """Group indices longest first into batches whose (padded) token count fits the budget.

    A single pair longer than the budget still gets a batch of its own: the budget bounds how
    many pairs share a pass, never whether a pair is scored.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    cost = 0
    for index in order:
        if not current:
            new_cost = lengths[index]
        elif padded:  # sorted longest first: the first member sets every row's length
            new_cost = lengths[current[0]] * (len(current) + 1)
        else:
            new_cost = cost + lengths[index]
        if current and (new_cost > max_batch_tokens or len(current) >= max_batch_size):
            batches.append(current)
            current, new_cost = [], lengths[index]
        current.append(index)
        cost = new_cost
    if current:
        batches.append(current)
    return batches


class Backend(Protocol):
    """Runs finished batches. Knows nothing of requests, tokenizers or HTTP."""

    is_padded: bool
    # The padded-token budget this backend runs fastest at, or None for the device's default; the
    # engine still plans every backend's batches the same way, only the budget differs.
    max_batch_tokens: int | None
    description: str  # what runs the batches, in words (``Reranker.info()``)

    def predict(self, batch: Batch) -> torch.Tensor:
        """Raw logits (B, num_labels), float32, on the CPU, in batch order."""
        ...


class TorchBackend:
    is_padded = True
    max_batch_tokens = None
    description = "padded torch"

    def __init__(
        self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype, use_sdpa: bool = True
    ):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device = device
        self.dtype = dtype
        self.use_sdpa = use_sdpa

    @torch.inference_mode()
    def predict(self, batch: Batch) -> torch.Tensor:
        logits = self.model(
            batch.input_ids.to(self.device),
            batch.attention_mask.to(self.device),
            batch.token_type_ids.to(self.device),
            use_sdpa=self.use_sdpa,
        )
        return logits.float().cpu()


class Engine:
    """Scores pair encodings through a backend, packing by token budget and keeping input order."""

    def __init__(
        self,
        backend: Backend,
        pad_token_id: int,
        use_token_type_ids: bool,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS["cpu"],
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    ):
        self.backend = backend
        self.pad_token_id = pad_token_id
        self.use_token_type_ids = use_token_type_ids
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size

    def plan(self, encodings: Sequence[PairEncoding], max_batch_size: int | None = None) -> list[list[int]]:
        return plan_batches(
            [len(e) for e in encodings],
            self.max_batch_tokens,
            max_batch_size or self.max_batch_size,
            self.backend.is_padded,
        )

    def run_batch(self, encodings: Sequence[PairEncoding]) -> np.ndarray:
        """Logits (B, num_labels) float32 for one already-planned batch."""
        return self._predict(self._collate(encodings))

    def _collate(self, encodings: Sequence[PairEncoding]) -> Batch:
        return collate(encodings, self.pad_token_id, self.use_token_type_ids)

    def _predict(self, batch: Batch) -> np.ndarray:
        logits = self.backend.predict(batch).numpy()
        if not np.isfinite(logits).all():
            raise BackendError(
                "the model produced NaN or infinite logits; with fp16 try dtype='bfloat16' "
                "or 'float32'. This is a bug if it happens in float32."
            )
        return logits

    def run(
        self,
        encodings: Sequence[PairEncoding],
        max_batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Logits (N, num_labels) float32 in input order. ``on_batch(n)`` reports progress in pairs.

        With several batches, the next one is padded on a helper thread while the model runs the current
        one (``pipeline.prefetch``), so a GPU does not wait for the host between batches."""
        if not encodings:
            return np.zeros((0, 1), dtype=np.float32)
        out: np.ndarray | None = None
        batches = self.plan(encodings, max_batch_size)

        def pad(indices: list[int]) -> Batch:
            return self._collate([encodings[i] for i in indices])

        padded = prefetch(pad, batches) if len(batches) > 1 else ((b, pad(b)) for b in batches)
        for indices, batch in padded:
            logits = self._predict(batch)
            if out is None:
                out = np.empty((len(encodings), logits.shape[1]), dtype=np.float32)
            out[indices] = logits
            if on_batch is not None:
                on_batch(len(indices))
        assert out is not None
        return out
