"""Weight averaging of checkpoints (model soup)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from turborank.checkpoint import load_model, save_checkpoint
from turborank.distill.finish import declare_long_documents
from turborank.distill.soup import average_checkpoints, main
from turborank.distill.students import build_student, student_config
from turborank.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SIZE = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}


def _student(tmp_path: Path, name: str, seed: int, **size: int) -> Path:
    model, tokenizer_dir = build_student(
        {**SIZE, **size}, "random", seed=seed, tokenizer_dir=FIXTURES / "small"
    )
    return save_checkpoint(model, tokenizer_dir, tmp_path / name)


def test_every_tensor_is_the_weighted_mean(tmp_path):
    a, b = _student(tmp_path, "a", 1), _student(tmp_path, "b", 2)
    out = average_checkpoints([(a, 0.75), (b, 0.25)], tmp_path / "soup")
    soup, ma, mb = load_model(out), load_model(a), load_model(b)
    for key, tensor in soup.state_dict().items():
        expected = (0.75 * ma.state_dict()[key] + 0.25 * mb.state_dict()[key]).to(torch.bfloat16).float()
        assert torch.equal(tensor, expected), key
    assert not torch.equal(soup.classifier.weight, ma.classifier.weight)
    assert (out / "tokenizer.json").read_bytes() == (a / "tokenizer.json").read_bytes()


def test_the_soup_is_read_as_its_first_checkpoint_until_finished(tmp_path):
    a, b = _student(tmp_path, "a", 1), _student(tmp_path, "b", 2)
    declare_long_documents(a, "chunk", 48)
    declare_long_documents(b, "truncate")
    out = average_checkpoints([(a, 0.5), (b, 0.5)], tmp_path / "soup")
    assert json.loads((out / "config.json").read_text())["turborank"] == {
        "long_documents": "chunk",
        "window_length": 48,
    }


def test_a_soup_of_one_checkpoint_is_that_checkpoint(tmp_path):
    a = _student(tmp_path, "a", 1)
    soup = load_model(average_checkpoints([(a, 0.5), (a, 0.5)], tmp_path / "soup"))
    assert all(
        torch.equal(x, y)
        for x, y in zip(soup.state_dict().values(), load_model(a).state_dict().values(), strict=True)
    )


def test_weights_must_interpolate(tmp_path):
    a, b = _student(tmp_path, "a", 1), _student(tmp_path, "b", 2)
    with pytest.raises(InputError, match="sum to 1"):
        average_checkpoints([(a, 0.7), (b, 0.7)], tmp_path / "soup")
    with pytest.raises(InputError, match="positive"):
        average_checkpoints([(a, 1.5), (b, -0.5)], tmp_path / "soup")
    with pytest.raises(InputError, match="at least two"):
        average_checkpoints([(a, 1.0)], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()


def test_different_architectures_are_refused(tmp_path):
    a = _student(tmp_path, "a", 1)
    wider = _student(tmp_path, "wide", 2, intermediate_size=128)
    with pytest.raises(InputError, match="differ in shape"):
        average_checkpoints([(a, 0.5), (wider, 0.5)], tmp_path / "soup")
    config = student_config(SIZE, position="absolute")
    model, tokenizer_dir = build_student(config, "random", seed=3, tokenizer_dir=FIXTURES / "small")
    absolute = save_checkpoint(model, tokenizer_dir, tmp_path / "absolute")
    with pytest.raises(InputError, match="positions"):
        average_checkpoints([(a, 0.5), (absolute, 0.5)], tmp_path / "soup")


def test_different_vocabularies_are_refused(tmp_path):
    a, b = _student(tmp_path, "a", 1), _student(tmp_path, "b", 2)
    tokenizer = json.loads((b / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = sorted(vocab, key=vocab.get)[1000:1002]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (b / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(InputError, match="different vocabularies"):
        average_checkpoints([(a, 0.5), (b, 0.5)], tmp_path / "soup")


def test_command_line(tmp_path, capsys):
    a, b = _student(tmp_path, "a", 1), _student(tmp_path, "b", 2)
    main(["--out", str(tmp_path / "soup"), f"{a}:0.6", f"{b}:0.4"])
    assert capsys.readouterr().out.strip() == str(tmp_path / "soup")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "soup2"), f"{a}", f"{b}:0.4"])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "soup2"), f"{a}:0.5", f"{b}:0.2"])


def test_an_ingredient_is_never_overwritten(tmp_path):
    a, b = _student(tmp_path, "a", 1), _student(tmp_path, "b", 2)
    declare_long_documents(a, "chunk", 48)
    before = {f.name: f.read_bytes() for f in a.iterdir()}
    for out in (a, tmp_path / "b" / ".." / "a", b):
        with pytest.raises(InputError, match="is one of the ingredients"):
            average_checkpoints([(a, 0.5), (b, 0.5)], out)
    assert {f.name: f.read_bytes() for f in a.iterdir()} == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        average_checkpoints([(a, 0.5), (b, 0.5)], tmp_path / "file")


def test_command_line_errors_are_one_line(tmp_path, capsys):
    a = _student(tmp_path, "a", 1)
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "soup"), f"{a}:0.5", f"{tmp_path / 'missing'}:0.5"])
    assert exit_info.value.code == 2
    assert "missing" in capsys.readouterr().err
