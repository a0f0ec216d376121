"""ONNX Runtime backend: the model exported once to ONNX (fp32, optionally int8), cached on disk.

The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` of shape (batch, sequence),
both axes dynamic, and returns ``logits`` (batch, num_labels). ALiBi is computed inside the graph from
the sequence length, so one file serves every length. The graph holds the whole (nh, S, S) bias and the
(B, nh, S, S) scores at once, which is cheap for short pairs but quadratic in S; batches longer than
``ONNX_MAX_SEQUENCE`` therefore run on the torch model, whose attention works in blocks of query rows
(``backends.SplitByLength``).

Exports are named after a hash of the source weights and cached next to the checkpoint (``onnx/``),
or under the user cache directory when the checkpoint directory is read-only or inside an installed
package (the shipped default model, or any checkpoint under site-packages).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import site
import sysconfig
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import weights_path
from .cpu import CpuFeatures, cpu_features
from .engine import Batch
from .errors import BackendError, InputError
from .model import JinaBertForSequenceClassification

log = logging.getLogger(__name__)

EXPORT_VERSION = 3  # bump when the exported graph changes, so stale cached files are not reused
# Bump when quantize_int8 changes (3: per-token activation scales); fp32 exports stay valid.
QUANTIZE_VERSION = 3
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
QUANTIZATIONS = ("int8",)
# int8 schemes: name -> largest weight magnitude. Activations are uint8 with zero point 128 in both.
# x86 CPUs without VNNI multiply u8 x s8 with vpmaddubsw, which adds each two adjacent products into a
# saturating int16: 255 x 127 x 2 = 64,770 overflows it (the golden fixtures' logits moved by up to 0.145
# on an AVX2 EPYC), 255 x 63 x 2 = 32,130 cannot. VNNI (vpdpbusd) and AMX accumulate in int32 directly.
INT8_SCHEMES = {"u8s8": 127, "u8s7": 63}
INT8_SCHEME_ENV = "TURBORANK_INT8_SCHEME"  # forces a scheme: u8s8, u8s7 or auto (by the CPU's ISA)
# Longest padded batch run in ONNX Runtime; longer ones go to the blockwise torch path, whose memory stays
# linear in length (the graph holds dense (rows, nh, S, S) scores: 50 MB per tensor at 1,024 tokens, 3.2 GB
# at 8,192). Up to here ONNX Runtime is at least as fast (turbo shape, 2-core Xeon, torch 2.13, best of 3):
# fp32 / int8 1.09x / 1.88x torch on 8 x 480 tokens, 1.01x / 1.40x on 4 x 1,024.
ONNX_MAX_SEQUENCE = 1024
# Padded tokens per batch (the engine's budget for this backend unless the caller sets one): below the
# CPU default, because ONNX Runtime's unfused attention writes (B, nh, S, S) scores and bias out of cache.
# On 100 pairs of 30-500 tokens (turbo shape, 2-core Xeon, best of 5) fp32 ran 1.11x / 1.12x / 1.08x torch
# at 512 / 768 / 1,024; int8 2.17x at 768, 2.20x at 1,024 and 1.94x at 2,048.
MAX_BATCH_TOKENS = 768
# Attention score elements per ONNX Runtime call (rows * nh * S^2): a batch is split into row groups
# under this bound, so the graph's dense scores stay within ~256 MB whatever the token budget.
MAX_SCORE_ELEMENTS = 1 << 26
# Matmuls with fewer output columns (the classifier) are left in fp32: nothing to gain, and the logit
# comes straight out of them.
MIN_QUANTIZED_COLUMNS = 16
_CONSTANTS = {  # name -> (value, dtype) of the scalars the int8 graph shares
    "int8_127": (127.0, np.float32),
    "int8_inv127": (1.0 / 127.0, np.float32),
    "int8_eps": (1e-12, np.float32),  # an all-zero row gets a finite scale
    "int8_one": (1.0, np.float32),
    "int8_zero_point": (128, np.uint8),
}


def _require(module: str):  # noqa: ANN202 - returns the module
    """Import ``onnxruntime`` or ``onnx``, both from the ``onnx`` extra, with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            "the onnx backends need onnxruntime and onnx: pip install 'turborank[onnx]'"
        ) from exc


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
    """``<checkpoint>/onnx`` for a user's own writable checkpoint, else ``$XDG_CACHE_HOME/turborank/onnx``.

    A checkpoint inside an installed package gets the user cache even when its folder is writable: an
    export there would add ~150 MB to site-packages (or to the source tree of an editable install) that
    ``pip uninstall`` does not know about.
    """
    if source is not None and not inside_installed_package(Path(source)):
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


