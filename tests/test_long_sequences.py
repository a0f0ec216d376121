"""Long sequences: blockwise ALiBi attention equals the plain full-matrix math, with linear bias memory."""

import pytest
import torch

from turborank import model as model_module
from turborank.model import ATTENTION_BLOCK_ELEMENTS, ATTENTION_CACHE_ELEMENTS, AttentionBias, alibi_slopes


@pytest.fixture(scope="module")
def long_batch():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (2, 3000), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 2400:] = 0  # one padded row: the key mask must combine with the per-block ALiBi
    return ids, mask


def test_blockwise_sdpa_matches_plain_attention_at_3000_tokens(small_reranker, long_batch, monkeypatch):
    model = small_reranker.engine.backend.model
    ids, mask = long_batch
    with torch.inference_mode():
        # Plain: one (B, nh, S, S) score matrix, the reference's matmul-softmax math.
        monkeypatch.setattr(model_module, "ATTENTION_BLOCK_ELEMENTS", 1 << 40)
        plain = model(ids, mask, use_sdpa=False)
        # Blockwise: 1 << 20 elements -> 87 query rows per block, fused SDPA per block.
        monkeypatch.setattr(model_module, "ATTENTION_BLOCK_ELEMENTS", 1 << 20)
        bias = AttentionBias(mask, model.config.num_attention_heads, model.bert.alibi_slopes, torch.float32)
        assert bias.block_rows < 100 and bias._cache is None
        blockwise = model(ids, mask, use_sdpa=True)
    assert (plain - blockwise).abs().max() < 1e-4


@pytest.mark.parametrize("length", [512, 2048, 8192])
def test_bias_blocks_stay_within_a_constant_budget(length):
    mask = torch.ones(1, length, dtype=torch.long)
    bias = AttentionBias(mask, 12, alibi_slopes(12), torch.float32)
    start, end, block = next(bias.blocks())
    assert block.numel() <= ATTENTION_BLOCK_ELEMENTS  # never a (nh, S, S) tensor once S is long
    assert block.shape == (1, 12, end - start, length)
    assert bias.block_rows * 12 * length <= ATTENTION_BLOCK_ELEMENTS
    # Blocks are kept across layers up to ATTENTION_CACHE_ELEMENTS in all; 8k inputs rebuild them on demand.
    assert (bias._cache is None) == (12 * length * length > ATTENTION_CACHE_ELEMENTS)
    assert (bias._cache is None) == (length == 8192)
