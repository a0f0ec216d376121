"""Model cards for distilled checkpoints: what data, which teacher, which recipe, what scores.

``summarize_run`` reads the training run log (``train_log.jsonl``) so the card's recipe and training
numbers are the ones measured, never retyped; ``model_card`` renders markdown with a Hugging Face
front matter; ``write_card`` puts it in the checkpoint directory as README.md.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .train import DEV_MEASURE, LOG_FILE

# Model config fields worth a line in the card, in this order.
ARCHITECTURE_FIELDS = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "feed_forward_type",
    "position_embedding_type",
    "vocab_size",
)
# Train config fields that make up the recipe, in this order.
RECIPE_FIELDS = (
    "loss",
    "temperature",
    "supervised_weight",
    "twin_weight",
    "lr",
    "warmup_ratio",
    "decay",
    "weight_decay",
    "batch_groups",
    "grad_accum",
    "group_size",
    "max_length",
    "max_query_length",
    "max_steps",
    "epochs",
    "dropout",
    "freeze_word_embeddings",
    "grad_clip",
    "seed",
)


@dataclass
class RunSummary:
    """What the run log says about a training run."""

    train_config: dict[str, Any]
    model_config: dict[str, Any]
    parameters: int
    groups: int
    steps: int
    device: str
    threads: int
    pairs_per_s: float | None  # median over logged windows
    final_loss: float | None
    best_dev: float | None
    dev_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, dev NDCG@10)
    wall_s: float | None = None  # of the last session (a resumed run logs one per session)


def summarize_run(run_dir: str | Path) -> RunSummary:
    """Read ``train_log.jsonl`` in ``run_dir`` (see train.RunLog).

    Raises:
        FileNotFoundError: no run log there (the message names the path).
    """
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no run log at {path}: pass the training run directory (TrainConfig.run_dir)"
        )
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    start = next(e for e in events if e["event"] == "start")
    train = [e for e in events if e["event"] == "train"]
    evals = [e for e in events if e["event"] == "eval"]
    ends = [e for e in events if e["event"] == "end"]
    return RunSummary(
        train_config=start["train_config"],
        model_config=start["model_config"],
        parameters=start["parameters"],
        groups=start["groups"],
        steps=train[-1]["step"] if train else 0,
        device=start["device"],
        threads=start["threads"],
        pairs_per_s=statistics.median(e["pairs_per_s"] for e in train) if train else None,
        final_loss=train[-1]["loss"] if train else None,
        best_dev=max((e[DEV_MEASURE] for e in evals), default=None),
        dev_curve=[(e["step"], e[DEV_MEASURE]) for e in evals],
        wall_s=ends[-1]["wall_s"] if ends else None,
    )


def scores_table(scores: Mapping[str, Mapping[str, Mapping[str, float]]], measure: str) -> str:
    """Markdown table of one measure: a row per dataset, a column per system.

    ``scores`` maps system -> dataset -> measure -> value; a missing value shows as "-".
    """
    systems = list(scores)
    datasets = list(dict.fromkeys(d for s in systems for d in scores[s] if measure in scores[s][d]))
    lines = [f"| {measure} | " + " | ".join(systems) + " |", "|---|" + "---:|" * len(systems)]
    for dataset in datasets:
        cells = [scores[s].get(dataset, {}).get(measure) for s in systems]
        lines.append(f"| {dataset} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in cells) + " |")
    return "\n".join(lines)


def model_card(
    name: str,
    run: RunSummary,
    teacher: str,
    data: Sequence[str],
    init: str,
    scores: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    measures: Sequence[str] = ("NDCG@10",),
    notes: Sequence[str] = (),
    license: str | None = None,
    base_model: str | None = None,
) -> str:
    """Markdown model card.

    Args:
        name: the model's name (title of the card).
        run: ``summarize_run`` of the training run.
        teacher: the teacher's identity string (as recorded in the score cache).
        data: one line per training data source (what, how many groups, which split), plus any
            evaluation corpora used as unlabeled text.
        init: how the student was initialised (``minilm``, ``random``, ``teacher:<path>``).
        scores: ``system -> dataset -> measure -> value``, e.g. BM25, the teacher and this model.
        measures: which measures get a table, in order.
        notes: free-form lines for a "Limitations and notes" section.
        license: SPDX id for the front matter, if known.
        base_model: hub id of the initialisation, for the front matter.

    Returns:
        The card as markdown, front matter first.
    """
    front = ["---", "library_name: turborank", "pipeline_tag: text-ranking", "language: en"]
    front += [f"license: {license}"] if license else []
    front += [f"base_model: {base_model}"] if base_model else []
    front += ["tags: [reranker, cross-encoder, distillation, jina-bert]", "---", ""]
    arch = ", ".join(f"{k}={run.model_config.get(k)}" for k in ARCHITECTURE_FIELDS)
    recipe = "\n".join(f"| {k} | {run.train_config.get(k)} |" for k in RECIPE_FIELDS if k in run.train_config)
    lines = [
        *front,
        f"# {name}",
        "",
        f"A cross-encoder reranker distilled with `turborank distill`: {run.parameters:,} parameters "
        f"({arch}). Loads with `turborank.Reranker.from_pretrained` and, being in the published "
        "jina-reranker-v1 layout (config.json, bf16 model.safetensors, tokenizer), with the reference code.",
        "",
        "## Teacher",
        "",
        f"`{teacher}`",
        "",
        "## Training data",
        "",
        *[f"- {line}" for line in data],
        "",
        "## Recipe",
        "",
        f"Student initialised from `{init}`; {run.groups:,} training groups, {run.steps:,} optimizer "
        f"steps on {run.device} ({run.threads} threads), median {_fmt(run.pairs_per_s, '.1f')} pairs/s"
        + (f", {run.wall_s / 60:.1f} min in the last session" if run.wall_s else "")
        + f"; final loss {_fmt(run.final_loss, '.4f')}; best dev {DEV_MEASURE} {_fmt(run.best_dev, '.4f')}.",
        "",
        "| setting | value |",
        "|---|---|",
        recipe,
        "",
    ]
    if run.dev_curve:
        curve = ", ".join(f"{step}: {value:.3f}" for step, value in run.dev_curve)
        lines += [f"Dev {DEV_MEASURE} by step: {curve}.", ""]
    if scores:
        lines += ["## Evaluation", ""]
        for measure in measures:
            lines += [scores_table(scores, measure), ""]
    if notes:
        lines += ["## Limitations and notes", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(lines)


def write_card(out_dir: str | Path, card: str) -> Path:
    """Write the card as ``README.md`` in the checkpoint directory; returns its path."""
    path = Path(out_dir) / "README.md"
    path.write_text(card, encoding="utf-8")
    return path


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
