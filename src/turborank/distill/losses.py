"""Distillation losses for cross-encoder rerankers, each a pure function of score tensors.

Every loss takes the student's raw logits for a batch of groups, shape (B, n): row b holds the scores of
one query against n documents, the positive (when known) in column 0 and the negatives after it. The
teacher's scores have the same shape. ``LOSSES`` maps each name to its function; ``combined_loss`` adds
the optional supervised term.

| name            | paper                                                   | needs                      |
|-----------------|---------------------------------------------------------|----------------------------|
| pointwise_mse   | Hinton et al. 2015 (regression on logits)               | (B, n) scores, n >= 1      |
| margin_mse      | Hofstätter et al. 2020, Margin-MSE                      | (B, n) scores, n >= 2      |
| listwise_kl     | Hinton et al. 2015 (temperature); Ren et al. 2021        | (B, n) scores, n >= 2      |
| supervised (LCE)| Gao et al. 2021, Localized Contrastive Estimation        | (B, n) scores + labels     |
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import InputError

ACCEPTED_FORMS = (
    "accepted forms: student and teacher scores as float tensors of the same shape (B, n) - B groups of "
    "n documents, the positive first - with n >= {min_docs}; a (B,) tensor counts as n = 1"
)


def _as_groups(student: torch.Tensor, teacher: torch.Tensor, min_docs: int, name: str) -> tuple:
    """Validate shapes; return both as (B, n). The error lists the accepted forms."""
    if student.ndim == 1 and teacher.ndim == 1:
        student, teacher = student[:, None], teacher[:, None]
    problem = None
    if student.ndim != 2 or teacher.ndim != 2:
        problem = f"got student {tuple(student.shape)} and teacher {tuple(teacher.shape)}"
    elif student.shape != teacher.shape:
        problem = f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ"
    elif student.shape[1] < min_docs:
        problem = f"{name} needs at least {min_docs} documents per group, got {student.shape[1]}"
    elif student.shape[0] == 0:
        problem = "the batch is empty"
    if problem:
        raise InputError(f"{name}: {problem}; " + ACCEPTED_FORMS.format(min_docs=min_docs))
    return student, teacher.to(student.dtype)


def pointwise_mse(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean squared error between student and teacher logits, over every (query, document) pair.

    Reference: Hinton, Vinyals, Dean 2015, "Distilling the Knowledge in a Neural Network"
    (https://arxiv.org/abs/1503.02531), section 2.1: matching logits is the high-temperature limit.

    Args:
        student: (B, n) or (B,) raw logits.
        teacher: same shape, the teacher's logit-scale scores.
        temperature: unused; accepted so every loss has one signature.

    Returns:
        Scalar loss.
    """
    student, teacher = _as_groups(student, teacher, 1, "pointwise_mse")
    return F.mse_loss(student, teacher)


