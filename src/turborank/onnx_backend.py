"""ONNX Runtime backend: the model exported once to ONNX (fp32, optionally int8), cached on disk.

The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` of shape (batch, sequence),
both axes dynamic, and returns ``logits`` (batch, num_labels). ALiBi is computed inside the graph from
the sequence length, so one file serves every length. The graph holds the whole (nh, S, S) bias and the
(B, nh, S, S) scores at once, which is cheap for short pairs but quadratic in S; batches longer than
``ONNX_MAX_SEQUENCE`` therefore run on the torch model, whose attention works in blocks of query rows
(``backends.SplitByLength``).

Exports are named after a hash of the source weights and cached next to the checkpoint (``onnx/``),
or under the user cache directory when the checkpoint directory is read-only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import weights_path
from .engine import Batch
from .errors import BackendError, InputError
from .model import JinaBertForSequenceClassification

log = logging.getLogger(__name__)

EXPORT_VERSION = 3  # bump when the exported graph changes, so stale cached files are not reused
QUANTIZE_VERSION = 2  # bump when quantize_int8 changes (2: per-channel weight scales); fp32 files stay valid
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
QUANTIZATIONS = ("int8",)
# Longest padded batch run in ONNX Runtime; longer ones go to the blockwise torch path, whose fused
# CPU attention wins from here on: on the turbo shape (2-core Xeon, torch 2.13) ONNX Runtime fp32 ran
# 0.6x torch on 8 x 1,024 tokens and 0.43x on 10 x 2,048 (peak RSS 1.9 GB against 1.1 GB).
ONNX_MAX_SEQUENCE = 512
# Padded tokens per batch (the engine's budget for this backend unless the caller sets one): half the
# CPU default, because ONNX Runtime's attention stays unfused with the ALiBi bias, and its (B, nh, S, S)
# scores and bias leave the cache. On 100 pairs of 30-500 tokens (turbo shape, 2-core Xeon, idle) int8
# ran 1.48x torch fp32 at 1,024 against 1.30x at 2,048; fp32 0.85x against 0.75x.
MAX_BATCH_TOKENS = 1024
# Attention score elements per ONNX Runtime call (rows * nh * S^2): a batch is split into row groups
# under this bound, so the graph's dense scores stay within ~256 MB whatever the token budget.
MAX_SCORE_ELEMENTS = 1 << 26


def _require_onnxruntime():  # noqa: ANN202 - returns the module
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "the onnx backends need onnxruntime and onnx: pip install 'turborank[onnx]'"
        ) from exc
    return onnxruntime


def weights_digest(model: JinaBertForSequenceClassification, source: Path | None) -> str:
    """sha256 of the checkpoint's weights file, or of the in-memory tensors when there is no file."""
    digest = hashlib.sha256()
    if source is not None:
        with open(weights_path(source), "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    else:
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_dir(source: Path | None) -> Path:
    """``<checkpoint>/onnx`` when writable, else ``$XDG_CACHE_HOME/turborank/onnx`` (~/.cache)."""
    if source is not None:
        candidate = Path(source) / "onnx"
        try:
            candidate.mkdir(exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=candidate):
                pass
            return candidate
        except OSError:
            log.info("%s is not writable; caching the ONNX export in the user cache", candidate)
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    candidate = root / "turborank" / "onnx"
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def export_onnx(model: JinaBertForSequenceClassification, path: Path) -> Path:
    """Export the float32 model with dynamic batch and sequence axes (TorchScript exporter, opset 17).

    The trace uses a short dummy batch, for which the model's attention bias is a single block built
    from the traced sequence length, so the graph computes ALiBi for whatever length it is fed.
    """
    model = model.to("cpu", torch.float32).eval()
    dummy = torch.full((2, 16), 5, dtype=torch.long)
    mask = torch.ones_like(dummy)
    mask[1, 12:] = 0  # a padded row, so no data-dependent no-padding shortcut can be traced in
    inputs = (dummy, mask, torch.zeros_like(dummy))
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with warnings.catch_warnings():
        # The tracer warns about Python ints taken from shapes; the block logic is shape-specific by
        # design and a single block is what the exported graph should contain.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            input_names=list(INPUT_NAMES),
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
        )
    tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    return path


