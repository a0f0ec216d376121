"""The benchmarks' own baselines compute what they claim to: a ratio against a wrong or broken baseline
says nothing. (Timing is never asserted; these run the baselines on tiny inputs.)"""

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES

from turborank import Reranker
from turborank import model as model_module

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench_long = pytest.importorskip("bench_long")


def test_the_reference_sdpa_baseline_gives_the_models_logits(monkeypatch):
    """bench_long's reference path (one dense mask + ALiBi per forward, the reference's batches of 32)
    scores padded and unpadded batches as turborank's blockwise attention does."""
    reranker = Reranker.from_pretrained(FIXTURES / "small", device="cpu")
    assert reranker.config.uses_alibi
    encodings = bench_long.pairs_of_lengths([40, 64, 64], seed=1)
    for encoding in encodings:  # the fixture's vocabulary is smaller than the turbo shape's
        encoding.input_ids[:] = [i % reranker.config.vocab_size for i in encoding.input_ids]
    expected = reranker.engine.run(encodings)[:, 0]
    monkeypatch.setattr(model_module, "AttentionBias", model_module.AttentionBias)  # restored after
    bench_long.use_reference_attention(reranker.config.num_attention_heads, 64)
    reranker.engine.max_batch_size = bench_long.REFERENCE_BATCH_SIZE
    np.testing.assert_allclose(reranker.engine.run(encodings)[:, 0], expected, atol=1e-4, rtol=0)
