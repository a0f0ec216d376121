"""Unpadded (packed, variable-length) backend: packing logic and CPU parity of the packed model.

The CUDA kernels (flash-attn varlen, compiled flex attention) run only on a GPU; on a CPU the same
packed model runs with the per-sequence ``loop`` kernel and eager flex attention.
"""

import numpy as np
import pytest
import torch
from conftest import FIXTURES, GOLDEN_NAMES, load_expected

from turborank import InputError, Reranker
from turborank.cuda_backend import UnpaddedBackend, document_block_mask, pack, sequence_ids, unpack
from turborank.engine import Batch, collate, plan_batches

TOLERANCE = 1e-4


def hand_batch():
    ids = torch.tensor([[101, 5, 6, 102], [101, 7, 102, 0], [101, 102, 0, 0]])
    mask = (ids != 0).long()
    return Batch(ids, mask, torch.zeros_like(ids))


def test_pack_drops_padding_and_records_boundaries():
    packed = pack(hand_batch())
    assert packed.input_ids.tolist() == [101, 5, 6, 102, 101, 7, 102, 101, 102]
    assert packed.cu_seqlens.tolist() == [0, 4, 7, 9] and packed.cu_seqlens.dtype == torch.int32
    assert packed.max_seqlen == 4 and packed.lengths == [4, 3, 2]
    assert sequence_ids(packed.cu_seqlens).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2]


def test_unpack_inverts_pack():
    batch = hand_batch()
    packed = pack(batch)
    restored = unpack(packed.input_ids, packed.cu_seqlens)
    assert torch.equal(restored, batch.input_ids)
    values = torch.arange(18.0).view(9, 2)  # (T, H) values come back as (B, S, H)
    assert unpack(values, packed.cu_seqlens)[1, :3].tolist() == values[4:7].tolist()


def test_planner_counts_real_tokens_for_unpadded_backends():
    lengths = [100, 10, 10, 10]
    assert plan_batches(lengths, 130, 8, padded=True) == [[0], [1, 2, 3]]
    assert plan_batches(lengths, 130, 8, padded=False) == [[0, 1, 2, 3]]


@pytest.mark.parametrize(
    "lengths", [[5], [128], [128, 128], [100, 300, 28, 1], [700], [129, 127, 256, 3, 400]]
)
def test_block_mask_from_boundaries_equals_the_dense_construction(lengths):
    from torch.nn.attention.flex_attention import create_block_mask

    cu_seqlens = torch.nn.functional.pad(torch.tensor(lengths).cumsum(0), (1, 0)).to(torch.int32)
    total, seq = int(cu_seqlens[-1]), sequence_ids(cu_seqlens)
    dense = create_block_mask(lambda b, h, q, k: seq[q] == seq[k], None, None, total, total, device="cpu")
    built = document_block_mask(cu_seqlens)
    assert torch.equal(built.to_dense(), dense.to_dense())
    assert torch.equal(built.kv_num_blocks, dense.kv_num_blocks)  # partial blocks: mask applied
    assert torch.equal(built.full_kv_num_blocks, dense.full_kv_num_blocks)  # full blocks: mask skipped


@pytest.fixture(scope="module", params=GOLDEN_NAMES)
def golden(request):
    expected = load_expected(request.param)
    reranker = Reranker.from_pretrained(FIXTURES / request.param, device="cpu")
    pairs = [(p["query"], p["document"]) for p in expected["pairs"]]
    return reranker, reranker.encode(pairs), np.array(expected["logits"]), request.param


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("kernel", ["loop", "flex-eager"])
def test_packed_model_matches_the_reference_on_cpu(golden, kernel):
    reranker, encodings, expected, _ = golden
    backend = UnpaddedBackend(reranker.engine.backend.model, torch.device("cpu"), torch.float32, kernel)
    if kernel == "flex-eager":  # materializes T x T scores: keep to the short pairs
        keep = [i for i, e in enumerate(encodings) if len(e) < 300]
        encodings, expected = [encodings[i] for i in keep], expected[keep]
    logits = backend.predict(collate(encodings, reranker.tokenizer.pad_token_id, False))
    assert logits.dtype == torch.float32
    assert np.abs(logits[:, 0].numpy() - expected).max() < TOLERANCE


