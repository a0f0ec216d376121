"""The rest of turborank with XLM-RoBERTa, ELECTRA and DeBERTa-v2 checkpoints: what works (ONNX fp32 and
int8, chunking, the server's loader, eval's scorer) and what refuses clearly (the CUDA unpadded backend,
BERT-shaped distillation students, multi-label heads where one score per pair is needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from test_families import PAIRS, save_family  # noqa: E402

from turborank import InputError, Reranker  # noqa: E402
from turborank.chunking import LongDocuments  # noqa: E402

# Random weights, logits of -4..4: measured 0.03 (XLM-RoBERTa), 0.04 (ELECTRA), 0.11 (DeBERTa, whose
# relative-position projections are quantized too).
INT8_BOUND = 0.2


@pytest.fixture(scope="module", params=["xlm-roberta", "electra", "deberta-v2"])
def family_dir(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    save_family(directory, request.param)
    return directory


def test_onnx_backends_run_these_families(family_dir):
    pytest.importorskip("onnxruntime")
    torch_logits = Reranker.from_pretrained(family_dir, device="cpu").predict_logits(PAIRS)
    onnx_logits = Reranker.from_pretrained(family_dir, device="cpu", backend="onnx").predict_logits(PAIRS)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-5, rtol=0)
    int8 = Reranker.from_pretrained(family_dir, device="cpu", backend="onnx-int8").predict_logits(PAIRS)
    assert 0 < np.abs(int8 - torch_logits).max() < INT8_BOUND


def test_chunked_windows_use_the_family_template_and_score_like_single_windows(family_dir):
    reranker = Reranker.from_pretrained(family_dir, device="cpu")
    query, long_document = PAIRS[2][0], PAIRS[2][1] * 6
    options = LongDocuments(mode="chunk", chunk_size=20)
    encodings, owners, _ = reranker.encode_long(
        [(query, long_document)], max_length=48, long_documents=options
    )
    assert len(encodings) > 1 and set(owners) == {0}
    template = reranker.tokenizer.template
    for encoding in encodings:
        assert tuple(encoding.input_ids[: len(template.prefix)]) == template.prefix
        assert tuple(encoding.input_ids[-len(template.suffix) :]) == template.suffix
    window_logits = reranker.engine.run(encodings)[:, 0]
    [result] = reranker.rerank(query, [long_document], max_length=48, long_documents=options)
    assert result.num_chunks == len(encodings)
    assert result.logit == pytest.approx(float(window_logits.max()), abs=1e-6)


def test_unpadded_cuda_backend_refuses_absolute_positions(family_dir):
    pytest.importorskip("turborank.cuda_backend")
    with pytest.raises(InputError, match="ALiBi \\(JinaBERT\\) models only; use backend='torch'"):
        Reranker.from_pretrained(family_dir, device="cpu", backend="unpadded")


def test_distillation_students_refuse_a_roberta_teacher_init(tmp_path):
    from turborank.distill.students import build_student

    save_family(tmp_path, "xlm-roberta")
    preset = {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 48, "num_hidden_layers": 1}
    preset |= {"feed_forward_type": "original", "position_embedding_type": "absolute"}
    with pytest.raises(InputError, match="model_type: student 'bert' vs teacher 'xlm-roberta'"):
        build_student(preset, f"teacher:{tmp_path}")


def test_server_and_eval_load_these_families(family_dir):
    pytest.importorskip("fastapi")
    from turborank.eval.scoring import LocalScorer
    from turborank.server.app import load_models
    from turborank.server.config import ServerConfig

    [reranker] = load_models(ServerConfig(model=[f"family={family_dir}"], device="cpu")).values()
    documents = [document for _, document in PAIRS]
    logits = LocalScorer(reranker, {}).score(PAIRS[0][0], documents).values
    expected = reranker.predict_logits([(PAIRS[0][0], d) for d in documents])[:, 0]
    np.testing.assert_allclose(logits, expected, atol=1e-6)


def test_multi_label_heads_are_refused_where_one_score_per_pair_is_needed(tmp_path):
    pytest.importorskip("fastapi")
    from turborank.distill.teachers import LocalTeacher
    from turborank.server.app import load_models
    from turborank.server.config import ServerConfig

    save_family(tmp_path, "xlm-roberta", num_labels=3)
    with pytest.raises(InputError, match="3 output labels.*turborank serve needs a single-logit"):
        load_models(ServerConfig(model=[f"nli={tmp_path}"], device="cpu"))
    with pytest.raises(InputError, match="a distillation teacher needs a single-logit"):
        LocalTeacher(tmp_path, device="cpu")
    assert Reranker.from_pretrained(tmp_path, device="cpu").predict(PAIRS).shape == (len(PAIRS), 3)
    assert torch.is_tensor(
        Reranker.from_pretrained(tmp_path, device="cpu").predict(PAIRS[0], convert_to_tensor=True)
    )
