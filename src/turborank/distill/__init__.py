"""Knowledge distillation: train a fast student reranker from a stronger teacher's scores.

Pipeline: build training groups (``data``), score them once with a teacher into a resumable cache
(``teachers``, ``cache``), build a student (``students.build_student``), train it (``train.train``)
and write a model card (``card``). ``turborank distill`` on the command line runs the same steps.
Students fine-tuned from the same weights can then be averaged into one (``soup``), and a model can be
taught to keep a passage's score inside unrelated text (``invariance``).
"""

from .losses import LOSSES, combined_loss, listwise_kl, margin_mse, pointwise_mse, supervised_lce
from .students import PRESETS, build_student
from .train import TrainConfig, train

__all__ = [
    "LOSSES",
    "PRESETS",
    "TrainConfig",
    "build_student",
    "combined_loss",
    "listwise_kl",
    "margin_mse",
    "pointwise_mse",
    "supervised_lce",
    "train",
]