def quantize_int8(fp32_path: Path, path: Path) -> Path:
    """Dynamic int8 quantization (weights int8 offline, activations quantized per batch at run time).

    Weights get one scale per output channel: with one scale per tensor, the default model (MiniLM
    weights, whose channels differ widely in range) lost 2.5 points of NDCG@10 on SciFact (0.706 ->
    0.681 at 256 tokens) and its logits correlated 0.971 with fp32's (SciFact train pairs); per channel
    they correlate 0.994 and SciFact loses 1.2 points (0.694 -> 0.682 at 384). Activations keep one
    scale per tensor, the limit of ONNX Runtime's dynamic quantization. Only the weight matmuls are quantized
    (``MatMulConstBOnly``): quantizing the attention's activation-by-activation matmuls as well costs
    time because both sides need a run-time quantization step.
    """
    _require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_suffix(f".tmp{os.getpid()}")
    quantize_dynamic(
        str(fp32_path),
        str(tmp),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        extra_options={"MatMulConstBOnly": True},
    )
    tmp.replace(path)
    return path


def exported_model(
    model: JinaBertForSequenceClassification, source: Path | None, quantize: str | None = None
) -> Path:
    """Path of the cached export for these weights, exporting (and quantizing) on first use."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise InputError(f"quantize must be None or one of {QUANTIZATIONS}, got {quantize!r}")
    directory = cache_dir(source)
    stem = f"turborank-v{EXPORT_VERSION}-{weights_digest(model, source)[:16]}"
    fp32 = directory / f"{stem}.onnx"
    if not fp32.is_file():
        log.info("exporting the model to %s", fp32)
        export_onnx(model, fp32)
    if quantize is None:
        return fp32
    quantized = directory / f"{stem}-q{QUANTIZE_VERSION}-{quantize}.onnx"
    if not quantized.is_file():
        log.info("quantizing %s to %s", fp32.name, quantized.name)
        quantize_int8(fp32, quantized)
    return quantized


class OnnxBackend:
    """Runs padded batches in ONNX Runtime on the CPU."""

    is_padded = True
    max_batch_tokens = MAX_BATCH_TOKENS

    def __init__(
        self,
        path: Path,
        model: JinaBertForSequenceClassification,
        num_threads: int | None = None,
    ):
        ort = _require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path
        self.model = model  # kept for parameter counts
        self.num_heads = model.config.num_attention_heads

    @classmethod
    def from_model(
        cls, model: JinaBertForSequenceClassification, source: Path | None, quantize: str | None = None
    ) -> OnnxBackend:
        """Export (or reuse the cached export of) ``model`` and open it."""
        _require_onnxruntime()
        return cls(exported_model(model, source, quantize), model)

    def predict(self, batch: Batch) -> torch.Tensor:
        length = batch.input_ids.shape[1]
        rows = max(1, MAX_SCORE_ELEMENTS // (self.num_heads * length * length))
        parts = [
            self._run(
                batch.input_ids[i : i + rows],
                batch.attention_mask[i : i + rows],
                batch.token_type_ids[i : i + rows],
            )
            for i in range(0, len(batch.input_ids), rows)
        ]
        return torch.from_numpy(np.concatenate(parts).astype(np.float32, copy=False))

    def _run(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> np.ndarray:
        feed = {
            "input_ids": input_ids.numpy(),
            "attention_mask": attention_mask.numpy(),
            "token_type_ids": token_type_ids.numpy(),
        }
        try:
            (logits,) = self.session.run(["logits"], feed)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BackendError(
                f"ONNX Runtime failed on a batch of shape {tuple(input_ids.shape)}: {exc}"
            ) from exc
        return logits
