"""``turborank distill``: data builders, a teacher and its score cache, a student and the trainer, glued.

Steps: collect training groups (JSONL files, BEIR training splits, pseudo-queries over unlabeled
corpora); score them with the teacher into an sqlite cache (resumable, keyed by query and document
id, tied to the teacher's identity); build the student; train it (resumable); write the model card.
Every ``TrainConfig`` field is a flag of the same name (``--batch-groups`` sets ``batch_groups``),
with that field's own comment as help, so the CLI and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import re
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from ..errors import InputError
from .students import POSITIONS
from .train import TrainConfig

log = logging.getLogger(__name__)

API_KEY_ENV = "TURBORANK_TEACHER_API_KEY"
# TrainConfig fields that have their own flags (paths) or no place on a command line.
OWN_FLAGS = ("out_dir", "run_dir", "extra")
# The TrainConfig fields that are flags of the same name.
TRAIN_FLAGS = tuple(f.name for f in fields(TrainConfig) if f.name not in OWN_FLAGS)
_FIELD_LINE = re.compile(r"^\s+(?P<name>\w+): [^=]+=.*?(?:#\s*(?P<comment>.*))?$")


def field_help(cls: type) -> dict[str, str]:
    """Each dataclass field's comment: the one on its line, else the comment lines just above it."""
    helps: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
            continue
        match = _FIELD_LINE.match(line)
        if match:
            helps[match["name"]] = match["comment"] or " ".join(pending)
        pending = []
    return helps


def add_dataclass_arguments(
    group: argparse._ArgumentGroup | argparse.ArgumentParser, cls: type, names: typing.Iterable[str]
) -> None:
    """One flag per named field of dataclass ``cls`` (``max_steps`` -> ``--max-steps``), its default and
    its comment as help; a ``Literal`` field gets its values as choices."""
    helps = field_help(cls)
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    for name in names:
        f = by_name[name]
        flag = "--" + name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        # argparse reads help as a %-format string; a comment saying "6 %" must not break --help.
        text = f"{helps.get(name, '')} (default: {default})".replace("%", "%%")
        hint = hints[name]
        if hint is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif typing.get_origin(hint) is typing.Literal:
            group.add_argument(flag, choices=typing.get_args(hint), default=default, help=text)
        else:
            kind = next(t for t in (*typing.get_args(hint), hint) if t in (int, float, str))
            metavar = kind.__name__.upper()
            if type(None) in typing.get_args(hint):  # Optional: "none" sets None (e.g. --n-train none: all)
                kind, metavar = _or_none(kind), f"{metavar}|none"
            group.add_argument(flag, type=kind, default=default, help=text, metavar=metavar)


def field_override(cls: type, settable: typing.Iterable[str]) -> typing.Callable[[str], tuple[str, Any]]:
    """An argparse type for ``FIELD=VALUE`` that sets a ``settable`` field of dataclass ``cls``: VALUE is
    read as JSON (``lr=3e-5``, ``bf16=false``), else as a plain string (``loss=margin_mse``). Any other
    name fails on the command line instead of being set on the config and silently ignored."""
    names = sorted(settable)

    def parse(item: str) -> tuple[str, Any]:
        name, equals, text = item.partition("=")
        if not equals:
            raise argparse.ArgumentTypeError(f"{item!r} is not FIELD=VALUE (e.g. lr=3e-5)")
        if name not in names:
            raise argparse.ArgumentTypeError(
                f"{name!r} is not a settable {cls.__name__} field; choose one of: {', '.join(names)}"
            )
        try:
            return name, json.loads(text)
        except json.JSONDecodeError:
            return name, text

    return parse


