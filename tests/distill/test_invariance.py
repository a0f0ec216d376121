"""Invariance fine-tuning: each passage clean and inside unrelated text, both aimed at the clean logit."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from turborank.checkpoint import load_model
from turborank.distill.data import Group, content_stems, read_groups, write_groups
from turborank.distill.finish import declare_long_documents
from turborank.distill.invariance import (
    SURROUNDED,
    InvarianceConfig,
    base_groups,
    main,
    noise_texts,
    paired_groups,
    parse_config,
    read_train_text,
    run,
)
from turborank.distill.recipe import SHARED_DATA, WIKIQA_TRAIN, RecipeConfig, split_labelled

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "small"
NOISE = [
    "The river floods every spring. Farmers plant rice on the banks.",
    "Each question has a number. Forms list them in order.",  # shares words with the queries: never used
    "A violin has four strings. Its bow is strung with horsehair.",
    "Glaciers carve valleys over thousands of years.",
]


def _groups() -> tuple[list[Group], dict[tuple[str, str], float]]:
    groups, reference = [], {}
    for q in range(3):
        query = f"question number {q}"
        texts = [f"passage {q}-{d} about topic {d}." for d in range(4)]
        groups.append(Group(f"q{q}", query, [f"q{q}-{d}" for d in range(4)], texts, [None] * 4))
        reference |= {(query, t): float(q - d) for d, t in enumerate(texts)}
    return groups, reference


def test_each_passage_comes_clean_then_surrounded_both_aimed_at_its_clean_logit() -> None:
    groups, reference = _groups()
    config = InvarianceConfig(copies=2, max_words=40)
    paired = paired_groups(groups, reference, NOISE, config)
    assert len(paired) == 6 and sorted({g.qid for g in paired}) == sorted(
        f"q{q}#c{c}" for q in range(3) for c in range(2)
    )
    for group in paired:
        original = next(g for g in groups if group.qid.startswith(f"{g.qid}#"))
        assert group.doc_ids[::2] == original.doc_ids
        assert group.doc_ids[1::2] == [d + SURROUNDED for d in original.doc_ids]
        assert group.doc_texts[::2] == original.doc_texts
        for clean, surrounded in zip(group.doc_texts[::2], group.doc_texts[1::2], strict=True):
            assert clean in surrounded and len(surrounded) > len(clean)
            assert not content_stems(surrounded.replace(clean, "")) & content_stems(group.query)
            # whole noise sentences up to the budget: at most one sentence past it
            longest = max(len(s.split()) for s in " ".join(NOISE).split(". "))
            assert len(surrounded.split()) <= config.max_words - len(group.query.split()) + longest
        targets = [reference[(group.query, t)] for t in original.doc_texts]
        assert group.teacher == [t for t in targets for _ in range(2)]
        assert group.labels == [None] * 8
        assert group.source == f"invariance:{original.source}"  # told apart from the recipe's own groups
    first, second = (next(g for g in paired if g.qid == f"q0#c{c}") for c in range(2))
    assert first.doc_texts[1::2] != second.doc_texts[1::2]  # each copy gets its own noise
    assert paired == paired_groups(groups, reference, NOISE, config)  # seeded
    assert paired != paired_groups(groups, reference, NOISE, replace(config, seed=1))


def test_a_pair_without_a_reference_logit_is_an_error_not_a_guess() -> None:
    groups, reference = _groups()
    del reference[(groups[0].query, groups[0].doc_texts[0])]
    with pytest.raises(KeyError):
        paired_groups(groups, reference, NOISE, InvarianceConfig())


def test_run_continues_the_start_on_the_built_groups(tmp_path: Path) -> None:
    init, work = tmp_path / "init", tmp_path / "work"
    shutil.copytree(FIXTURE, init)
    declare_long_documents(init, "chunk", 64)
    groups, reference = _groups()
    config = InvarianceConfig(
        init=init, work_dir=work, out_dir=tmp_path / "out", max_steps=2, max_length=64, num_threads=1
    )
    work.mkdir()
    write_groups(paired_groups(groups, reference, NOISE, config), work / "train.jsonl")  # build() reuses it
    out = run(config)
    before, after = load_model(init), load_model(out)
    assert type(after.config) is type(before.config) and after.config == before.config  # same shape
    changed = [k for k, v in after.state_dict().items() if not torch.equal(v, before.state_dict()[k])]
    assert changed  # trained, not copied
    assert json.loads((out / "config.json").read_text())["turborank"]["window_length"] == 64
    assert len(read_groups(work / "train.jsonl")) == 6


def test_flags_set_the_config_fields_of_the_same_name() -> None:
    config = parse_config(["--init", "m", "--work", "w", "--max-steps", "12", "--lr", "1e-5"])
    assert (config.init, config.work_dir, config.max_steps, config.lr) == (Path("m"), Path("w"), 12, 1e-5)
    assert config.num_threads is None and parse_config(["--num-threads", "2"]).num_threads == 2
    assert config.copies == InvarianceConfig.copies  # unset flags keep the dataclass default


def test_the_build_stage_writes_the_groups_and_trains_nothing(tmp_path: Path, capsys) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    groups, reference = _groups()
    work.mkdir()
    write_groups(paired_groups(groups, reference, NOISE, InvarianceConfig()), work / "train.jsonl")
    main(["--init", str(FIXTURE), "--work", str(work), "--out", str(out), "--stage", "build"])
    assert capsys.readouterr().out.strip() == str(work / "train.jsonl")
    assert not out.exists() and not (work / "train").exists()


@pytest.mark.parametrize(
    "flags, reason",
    [
        (["--init", "missing"], "--init missing: not a checkpoint directory"),
        (["--num-threads", "0"], "num_threads must be a positive integer or None, got 0"),
        (["--max-steps", "-1"], "max_steps must be a positive integer"),
        (["--lr", "0"], "lr must be a number > 0"),
        (["--copies", "0"], "copies must be a positive integer"),
        (["--data", "missing-data"], "--data missing-data is not a folder"),
    ],
)
def test_bad_settings_stop_before_any_work_with_one_line(tmp_path: Path, capsys, flags, reason) -> None:
    work = tmp_path / "work"
    with pytest.raises(SystemExit) as exit_info:
        main(["--init", str(FIXTURE), "--work", str(work), *flags])
    assert exit_info.value.code == 2 and reason in capsys.readouterr().err
    assert not work.exists()


def test_the_default_start_is_the_shipped_model_wherever_it_runs_from() -> None:
    assert (InvarianceConfig().init / "config.json").is_file()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_train_splits_only_and_never_a_dev_question() -> None:
    config = InvarianceConfig(n_nfcorpus=30, n_qmsum=10, noise_passages=50)
    dev = split_labelled(RecipeConfig(), random.Random(0))[2]
    dev_queries = {g.query for g in dev}
    text = read_train_text(config)
    groups = base_groups(config, text, dev_queries)
    assert all(len(g.doc_ids) == config.docs_per_query for g in groups)
    assert not {g.query for g in groups} & dev_queries
    sources = {g.source for g in groups}
    assert sources == {
        "wikiqa-answer-selection",
        "scifact-train:sentences",
        "nfcorpus-train:sentences",
        "qmsum-train:qmsum-train-passages",
    }
    assert sum(g.source == "nfcorpus-train:sentences" for g in groups) <= 30
    noise = noise_texts(config, text, dev_queries)
    assert len(noise) > 100
    # One text per non-dev WikiQA question, none of a dev question's own candidate list. Questions on the
    # same Wikipedia article may share sentences or a whole list with a dev question: those stay in, as
    # unlabeled text under another question, as in the recipe's training groups.
    rows = [json.loads(line) for line in (SHARED_DATA / WIKIQA_TRAIN).read_text().splitlines()]
    kept = [" ".join(row["candidates"]) for row in rows if row["query"] not in dev_queries]
    assert noise[: len(kept)] == kept and len(noise) == len(kept) + 2 * config.noise_passages
    dev_only = {" ".join(r["candidates"]) for r in rows if r["query"] in dev_queries} - set(kept)
    assert len(dev_only) > 100 and not dev_only & set(noise)
