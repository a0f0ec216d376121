"""``turborank distill`` end to end on toy data: score-file teacher, cache, student, checkpoint, card."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from turborank import Reranker
from turborank.cli import build_parser, main
from turborank.distill import invariance, recipe, soup
from turborank.distill.command import OWN_FLAGS, add_dataclass_arguments, field_help
from turborank.distill.data import Group, write_groups
from turborank.distill.train import LOG_FILE, TrainConfig

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "small"


def make_groups(count: int) -> list[Group]:
    """Toy groups: the positive shares the query's words; teacher scores 4, 0, -1, -2."""
    words = ["river", "stone", "cloud", "maple", "piano", "harbor", "lantern", "meadow"]
    groups = []
    for i in range(count):
        query = f"{words[i % 8]} {words[(i + 3) % 8]}"
        docs = [f"{query} {words[(i + 1) % 8]}"] + [
            f"{words[(i + j) % 8]} {words[(i + 5) % 8]}" for j in (2, 4, 6)
        ]
        ids = [f"q{i}d{j}" for j in range(4)]
        groups.append(Group(f"q{i}", query, ids, docs, [1, 0, 0, 0], [4.0, 0.0, -1.0, -2.0]))
    return groups


def test_every_train_config_field_has_a_flag_with_help():
    helps = field_help(TrainConfig)
    args = build_parser().parse_args(["distill", "--out", "x", "--batch-groups", "3", "--no-bf16"])
    for f in dataclasses.fields(TrainConfig):
        assert helps[f.name], f.name
        if f.name not in OWN_FLAGS:
            assert hasattr(args, f.name), f.name
    assert (args.batch_groups, args.bf16, args.lr) == (3, False, TrainConfig.lr)


@dataclasses.dataclass
class Shares:
    # Share of real questions, in % (argparse formats help with %).
    questions: int = 6


def test_a_field_comment_with_a_percent_sign_renders_as_help():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Shares, ["questions"])
    assert "in % (argparse formats help with %). (default: 6)" in " ".join(parser.format_help().split())


def subcommand_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [p for a in actions for p in a.choices.values()]


@pytest.mark.parametrize(
    "parser",
    [build_parser(), *subcommand_parsers(build_parser()), recipe.build_parser(), invariance.build_parser()],
    ids=lambda p: p.prog,
)
def test_every_command_line_help_renders(parser):
    # --help is the first thing a user runs; the recipe's crashed on a "6 %" in a field comment.
    assert parser.format_help()


def test_soup_help_renders(capsys):
    with pytest.raises(SystemExit) as exit_info:
        soup.main(["--help"])
    assert exit_info.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_distill_command_scores_trains_and_writes_a_card(tmp_path):
    groups = make_groups(8)
    scores = tmp_path / "scores.tsv"
    lines = [f"{g.qid}\t{d}\t{s}\n" for g in groups for d, s in zip(g.doc_ids, g.teacher, strict=True)]
    scores.write_text("".join(lines))
    for g in groups:
        g.teacher = None  # the command must score them through the score-file teacher
    write_groups(groups, tmp_path / "train.jsonl")
    out = tmp_path / "student"
    argv = [
        "distill",
        "--out",
        str(out),
        "--groups",
        str(tmp_path / "train.jsonl"),
        "--dev",
        str(tmp_path / "train.jsonl"),
    ]
    argv += ["--teacher-scores", str(scores), "--student", "minilm", "--init", "random", "--layers", "1"]
    argv += ["--tokenizer", str(SMALL), "--group-size", "4", "--batch-groups", "4", "--grad-accum", "1"]
    argv += ["--max-length", "32", "--max-steps", "2", "--no-progress", "--dropout", "0"]
    assert main(argv) == 0

    run_dir = tmp_path / "student-run"
    assert (run_dir / "teacher.sqlite").is_file()
    start = json.loads((run_dir / LOG_FILE).read_text().splitlines()[0])
    assert start["train_config"]["dropout"] == 0.0 and start["model_config"]["num_hidden_layers"] == 1
    card = (out / "README.md").read_text()
    assert "file:scores.tsv:sha256=" in card and "8 groups from" in card
    reranker = Reranker.from_pretrained(out, device="cpu")
    assert reranker.config.num_hidden_layers == 1
    assert len(reranker.rerank(groups[0].query, groups[0].doc_texts)) == 4
    # A second run finds every score in the cache and the training finished: it only rewrites the card.
    assert main(argv) == 0


def test_recipe_flag_runs_the_default_model_recipe(monkeypatch, tmp_path):
    from turborank.distill import recipe

    calls = []
    monkeypatch.setattr(recipe, "main", calls.append)
    assert main(["distill", "--recipe", "default", "--out", str(tmp_path / "m"), "--seed", "3"]) == 0
    assert calls == [["--out", str(tmp_path / "m"), "--seed", "3"]]


def test_recipe_flag_refuses_flags_it_would_ignore(monkeypatch, tmp_path, capsys):
    from turborank.distill import recipe

    calls = []
    monkeypatch.setattr(recipe, "main", calls.append)
    extra = ["--groups", "g.jsonl", "--teacher-hybrid", "--max-steps", "5"]
    assert main(["distill", "--recipe", "default", "--out", str(tmp_path / "m"), *extra]) == 2
    assert "it would ignore --groups, --teacher-hybrid, --max-steps" in capsys.readouterr().err
    assert calls == []  # nothing started: the recipe runs for hours


def test_pseudo_query_sources_by_method(tmp_path):
    import pytest

    pytest.importorskip("bm25s")
    from turborank.distill.command import collect_groups

    topics = ["volcano lava eruption", "violin string bow", "glacier ice melting", "comet orbit tail"]
    rows = [
        {"_id": f"d{i}", "title": "", "text": f"The {t} story number {i}. More about {t} follows here today."}
        for i, t in enumerate(topics * 3)
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["distill", "--out", "x", "--pseudo-queries", str(corpus), "--num-pseudo", "5"]
    keywords, sources = collect_groups(build_parser().parse_args(base), k_negatives=3)
    assert len(keywords) == 5 and "5 keywords pseudo-queries" in sources[0]
    assert all(g.labels == [None] * 4 and g.qid.startswith("kw-") for g in keywords)
    ict, sources = collect_groups(build_parser().parse_args([*base, "--pseudo-method", "ict"]), 3)
    assert ict and all(g.labels[0] == 1 for g in ict) and "ict pseudo-queries" in sources[0]
