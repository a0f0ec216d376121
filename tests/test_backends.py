"""Backend selection: the length split and what backend="auto" resolves to on each device."""

import numpy as np
import pytest
import torch
from conftest import FIXTURES, load_expected

import turborank.backends as backends
from turborank import Reranker
from turborank.backends import SplitByLength
from turborank.engine import Batch, TorchBackend


class Recorder:
    """A backend that remembers the lengths it was given and answers with its own constant."""

    def __init__(self, value: float, is_padded: bool = True, max_batch_tokens: int | None = None):
        self.value = value
        self.is_padded = is_padded
        self.max_batch_tokens = max_batch_tokens
        self.model = object()
        self.description = f"recorder {value:g}"
        self.lengths: list[int] = []

    def predict(self, batch: Batch) -> torch.Tensor:
        self.lengths.append(batch.input_ids.shape[1])
        return torch.full((len(batch.input_ids), 1), self.value)


def batch_of_length(length: int) -> Batch:
    ids = torch.ones((2, length), dtype=torch.long)
    return Batch(ids, torch.ones_like(ids), torch.zeros_like(ids))


def test_split_by_length_routes_each_batch_by_its_padded_length():
    short, long = Recorder(1.0, max_batch_tokens=1024), Recorder(2.0, is_padded=False)
    split = SplitByLength(short, long, max_sequence=512)
    assert [float(split.predict(batch_of_length(n))[0, 0]) for n in (7, 512, 513, 4000)] == [1, 1, 2, 2]
    assert short.lengths == [7, 512] and long.lengths == [513, 4000]
    # Batches are planned for the short side: its padding rule, budget and model.
    assert split.is_padded and split.max_batch_tokens == 1024 and split.model is short.model
    assert split.description == "recorder 1 up to 512 tokens, recorder 2 beyond"


@pytest.mark.parametrize("name", ["small", "mini12"])
def test_auto_is_the_padded_torch_path_on_a_cpu(name):
    reranker = Reranker.from_pretrained(FIXTURES / name, device="cpu")
    assert reranker.backend_name == "auto" and type(reranker.engine.backend) is TorchBackend
    assert reranker.info()["runs_on"] == "padded torch"


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_auto_on_cuda_runs_long_alibi_batches_unpadded(monkeypatch):
    from turborank.cuda_backend import UnpaddedBackend

    monkeypatch.setattr(backends, "UNPADDED_ABOVE", 64)  # the golden pairs are short and long
    expected = load_expected("small")
    pairs = [(p["query"], p["document"]) for p in expected["pairs"]]
    reranker = Reranker.from_pretrained(FIXTURES / "small", device="cuda")
    split = reranker.engine.backend
    assert isinstance(split, SplitByLength) and isinstance(split.long, UnpaddedBackend)
    assert split.max_sequence == 64
    kernel = split.long.kernel_name
    assert reranker.info()["runs_on"] == (
        f"padded torch up to 64 tokens, unpadded torch with {kernel} attention beyond"
    )
    logits = reranker.predict_logits(pairs)[:, 0]
    assert np.abs(logits - np.array(expected["logits"])).max() < 1e-4


@pytest.mark.gpu
@needs_cuda
def test_auto_on_cuda_stays_padded_where_unpadded_would_be_slower():
    # mini12's 8-dimension heads are too narrow for flex attention (the loop kernel would run).
    narrow = Reranker.from_pretrained(FIXTURES / "mini12", device="cuda").engine.backend
    assert type(narrow) is TorchBackend or narrow.long.kernel_name == "flash"


def test_warm_up_runs_a_short_pair_and_one_past_the_length_split(small_dir):
    reranker = Reranker.from_pretrained(small_dir, device="cpu")
    assert reranker.warm_up() == [32]  # one backend: one short pass
    short, long = Recorder(1.0), Recorder(2.0)
    reranker.engine.backend = SplitByLength(short, long, max_sequence=100)
    assert reranker.warm_up() == [32, 101]
    assert short.lengths == [32] and long.lengths == [101]
