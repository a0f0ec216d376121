"""Golden parity: the reference implementation's logits for the vendored random-weight checkpoints."""

import shutil

import numpy as np
import pytest
import torch
from conftest import FIXTURES, GOLDEN_NAMES, load_expected, run_with_avx2_kernels

from turborank import Reranker
from turborank.checkpoint import read_weights

TOLERANCE = 1e-4  # the bound; observed deviations are ~2e-6


def pairs_of(expected):
    return [(p["query"], p["document"]) for p in expected["pairs"]]


@pytest.fixture(scope="module", params=GOLDEN_NAMES)
def golden(request):
    expected = load_expected(request.param)
    return request.param, expected, Reranker.from_pretrained(FIXTURES / request.param, device="cpu")


def test_tokenization_matches_the_reference(golden):
    _, expected, reranker = golden
    encodings = reranker.encode(pairs_of(expected))
    assert [e.input_ids for e in encodings] == expected["input_ids"]
    assert [e.type_ids for e in encodings] == expected["type_ids"]
    assert [len(e) for e in encodings] == expected["lengths"]


def test_logits_in_the_reference_batches(golden):
    """The reference padded these exact batches; run them as they were."""
    _, expected, reranker = golden
    encodings = reranker.encode(pairs_of(expected))
    for batch in expected["batches"]:
        logits = reranker.engine.run_batch([encodings[i] for i in batch])[:, 0]
        np.testing.assert_allclose(logits, np.array(expected["logits"])[batch], atol=TOLERANCE, rtol=0)


def test_logits_through_the_engine(golden):
    _, expected, reranker = golden
    logits = reranker.predict_logits(pairs_of(expected))[:, 0]
    np.testing.assert_allclose(logits, expected["logits"], atol=TOLERANCE, rtol=0)
    assert np.abs(logits - np.array(expected["logits"])).max() < 1e-5


def test_unpadded_logits(golden):
    _, expected, reranker = golden
    logits = [reranker.predict_logits([pair])[0, 0] for pair in pairs_of(expected)]
    np.testing.assert_allclose(logits, expected["logits_unpadded"], atol=TOLERANCE, rtol=0)


def test_logits_with_token_type_ids(golden):
    name, expected, _ = golden
    reranker = Reranker.from_pretrained(FIXTURES / name, device="cpu", use_token_type_ids=True)
    logits = reranker.predict_logits(pairs_of(expected))[:, 0]
    np.testing.assert_allclose(logits, expected["logits_with_type_ids"], atol=TOLERANCE, rtol=0)


def test_plain_attention_path(golden):
    name, expected, _ = golden
    reranker = Reranker.from_pretrained(FIXTURES / name, device="cpu", use_sdpa=False)
    np.testing.assert_allclose(
        reranker.predict_logits(pairs_of(expected))[:, 0], expected["logits"], atol=TOLERANCE, rtol=0
    )


CHILD = """
import json, sys
from turborank import Reranker
expected = json.load(open(sys.argv[2]))
reranker = Reranker.from_pretrained(sys.argv[1], device="cpu", dtype="auto")
pairs = [(p["query"], p["document"]) for p in expected["pairs"]]
print(json.dumps(reranker.predict_logits(pairs)[:, 0].tolist()))
"""


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_logits_with_avx2_kernels_only(name):
    """The kernels an AVX2-only server runs (oneDNN and torch capped at AVX2 in a child process) give
    the reference's logits too, at the dtype "auto" picks there."""
    directory = FIXTURES / name
    logits = run_with_avx2_kernels(CHILD, str(directory), str(directory / "expected.json"))
    np.testing.assert_allclose(logits, load_expected(name)["logits"], atol=TOLERANCE, rtol=0)


def test_sigmoid_scores(golden):
    _, expected, reranker = golden
    scores = reranker.compute_score(pairs_of(expected))
    np.testing.assert_allclose(scores, expected["scores_sigmoid"], atol=TOLERANCE / 4, rtol=0)


@pytest.mark.parametrize("stored", [torch.bfloat16, torch.float16])
def test_half_precision_checkpoint_matches_the_fp32_model_on_the_same_values(tmp_path, stored):
    """Stored bf16/fp16 weights are upcast exactly: scores equal an fp32 file holding the rounded values."""
    from safetensors.torch import save_file

    source = FIXTURES / "small"
    state = read_weights(source / "model.safetensors")
    half, rounded = tmp_path / "half", tmp_path / "rounded"
    for target, tensors in (
        (half, {k: v.to(stored) for k, v in state.items()}),
        (rounded, {k: v.to(stored).float() for k, v in state.items()}),
    ):
        shutil.copytree(source, target)
        save_file(tensors, str(target / "model.safetensors"))
    pairs = pairs_of(load_expected("small"))
    a = Reranker.from_pretrained(half, device="cpu").predict_logits(pairs)
    b = Reranker.from_pretrained(rounded, device="cpu").predict_logits(pairs)
    np.testing.assert_array_equal(a, b)


def test_pytorch_model_bin_in_bf16_matches_safetensors(tmp_path):
    target = tmp_path / "bin"
    shutil.copytree(FIXTURES / "mini12", target)
    state = read_weights(target / "model.safetensors")
    (target / "model.safetensors").unlink()
    torch.save({k: v.to(torch.bfloat16) for k, v in state.items()}, target / "pytorch_model.bin")
    expected = load_expected("mini12")
    logits = Reranker.from_pretrained(target, device="cpu").predict_logits(pairs_of(expected))[:, 0]
    np.testing.assert_allclose(logits, expected["logits"], atol=TOLERANCE, rtol=0)


def test_bf16_inference_stays_close(golden):
    name, expected, _ = golden
    reranker = Reranker.from_pretrained(FIXTURES / name, device="cpu", dtype="bfloat16")
    logits = reranker.predict_logits(pairs_of(expected)[:12])[:, 0]
    assert logits.dtype == np.float32
    assert np.abs(logits - np.array(expected["logits"][:12])).max() < 0.1
