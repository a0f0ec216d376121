"""``Reranker.predict`` / ``rank`` against sentence-transformers' ``CrossEncoder`` on the same checkpoints,
and the progress bars of compute_score / rerank / predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
sentence_transformers = pytest.importorskip("sentence_transformers")

from test_families import PAIRS, save_family  # noqa: E402

from turborank import InputError, Reranker  # noqa: E402
from turborank import api as api_module  # noqa: E402

TOLERANCE = 1e-5
QUERY = PAIRS[0][0]
DOCUMENTS = [document for _, document in PAIRS]


def load_both(directory):
    cross_encoder = sentence_transformers.CrossEncoder(str(directory), device="cpu")
    return Reranker.from_pretrained(directory, device="cpu"), cross_encoder


@pytest.fixture(scope="module", params=["bert", "xlm-roberta", "deberta-v2"])
def both(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    save_family(directory, request.param)
    return load_both(directory)


def test_predict_matches_cross_encoder_in_values_and_types(both):
    reranker, cross_encoder = both
    for inputs in (PAIRS, [list(p) for p in PAIRS], np.array(PAIRS)):
        ours, theirs = reranker.predict(inputs), cross_encoder.predict(inputs)
        assert isinstance(ours, np.ndarray) and ours.shape == theirs.shape == (len(PAIRS),)
        assert ours.dtype == theirs.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0)
    single = reranker.predict(PAIRS[1])
    assert isinstance(single, np.float32) and type(single) is type(cross_encoder.predict(PAIRS[1]))
    assert reranker.predict(np.array(PAIRS[1])) == pytest.approx(float(single), abs=1e-7)
    tensor = reranker.predict(PAIRS, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (len(PAIRS),)
    as_list = reranker.predict(PAIRS, convert_to_numpy=False)
    assert isinstance(as_list, list) and len(as_list) == len(PAIRS)
    raw = reranker.predict(PAIRS, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(
        raw, cross_encoder.predict(PAIRS, activation_fn=torch.nn.Identity()), atol=TOLERANCE, rtol=0
    )
    np.testing.assert_allclose(
        raw, reranker.compute_score([list(p) for p in PAIRS], normalize=False), atol=1e-6
    )


def test_rank_matches_cross_encoder(both):
    reranker, cross_encoder = both
    for kwargs in ({}, {"top_k": 2}, {"return_documents": True}, {"top_k": 3, "return_documents": True}):
        ours, theirs = (
            reranker.rank(QUERY, DOCUMENTS, **kwargs),
            cross_encoder.rank(QUERY, DOCUMENTS, **kwargs),
        )
        assert [r["corpus_id"] for r in ours] == [r["corpus_id"] for r in theirs]
        assert [set(r) for r in ours] == [set(r) for r in theirs]
        for mine, reference in zip(ours, theirs, strict=True):
            assert isinstance(mine["score"], float)
            assert mine["score"] == pytest.approx(reference["score"], abs=TOLERANCE)
            assert mine.get("text") == reference.get("text")
    assert reranker.rank(QUERY, np.array(DOCUMENTS))[0]["corpus_id"] == theirs[0]["corpus_id"]


def test_long_pairs_are_cut_as_cross_encoder_cuts_them(both):
    """Query and document both past half of the 128-token limit: CrossEncoder's longest_first split."""
    reranker, cross_encoder = both
    long_pairs = [(f"{q} " * 30, f"{d} " * 30) for q, d in PAIRS]
    assert all(len(e) == 128 for e in reranker.encode(long_pairs, truncation="longest_first"))
    np.testing.assert_allclose(
        reranker.predict(long_pairs), cross_encoder.predict(long_pairs), atol=TOLERANCE, rtol=0
    )
    ours = reranker.rank(f"{QUERY} " * 30, [f"{d} " * 30 for d in DOCUMENTS])
    theirs = cross_encoder.rank(f"{QUERY} " * 30, [f"{d} " * 30 for d in DOCUMENTS])
    assert [r["corpus_id"] for r in ours] == [r["corpus_id"] for r in theirs]


def test_rank_checks_top_k(both):
    reranker, _ = both
    with pytest.raises(InputError, match="top_k must be a positive integer"):
        reranker.rank(QUERY, DOCUMENTS, top_k=0)
    assert reranker.rank(QUERY, []) == []


def test_the_activation_a_cross_encoder_saved_is_used(tmp_path):
    """A CrossEncoder saved with an identity activation (ms-marco-MiniLM's) predicts raw logits in both."""
    save_family(tmp_path / "source", "bert")
    sentence_transformers.CrossEncoder(
        str(tmp_path / "source"), device="cpu", activation_fn=torch.nn.Identity()
    ).save(str(tmp_path / "saved"))
    reranker, cross_encoder = load_both(tmp_path / "saved")
    assert isinstance(reranker.activation_fn, torch.nn.Identity)
    np.testing.assert_allclose(reranker.predict(PAIRS), cross_encoder.predict(PAIRS), atol=TOLERANCE, rtol=0)
    assert reranker.predict(PAIRS).min() < 0  # raw logits, not probabilities


def test_multi_label_heads_predict_every_label_and_refuse_a_single_score(tmp_path):
    save_family(tmp_path, "bert", num_labels=3)
    reranker, cross_encoder = load_both(tmp_path)
    ours = reranker.predict(PAIRS)
    assert ours.shape == (len(PAIRS), 3)
    np.testing.assert_allclose(ours, cross_encoder.predict(PAIRS), atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(
        reranker.predict(PAIRS, apply_softmax=True),
        cross_encoder.predict(PAIRS, apply_softmax=True),
        atol=TOLERANCE,
        rtol=0,
    )
    for call in (
        lambda: reranker.compute_score(list(PAIRS[0])),
        lambda: reranker.rerank(QUERY, DOCUMENTS),
        lambda: reranker.rank(QUERY, DOCUMENTS),
    ):
        with pytest.raises(InputError, match="3 output labels.*Use predict"):
            call()


def test_bad_inputs_get_clear_errors(both):
    reranker, _ = both
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        reranker.predict(PAIRS, batch_size=0)
    with pytest.raises(InputError, match=r"sentence_pairs\[1\] must be a \[query, document\] pair"):
        reranker.predict([PAIRS[0], ("only one",)])


def test_progress_bar_forced_on_and_off(both, capsys):
    reranker, _ = both
    reranker.predict(PAIRS, show_progress_bar=True)
    assert f"{len(PAIRS)}/{len(PAIRS)}" in capsys.readouterr().err
    reranker.compute_score([list(p) for p in PAIRS], show_progress_bar=True)
    assert f"{len(PAIRS)}/{len(PAIRS)}" in capsys.readouterr().err
    reranker.rerank(QUERY, DOCUMENTS, show_progress_bar=True)
    assert f"{len(DOCUMENTS)}/{len(DOCUMENTS)}" in capsys.readouterr().err
    reranker.rank(QUERY, DOCUMENTS, show_progress_bar=False)
    assert capsys.readouterr().err == ""


def test_progress_bar_by_default_only_for_long_calls(both, capsys, monkeypatch):
    reranker, _ = both
    reranker.rerank(QUERY, DOCUMENTS)  # a short call: done long before the bar's delay
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(api_module, "PROGRESS_DELAY_S", 0.0)  # every call now counts as long
    reranker.rerank(QUERY, DOCUMENTS)
    assert f"{len(DOCUMENTS)}/{len(DOCUMENTS)}" in capsys.readouterr().err
