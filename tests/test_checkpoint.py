import json
import pickle
import shutil

import pytest
import torch
from conftest import FIXTURES
from safetensors.torch import save_file

from turborank import CheckpointError, ModelNotFoundError, Reranker
from turborank.checkpoint import declared_max_length, read_weights, resolve_model_dir


@pytest.fixture
def checkpoint(tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "small", target)
    return target


def rewrite_weights(directory, edit):
    state = read_weights(directory / "model.safetensors")
    edit(state)
    save_file(state, str(directory / "model.safetensors"))


def test_truncated_weights_file(checkpoint):
    data = (checkpoint / "model.safetensors").read_bytes()
    (checkpoint / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        Reranker.from_pretrained(checkpoint, device="cpu")


def test_shape_mismatch_names_the_tensors_and_the_fix(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    config["intermediate_size"] = 256
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        Reranker.from_pretrained(checkpoint, device="cpu")
    message = str(info.value)
    assert "shape mismatches" in message and "bert.encoder.layer.0.mlp.gated_layers.weight" in message
    assert "(256, 64)" in message and "intermediate_size" in message


def test_missing_and_unexpected_keys_are_listed(checkpoint):
    def edit(state):
        state["bert.encoder.layer.0.mlp.extra.weight"] = state.pop("bert.encoder.layer.1.mlp.wo.bias")

    rewrite_weights(checkpoint, edit)
    with pytest.raises(CheckpointError) as info:
        Reranker.from_pretrained(checkpoint, device="cpu")
    assert "missing keys (1): bert.encoder.layer.1.mlp.wo.bias" in str(info.value)
    assert "unexpected keys (1): bert.encoder.layer.0.mlp.extra.weight" in str(info.value)


def test_missing_tokenizer(checkpoint):
    (checkpoint / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="needs tokenizer.json"):
        Reranker.from_pretrained(checkpoint, device="cpu")


def test_missing_config_and_weights(checkpoint):
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights: expected one of model.safetensors"):
        Reranker.from_pretrained(checkpoint, device="cpu")
    (checkpoint / "config.json").unlink()
    with pytest.raises(CheckpointError, match="has no config.json"):
        Reranker.from_pretrained(checkpoint, device="cpu")


def test_encoder_without_classifier_is_refused(checkpoint):
    rewrite_weights(checkpoint, lambda s: (s.pop("classifier.weight"), s.pop("classifier.bias")))
    with pytest.raises(CheckpointError, match="not a cross-encoder"):
        Reranker.from_pretrained(checkpoint, device="cpu")


def test_unprefixed_keys_and_stray_buffers_load(checkpoint, small_reranker):
    def edit(state):
        for key in [k for k in state if k.startswith("bert.")]:
            state[key.removeprefix("bert.")] = state.pop(key)
        state["embeddings.position_ids"] = torch.arange(8192)[None]

    rewrite_weights(checkpoint, edit)
    pairs = [("organic skincare", "natural organic skincare range")]
    got = Reranker.from_pretrained(checkpoint, device="cpu").predict_logits(pairs)
    assert torch.allclose(torch.from_numpy(got), torch.from_numpy(small_reranker.predict_logits(pairs)))


def test_num_labels_comes_from_the_classifier_not_the_config(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    config["num_labels"] = 2
    config["id2label"] = {"0": "a", "1": "b"}
    (checkpoint / "config.json").write_text(json.dumps(config))
    assert Reranker.from_pretrained(checkpoint, device="cpu").config.num_labels == 1


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_that_need_code_are_refused(checkpoint, capsys):
    (checkpoint / "model.safetensors").unlink()
    with open(checkpoint / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": _Exploit()}, f)
    with pytest.raises(CheckpointError, match="refuses"):
        Reranker.from_pretrained(checkpoint, device="cpu")
    assert "must never run" not in capsys.readouterr().out


def test_missing_local_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no checkpoint directory"):
        resolve_model_dir(tmp_path / "nope")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        resolve_model_dir(FIXTURES / "small" / "config.json")


def test_unreachable_hub_says_to_pass_a_local_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError, match="hub cannot be reached.*pass a local checkpoint directory"):
        Reranker.from_pretrained("jinaai/jina-reranker-v1-turbo-en", device="cpu")


def test_an_unreachable_hub_is_reported_after_one_probe_not_retries(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    probes, downloads = [], []

    def no_network(url, timeout=None, **_):
        probes.append(timeout)
        raise ConnectionError("Name or service not known")

    def download(repo_id, filename, revision=None, local_files_only=False, **_):
        if not local_files_only:
            downloads.append(filename)  # the retrying call: must not run when the probe failed
        raise FileNotFoundError(filename)

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", no_network)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(ModelNotFoundError, match="hub cannot be reached \\(Name or service not known\\)"):
        resolve_model_dir("jinaai/jina-reranker-v1-turbo-en")
    assert probes == [10.0] and downloads == []


def test_a_hub_that_answers_goes_on_to_the_download(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    downloads = []

    def gated(url, timeout=None, **_):
        answer = HfHubHTTPError.__new__(HfHubHTTPError)  # its constructor wants a real HTTP response
        Exception.__init__(answer, "401 Client Error: gated repo")
        raise answer

    def download(repo_id, filename, revision=None, local_files_only=False, **_):
        if local_files_only:
            raise FileNotFoundError(filename)
        downloads.append(filename)
        raise PermissionError("401: accept the repo's terms on the hub")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", gated)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(ModelNotFoundError, match="accept the repo's terms"):
        resolve_model_dir("acme/gated-reranker")
    assert downloads == ["config.json"]  # the download's own message, not a probe's guess


def test_hub_snapshot_in_the_cache_loads_offline(monkeypatch, tmp_path):
    """A repo already in the huggingface_hub cache resolves without any network."""
    cache = tmp_path / "cache"
    snapshot = cache / "models--acme--tiny-reranker" / "snapshots" / ("a" * 40)
    shutil.copytree(FIXTURES / "small", snapshot)
    (cache / "models--acme--tiny-reranker" / "refs").mkdir()
    (cache / "models--acme--tiny-reranker" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert resolve_model_dir("acme/tiny-reranker") == snapshot


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"model_max_length": 384}', 384),
        ('{"model_max_length": 1000000000000000019884624838656}', None),  # transformers' "no limit"
        ('{"model_max_length": "512"}', None),
        ("{}", None),
        ("not json", None),
    ],
)
def test_declared_max_length_reads_the_tokenizer_config(checkpoint, content, expected):
    (checkpoint / "tokenizer_config.json").write_text(content)
    assert declared_max_length(checkpoint) == expected


def test_declared_max_length_without_a_tokenizer_config(checkpoint):
    (checkpoint / "tokenizer_config.json").unlink()
    assert declared_max_length(checkpoint) is None


def test_saved_checkpoints_follow_the_umask(tmp_path):
    import os

    from turborank.checkpoint import load_model, save_checkpoint

    model = load_model(FIXTURES / "small")
    previous = os.umask(0o022)
    try:
        out = save_checkpoint(model, FIXTURES / "small", tmp_path / "saved")
    finally:
        os.umask(previous)
    # safetensors' save_file alone writes 0600: another user's server could not read the weights.
    assert (out / "model.safetensors").stat().st_mode & 0o777 == 0o644
    reloaded = load_model(out)
    assert all(
        torch.equal(a.to(torch.bfloat16), b)
        for a, b in zip(model.state_dict().values(), reloaded.state_dict().values(), strict=True)
    )