def test_bf16_packed_model_keeps_a_float32_head():
    reranker = Reranker.from_pretrained(FIXTURES / "small", device="cpu")  # its own: bf16 converts in place
    expected = load_expected("small")
    encodings = reranker.encode([(p["query"], p["document"]) for p in expected["pairs"]])
    backend = UnpaddedBackend(reranker.engine.backend.model, torch.device("cpu"), torch.bfloat16, "loop")
    short = [i for i, e in enumerate(encodings) if len(e) < 300]
    logits = backend.predict(collate([encodings[i] for i in short], reranker.tokenizer.pad_token_id, False))
    assert logits.dtype == torch.float32 and backend.slopes.dtype == torch.float32
    assert np.abs(logits[:, 0].numpy() - np.array(expected["logits"])[short]).max() < 0.05  # measured 0.018
    assert backend.pooler.weight.dtype == torch.float32 and backend.classifier.weight.dtype == torch.float32


def test_unpadded_engine_plans_by_real_tokens(small_dir):
    reranker = Reranker.from_pretrained(small_dir, device="cpu", backend="unpadded")
    assert reranker.engine.backend.is_padded is False and reranker.engine.backend.kernel_name == "loop"
    pairs = [("query", "word " * n) for n in (5, 50, 500)]
    expected = Reranker.from_pretrained(small_dir, device="cpu").compute_score(pairs)
    np.testing.assert_allclose(reranker.compute_score(pairs), expected, atol=1e-5)


def test_flex_refuses_heads_narrower_than_its_kernels_take():
    model = Reranker.from_pretrained(FIXTURES / "mini12", device="cpu").engine.backend.model  # 8-dim heads
    with pytest.raises(InputError, match="at least 16 dimensions per head"):
        UnpaddedBackend(model, torch.device("cpu"), torch.float32, "flex")


def test_default_kernel_by_device_dtype_and_head_size(monkeypatch):
    import sys
    import types

    from turborank.cuda_backend import default_kernel

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # not installed
    assert default_kernel(cpu, 32, torch.bfloat16) == "loop"
    assert default_kernel(cuda, 32, torch.bfloat16) == "flex"
    assert default_kernel(cuda, 8, torch.bfloat16) == "loop"
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))  # installed
    assert default_kernel(cuda, 32, torch.bfloat16) == "flash"
    assert default_kernel(cuda, 32, torch.float32) == "flex"  # flash-attn takes fp16/bf16 only


def test_unpadded_refuses_absolute_position_models():
    from turborank.model import JinaBertConfig, JinaBertForSequenceClassification

    config = JinaBertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    config.position_embedding_type = "absolute"
    config.max_position_embeddings = 64
    model = JinaBertForSequenceClassification(config)
    with pytest.raises(InputError, match="ALiBi"):
        UnpaddedBackend(model, torch.device("cpu"), torch.float32)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# fp32 is exact up to kernel order (TF32 stays off); half precision keeps ~3 digits through the layers.
CUDA_TOLERANCE = {torch.float32: TOLERANCE, torch.bfloat16: 0.05, torch.float16: 0.01}


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", list(CUDA_TOLERANCE))
@pytest.mark.parametrize("kernel", [None, "loop"])  # None: flash or flex (loop for mini12's 8-dim heads)
def test_cuda_unpadded_matches_the_reference(golden, dtype, kernel):
    reranker, encodings, expected, name = golden
    model = Reranker.from_pretrained(FIXTURES / name, device="cpu").engine.backend.model
    backend = UnpaddedBackend(model, torch.device("cuda"), dtype, kernel)
    logits = backend.predict(collate(encodings, reranker.tokenizer.pad_token_id, False))[:, 0].numpy()
    assert logits.dtype == np.float32
    assert np.abs(logits - expected).max() < CUDA_TOLERANCE[dtype]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", list(CUDA_TOLERANCE))
def test_cuda_padded_path_matches_the_reference(golden, dtype):
    _, _, expected, name = golden
    pairs = [(p["query"], p["document"]) for p in load_expected(name)["pairs"]]
    reranker = Reranker.from_pretrained(FIXTURES / name, device="cuda", dtype=dtype, backend="torch")
    assert np.abs(reranker.predict_logits(pairs)[:, 0] - expected).max() < CUDA_TOLERANCE[dtype]


@pytest.mark.gpu
@needs_cuda
def test_cuda_unpadded_engine_agrees_with_the_cpu_at_3000_tokens(small_dir):
    """Long and short pairs in one packed batch: flex's block mask must keep each sequence apart."""
    pairs = [("query", "word " * n) for n in (3000, 5, 700, 129)]
    expected = Reranker.from_pretrained(small_dir, device="cpu").predict_logits(pairs)
    reranker = Reranker.from_pretrained(small_dir, device="cuda", backend="unpadded")
    assert reranker.engine.backend.kernel_name in ("flash", "flex")
    np.testing.assert_allclose(reranker.predict_logits(pairs), expected, atol=TOLERANCE)