def _or_none(kind: type) -> typing.Callable[[str], object]:
    def parse(value: str) -> object:
        return None if value.lower() == "none" else kind(value)

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """All ``turborank distill`` flags."""
    p.add_argument("--out", "-o", type=Path, required=True, help="checkpoint directory to write")
    p.add_argument("--run-dir", type=Path, default=None, help="training state, run log, teacher cache")
    p.add_argument("--recipe", choices=["default"], default=None, help="reproduce the shipped default model")
    data = p.add_argument_group("training data (repeatable; at least one)")
    data.add_argument(
        "--groups", action="append", default=[], metavar="JSONL", help="groups (data.write_groups)"
    )
    data.add_argument("--beir", action="append", default=[], metavar="DIR", help="BEIR-layout dataset folder")
    data.add_argument("--split", default="train", help="qrels split of --beir datasets (default: train)")
    data.add_argument(
        "--run", default=None, metavar="TREC", help="candidates for --beir (default: BM25 top 100)"
    )
    data.add_argument(
        "--pseudo-queries",
        action="append",
        default=[],
        metavar="CORPUS",
        help="corpus.jsonl of unlabeled text to draw LLM-free pseudo-queries from (needs a teacher)",
    )
    data.add_argument(
        "--num-pseudo", type=int, default=1000, help="pseudo-queries per corpus (default: 1000)"
    )
    data.add_argument(
        "--pseudo-method",
        choices=("keywords", "ict", "title"),
        default="keywords",
        help="keywords (default): rare words of a passage's opening, documents left whole; ict: a sentence "
        "taken out of its passage; title: a document's title for its body",
    )
    data.add_argument("--dev", default=None, metavar="JSONL", help="dev groups with labels (best checkpoint)")
    teacher = p.add_argument_group("teacher (one; none when the groups carry teacher scores)")
    which = teacher.add_mutually_exclusive_group()
    which.add_argument("--teacher", metavar="MODEL", help="local checkpoint directory or hub id")
    which.add_argument(
        "--teacher-url", metavar="URL", help="rerank endpoint, e.g. https://api.jina.ai/v1/rerank"
    )
    which.add_argument("--teacher-scores", metavar="FILE", help="precomputed scores: TSV, TREC run or JSONL")
    which.add_argument("--teacher-hybrid", action="store_true", help="offline BM25 + all-MiniLM-L6-v2")
    teacher.add_argument("--api-format", choices=["jina", "cohere", "tei"], default="jina")
    teacher.add_argument("--api-key", default=None, help=f"bearer token (or ${API_KEY_ENV})")
    teacher.add_argument("--teacher-model", default=None, help="'model' field sent to the endpoint")
    teacher.add_argument("--bm25-weight", type=float, default=1.0, help="hybrid teacher's BM25 weight")
    teacher.add_argument(
        "--teacher-max-length", type=int, default=512, help="local teacher's tokens per pair"
    )
    student = p.add_argument_group("student")
    student.add_argument("--student", default="minilm", choices=["turbo", "tiny", "minilm"])
    student.add_argument(
        "--init", default=None, help="random | minilm | teacher (default: minilm for minilm)"
    )
    student.add_argument("--layers", type=int, default=None, help="override the preset's layer count")
    student.add_argument("--position", choices=POSITIONS, default=None, help="override positions")
    student.add_argument("--tokenizer", type=Path, default=None, help="tokenizer directory for a random init")
    add_dataclass_arguments(p.add_argument_group("training (TrainConfig fields)"), TrainConfig, TRAIN_FLAGS)