def margin_mse(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Margin-MSE: match the teacher's score margins between the positive and each negative.

    Reference: Hofstätter et al. 2020, "Improving Efficient Neural Ranking Models with Cross-Architecture
    Knowledge Distillation" (https://arxiv.org/abs/2010.02666). With n = 2 this is the paper's loss,
    MSE(s+ - s-, t+ - t-); with n > 2 each of the n - 1 negatives gives one margin, all averaged.
    Only differences are matched, so the student's logits may sit at any offset from the teacher's.

    Args:
        student: (B, n) raw logits, positive in column 0, n >= 2.
        teacher: (B, n) teacher scores.
        temperature: unused; accepted so every loss has one signature.
    """
    student, teacher = _as_groups(student, teacher, 2, "margin_mse")
    return F.mse_loss(student[:, :1] - student[:, 1:], teacher[:, :1] - teacher[:, 1:])


def listwise_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) between softmax distributions over each group's documents.

    References: Hinton et al. 2015 (softmax with temperature T, loss scaled by T^2 so gradient sizes do
    not depend on T); Ren et al. 2021, "RocketQAv2: A Joint Training Method for Dense Passage Retrieval
    and Passage Re-ranking" (https://arxiv.org/abs/2110.07367), listwise KL between reranker
    distributions over one positive and hard negatives.

    Args:
        student: (B, n) raw logits, n >= 2 (one positive and k = n - 1 negatives).
        teacher: (B, n) teacher scores.
        temperature: T > 0; higher T softens both distributions.

    Returns:
        Scalar loss: T^2 * mean over groups of sum_j p_t(j) (log p_t(j) - log p_s(j)).
    """
    student, teacher = _as_groups(student, teacher, 2, "listwise_kl")
    if temperature <= 0:
        raise InputError(f"listwise_kl: temperature must be > 0, got {temperature}")
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def supervised_lce(student: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Localized Contrastive Estimation: cross-entropy of the positive (column 0) against its negatives.

    Reference: Gao, Dai, Callan 2021, "Rethink Training of BERT Rerankers in Multi-Stage Retrieval
    Pipeline" (https://arxiv.org/abs/2101.08751). Only groups whose column 0 is labelled relevant
    (label > 0) count; unlabelled documents carry label -1. Other relevant documents of a group (a
    second answer, or the positive's own copy in other text) are left out of its softmax: they are not
    negatives.

    Args:
        student: (B, n) raw logits, n >= 2.
        labels: (B, n) graded labels, -1 where unknown.

    Returns:
        Scalar loss; 0 (with a gradient path) when no group has a labelled positive.
    """
    student, labels = _as_groups(student, labels, 2, "supervised_lce")
    has_positive = labels[:, 0] > 0
    if not bool(has_positive.any()):
        return student.sum() * 0.0
    other_positive = labels[has_positive] > 0
    other_positive[:, 0] = False
    log_p = F.log_softmax(student[has_positive].masked_fill(other_positive, float("-inf")), dim=-1)
    return -log_p[:, 0].mean()


def twin_consistency(student: torch.Tensor, twins: torch.Tensor) -> torch.Tensor:
    """Mean squared gap between a document's logit and its twin's: the same text alone and inside
    unrelated text (``data.embed_in_noise``) must score alike.

    A listwise loss over eight documents gives one twin pair an eighth of a softmax to agree on; this
    term asks for agreement directly, in logits, whatever the other documents score.

    Args:
        student: (B, n) raw logits.
        twins: (B, 2) long, the columns of each group's document and its twin; -1 where the group has none.

    Returns:
        Scalar loss; 0 (with a gradient path) when no group has a twin.
    """
    if twins.dim() != 2 or twins.shape != (student.shape[0], 2):
        raise InputError(f"twin_consistency: twins must be (B, 2) for {tuple(student.shape)} logits")
    has_twin = twins[:, 0] >= 0
    if not bool(has_twin.any()):
        return student.sum() * 0.0
    rows = student[has_twin]
    pairs = twins[has_twin]
    return (rows.gather(1, pairs[:, :1]) - rows.gather(1, pairs[:, 1:])).pow(2).mean()


LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
LOSSES: dict[str, LossFn] = {
    "listwise_kl": listwise_kl,
    "margin_mse": margin_mse,
    "pointwise_mse": pointwise_mse,
}


def get_loss(name: str) -> LossFn:
    """The loss function called ``name``; the error lists the known names."""
    if name not in LOSSES:
        raise InputError(f"unknown distillation loss {name!r}; choose one of: {', '.join(LOSSES)}")
    return LOSSES[name]


def combined_loss(
    name: str,
    student: torch.Tensor,
    teacher: torch.Tensor | None,
    labels: torch.Tensor | None = None,
    temperature: float = 1.0,
    supervised_weight: float = 0.0,
) -> torch.Tensor:
    """Distillation loss ``name`` plus ``supervised_weight`` x LCE on labelled groups.

    ``teacher`` may be None only when the loss is purely supervised (``supervised_weight`` > 0).
    """
    if teacher is None and supervised_weight <= 0:
        raise InputError("no teacher scores and no supervised term: there is nothing to learn from")
    loss = get_loss(name)(student, teacher, temperature) if teacher is not None else student.sum() * 0.0
    if supervised_weight > 0:
        if labels is None:
            raise InputError("supervised_weight > 0 needs labels (B, n), -1 where unknown")
        loss = loss + supervised_weight * supervised_lce(student, labels)
    return loss
