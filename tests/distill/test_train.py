"""The training loop on a tiny model and tiny data: it learns, saves a loadable checkpoint, resumes."""

from __future__ import annotations

import importlib
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from turborank import Reranker
from turborank.checkpoint import load_model, read_weights
from turborank.distill.card import model_card, summarize_run, write_card
from turborank.distill.data import Group, teacher_labelled
from turborank.distill.losses import listwise_kl
from turborank.distill.students import build_student
from turborank.distill.train import (
    LOG_FILE,
    STATE_FILE,
    TrainConfig,
    batch_schedule,
    dev_ndcg,
    encode_group_pairs,
    encode_train_groups,
    group_ndcg,
    learning_rate,
    train,
)
from turborank.engine import collate
from turborank.errors import InputError
from turborank.tokenization import PairTokenizer

# The package exports the function ``train``; the module is needed to patch it.
train_module = importlib.import_module("turborank.distill.train")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SMALL = FIXTURES / "small"
WORDS = [
    "apple",
    "banana",
    "cherry",
    "delta",
    "echo",
    "falcon",
    "garden",
    "harbor",
    "island",
    "jungle",
    "kettle",
    "lemon",
    "meadow",
]


def make_groups(count: int, seed: int = 0) -> list[Group]:
    """The positive repeats the query's words; the teacher prefers it and orders the negatives."""
    rng = random.Random(seed)
    groups = []
    for i in range(count):
        query = " ".join(rng.sample(WORDS, 3))
        docs = [f"{query} {' '.join(rng.sample(WORDS, 4))}"] + [
            " ".join(rng.sample(WORDS, 7)) for _ in range(3)
        ]
        groups.append(
            Group(
                f"q{i}",
                query,
                [f"q{i}d{j}" for j in range(4)],
                docs,
                [1, 0, 0, 0],
                teacher=[4.0, 0.0, -1.0, -2.0],
            )
        )
    return groups


