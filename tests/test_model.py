import math

import pytest
import torch
from conftest import tiny_model

from turborank import model as model_module
from turborank.model import (
    AttentionBias,
    JinaBertConfig,
    JinaBertForSequenceClassification,
    alibi_bias,
    alibi_slopes,
)


def test_slopes_for_twelve_heads_follow_the_spec():
    expected = [2**-i for i in range(1, 9)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]
    assert alibi_slopes(12).tolist() == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("heads", [1, 2, 4, 8, 16])
def test_slopes_for_powers_of_two(heads):
    expected = [2 ** (-8 * (h + 1) / heads) for h in range(heads)]
    assert alibi_slopes(heads).tolist() == pytest.approx(expected, rel=1e-7)


def test_slopes_for_six_heads_take_even_entries_of_the_next_power():
    four = [2 ** (-8 * (h + 1) / 4) for h in range(4)]
    eight = [2 ** (-8 * (h + 1) / 8) for h in range(8)]
    assert alibi_slopes(6).tolist() == pytest.approx(four + eight[0::2][:2], rel=1e-7)


def test_bias_is_symmetric_negative_and_zero_on_the_diagonal():
    slopes = alibi_slopes(4)
    bias = alibi_bias(slopes, torch.arange(5), 5)
    assert bias.shape == (4, 5, 5)
    assert torch.equal(bias, bias.transpose(1, 2))
    assert torch.all(torch.diagonal(bias, dim1=1, dim2=2) == 0)
    assert bias[1, 0, 3].item() == pytest.approx(-3 * slopes[1].item())
    assert torch.all(bias[:, ~torch.eye(5, dtype=torch.bool)] < 0)


def test_bias_of_a_row_block_equals_the_same_rows_of_the_full_bias():
    slopes = alibi_slopes(12)
    full = alibi_bias(slopes, torch.arange(40), 40)
    assert torch.equal(alibi_bias(slopes, torch.arange(10, 25), 40), full[:, 10:25])


@pytest.mark.parametrize(
    ("layers", "expected"),
    [(6, 37_771_777), (4, 33_046_273)],  # jina-reranker-v1-turbo-en / tiny-en (spec §2)
)
def test_parameter_count_matches_the_published_models(layers, expected):
    config = JinaBertConfig(num_hidden_layers=layers)
    assert JinaBertForSequenceClassification(config).num_parameters() == expected


def random_batch(lengths, vocab=50):
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, vocab, (len(lengths), max(lengths)), generator=gen)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    return ids * mask, mask


@pytest.mark.parametrize("feed_forward", ["geglu", "reglu", "original"])
@pytest.mark.parametrize("positions", ["alibi", "absolute"])
def test_fused_and_plain_attention_agree(feed_forward, positions):
    model = tiny_model(
        feed_forward_type=feed_forward, position_embedding_type=positions, max_position_embeddings=64
    )
    ids, mask = random_batch([9, 30, 17])
    with torch.no_grad():
        fused = model(ids, mask, use_sdpa=True)
        plain = model(ids, mask, use_sdpa=False)
    assert torch.allclose(fused, plain, atol=1e-5)


def test_blockwise_attention_equals_one_block(monkeypatch):
    model = tiny_model()
    ids, mask = random_batch([200, 120])
    with torch.no_grad():
        whole = model(ids, mask)
        monkeypatch.setattr(model_module, "ATTENTION_BLOCK_ELEMENTS", 2 * 6 * 200 * 7)
        bias = AttentionBias(mask, 6, model.bert.alibi_slopes, torch.float32)
        assert bias.block_rows == 7 and len(bias._cache) == 29  # 29 blocks, kept for every layer
        cached = model(ids, mask)
        monkeypatch.setattr(model_module, "ATTENTION_CACHE_ELEMENTS", 0)
        assert AttentionBias(mask, 6, model.bert.alibi_slopes, torch.float32)._cache is None
        rebuilt = model(ids, mask)  # blocks rebuilt in each layer
    assert torch.allclose(whole, cached, atol=1e-5)
    assert torch.allclose(whole, rebuilt, atol=1e-5)


def test_padding_does_not_change_a_pairs_logit():
    model = tiny_model()
    ids, mask = random_batch([11, 40])
    with torch.no_grad():
        batched = model(ids, mask)[0]
        alone = model(ids[:1, :11], mask[:1, :11])[0]
    assert torch.allclose(batched, alone, atol=1e-5)


def test_gated_feed_forward_uses_the_first_half_as_gate():
    model = tiny_model()
    mlp = model.bert.encoder.layer[0].mlp
    h = torch.randn(1, 3, 24)
    u = h @ mlp.gated_layers.weight.T
    expected = (torch.nn.functional.gelu(u[..., :32]) * u[..., 32:]) @ mlp.wo.weight.T + mlp.wo.bias
    expected = torch.nn.functional.layer_norm(
        expected + h, (24,), mlp.layernorm.weight, mlp.layernorm.bias, 1e-12
    )
    assert torch.allclose(mlp(h), expected, atol=1e-5)


def test_alibi_model_has_no_position_table_and_absolute_one_does():
    assert not hasattr(tiny_model().bert.embeddings, "position_embeddings")
    absolute = tiny_model(position_embedding_type="absolute", max_position_embeddings=64)
    assert absolute.bert.embeddings.position_embeddings.weight.shape == (64, 24)


def test_attention_blocks_stay_linear_in_sequence_length():
    # An 8,192-token pair on the turbo shape never builds a (heads, S, S) bias.
    mask = torch.ones(1, 8192, dtype=torch.long)
    bias = AttentionBias(mask, 12, alibi_slopes(12), torch.float32)
    first = next(bias.blocks())[2]
    assert first.numel() <= model_module.ATTENTION_BLOCK_ELEMENTS
    assert first.shape[-1] == 8192 and first.shape[-2] < 8192
    assert math.ceil(8192 / bias.block_rows) > 1


def test_a_batch_without_padding_broadcasts_one_alibi_block():
    bias = AttentionBias(torch.ones(64, 200, dtype=torch.long), 12, alibi_slopes(12), torch.float32)
    ((start, end, block),) = list(bias.blocks())
    assert (start, end) == (0, 200) and block.shape == (1, 12, 200, 200)
    padded = torch.ones(64, 200, dtype=torch.long)
    padded[3, 150:] = 0
    first = next(AttentionBias(padded, 12, alibi_slopes(12), torch.float32).blocks())[2]
    assert first.shape[0] == 64 and first[3, 0, 0, 150].item() < -1e30
