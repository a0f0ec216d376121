"""Backend names and constructors: the one place that maps ``backend="..."`` to an engine backend.

Every backend runs the batches that ``engine.plan_batches`` makes; they differ only in how a batch is
executed (``is_padded`` tells the planner whether padding counts against the token budget). Where no
single kernel wins at every length, ``SplitByLength`` hands each batch to the one that wins at its length.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .engine import Backend, Batch, TorchBackend
from .errors import InputError
from .model import JinaBertForSequenceClassification

# On CUDA, ALiBi batches padded past this many tokens run unpadded under backend="auto". Measured on an
# H200 (turbo shape, bf16, benchmarks/bench_gpu.py; ratios to padded fp32): padded SDPA with its dense bias
# block wins up to 3,072 tokens (3.86x vs 2.41x unpadded on 5 x 3,072), unpadded flex attention with the
# ALiBi score_mod from 4,096 (5.59x vs 3.32x on 4 x 4,096; 16.1x vs 4.05x on 2 x 8,192).
UNPADDED_ABOVE = 3072


class SplitByLength:
    """Runs batches up to ``max_sequence`` tokens long on ``short`` and longer ones on ``long``.

    Batches are planned for ``short`` (its padding rule and token budget); the long backend gets the
    longest-first batches that the planner makes anyway, which carry little padding.
    """

    def __init__(self, short: Backend, long: Backend, max_sequence: int):
        self.short = short
        self.long = long
        self.max_sequence = max_sequence
        self.is_padded = short.is_padded
        self.max_batch_tokens = short.max_batch_tokens
        self.model = short.model

    @property
    def description(self) -> str:
        return f"{self.short.description} up to {self.max_sequence:,} tokens, {self.long.description} beyond"

    def predict(self, batch: Batch) -> torch.Tensor:
        backend = self.long if batch.input_ids.shape[1] > self.max_sequence else self.short
        return backend.predict(batch)


def _torch(model, device, dtype, use_sdpa, source) -> Backend:  # noqa: ANN001 - signature of BACKENDS
    return TorchBackend(model, device, dtype, use_sdpa)


def _auto(model, device, dtype, use_sdpa, source) -> Backend:  # noqa: ANN001
    padded = TorchBackend(model, device, dtype, use_sdpa)
    if device.type != "cuda" or not model.config.uses_alibi:
        return padded
    from .cuda_backend import UnpaddedBackend

    unpadded = UnpaddedBackend(model, device, dtype)
    if unpadded.kernel_name == "loop":  # heads too narrow for flex and no flash-attn: padded is faster
        return padded
    return SplitByLength(padded, unpadded, UNPADDED_ABOVE)


def _onnx(quantize: str | None) -> Callable[..., Backend]:
    def build(model, device, dtype, use_sdpa, source) -> Backend:  # noqa: ANN001
        from .onnx_backend import ONNX_MAX_SEQUENCE, OnnxBackend

        if device.type != "cpu" or dtype != torch.float32:
            raise InputError(
                "the onnx backends run on the CPU in float32 (int8 via backend='onnx-int8'): "
                f"got device={device}, dtype={dtype}; use backend='auto' on CUDA"
            )
        onnx = OnnxBackend.from_model(model, source, quantize=quantize)
        return SplitByLength(onnx, TorchBackend(model, device, dtype), ONNX_MAX_SEQUENCE)

    return build


def _unpadded(model, device, dtype, use_sdpa, source) -> Backend:  # noqa: ANN001
    from .cuda_backend import UnpaddedBackend

    return UnpaddedBackend(model, device, dtype)


# name -> constructor(model, device, dtype, use_sdpa, source_dir_or_None)
BACKENDS: dict[str, Callable[..., Backend]] = {
    "auto": _auto,  # torch; on CUDA, long batches of ALiBi models unpadded (UNPADDED_ABOVE)
    "torch": _torch,  # padded batches, any device; the reference path
    "onnx": _onnx(None),  # ONNX Runtime fp32 on the CPU
    "onnx-int8": _onnx("int8"),  # ONNX Runtime with dynamically quantized int8 weights
    "unpadded": _unpadded,  # packed variable-length attention for CUDA (bf16/fp16), no padding FLOPs
}


def create_backend(
    name: str,
    model: JinaBertForSequenceClassification,
    device: torch.device,
    dtype: torch.dtype,
    use_sdpa: bool = True,
    source: Path | None = None,
) -> Backend:
    """Build the backend called ``name`` around a loaded model.

    Args:
        name: a key of ``BACKENDS``.
        model: the float32 model as loaded from the checkpoint.
        device: where it runs.
        dtype: compute dtype (backends that fix their own precision reject others).
        use_sdpa: fused attention for the torch backend.
        source: checkpoint directory; ONNX exports are cached there (None: the user cache).

    Raises:
        InputError: unknown name, or a device/dtype the backend cannot run.
    """
    if name not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    return BACKENDS[name](model, device, dtype, use_sdpa, source)
