"""Backend names and constructors: the one place that maps ``backend="..."`` to an engine backend.

Every backend runs the batches that ``engine.plan_batches`` makes; they differ only in how a batch is
executed (``is_padded`` tells the planner whether padding counts against the token budget).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .engine import Backend, TorchBackend
from .errors import InputError
from .model import JinaBertForSequenceClassification


def _torch(model, device, dtype, use_sdpa, source) -> Backend:  # noqa: ANN001 - signature of BACKENDS
    return TorchBackend(model, device, dtype, use_sdpa)


def _onnx(quantize: str | None) -> Callable[..., Backend]:
    def build(model, device, dtype, use_sdpa, source) -> Backend:  # noqa: ANN001
        from .onnx_backend import OnnxBackend

        if device.type != "cpu" or dtype != torch.float32:
            raise InputError(
                "the onnx backends run on the CPU in float32 (int8 via backend='onnx-int8'): "
                f"got device={device}, dtype={dtype}; use backend='torch' or 'unpadded' on CUDA"
            )
        return OnnxBackend.from_model(model, source, quantize=quantize)

    return build


def _unpadded(model, device, dtype, use_sdpa, source) -> Backend:  # noqa: ANN001
    from .cuda_backend import UnpaddedBackend

    return UnpaddedBackend(model, device, dtype)


# name -> constructor(model, device, dtype, use_sdpa, source_dir_or_None)
BACKENDS: dict[str, Callable[..., Backend]] = {
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