def config(tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(
        out_dir=tmp_path / "out",
        group_size=4,
        batch_groups=4,
        grad_accum=1,
        max_length=32,
        lr=2e-3,
        warmup_ratio=0.0,
        eval_every=100,
        save_every=100,
        log_every=1,
        progress=False,
    )
    values.update(overrides)
    return TrainConfig(**values)


def training_loss(model, groups: list[Group], cfg: TrainConfig) -> float:
    """Listwise KL over all groups with dropout off: a deterministic measure of what was learned."""
    tokenizer = PairTokenizer.from_file(SMALL / "tokenizer.json")
    data = encode_train_groups(groups, tokenizer, cfg)
    batch = collate([p for row in data.pairs for p in row], 0, False)
    model.eval()
    with torch.no_grad():
        logits = model(batch.input_ids, batch.attention_mask, batch.token_type_ids)[:, 0]
    return listwise_kl(logits.view(len(groups), cfg.group_size), data.teacher).item()


def test_learning_rate_warms_up_then_decays():
    cfg = TrainConfig(lr=1.0, warmup_ratio=0.2)  # 10 steps: 2 of warmup, then 8 of decay
    assert [learning_rate(s, 10, cfg) for s in (0, 1)] == [0.5, 1.0]
    assert learning_rate(6, 10, cfg) == pytest.approx(0.5)  # linear: (6 - 2) / 8 of the way down
    cfg.decay = "cosine"
    assert learning_rate(6, 10, cfg) == pytest.approx(0.5)  # cosine is also at half at mid-decay
    assert learning_rate(4, 10, cfg) == pytest.approx(0.5 * (1 + 2**-0.5))


def test_cpu_bf16_forward_passes_see_the_updated_weights(tmp_path):
    """Regression: one autocast context around the loop kept the first step's bf16 weights forever."""
    groups = make_groups(8)
    model = load_model(SMALL)
    stale = []

    def check_classifier(module, inputs, output):
        assert output.dtype == torch.bfloat16  # autocast is on for the forward pass
        with torch.autocast("cpu", enabled=False):
            expected = torch.nn.functional.linear(inputs[0].float(), module.weight, module.bias)
        stale.append(not torch.allclose(output.float(), expected, rtol=0.05, atol=0.05))

    model.classifier.register_forward_hook(check_classifier)
    train(model.train(), SMALL, groups, config(tmp_path, max_steps=6, lr=0.05, cpu_bf16=True))
    assert len(stale) == 6 and not any(stale)
    assert not torch.is_autocast_enabled("cpu")  # nothing left switched on


def test_schedule_is_seeded_and_length_bucketed():
    lengths = torch.tensor([5, 50, 6, 49, 7, 48, 8, 47]).numpy()
    a = batch_schedule(lengths, batch_groups=2, epochs=2, bucket_batches=4, seed=1)
    assert a == batch_schedule(lengths, batch_groups=2, epochs=2, bucket_batches=4, seed=1)
    assert len(a) == 8 and sorted(i for b in a[:4] for i in b) == list(range(8))
    for batch in a:  # sorted inside the bucket: long groups pair with long, short with short
        assert len({lengths[i] > 20 for i in batch}) == 1


def test_training_reduces_loss_and_writes_a_loadable_checkpoint(tmp_path):
    groups = make_groups(16)
    # Dropout off: with it, 12 steps ended at 0.77x of the start loss with batches padded to 16 and
    # under 0.7x unpadded, only because the random masks differ; without it the loss falls to 0.28x.
    cfg = config(tmp_path, max_steps=12, lr=3e-3, dropout=0.0)
    model = load_model(SMALL)
    before = training_loss(model, groups, cfg)
    out = train(model.train(), SMALL, groups, cfg, dev=groups[:8])
    after = training_loss(load_model(out), groups, cfg)  # the best checkpoint, as saved
    assert after < 0.7 * before

    reranker = Reranker.from_pretrained(out, device="cpu")
    scores = reranker.compute_score([(g.query, g.doc_texts[0]) for g in groups[:3]])
    assert len(scores) == 3 and all(0.0 < s < 1.0 for s in scores)

    events = [json.loads(line) for line in (cfg.resolved_run_dir() / LOG_FILE).read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and "eval" in kinds
    assert all(e["pairs_per_s"] > 0 for e in events if e["event"] == "train")
    assert not (out / STATE_FILE).exists()  # training state stays out of the shippable directory

    run = summarize_run(cfg.resolved_run_dir())
    assert (run.steps, run.groups, run.best_dev) == (
        12,
        16,
        max(e["NDCG@10"] for e in events if "NDCG@10" in e),
    )
    scores = {
        "BM25": {"toy": {"NDCG@10": 0.5}},
        "student": {"toy": {"NDCG@10": 0.75}, "other": {"NDCG@10": 0.25}},
    }
    card = model_card("toy-reranker", run, "hybrid:test", ["16 toy groups"], "random", scores, notes=["toy"])
    write_card(out, card)
    text = (out / "README.md").read_text()
    assert "# toy-reranker" in text and "`hybrid:test`" in text and "- 16 toy groups" in text
    assert "| toy | 0.500 | 0.750 |" in text and "| other | - | 0.250 |" in text
    assert "| loss | listwise_kl |" in text


def test_saved_checkpoint_follows_the_published_layout(tmp_path):
    # A turbo-shaped GeGLU student, shrunk: names and config fields of shared/spec/jinabert.md.
    custom = {"num_hidden_layers": 1, "hidden_size": 48, "num_attention_heads": 4, "intermediate_size": 96}
    model, tokenizer_dir = build_student(custom, "random", tokenizer_dir=SMALL)
    out = train(model, tokenizer_dir, make_groups(4), config(tmp_path, max_steps=1, dropout=0.0))
    assert model.dropout.p == 0.0 and model.bert.encoder.layer[0].attention.self.dropout_p == 0.0
    weights = read_weights(out / "model.safetensors")
    layer = "bert.encoder.layer.0."
    expected = {
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.embeddings.LayerNorm.bias",
        *(f"{layer}attention.self.{m}.{p}" for m in ("query", "key", "value") for p in ("weight", "bias")),
        *(f"{layer}attention.output.{m}.{p}" for m in ("dense", "LayerNorm") for p in ("weight", "bias")),
        f"{layer}mlp.gated_layers.weight",
        f"{layer}mlp.wo.weight",
        f"{layer}mlp.wo.bias",
        f"{layer}mlp.layernorm.weight",
        f"{layer}mlp.layernorm.bias",
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    }
    assert set(weights) == expected
    assert weights[f"{layer}mlp.gated_layers.weight"].shape == (2 * 96, 48)
    assert weights["classifier.weight"].shape == (1, 48)
    assert all(w.dtype == torch.bfloat16 for w in weights.values())
    config_json = json.loads((out / "config.json").read_text())
    for name, value in {
        "model_type": "bert",
        "position_embedding_type": "alibi",
        "feed_forward_type": "geglu",
        "hidden_size": 48,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "intermediate_size": 96,
        "vocab_size": 30522,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "max_position_embeddings": 8192,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,  # training-time dropout=0 is not written into the model's config
        "torch_dtype": "bfloat16",
    }.items():
        assert config_json[name] == value, name
    assert config_json["auto_map"]["AutoModelForSequenceClassification"].endswith(
        "JinaBertForSequenceClassification"
    )
    assert (out / "tokenizer.json").is_file()


def test_classic_feed_forward_uses_bert_names(tmp_path):
    custom = {
        "num_hidden_layers": 1,
        "hidden_size": 48,
        "num_attention_heads": 4,
        "intermediate_size": 96,
        "feed_forward_type": "original",
    }
    model, tokenizer_dir = build_student(custom, "random", tokenizer_dir=SMALL)
    out = train(model, tokenizer_dir, make_groups(4), config(tmp_path, max_steps=1))
    names = set(read_weights(out / "model.safetensors"))
    layer = "bert.encoder.layer.0."
    for name in ("intermediate.dense.weight", "output.dense.weight", "output.LayerNorm.weight"):
        assert layer + name in names
    assert not any(".mlp." in n for n in names)


def test_resume_continues_from_the_saved_step(tmp_path, monkeypatch):
    groups = make_groups(12)
    straight = config(tmp_path / "a", max_steps=6, batch_groups=2)
    train(load_model(SMALL).train(), SMALL, groups, straight)

    # Interrupt the same run when it is about to start step 4 (learning_rate is read first each step).
    interrupted = config(tmp_path / "b", max_steps=6, batch_groups=2)
    real = train_module.learning_rate

    def stop_at_four(step, total, cfg):
        if step == 4:
            raise KeyboardInterrupt
        return real(step, total, cfg)

    monkeypatch.setattr(train_module, "learning_rate", stop_at_four)
    with pytest.raises(KeyboardInterrupt):
        train(load_model(SMALL).train(), SMALL, groups, interrupted)
    monkeypatch.setattr(train_module, "learning_rate", real)
    state = torch.load(interrupted.resolved_run_dir() / STATE_FILE, weights_only=True)
    assert state["step"] == 4

    train(load_model(SMALL).train(), SMALL, groups, interrupted)  # a fresh model: weights come from the state
    events = [
        json.loads(line) for line in (interrupted.resolved_run_dir() / LOG_FILE).read_text().splitlines()
    ]
    assert [e["step"] for e in events if e["event"] == "resume"] == [4]
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2, 3, 4, 5, 6]
    # Same data order, optimizer state and RNG: the resumed run ends exactly where the straight one did.
    a = torch.load(straight.resolved_run_dir() / STATE_FILE, weights_only=True)["model"]
    b = torch.load(interrupted.resolved_run_dir() / STATE_FILE, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_different_data_set(tmp_path):
    cfg = config(tmp_path, max_steps=1)
    train(load_model(SMALL).train(), SMALL, make_groups(8), cfg)
    with pytest.raises(InputError, match="another model or data set"):
        train(load_model(SMALL).train(), SMALL, make_groups(12), cfg)


def test_groups_without_teacher_scores_are_refused(tmp_path):
    groups = make_groups(4)
    groups[2].teacher = None
    with pytest.raises(InputError, match="no teacher scores"):
        train(load_model(SMALL).train(), SMALL, groups, config(tmp_path, max_steps=1))


def test_twin_columns_find_a_document_and_its_twin_in_other_text() -> None:
    from turborank.distill.train import twin_columns

    assert twin_columns(["a", "b#noise", "c", "b#twin"]) == (1, 3)
    assert twin_columns(["a", "b", "c#noise", "b#twin"]) == (1, 3)
    assert twin_columns(["a", "b", "c"]) == (-1, -1)


def test_twin_weight_pulls_a_document_and_its_diluted_twin_together(tmp_path):
    from turborank.distill.data import embed_in_noise

    rng = random.Random(0)
    noise = ["Kettle meadow harbor island. Jungle garden echo falcon delta."]
    groups = [embed_in_noise(g, noise, rng, 30, twin=True) for g in make_groups(16)]

    tokenizer = PairTokenizer.from_file(SMALL / "tokenizer.json")

    def twin_gap(model: torch.nn.Module) -> float:
        data = encode_train_groups(groups, tokenizer, cfg)
        model.eval()
        with torch.no_grad():
            pairs = [p for row in data.pairs for p in row]
            batch = collate(pairs, 0, True)
            logits = model(batch.input_ids, batch.attention_mask, batch.token_type_ids)[:, 0].view(16, 4)
        columns = data.twins
        return (logits.gather(1, columns[:, :1]) - logits.gather(1, columns[:, 1:])).abs().mean().item()

    cfg = config(tmp_path, max_steps=12, lr=3e-3, dropout=0.0)
    plain = twin_gap(load_model(train(load_model(SMALL).train(), SMALL, groups, cfg)))
    cfg = config(tmp_path / "twin", max_steps=12, lr=3e-3, dropout=0.0, twin_weight=5.0)
    assert (encode_train_groups(groups, tokenizer, cfg).twins >= 0).all()  # every group has its twin
    pulled = twin_gap(load_model(train(load_model(SMALL).train(), SMALL, groups, cfg)))
    assert pulled < 0.5 * plain, (pulled, plain)


def test_dev_ndcg_reports_human_and_teacher_labelled_groups_apart() -> None:
    model = load_model(SMALL)
    tokenizer = PairTokenizer.from_file(SMALL / "tokenizer.json")
    human = make_groups(3)
    # The teacher's order reversed, so the two parts disagree about the same documents.
    teacher = [teacher_labelled(replace(g, teacher=[-2.0, -1.0, 0.0, 4.0])) for g in make_groups(4, seed=1)]
    dev = [human[0], teacher[0], *human[1:], *teacher[1:]]  # interleaved: parts are found by source
    pairs = encode_group_pairs(dev, tokenizer, 32, 16, 4)
    measures = dev_ndcg(model, tokenizer, dev, pairs, torch.device("cpu"), False)

    model.eval()
    logits = []
    with torch.no_grad():
        for row in pairs:
            batch = collate(row, 0, False)
            logits.append(model(batch.input_ids, batch.attention_mask, batch.token_type_ids)[:, 0].tolist())
    human_logits = [s for g, row in zip(dev, logits, strict=True) if g in human for s in row]
    teacher_logits = [s for g, row in zip(dev, logits, strict=True) if g in teacher for s in row]
    assert set(measures) == {"NDCG@10", "NDCG@10:human", "NDCG@10:teacher"}
    assert measures["NDCG@10:human"] == pytest.approx(group_ndcg(human, human_logits, 4), abs=1e-5)
    assert measures["NDCG@10:teacher"] == pytest.approx(group_ndcg(teacher, teacher_logits, 4), abs=1e-5)
    assert measures["NDCG@10"] == pytest.approx(
        (3 * measures["NDCG@10:human"] + 4 * measures["NDCG@10:teacher"]) / 7, abs=1e-5
    )
    assert set(dev_ndcg(model, tokenizer, human, pairs[:1] + pairs[2:4], torch.device("cpu"), False)) == {
        "NDCG@10"
    }


@pytest.mark.parametrize(
    "setting, reason",
    [
        ({"batch_groups": 0}, "batch_groups must be a positive integer, got 0"),  # was ZeroDivisionError
        ({"group_size": 1}, "group_size must be an integer >= 2, got 1"),  # was max() of an empty sequence
        ({"lr": "abc"}, "lr must be a number > 0, got 'abc'"),
        ({"max_steps": True}, "max_steps must be a positive integer or None, got True"),
        ({"num_threads": 0}, "num_threads must be a positive integer or None, got 0"),
        ({"warmup_ratio": 1.0}, "warmup_ratio must be in [0, 1), got 1.0"),
        ({"dropout": float("nan")}, "dropout must be in [0, 1) or None, got nan"),
        ({"decay": "step"}, "decay must be one of linear, cosine, constant"),
        ({"loss": "hinge"}, "unknown distillation loss 'hinge'"),
    ],
)
def test_bad_settings_are_refused_before_training(setting, reason) -> None:
    with pytest.raises(InputError) as error:
        TrainConfig(**setting).validate()
    assert reason in str(error.value)
    TrainConfig().validate()  # the defaults pass
