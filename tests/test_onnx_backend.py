"""ONNX Runtime backends: golden parity of the fp32 export, int8 deviation, caching by weight hash."""

import shutil

import numpy as np
import pytest
import torch
from conftest import FIXTURES, GOLDEN_NAMES, load_expected, tiny_model

from turborank import InputError, Reranker
from turborank.api import DEFAULT_MODEL_DIR
from turborank.engine import Batch, collate

pytest.importorskip("onnxruntime", reason="pip install 'turborank[onnx]'")
from turborank.onnx_backend import (  # noqa: E402
    INT8_SCHEME_ENV,
    INT8_SCHEMES,
    ONNX_MAX_SEQUENCE,
    cache_dir,
    exported_model,
    weights_digest,
)

TOLERANCE = 1e-4  # the bound for the fp32 export
# Random-weight fixtures (logit std ~0.2): per-token int8 measured max |dlogit| 0.033 / 0.019 (printed
# with -s); ORT's per-tensor activation scales gave 0.105 / 0.052. 7-bit weights (u8s7): 0.061 / 0.037.
# u8s8 on an AVX2 CPU without VNNI (saturating int16 pair sums) gave 0.145 / 0.094 (issue 13).
INT8_BOUNDS = {"u8s8": 0.06, "u8s7": 0.08}
# The shipped model (fp32 logit std 4.4 on these pairs) moves by 0.38 (u8s8) / 0.45 (u8s7) at most; int8
# weights alone, activations in fp32, already move it by 0.21 (per-channel 8-bit), so the 0.05 is
# out of int8's reach: the tests hold ranking and correlation, and the bound guards against regressions.
SHIPPED_MODEL_INT8_BOUND = 0.5
SHIPPED_MODEL_PAIRS = [  # (query, its relevant document); every query is scored against every document
    (
        "what causes high blood pressure",
        "Hypertension is often caused by salt, obesity, stress and genetics.",
    ),
    ("capital of France?", "Paris is the capital and most populous city of France, on the Seine."),
    ("how do vaccines work", "Vaccines train the immune system with a harmless piece of a pathogen."),
    ("python list sort", "list.sort() orders a Python list in place; sorted() returns a new sorted list."),
    ("symptoms of flu", "Influenza brings fever, cough, sore throat, muscle aches and tiredness for a week."),
    ("who wrote hamlet", "Hamlet is a tragedy written by William Shakespeare around 1600 in London."),
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Writable copies of the golden checkpoints, so exports never land in the repository."""
    root = tmp_path_factory.mktemp("onnx")
    return {name: shutil.copytree(FIXTURES / name, root / name) for name in GOLDEN_NAMES}


def golden_pairs(name):
    expected = load_expected(name)
    return [(p["query"], p["document"]) for p in expected["pairs"]], np.array(expected["logits"])


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_fp32_export_matches_the_reference(checkpoints, name):
    reranker = Reranker.from_pretrained(checkpoints[name], device="cpu", backend="onnx")
    if name == "small":  # the golden 3,050-token pair in ONNX Runtime too (in-graph ALiBi at length)
        reranker.engine.backend.max_sequence = 4096
    pairs, expected = golden_pairs(name)
    logits = reranker.predict_logits(pairs)[:, 0]
    assert np.abs(logits - expected).max() < TOLERANCE


@pytest.mark.parametrize("scheme", INT8_SCHEMES)
@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_int8_deviation_is_small_and_reported(checkpoints, name, scheme, monkeypatch):
    """Both schemes on any CPU: u8s7 (what AVX2 CPUs get) is forced here even where VNNI would pick u8s8."""
    monkeypatch.setenv(INT8_SCHEME_ENV, scheme)
    reranker = Reranker.from_pretrained(checkpoints[name], device="cpu", backend="onnx-int8")
    assert f"int8 {scheme} (weights in [-{INT8_SCHEMES[scheme]}," in reranker.info()["runs_on"]
    pairs, expected = golden_pairs(name)
    short = [i for i, (_, document) in enumerate(pairs) if len(document) < 4000]  # ONNX-run pairs only
    logits = reranker.predict_logits([pairs[i] for i in short])[:, 0]
    deviation = np.abs(logits - expected[short]).max()
    print(f"int8 {scheme} max |dlogit| on {name}: {deviation:.4f}")
    assert 0 < deviation < INT8_BOUNDS[scheme]  # nonzero: the int8 graph is really used


@pytest.mark.parametrize("scheme", INT8_SCHEMES)
def test_the_shipped_model_keeps_its_logits_in_int8(tmp_path, scheme, monkeypatch):
    """Real weights, both schemes, on a copy (the export is written under tmp_path, not into the package)."""
    directory = shutil.copytree(
        DEFAULT_MODEL_DIR, tmp_path / "default", ignore=shutil.ignore_patterns("onnx")
    )
    monkeypatch.setenv(INT8_SCHEME_ENV, scheme)
    int8 = Reranker.from_pretrained(directory, device="cpu", backend="onnx-int8")
    fp32 = Reranker.from_pretrained(directory, device="cpu")
    pairs = [(query, document) for query, _ in SHIPPED_MODEL_PAIRS for _, document in SHIPPED_MODEL_PAIRS]
    quantized, exact = int8.predict_logits(pairs)[:, 0], fp32.predict_logits(pairs)[:, 0]
    deviation = np.abs(quantized - exact).max()
    correlation = np.corrcoef(quantized, exact)[0, 1]
    print(f"shipped model, int8 {scheme}: max |dlogit| {deviation:.4f}, correlation {correlation:.5f}")
    assert correlation > 0.998
    size = len(SHIPPED_MODEL_PAIRS)  # every query's own document stays first, as in fp32
    assert (quantized.reshape(size, size).argmax(axis=1) == np.arange(size)).all()
    assert 0 < deviation < SHIPPED_MODEL_INT8_BOUND


def test_exports_are_cached_by_weight_hash(checkpoints):
    directory = checkpoints["small"]
    model = Reranker.from_pretrained(directory, device="cpu").engine.backend.model
    path = exported_model(model, directory)
    digest = weights_digest(model, directory)
    assert path.parent == directory / "onnx" and digest[:16] in path.name
    before = path.stat().st_mtime_ns
    assert exported_model(model, directory) == path and path.stat().st_mtime_ns == before  # reused
    assert exported_model(model, directory, "int8").name.endswith("-int8-u8s8.onnx")
    assert exported_model(model, directory, "int8", "u8s7").name.endswith("-int8-u8s7.onnx")
    onnx = Reranker.from_pretrained(directory, device="cpu", backend="onnx").info()["runs_on"]
    assert onnx == f"ONNX Runtime fp32 ({path.name}) up to {ONNX_MAX_SEQUENCE:,} tokens, padded torch beyond"


def test_changed_weights_get_a_new_export(checkpoints, tmp_path):
    copy = shutil.copytree(checkpoints["small"], tmp_path / "changed")
    model = Reranker.from_pretrained(copy, device="cpu").engine.backend.model
    with torch.no_grad():
        model.classifier.bias += 1.0
    from turborank.checkpoint import save_checkpoint

    save_checkpoint(model, copy, copy, dtype=torch.float32)
    assert weights_digest(model, copy) != weights_digest(model, checkpoints["small"])


def test_without_a_checkpoint_dir_the_user_cache_is_used(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir(None) == tmp_path / "turborank" / "onnx"
    model = Reranker.from_pretrained(checkpoints["small"], device="cpu").engine.backend.model
    assert exported_model(model, None).parent == tmp_path / "turborank" / "onnx"


def test_the_shipped_model_is_never_exported_into_the_package(tmp_path, monkeypatch):
    from turborank.api import DEFAULT_MODEL_DIR

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # Writable in a source checkout, yet an export there would grow the installed package by 150 MB.
    assert cache_dir(DEFAULT_MODEL_DIR) == tmp_path / "turborank" / "onnx"
    assert not (DEFAULT_MODEL_DIR / "onnx").exists()


def test_checkpoints_under_site_packages_export_to_the_user_cache(checkpoints, tmp_path, monkeypatch):
    site_packages = tmp_path / "lib" / "site-packages"
    installed = shutil.copytree(
        checkpoints["small"], site_packages / "somepackage" / "model", ignore=shutil.ignore_patterns("onnx")
    )
    monkeypatch.setattr("site.getsitepackages", lambda: [str(site_packages)])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = Reranker.from_pretrained(installed, device="cpu").engine.backend.model
    assert exported_model(model, installed).parent == tmp_path / "cache" / "turborank" / "onnx"
    assert not (installed / "onnx").exists()


def test_long_batches_run_on_the_blockwise_torch_model(checkpoints):
    reranker = Reranker.from_pretrained(checkpoints["small"], device="cpu", backend="onnx")
    backend = reranker.engine.backend
    backend.max_sequence = 16
    pairs, expected = golden_pairs("small")
    encodings = reranker.encode(pairs[:3])
    batch = collate(encodings, reranker.tokenizer.pad_token_id, False)
    assert batch.input_ids.shape[1] > 16
    np.testing.assert_allclose(backend.predict(batch)[:, 0].numpy(), expected[:3], atol=TOLERANCE)


def test_onnx_refuses_cuda_and_half_precision(checkpoints):
    with pytest.raises(InputError, match="CPU in float32"):
        Reranker.from_pretrained(checkpoints["small"], device="cpu", dtype="bfloat16", backend="onnx")


def test_unknown_backend_lists_the_choices(small_dir):
    with pytest.raises(InputError, match="auto, torch, onnx, onnx-int8, unpadded"):
        Reranker.from_pretrained(small_dir, device="cpu", backend="tensorrt")


def test_batches_are_split_to_bound_the_score_memory(checkpoints, monkeypatch):
    import turborank.onnx_backend as onnx_backend

    reranker = Reranker.from_pretrained(checkpoints["small"], device="cpu", backend="onnx")
    backend = reranker.engine.backend.short  # the ONNX Runtime side of the length split
    calls = []
    run = backend._run
    monkeypatch.setattr(backend, "_run", lambda *tensors: calls.append(len(tensors[0])) or run(*tensors))
    monkeypatch.setattr(onnx_backend, "MAX_SCORE_ELEMENTS", 1)  # one row per ONNX Runtime call
    pairs, expected = golden_pairs("small")
    batch = collate(reranker.encode(pairs[:5]), reranker.tokenizer.pad_token_id, False)
    np.testing.assert_allclose(backend.predict(batch)[:, 0].numpy(), expected[:5], atol=TOLERANCE)
    assert calls == [1, 1, 1, 1, 1]


@pytest.mark.parametrize("feed_forward", ["geglu", "original"])
def test_absolute_position_bert_exports_too(tmp_path, monkeypatch, feed_forward):
    from turborank.engine import TorchBackend
    from turborank.onnx_backend import OnnxBackend

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model = tiny_model(
        feed_forward_type=feed_forward, position_embedding_type="absolute", max_position_embeddings=64
    )
    ids = torch.randint(1, model.config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    mask[2, 5:] = 0
    batch = Batch(ids * mask, mask, torch.zeros_like(ids))
    expected = TorchBackend(model, torch.device("cpu"), torch.float32).predict(batch)
    backend = OnnxBackend.from_model(model, None)
    np.testing.assert_allclose(backend.predict(batch).numpy(), expected.numpy(), atol=TOLERANCE)


def test_onnx_backends_bring_their_own_batch_budget_unless_one_is_given(checkpoints):
    from turborank.onnx_backend import MAX_BATCH_TOKENS

    directory = checkpoints["small"]
    assert Reranker.from_pretrained(directory, device="cpu", backend="onnx").engine.max_batch_tokens == (
        MAX_BATCH_TOKENS
    )
    chosen = Reranker.from_pretrained(directory, device="cpu", backend="onnx-int8", max_batch_tokens=4096)
    assert chosen.engine.max_batch_tokens == 4096
    assert Reranker.from_pretrained(directory, device="cpu").engine.max_batch_tokens == 2048


def test_int8_graph_quantizes_weight_matmuls_and_keeps_the_classifier(checkpoints):
    import onnx

    model = Reranker.from_pretrained(checkpoints["small"], device="cpu").engine.backend.model
    graph = onnx.load(str(exported_model(model, checkpoints["small"], "int8"))).graph
    weights = {t.name: tuple(t.dims) for t in graph.initializer}
    ops = [node.op_type for node in graph.node]
    layers = model.config.num_hidden_layers
    # query, key, value, attention output, gated input, feed-forward output; the pooler is a Gemm.
    assert ops.count("MatMulIntegerToFloat") == 6 * layers
    assert ops.count("QuantizeLinear") == 4 * layers  # q, k and v share their input's quantization
    float_weights = [
        weights[node.input[1]] for node in graph.node if node.op_type == "MatMul" and node.input[1] in weights
    ]
    assert all(shape[1] == model.config.num_labels for shape in float_weights)  # only the classifier


def test_int8_scores_do_not_depend_on_batch_neighbours(checkpoints):
    """One scale per token: a pair scores the same alone and beside a pair with larger activations."""
    reranker = Reranker.from_pretrained(checkpoints["small"], device="cpu", backend="onnx-int8")
    pairs, _ = golden_pairs("small")
    encodings = reranker.encode(pairs[:6])
    pad = reranker.tokenizer.pad_token_id
    backend = reranker.engine.backend.short
    together = backend.predict(collate(encodings, pad, False))[:, 0].numpy()
    alone = [float(backend.predict(collate([e], pad, False))[0, 0]) for e in encodings]
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_sessions_flush_denormals(checkpoints):
    """ALiBi drives distant keys' softmax weights into the denormal range; unflushed, they made ONNX
    Runtime's attention matmuls ~4x slower (the golden parity tests check that flushing changes nothing)."""
    reranker = Reranker.from_pretrained(checkpoints["small"], device="cpu", backend="onnx")
    options = reranker.engine.backend.short.session.get_session_options()
    assert options.get_session_config_entry("session.set_denormal_as_zero") == "1"