def inside_installed_package(path: Path) -> bool:
    """Whether ``path`` lies in turborank's own package folder or in any site-packages folder."""
    roots = [Path(__file__).parent, *site.getsitepackages(), site.getusersitepackages()]
    roots += [sysconfig.get_paths()[key] for key in ("purelib", "platlib")]
    resolved = path.resolve()
    return any(resolved.is_relative_to(Path(root).resolve()) for root in roots)


def int8_scheme(features: CpuFeatures, requested: str | None = None) -> str:
    """The int8 scheme for this CPU: 8-bit weights where int8 dot products accumulate in 32 bits (VNNI,
    AMX), 7-bit weights elsewhere (AVX2, AVX-512 without VNNI). ``requested`` (or $TURBORANK_INT8_SCHEME)
    overrides the choice: "u8s8", "u8s7" or "auto"."""
    choice = requested or os.environ.get(INT8_SCHEME_ENV) or "auto"
    if choice == "auto":
        return "u8s8" if features.vnni or features.amx else "u8s7"
    if choice not in INT8_SCHEMES:
        raise InputError(
            f"int8 scheme must be auto or one of {', '.join(INT8_SCHEMES)} (from {INT8_SCHEME_ENV} or the "
            f"caller), got {choice!r}; u8s7 is exact on every x86 CPU, u8s8 only with VNNI or AMX"
        )
    return choice


def describe_int8(scheme: str, features: CpuFeatures) -> str:
    """What the int8 kernels are, in words, for ``info()``."""
    kernel = "VNNI/AMX int32 dot products" if features.vnni or features.amx else "AVX2 u8s8 int16 pair sums"
    levels = INT8_SCHEMES[scheme]
    return f"int8 {scheme} (weights in [-{levels}, {levels}], per-token activations; {kernel} on this CPU)"


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


def quantize_int8(fp32_path: Path, path: Path, scheme: str = "u8s8") -> Path:
    """int8 weight matmuls with one scale per output channel and one scale per token for activations.

    ONNX Runtime's dynamic quantization scales a whole activation tensor at once, so one token with
    large activations ([CLS], [SEP] and punctuation in BERT) coarsens every other token of the batch,
    and a pair's score depends on its batch neighbours. With per-channel weights that cost the default
    model 1.2 points of SciFact NDCG@10 (logits correlated 0.994 with fp32 on SciFact train pairs); with
    one scale per token they correlate 0.998 and SciFact scores as in fp32 (0.6938 vs 0.6935, README.md),
    for ~9% of the int8 speed on the turbo shape (2.06x vs 2.27x torch fp32). ORT's quantizer has no
    per-token mode, so the graph is rewritten here: each weight matmul ``x @ W`` becomes

        s = max|x| / 127 per row;  q = round(x / s) + 128 (uint8)
        y = MatMulIntegerToFloat(q, W_int8, zero point 128, per-channel scales) * s

    The activation side is built once per distinct input (query, key and value share theirs). Only
    matmuls against constant weights are quantized: attention's activation-by-activation products stay
    in fp32, where both sides would need a run-time quantization step. ``scheme`` sets the weights' range
    (``INT8_SCHEMES``: 7 bits where the CPU's kernel would saturate 8-bit products).
    """
    onnx = _require("onnx")
    from onnx import numpy_helper

    model = onnx.load(str(fp32_path))
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    nodes: list = []
    initializers = [
        numpy_helper.from_array(np.array(value, dtype), name) for name, (value, dtype) in _CONSTANTS.items()
    ]
    quantized_inputs: dict[str, str] = {}
    replaced: set[str] = set()
    for node in graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2 or weight.dims[1] < MIN_QUANTIZED_COLUMNS:
            nodes.append(node)
            continue
        x = node.input[0]
        if x not in quantized_inputs:
            quantized_inputs[x] = f"int8_{len(quantized_inputs)}"
            nodes += _per_token_quantization(onnx.helper, x, quantized_inputs[x])
        nodes += _int8_matmul(onnx.helper, node.output[0], quantized_inputs[x], weight.name)
        initializers += _int8_weight(numpy_helper, weight, INT8_SCHEMES[scheme])
        replaced.add(weight.name)
    still_used = {name for node in nodes for name in node.input}
    kept = [t for t in graph.initializer if t.name not in replaced or t.name in still_used]
    del graph.node[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept + initializers)
    model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path


