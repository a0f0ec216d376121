"""int8 scheme by ISA: 8-bit weights only where the kernel accumulates in 32 bits (VNNI, AMX).

On CPUs without VNNI, ONNX Runtime's u8 x s8 kernel uses vpmaddubsw, which adds each two adjacent
products into a saturating int16. These tests replay that instruction in numpy on the shipped model's
real weights and activations, so the AVX2 path is checked on any CPU.
"""

import numpy as np
import pytest
import torch
from test_cpu import AVX2_ONLY, SAPPHIRE_RAPIDS, ZEN4

from turborank import InputError, Reranker
from turborank.onnx_backend import INT8_SCHEME_ENV, INT8_SCHEMES, describe_int8, int8_scheme, quantize_weight

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
PAIRS = [
    (
        "what causes high blood pressure",
        "Hypertension is often caused by salt, obesity, stress and genetics.",
    ),
    ("capital of France?", "Paris is the capital and most populous city of France, on the Seine."),
    ("how do vaccines work", "Vaccines train the immune system with a harmless piece of a pathogen."),
]


def test_the_scheme_follows_the_isa(monkeypatch):
    monkeypatch.delenv(INT8_SCHEME_ENV, raising=False)
    assert int8_scheme(AVX2_ONLY) == "u8s7"
    assert int8_scheme(ZEN4) == "u8s8"
    assert int8_scheme(SAPPHIRE_RAPIDS) == "u8s8"
    assert int8_scheme(ZEN4.capped_at("AVX2")) == "u8s7"  # a process told to run as an AVX2-only CPU
    assert int8_scheme(ZEN4, "u8s7") == "u8s7"  # forced by the caller
    monkeypatch.setenv(INT8_SCHEME_ENV, "u8s7")
    assert int8_scheme(SAPPHIRE_RAPIDS) == "u8s7"
    monkeypatch.setenv(INT8_SCHEME_ENV, "u4")
    with pytest.raises(InputError, match="u8s8, u8s7"):
        int8_scheme(ZEN4)


def test_the_description_names_scheme_and_kernel():
    assert describe_int8("u8s7", AVX2_ONLY).startswith("int8 u8s7 (weights in [-63, 63]")
    assert "AVX2 u8s8 int16 pair sums" in describe_int8("u8s7", AVX2_ONLY)
    assert "VNNI/AMX" in describe_int8("u8s8", ZEN4)


def avx2_u8s8_matmul(activations: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, int]:
    """(T, K) uint8 @ (K, N) int8 as vpmaddubsw + vpmaddwd compute it: each two adjacent products summed
    into a saturating int16, then int32 sums. Returns the result and how many pair sums saturated."""
    a, w = activations.astype(np.int32), weights.astype(np.int32)
    pair_sums = a[:, 0::2, None] * w[None, 0::2] + a[:, 1::2, None] * w[None, 1::2]  # (T, K/2, N)
    saturated = int(((pair_sums > INT16_MAX) | (pair_sums < INT16_MIN)).sum())
    return np.clip(pair_sums, INT16_MIN, INT16_MAX).sum(axis=1), saturated


def per_token_uint8(x: np.ndarray) -> np.ndarray:
    """The int8 graph's activation side: round(x * 127 / max|row|) + 128."""
    scale = np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-12)
    return np.clip(np.round(x * 127 / scale) + 128, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def linear_inputs():
    """(weight (K, N), activations (T, K)) of every quantized matmul of the shipped model on real pairs."""
    reranker = Reranker.from_pretrained(device="cpu")
    model = reranker.engine.backend.model
    captured: dict[str, list[np.ndarray]] = {}
    hooks = [
        module.register_forward_hook(
            lambda m, inputs, out, name=name: captured.setdefault(name, []).append(
                inputs[0].reshape(-1, inputs[0].shape[-1]).numpy().copy()
            )
        )
        for name, module in model.bert.encoder.named_modules()
        if isinstance(module, torch.nn.Linear)
    ]
    reranker.compute_score([list(pair) for pair in PAIRS])
    for hook in hooks:
        hook.remove()
    modules = dict(model.bert.encoder.named_modules())
    return {
        name: (modules[name].weight.detach().numpy().T, np.concatenate(parts))
        for name, parts in captured.items()
    }


def test_avx2_kernel_saturates_8_bit_weights_and_never_7_bit_ones(linear_inputs):
    saturated = dict.fromkeys(INT8_SCHEMES, 0)
    worst_error = dict.fromkeys(INT8_SCHEMES, 0.0)  # of the AVX2 result against the exact int32 one
    for weight, x in linear_inputs.values():
        activations = per_token_uint8(x)
        for scheme, levels in INT8_SCHEMES.items():
            quantized, scale = quantize_weight(weight, levels)
            avx2, count = avx2_u8s8_matmul(activations, quantized)
            exact = activations.astype(np.int32) @ quantized.astype(np.int32)
            saturated[scheme] += count
            # Dequantized difference, relative to the layer's output range.
            reference = np.abs(x @ weight).max()
            error = np.abs((avx2 - exact) * scale * np.abs(x).max(axis=1, keepdims=True) / 127).max()
            worst_error[scheme] = max(worst_error[scheme], error / reference)
    assert saturated["u8s7"] == 0 and worst_error["u8s7"] == 0.0  # bit-exact on AVX2
    assert saturated["u8s8"] > 1000  # thousands of clipped pair sums on three short pairs
    assert worst_error["u8s8"] > 0.05  # outputs off by more than 5% of the layer's range
