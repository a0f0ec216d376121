import numpy as np
import pytest
import torch

from turborank.engine import Batch, Engine, collate, plan_batches
from turborank.errors import BackendError
from turborank.tokenization import PairEncoding


@pytest.mark.parametrize("seed", range(4))
def test_plans_cover_every_pair_once_within_the_budget(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 600, size=200).tolist()
    batches = plan_batches(lengths, max_batch_tokens=4096, max_batch_size=64)
    assert sorted(i for b in batches for i in b) == list(range(200))
    for batch in batches:
        assert len(batch) <= 64
        assert max(lengths[i] for i in batch) * len(batch) <= 4096


def test_one_long_pair_never_pads_the_short_ones():
    lengths = [30] * 50 + [8000]
    batches = plan_batches(lengths, max_batch_tokens=4096, max_batch_size=256)
    assert batches[0] == [50]  # longest first, alone
    assert all(max(lengths[i] for i in b) == 30 for b in batches[1:])


def test_unpadded_budget_counts_real_tokens():
    batches = plan_batches([100, 10, 10, 10], max_batch_tokens=120, max_batch_size=8, padded=False)
    assert batches == [[0, 1, 2], [3]]


def test_collate_pads_right_and_zeroes_type_ids_when_asked():
    encodings = [PairEncoding([1, 2, 3], [0, 0, 1]), PairEncoding([4], [0])]
    batch = collate(encodings, pad_token_id=9, use_token_type_ids=False)
    assert batch.input_ids.tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch.token_type_ids.abs().sum() == 0
    assert collate(encodings, 0, True).token_type_ids.tolist() == [[0, 0, 1], [0, 0, 0]]
    assert batch.num_tokens == 4


def test_collate_rounds_the_length_up_to_a_multiple():
    encodings = [PairEncoding([1, 2, 3], [0, 0, 1]), PairEncoding([4], [0])]
    batch = collate(encodings, pad_token_id=9, use_token_type_ids=True, pad_to_multiple=4)
    assert batch.input_ids.tolist() == [[1, 2, 3, 9], [4, 9, 9, 9]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert batch.num_tokens == 4  # padding is not counted as tokens
    assert collate(encodings, 9, True, pad_to_multiple=3).input_ids.shape == (2, 3)


class RecordingBackend:
    """Scores a pair by its first token and length; records the batch shapes it saw."""

    is_padded = True

    def __init__(self):
        self.shapes = []

    def predict(self, batch: Batch) -> torch.Tensor:
        self.shapes.append(tuple(batch.input_ids.shape))
        return (batch.input_ids[:, :1] + batch.attention_mask.sum(1, keepdim=True) / 1000).float()


def test_results_come_back_in_input_order():
    backend = RecordingBackend()
    engine = Engine(backend, pad_token_id=0, use_token_type_ids=False, max_batch_tokens=64)
    encodings = [PairEncoding([i] * (1 + (i * 7) % 30), [0] * (1 + (i * 7) % 30)) for i in range(40)]
    logits = engine.run(encodings)
    expected = [i + len(e) / 1000 for i, e in enumerate(encodings)]
    np.testing.assert_allclose(logits[:, 0], expected, rtol=1e-6)
    assert all(rows * length <= 64 or rows == 1 for rows, length in backend.shapes)


def test_max_batch_size_caps_rows():
    backend = RecordingBackend()
    engine = Engine(backend, pad_token_id=0, use_token_type_ids=False)
    engine.run([PairEncoding([1, 2], [0, 0])] * 10, max_batch_size=3)
    assert [rows for rows, _ in backend.shapes] == [3, 3, 3, 1]


def test_nan_logits_are_a_backend_error():
    class NanBackend:
        is_padded = True

        def predict(self, batch):
            return torch.full((batch.input_ids.shape[0], 1), float("nan"))

    with pytest.raises(BackendError, match="NaN"):
        Engine(NanBackend(), 0, False).run([PairEncoding([1], [0])])


def test_empty_input():
    assert Engine(RecordingBackend(), 0, False).run([]).shape == (0, 1)
