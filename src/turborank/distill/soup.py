"""Weight averaging ("model soup"): one checkpoint whose every tensor is a weighted mean of several.

    python -m turborank.distill.soup --out DIR CHECKPOINT:WEIGHT CHECKPOINT:WEIGHT ...

Students fine-tuned from the same starting weights (all-MiniLM-L6-v2 for every ``minilm`` student) tend
to stay in one basin of the loss, so their average can rank better than either while costing one model's
compute: an ensemble's gain at no price in speed or size. Whether it does is for the dev set to say
(``--stage finish`` then picks the soup's reading and calibration afresh); averaging students that
started from different weights gives noise, which is why the shapes, the vocabulary and the position
type must match. The first checkpoint's tokenizer files and declared reading travel with the soup, so it
is measured as that checkpoint is read until ``--stage finish`` chooses again.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from ..checkpoint import TOKENIZER_FILE, load_model, save_checkpoint
from ..errors import InputError, TurborankError
from .finish import keep_reading

log = logging.getLogger(__name__)


def average_checkpoints(ingredients: list[tuple[Path, float]], out: Path) -> Path:
    """Write to ``out`` the checkpoint whose tensors are the ``weight``-weighted mean of the ingredients'.

    Weights must be positive and sum to 1 (a soup is an interpolation, not an extrapolation); the
    checkpoints must share architecture and tokenizer. Tensors are averaged in float32 and saved in bf16,
    as every checkpoint the recipe writes; the first checkpoint's reading is declared for the soup.
    """
    if len(ingredients) < 2:
        raise InputError("a soup needs at least two checkpoints")
    weights = [weight for _, weight in ingredients]
    if min(weights) <= 0 or abs(sum(weights) - 1.0) > 1e-6:
        raise InputError(f"soup weights must be positive and sum to 1, got {weights}")
    first_dir = ingredients[0][0]
    _refuse_to_overwrite(out, [directory for directory, _ in ingredients])
    base = load_model(first_dir)
    mixed = {key: torch.zeros_like(tensor) for key, tensor in base.state_dict().items()}
    for directory, weight in ingredients:
        model = (
            base if directory == first_dir else _compatible(load_model(directory), base, directory, first_dir)
        )
        for key, tensor in model.state_dict().items():
            mixed[key] += weight * tensor
    base.load_state_dict(mixed)
    log.info("soup of %s -> %s", ", ".join(f"{d} x {w}" for d, w in ingredients), out)
    save_checkpoint(base, first_dir, out)
    keep_reading(first_dir, out)
    return out


def _refuse_to_overwrite(out: Path, ingredients: list[Path]) -> None:
    # Writing over an ingredient would lose it, and its declared reading with it (config.json is
    # rewritten before the reading is copied from the first checkpoint).
    if any(out.resolve() == directory.resolve() for directory in ingredients):
        raise InputError(f"--out {out} is one of the ingredients: write the soup to a new directory")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file: name a directory for the soup")


def _compatible(
    model: torch.nn.Module, base: torch.nn.Module, directory: Path, first: Path
) -> torch.nn.Module:
    if model.config.position_embedding_type != base.config.position_embedding_type:
        raise InputError(
            f"{directory} uses {model.config.position_embedding_type} positions and {first} "
            f"{base.config.position_embedding_type}: average checkpoints of one kind"
        )
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    base_shapes = {k: tuple(v.shape) for k, v in base.state_dict().items()}
    if shapes != base_shapes:
        differing = sorted(
            k for k in shapes.keys() | base_shapes.keys() if shapes.get(k) != base_shapes.get(k)
        )
        raise InputError(f"{directory} and {first} differ in shape at {differing[:3]}: not one architecture")
    if _vocabulary(directory) != _vocabulary(first):
        raise InputError(
            f"{directory} and {first} have different vocabularies: their embeddings do not align"
        )
    return model


def _vocabulary(directory: Path) -> dict[str, int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(directory / TOKENIZER_FILE)).get_vocab()


def parse_ingredient(text: str) -> tuple[Path, float]:
    """``DIR:WEIGHT`` -> (Path(DIR), WEIGHT)."""
    path, sep, weight = text.rpartition(":")
    try:
        if not sep:
            raise ValueError
        return Path(path), float(weight)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected CHECKPOINT:WEIGHT (e.g. runs/f1-model:0.25), got {text!r}"
        ) from error


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m turborank.distill.soup", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "ingredients", nargs="+", type=parse_ingredient, help="CHECKPOINT:WEIGHT, weights sum to 1"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the averaged checkpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        print(average_checkpoints(args.ingredients, args.out))
    except TurborankError as error:  # a bad argument or a missing checkpoint: one line, no traceback
        parser.error(str(error))


if __name__ == "__main__":
    main()