def _per_token_quantization(helper, x: str, prefix: str) -> list:  # noqa: ANN001 - onnx.helper
    """Nodes making ``{prefix}_q`` (uint8, zero point 128) and ``{prefix}_scale`` (rows, 1) from ``x``.

    ReduceMax takes ``axes`` as an attribute up to opset 17 (``OPSET``); from opset 18 it is an input.
    """
    return [
        helper.make_node("Abs", [x], [f"{prefix}_abs"]),
        helper.make_node("ReduceMax", [f"{prefix}_abs"], [f"{prefix}_max0"], axes=[-1], keepdims=1),
        helper.make_node("Max", [f"{prefix}_max0", "int8_eps"], [f"{prefix}_max"]),
        helper.make_node("Div", ["int8_127", f"{prefix}_max"], [f"{prefix}_inverse"]),
        helper.make_node("Mul", [x, f"{prefix}_inverse"], [f"{prefix}_scaled"]),
        helper.make_node(
            "QuantizeLinear", [f"{prefix}_scaled", "int8_one", "int8_zero_point"], [f"{prefix}_q"]
        ),
        helper.make_node("Mul", [f"{prefix}_max", "int8_inv127"], [f"{prefix}_scale"]),
    ]


def _int8_matmul(helper, output: str, prefix: str, weight: str) -> list:  # noqa: ANN001 - onnx.helper
    """Nodes computing ``output`` from the quantized activation and the int8 weight."""
    inputs = [f"{prefix}_q", f"{weight}_int8", "int8_one", f"{weight}_scale", "int8_zero_point"]
    return [
        helper.make_node("MatMulIntegerToFloat", inputs, [f"{output}_unscaled"], domain="com.microsoft"),
        helper.make_node("Mul", [f"{output}_unscaled", f"{prefix}_scale"], [output]),
    ]


def quantize_weight(values: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights (K, N) in [-levels, levels] and their float32 scale per output column."""
    scale = (np.maximum(np.abs(values).max(axis=0), 1e-12) / levels).astype(np.float32)
    return np.clip(np.round(values / scale), -levels, levels).astype(np.int8), scale


def _int8_weight(numpy_helper, weight, levels: int) -> list:  # noqa: ANN001 - onnx modules and TensorProto
    """Initializers of a quantized weight: the int8 values and the scale per output column."""
    quantized, scale = quantize_weight(numpy_helper.to_array(weight), levels)
    return [
        numpy_helper.from_array(quantized, f"{weight.name}_int8"),
        numpy_helper.from_array(scale, f"{weight.name}_scale"),
    ]


def exported_model(
    model: JinaBertForSequenceClassification,
    source: Path | None,
    quantize: str | None = None,
    scheme: str = "u8s8",
) -> Path:
    """Path of the cached export for these weights, exporting (and quantizing, by ``scheme``) on first use."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise InputError(f"quantize must be None or one of {QUANTIZATIONS}, got {quantize!r}")
    if scheme not in INT8_SCHEMES:
        raise InputError(f"scheme must be one of {', '.join(INT8_SCHEMES)}, got {scheme!r}")
    directory = cache_dir(source)
    stem = f"turborank-v{EXPORT_VERSION}-{weights_digest(model, source)[:16]}"
    fp32 = directory / f"{stem}.onnx"
    if not fp32.is_file():
        log.info("exporting the model to %s", fp32)
        export_onnx(model, fp32)
    if quantize is None:
        return fp32
    quantized = directory / f"{stem}-q{QUANTIZE_VERSION}-{quantize}-{scheme}.onnx"
    if not quantized.is_file():
        log.info("quantizing %s to %s", fp32.name, quantized.name)
        quantize_int8(fp32, quantized, scheme)
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
        kernel: str = "fp32",
    ):
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ALiBi pushes distant keys' softmax weights into the denormal range (exp(-87) and below), where
        # x86 arithmetic slows down many times over; flushing them to zero changes no result above 1e-38.
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        # A model without token types (DeBERTa-v3) exports no token_type_ids input.
        self.input_names = {graph_input.name for graph_input in self.session.get_inputs()}
        self.path = path
        self.description = f"ONNX Runtime {kernel} ({path.name})"
        self.model = model  # kept for parameter counts
        self.num_heads = model.config.num_attention_heads

    @classmethod
    def from_model(
        cls,
        model: JinaBertForSequenceClassification,
        source: Path | None,
        quantize: str | None = None,
        scheme: str | None = None,
    ) -> OnnxBackend:
        """Export (or reuse the cached export of) ``model`` and open it; int8 takes ``int8_scheme``'s pick
        for this CPU unless ``scheme`` names one."""
        _require("onnxruntime")
        if quantize is None:
            return cls(exported_model(model, source), model)
        features = cpu_features()
        chosen = int8_scheme(features, scheme)
        return cls(
            exported_model(model, source, quantize, chosen), model, kernel=describe_int8(chosen, features)
        )

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
        feed = {name: array for name, array in feed.items() if name in self.input_names}
        try:
            (logits,) = self.session.run(["logits"], feed)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BackendError(
                f"ONNX Runtime failed on a batch of shape {tuple(input_ids.shape)}: {exc}"
            ) from exc
        return logits