def run_distill(args: argparse.Namespace) -> int:
    """Run ``turborank distill``; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.recipe:
        from .recipe import main as recipe_main

        ignored = flags_the_recipe_ignores(args)
        if ignored:
            raise InputError(
                "--recipe default takes only --out, --run-dir and --seed; it would ignore "
                f"{', '.join(ignored)}. Run `python -m turborank.distill.recipe --help` for its own settings"
            )
        work = ["--work", str(args.run_dir)] if args.run_dir else []  # default: the recipe's own
        recipe_main(["--out", str(args.out), *work, "--seed", str(args.seed)])
        return 0
    from .card import model_card, summarize_run, write_card
    from .data import read_groups
    from .students import build_student, student_config
    from .train import train

    config = train_config(args)
    groups, sources = collect_groups(args, config.group_size - 1)
    if not groups:
        raise InputError("no training data: pass --groups, --beir or --pseudo-queries (or --recipe default)")
    teacher = make_teacher(args)
    if teacher is not None:
        cache = config.resolved_run_dir() / "teacher.sqlite"
        groups = score_with_cache(groups, teacher, cache, config.progress)
    dev = read_groups(args.dev) if args.dev else None

    preset = student_config(args.student, position=args.position)
    if args.layers:
        preset.num_hidden_layers = args.layers
    init = args.init or ("minilm" if args.student == "minilm" else "random")
    if init == "teacher":
        if not args.teacher:
            raise InputError("--init teacher needs a local --teacher checkpoint to copy layers from")
        init = f"teacher:{args.teacher}"
    model, tokenizer_dir = build_student(preset, init, config.seed, args.tokenizer)
    out = train(model, tokenizer_dir, groups, config, dev)

    identity = teacher.identity if teacher is not None else "scores carried by the training groups"
    card = model_card(
        out.name,
        summarize_run(config.resolved_run_dir()),
        identity,
        sources,
        init,
        notes=["Measure it with `turborank eval --model <this directory>` and add the scores here."],
    )
    write_card(out, card)
    print(f"wrote {out}")
    return 0


# The flags ``--recipe default`` hands on to the recipe; it has its own settings for everything else.
RECIPE_PASSES = ("out", "run_dir", "seed", "recipe")


def flags_the_recipe_ignores(args: argparse.Namespace) -> list[str]:
    """The flags set away from their defaults that ``--recipe default`` would not pass on."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return [
        action.option_strings[0]
        for action in parser._actions
        if action.option_strings
        and action.dest not in RECIPE_PASSES
        and getattr(args, action.dest, action.default) != action.default
    ]


def train_config(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = {name: getattr(args, name) for name in TRAIN_FLAGS}
    config = TrainConfig(out_dir=args.out, run_dir=args.run_dir, **values)
    config.validate()  # before the data and the teacher, which can take long
    return config


def collect_groups(args: argparse.Namespace, k_negatives: int) -> tuple[list, list[str]]:
    """Training groups from every source flag, and one card line per source."""
    from .data import groups_from_beir, groups_from_keyword_queries, groups_from_pseudo_queries, read_groups

    groups, sources = [], []
    for path in args.groups:
        found = read_groups(path)
        groups += found
        sources.append(f"{len(found):,} groups from {path}")
    for directory in args.beir:
        found = groups_from_beir(directory, args.split, args.run, k_negatives, args.seed)
        groups += found
        candidates = args.run or "BM25 top 100"
        sources.append(
            f"{len(found):,} queries of {directory} ({args.split} qrels), negatives from {candidates}"
        )
    for path in args.pseudo_queries:
        from ..eval.data import read_corpus  # the corpus alone: no queries or qrels are read

        corpus = read_corpus(Path(path))
        if args.pseudo_method == "keywords":
            found = groups_from_keyword_queries(corpus, args.num_pseudo, 1 + k_negatives, args.seed)
        else:
            found = groups_from_pseudo_queries(
                corpus, args.num_pseudo, k_negatives, args.seed, method=args.pseudo_method
            )
        groups += found
        sources.append(
            f"{len(found):,} {args.pseudo_method} pseudo-queries over {path} (unlabeled text), BM25 docs"
        )
    return groups, sources


def make_teacher(args: argparse.Namespace):  # -> Teacher | None
    """The teacher the flags name, or None (the groups must then carry scores)."""
    from . import teachers

    if args.teacher:
        return teachers.LocalTeacher(args.teacher, max_length=args.teacher_max_length, device=args.device)
    if args.teacher_url:
        api_key = args.api_key or os.environ.get(API_KEY_ENV)
        return teachers.HttpTeacher(args.teacher_url, args.api_format, api_key, args.teacher_model)
    if args.teacher_scores:
        return teachers.ScoreFileTeacher(args.teacher_scores)
    if args.teacher_hybrid:
        return teachers.HybridTeacher(bm25_weight=args.bm25_weight)
    return None


def score_with_cache(groups: list, teacher: Any, path: Path, progress: bool = True) -> list:
    """Fill every group's teacher scores through the on-disk cache (only missing ones are scored)."""
    from .cache import TeacherCache, score_groups

    path.parent.mkdir(parents=True, exist_ok=True)
    with TeacherCache(path, teacher.identity) as cache:
        return score_groups(groups, teacher, cache, progress)
