"""Long sequences: blockwise ALiBi attention equals the plain full-matrix math, with linear bias memory."""

import pytest
import torch

from turborank import model as model_module
from turborank.model import (
    ATTENTION_BLOCK_ELEMENTS,
    ATTENTION_CACHE_ELEMENTS,
    AttentionBias,
    alibi_bias,
    alibi_slopes,
)


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
    mask[0, -1] = 0  # padding: the materialized bias path (an unpadded batch gets a view, below)
    bias = AttentionBias(mask, 12, alibi_slopes(12), torch.float32)
    start, end, block = next(bias.blocks())
    assert block.numel() <= ATTENTION_BLOCK_ELEMENTS  # never a (nh, S, S) tensor once S is long
    assert block.shape == (1, 12, end - start, length)
    assert bias.block_rows * 12 * length <= ATTENTION_BLOCK_ELEMENTS
    # Blocks are kept across layers up to ATTENTION_CACHE_ELEMENTS in all; 8k inputs rebuild them on demand.
    assert (bias._cache is None) == (12 * length * length > ATTENTION_CACHE_ELEMENTS)
    assert (bias._cache is None) == (length == 8192)


@pytest.mark.parametrize("length", [7, 512, 8192])
def test_an_unpadded_batch_gets_alibi_as_a_view_over_reversed_keys(length):
    bias = AttentionBias(torch.ones(2, length, dtype=torch.long), 12, alibi_slopes(12), torch.float32)
    assert bias.keys_reversed
    ((start, end, whole),) = list(bias.blocks(whole=True))
    assert (start, end) == (0, length) and whole.shape == (1, 12, length, length)
    # O(S) memory behind an (nh, S, S) bias: no block is ever built.
    assert whole.untyped_storage().nbytes() == 12 * (2 * length - 1) * 4
    rows = torch.arange(min(length, 64))
    expected = alibi_bias(alibi_slopes(12), rows, length)  # the reference's float32 products
    assert torch.equal(whole[0, :, : len(rows)].flip(-1), expected)


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_reversed_key_attention_equals_the_materialized_bias(small_reranker, use_sdpa):
    """The same pairs with one padded column appended take the materialized-bias path: equal logits."""
    model = small_reranker.engine.backend.model
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 30000, (2, 1500), generator=generator)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        viewed = model(ids, mask, use_sdpa=use_sdpa)
        padded_ids = torch.cat([ids, torch.zeros(2, 1, dtype=torch.long)], dim=1)
        padded_mask = torch.cat([mask, torch.zeros(2, 1, dtype=torch.long)], dim=1)
        materialized = model(padded_ids, padded_mask, use_sdpa=use_sdpa)
    assert (viewed - materialized).abs().max() < 1e-4
