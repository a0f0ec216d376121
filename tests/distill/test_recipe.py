"""Default-model recipe pieces that run without the shared data."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from turborank.checkpoint import load_model
from turborank.distill.command import field_help
from turborank.distill.data import Group, write_groups
from turborank.distill.recipe import (
    RECIPE_FLAGS,
    RecipeConfig,
    TeacherScorer,
    build_parser,
    choose_teacher,
    config_from,
    cross_encoder_member,
    dev_subset,
    evaluate_teacher,
    extra_groups,
    fit_head,
    held_out_groups,
    nfcorpus_train_queries,
    pool_questions,
    qmsum_groups,
    split_labelled,
    spread,
)
from turborank.distill.recipe import main as recipe_main
from turborank.distill.teachers import HybridTeacher
from turborank.errors import InputError
from turborank.eval.scoring import Scores

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "small"
QMSUM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "longdoc-qmsum"
WORDS = ["cat", "dog", "bird", "fish", "tree", "house", "car", "road", "river", "city"]


def test_linear_probe_fits_the_head_to_teacher_scores() -> None:
    model = load_model(FIXTURE)
    torch.manual_seed(0)
    model.classifier.weight.data.normal_(0.0, 0.02)  # a fresh head, as a student starts
    groups = []
    for i in range(40):
        docs = [" ".join(WORDS[(i + j + k) % len(WORDS)] for k in range(3 + j)) for j in range(4)]
        groups.append(Group(f"q{i}", WORDS[i % len(WORDS)], [f"d{j}" for j in range(4)], docs, [None] * 4))
    with torch.no_grad():  # teacher = a hidden linear function of the pooled features: fully learnable
        target = torch.randn(model.config.hidden_size)
        for group in groups:
            probe = model.classifier.weight.clone()
            model.classifier.weight.copy_(target[None])
            group.teacher = _logits(model, group)
            model.classifier.weight.copy_(probe)
    r2 = fit_head(model, FIXTURE, groups, max_length=32, ridge=1e-6)
    assert r2 > 0.99
    scores = _logits(model, groups[0])
    expected = [t - sum(groups[0].teacher) / 4 for t in groups[0].teacher]
    assert [s - sum(scores) / 4 for s in scores] == pytest.approx(expected, abs=1e-3)
    assert model.classifier.bias.item() == 0.0


def _logits(model, group: Group) -> list[float]:
    from turborank.engine import collate
    from turborank.tokenization import PairTokenizer

    tokenizer = PairTokenizer.from_file(FIXTURE / "tokenizer.json")
    pairs = tokenizer.encode_pairs([(group.query, d) for d in group.doc_texts], 32, 16)
    batch = collate(pairs, 0, not model.config.uses_alibi)
    model.eval()
    with torch.no_grad():
        return model(batch.input_ids, batch.attention_mask, batch.token_type_ids)[:, 0].tolist()


def test_dev_subset_mixes_sources() -> None:
    dev = [Group(f"s{i}", "q", ["a"], ["t"], [1], source="beir-scifact:train") for i in range(10)]
    dev += [Group(f"w{i}", "q", ["a"], ["t"], [1], source="wikiqa-answer-selection") for i in range(10)]
    picked = dev_subset(dev, 9)
    assert [g.qid for g in picked] == ["s0", "s1", "s2", "w0", "w1", "w2", "w3", "w4", "w5"]


def test_teacher_scorer_wraps_a_teacher_for_the_eval_harness() -> None:
    class Fixed:
        identity = "fixed:v1"

        def score(self, query: str, documents: list[str]) -> list[float]:
            return [float(len(d)) for d in documents]

    scorer = TeacherScorer(Fixed())
    assert scorer.identity == "fixed:v1" and scorer.concurrency == 1
    assert scorer.score("q", ("ab", "c")) == Scores([2.0, 1.0], 2)


def test_nfcorpus_training_queries_come_from_train_and_dev_only(tmp_path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "train.titles.queries").write_text("PLAIN-1\tstatins and cancer\nPLAIN-2\t\n")
    (raw / "dev.titles.queries").write_text("PLAIN-3\tdaniel fast\n")
    (raw / "test.titles.queries").write_text("PLAIN-4\tevaluation only\n")
    assert nfcorpus_train_queries(tmp_path) == {
        "nfcorpus-train-PLAIN-1": "statins and cancer",
        "nfcorpus-dev-PLAIN-3": "daniel fast",
    }


def test_dev_subset_adds_the_noise_copies_of_the_groups_it_picks() -> None:
    dev = [Group(f"s{i}", "q", ["a"], ["t"], [1], source="beir-scifact:train") for i in range(4)]
    dev += [Group(f"w{i}", "q", ["a"], ["t"], [1], source="wikiqa-answer-selection") for i in range(4)]
    dev += [Group(f"{g.qid}#noise", "q", ["a"], ["x t"], [1], source=g.source + "+noise") for g in dev]
    picked = [g.qid for g in dev_subset(dev, 3)]
    assert picked == ["s0", "w0", "w1", "s0#noise", "w0#noise", "w1#noise"]


def test_with_noise_replaces_the_asked_share_and_keeps_scores() -> None:
    from turborank.distill.recipe import with_noise

    groups = [Group(f"g{i}", "q", ["a", "b"], ["answer.", "other."], [1, 0], [2.0, -1.0]) for i in range(400)]
    noisy = with_noise(groups, 0.5, 40, ["Unrelated words here. More filler text."], seed=0)
    replaced = [g for g in noisy if g.qid.endswith("#noise")]
    assert 150 < len(replaced) < 250
    assert all(g.teacher == [2.0, -1.0] and g.labels == [1, 0] for g in replaced)
    assert noisy == with_noise(groups, 0.5, 40, ["Unrelated words here. More filler text."], seed=0)
    twins = with_noise(groups, 0.5, 40, ["Unrelated words here."], seed=0, twin=True)
    assert {g.doc_ids[-1] for g in twins if g.qid.endswith("#noise")} == {"a#twin"}


def test_teacher_eval_rebuilds_the_recorded_teacher_window_included(tmp_path) -> None:
    tiny = tmp_path / "data" / "tiny"
    (tiny / "qrels").mkdir(parents=True)
    texts = {"d1": "Canberra is the capital of Australia.", "d2": "Bananas are yellow."}
    lines = [json.dumps({"_id": doc_id, "title": "", "text": text}) for doc_id, text in texts.items()]
    (tiny / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    (tiny / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "capital of Australia"}) + "\n")
    (tiny / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    work = tmp_path / "work"
    work.mkdir()
    teacher = HybridTeacher(0.0, RecipeConfig.cosine_scale, window_words=48)
    recorded = {"identity": teacher.identity, "bm25_weight": 0.0, "window_words": 48}
    (work / "teacher.json").write_text(json.dumps(recorded))
    config = RecipeConfig(data_dir=tmp_path / "data", work_dir=work)
    earlier = [{"dataset": "other", "system": "hybrid-teacher"}, {"dataset": "tiny", "system": "stale"}]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "teacher-results.json").write_text(json.dumps(earlier))
    records = evaluate_teacher(config, ["tiny"], tmp_path / "out", k=2)
    assert records[0] == earlier[0]  # another run's dataset is kept, this dataset's stale record replaced
    reranked = [r for r in records if r.get("stage") == "reranked"]
    assert [r["system"] for r in reranked] == ["hybrid-teacher"]
    assert reranked[0]["measures"]["NDCG@10"] == 1.0
    assert json.loads((tmp_path / "out" / "teacher-results.json").read_text()) == records

    member = cross_encoder_member(str(FIXTURE), 64)
    teacher = HybridTeacher(0.0, RecipeConfig.cosine_scale, window_words=48, cross_encoder=member)
    teacher.cross_encoder_weight = 0.5
    recorded |= {"cross_encoder": str(FIXTURE), "cross_encoder_weight": 0.5, "cross_encoder_length": 64}
    (work / "teacher.json").write_text(json.dumps({**recorded, "identity": teacher.identity}))
    records = evaluate_teacher(config, ["tiny"], tmp_path / "out-member", k=2)
    assert [r["system"] for r in records if r["stage"] == "reranked"] == ["hybrid-teacher"]

    (work / "teacher.json").write_text(json.dumps({"identity": teacher.identity}))
    with pytest.raises(RuntimeError, match="rerun --stage data"):
        evaluate_teacher(config, ["tiny"], tmp_path / "out2")


def test_choose_teacher_sweeps_the_cross_encoder_member_weight_on_the_dev_set(tmp_path: Path) -> None:
    dev = [
        Group("q1", "capital of France", ["a", "b"], ["Paris is the capital of France.", "Bananas."], [1, 0]),
        Group("q2", "yellow fruit", ["c", "d"], ["Oslo is in Norway.", "Bananas are yellow."], [0, 1]),
    ]
    config = RecipeConfig(
        window_words=(None,),
        bm25_weights=(0.0,),
        cross_encoder=str(FIXTURE),
        cross_encoder_weights=(0.0, 1.0),
    )
    teacher, results = choose_teacher(config, dev, tmp_path)
    assert set(results) == {"window=None,bm25=0,ce=0", "window=None,bm25=0,ce=1"}
    best = max(results.values())
    assert results[f"window=None,bm25=0,ce={teacher.cross_encoder_weight:g}"] == best
    assert ("+ce*1" in teacher.identity) == (teacher.cross_encoder_weight == 1.0)
    (kept,) = tmp_path.glob("member-*.sqlite")  # the next run's teacher choice reads the member's logits back
    assert len(teacher.member_logits.get_many([(g.query, d) for g in dev for d in g.doc_texts])) == 4
    without, plain = choose_teacher(replace(config, cross_encoder=None), dev, tmp_path)
    assert set(plain) == {"window=None,bm25=0"} and without.cross_encoder is None


def test_recipe_card_claims_a_held_out_set_only_without_earlier_models(tmp_path, monkeypatch) -> None:
    from turborank.distill import card
    from turborank.distill.recipe import HELD_OUT, write_recipe_card

    seen = {}
    monkeypatch.setattr(card, "summarize_run", lambda run_dir: None)
    monkeypatch.setattr(card, "model_card", lambda *args, **kwargs: seen.update(args=args) or "card")
    monkeypatch.setattr(card, "write_card", lambda out, text: out / "README.md")
    groups = [Group("q", "query", ["a", "b"], ["x", "y"], [1, 0], [1.0, 0.0], "src")]

    write_recipe_card(RecipeConfig(), groups, {"identity": "t"}, tmp_path)
    _, _, _, data, init = seen["args"]
    assert f"held out of everything (not even read as text): {HELD_OUT}" in data
    assert init.startswith("minilm")

    config = RecipeConfig(init="teacher:old-model")
    write_recipe_card(config, groups, {"identity": "t", "cross_encoder": "member"}, tmp_path)
    _, _, _, data, init = seen["args"]
    assert not any("held out of everything" in line for line in data)
    assert any("member, old-model" in line and HELD_OUT in line for line in data)
    assert init == "old-model (weights and head continued)"


def test_spread_puts_every_extra_group_inside_the_prefix_in_an_even_share() -> None:
    groups = [Group(f"g{i}", "q", ["a"], ["t"], [None]) for i in range(100)]
    extra = [Group(f"x{i}", "q", ["a"], ["t"], [None]) for i in range(10)]
    out = spread(groups, extra, span=50)
    assert len(out) == 110 and [g.qid for g in out if g.qid.startswith("g")] == [g.qid for g in groups]
    positions = [i for i, g in enumerate(out) if g.qid.startswith("x")]
    assert positions[-1] < 50 and max(b - a for a, b in itertools.pairwise(positions)) <= 6
    assert sum(g.qid.startswith("x") for g in out[:25]) == 5  # the same share in any early part


def test_data_key_names_only_the_settings_that_change_the_group_file() -> None:
    from turborank.distill.recipe import data_key

    config = RecipeConfig(n_train=3600)
    assert data_key(config) == data_key(replace(config, qmsum_passage_words=50))  # unused: no effect
    assert data_key(config) == data_key(replace(config, n_train=7200))  # a prefix of the same file
    assert data_key(config) != data_key(replace(config, seed=1))
    with_qmsum = replace(config, n_qmsum=10)
    assert data_key(with_qmsum) != data_key(config)
    assert data_key(with_qmsum) != data_key(replace(with_qmsum, qmsum_passage_words=50))
    assert data_key(with_qmsum) != data_key(replace(with_qmsum, n_train=7200))  # spread over n_train


@pytest.mark.skipif(not QMSUM.is_dir(), reason="needs ../shared/data/longdoc-qmsum")
def test_qmsum_groups_read_train_queries_against_train_meetings_only() -> None:
    from turborank.eval.data import load_beir

    groups = qmsum_groups(QMSUM, 60, 8, seed=0, passage_words=100)
    assert len(groups) == 60 and all(len(g.doc_ids) == 8 and g.labels == [None] * 8 for g in groups)
    train = {**load_beir(QMSUM, "train").qrels, **load_beir(QMSUM, "train-summary").qrels}
    meetings = {m for judged in train.values() for m in judged}
    assert all(g.qid in train for g in groups)
    assert {d.split("#p")[0] for g in groups for d in g.doc_ids} <= meetings
    evaluation = {**load_beir(QMSUM, "test").qrels, **load_beir(QMSUM, "test-summary").qrels}
    assert not meetings & {m for judged in evaluation.values() for m in judged}
    assert {g.qid[-1] for g in groups} == {"q", "a"}  # questions and summaries both
    assert groups == qmsum_groups(QMSUM, 60, 8, seed=0, passage_words=100)


def test_set_reads_json_else_a_string_and_refuses_unknown_fields(capsys) -> None:
    argv = [
        "--set",
        "loss=margin_mse",
        "--set",
        "lr=3e-5",
        "--set",
        "bf16=false",
        "--set",
        "loss=listwise_kl",
    ]
    assert config_from(build_parser().parse_args(argv)).train == {
        "loss": "listwise_kl",
        "lr": 3e-5,
        "bf16": False,
    }
    for item, reason in [
        ("lr_=1", "'lr_' is not a settable TrainConfig field"),
        ("lr", "is not FIELD=VALUE"),
    ]:
        with pytest.raises(SystemExit):  # a typo used to be set on TrainConfig and silently ignored
            build_parser().parse_args(["--set", item])
        assert reason in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the recipe owns where checkpoints go
        build_parser().parse_args(["--set", "out_dir=elsewhere"])


def test_recipe_flags_are_config_fields_with_help():
    argv = ["--work", "w", "--n-train", "12", "--position", "alibi", "--glued-fraction", "0.25"]
    config = config_from(build_parser().parse_args([*argv, "--cross-encoder", "m", "--set", "lr=4e-5"]))
    assert (config.n_train, config.position, config.glued_fraction) == (12, "alibi", 0.25)
    assert (config.cross_encoder, config.train, config.work_dir) == ("m", {"lr": 4e-5}, Path("w"))
    assert config.max_steps == RecipeConfig.max_steps  # unset flags keep the dataclass default
    helps = field_help(RecipeConfig)
    assert all(helps[name] for name in RECIPE_FLAGS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--position", "rotary"])


def test_optional_recipe_flags_take_none(capsys):
    """An Optional field's None (all groups, an epoch, no cross-encoder) can be set from the command line."""
    config = config_from(build_parser().parse_args(["--n-train", "none", "--max-steps", "None"]))
    assert (config.n_train, config.max_steps) == (None, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--n-train", "many"])
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_teacher_dev_groups_are_the_ones_right_after_the_trained_prefix() -> None:
    groups = [Group(f"g{i}", "q", ["a"], ["t"], [None]) for i in range(10)]
    config = RecipeConfig(n_train=6, teacher_dev_groups=3)
    assert [g.qid for g in held_out_groups(config, groups)] == ["g6", "g7", "g8"]
    assert held_out_groups(replace(config, teacher_dev_groups=0), groups) == []
    with pytest.raises(ValueError, match="only 4 follow"):
        held_out_groups(replace(config, teacher_dev_groups=5), groups)
    with pytest.raises(ValueError, match="needs n_train"):
        held_out_groups(replace(config, n_train=None), groups)


def test_pool_questions_come_after_the_trained_and_the_held_out_groups() -> None:
    sources = [
        "wikiqa-questions:msmarco-pools" if i % 3 == 0 else "keywords:msmarco-pools" for i in range(30)
    ]
    groups = [Group(f"g{i}", "q", ["a"], ["t"], [None], source=source) for i, source in enumerate(sources)]
    config = RecipeConfig(n_train=6, teacher_dev_groups=3, n_pool_questions=4)
    assert [g.qid for g in pool_questions(config, groups)] == ["g9", "g12", "g15", "g18"]
    assert pool_questions(replace(config, n_pool_questions=0), groups) == []
    with pytest.raises(ValueError, match="7 left"):
        pool_questions(replace(config, n_pool_questions=8), groups)


@pytest.mark.skipif(not QMSUM.parent.is_dir(), reason="needs ../shared/data")
def test_split_labelled_holds_the_dev_questions_out_of_the_labelled_train_groups() -> None:
    import random

    config = RecipeConfig()
    scifact, wikiqa, dev = split_labelled(config, random.Random(0))
    assert len(dev) == config.dev_scifact + config.dev_wikiqa
    assert not {g.qid for g in dev} & {g.qid for g in scifact + wikiqa}
    assert all(len(g.doc_ids) <= 1 + config.k_negatives for g in scifact + wikiqa)  # cut to a group
    again = split_labelled(config, random.Random(0))[2]
    assert [g.qid for g in again] == [g.qid for g in dev]  # the recipe's dev split, whoever asks
    assert [g.qid for g in split_labelled(config, random.Random(1))[2]] != [g.qid for g in dev]


def test_extra_training_groups_must_carry_targets_and_the_recipe_group_size(tmp_path: Path) -> None:
    def group(qid: str, n: int, teacher: list[float] | None) -> Group:
        return Group(qid, "q", [f"d{i}" for i in range(n)], [f"t{i}" for i in range(n)], [None] * n, teacher)

    path = tmp_path / "extra.jsonl"
    write_groups([group("a", 4, [1.0, 0.0, 1.0, 0.0]), group("b", 4, [0.5] * 4)], path)
    assert [g.qid for g in extra_groups(path, 4)] == ["a", "b"]
    assert config_from(build_parser().parse_args(["--extra-train", str(path)])).extra_train == str(path)
    with pytest.raises(InputError, match="must hold 8 documents, as the recipe's do; found 4"):
        extra_groups(path, 8)
    write_groups([group("a", 4, [1.0] * 4), group("c", 4, None)], path)
    with pytest.raises(InputError, match="1 extra training groups carry no targets \\(first: 'c'\\)"):
        extra_groups(path, 4)


@pytest.mark.parametrize(
    "flags, reason",
    [
        (["--init", "foo"], "--init is minilm or teacher:<checkpoint directory>, got 'foo'"),
        (["--init", "teacher:missing"], "--init teacher:missing: not a checkpoint directory"),
        (["--cross-encoder", "missing"], "--cross-encoder missing: not a checkpoint directory"),
        (["--max-steps", "-5"], "max_steps must be a positive integer or None, got -5"),
        (["--noise-fraction", "2"], "noise_fraction must be a share in [0, 1], got 2.0"),
        (["--set", "lr=abc"], "lr must be a number > 0, got 'abc'"),
        (["--set", "batch_groups=0"], "batch_groups must be a positive integer, got 0"),
        (["--data", "missing-data"], "--data missing-data is not a folder"),
        (["--stage", "finish", "--out", "missing-out"], "--out missing-out: not a checkpoint directory"),
        (["--stage", "teacher-eval"], "no teacher chosen in --work"),
    ],
)
def test_bad_settings_stop_before_any_work_with_one_line(tmp_path: Path, capsys, flags, reason) -> None:
    # Each of these used to fail only after minutes of group building, or with a traceback.
    work = tmp_path / "work"
    data = ["--data", str(tmp_path)] if "--data" not in flags else []
    with pytest.raises(SystemExit) as exit_info:
        recipe_main(["--work", str(work), *data, *flags])
    assert exit_info.value.code == 2 and reason in capsys.readouterr().err
    assert not work.exists()
