"""Each loss against a value worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from turborank.distill.losses import (
    LOSSES,
    combined_loss,
    get_loss,
    listwise_kl,
    margin_mse,
    pointwise_mse,
    supervised_lce,
)
from turborank.errors import InputError


def t(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_pointwise_mse_by_hand():
    # errors 1 and -2 and 0 and 1 -> (1 + 4 + 0 + 1) / 4 = 1.5
    assert pointwise_mse(t([[1.0, 2.0], [3.0, 1.0]]), t([[0.0, 4.0], [3.0, 0.0]])).item() == pytest.approx(
        1.5
    )
    # a (B,) tensor is a batch of single-document groups: (1 + 4) / 2
    assert pointwise_mse(t([1.0, 0.0]), t([0.0, 2.0])).item() == pytest.approx(2.5)


def test_margin_mse_by_hand():
    # student margins 3-1=2, 3-0=3; teacher margins 2-1=1, 2-1=1 -> ((2-1)^2 + (3-1)^2) / 2 = 2.5
    assert margin_mse(t([[3.0, 1.0, 0.0]]), t([[2.0, 1.0, 1.0]])).item() == pytest.approx(2.5)
    # the paper's pairwise form: margins 1 vs 4 -> 9; an offset between student and teacher is free
    assert margin_mse(t([[11.0, 10.0]]), t([[4.0, 0.0]])).item() == pytest.approx(9.0)


def test_listwise_kl_by_hand():
    # teacher softmax [3/4, 1/4] (logits ln 3, 0), student uniform:
    # KL = 3/4 ln(1.5) + 1/4 ln(0.5) = 0.130812...
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    student, teacher = t([[0.0, 0.0]]), t([[math.log(3.0), 0.0]])
    assert listwise_kl(student, teacher).item() == pytest.approx(expected, abs=1e-6)
    # at T = 2 teacher logits 2 ln 3 give the same distribution; the loss is scaled by T^2 = 4
    assert listwise_kl(student, t([[2 * math.log(3.0), 0.0]]), temperature=2.0).item() == pytest.approx(
        4 * expected, abs=1e-6
    )
    # batchmean: a second, perfectly matched group halves the mean
    two = listwise_kl(t([[0.0, 0.0], [1.0, 2.0]]), t([[math.log(3.0), 0.0], [1.0, 2.0]]))
    assert two.item() == pytest.approx(expected / 2, abs=1e-6)


def test_supervised_lce_by_hand():
    # positive logit ln 3 against two zeros: p = 3/5, loss = -ln 0.6; the unlabelled group is skipped
    student = t([[math.log(3.0), 0.0, 0.0], [5.0, 0.0, 0.0]])
    labels = t([[1, 0, 0], [-1, -1, -1]])
    assert supervised_lce(student, labels).item() == pytest.approx(-math.log(0.6), abs=1e-6)
    assert supervised_lce(student, t([[-1, 0, 0], [0, 0, 0]])).item() == 0.0


def test_supervised_lce_leaves_other_positives_out_of_the_softmax():
    # column 1 is relevant too (a second answer, or the positive's twin): not a negative, whatever its logit
    student = t([[math.log(3.0), 9.0, 0.0, 0.0]]).requires_grad_()
    loss = supervised_lce(student, t([[1, 1, 0, -1]]))
    assert loss.item() == pytest.approx(-math.log(0.6), abs=1e-6)
    loss.backward()
    assert student.grad[0, 1].item() == 0.0


def test_combined_loss_adds_weighted_supervised_term():
    student = t([[math.log(3.0), 0.0, 0.0]])
    teacher = t([[math.log(3.0), 0.0, 0.0]])  # distillation term 0: the student matches the teacher
    labels = t([[2, 0, 0]])
    loss = combined_loss("listwise_kl", student, teacher, labels, supervised_weight=0.5)
    assert loss.item() == pytest.approx(-0.5 * math.log(0.6), abs=1e-6)
    only = combined_loss("listwise_kl", student, None, labels, supervised_weight=1.0)
    assert only.item() == pytest.approx(-math.log(0.6), abs=1e-6)
    with pytest.raises(InputError, match="nothing to learn"):
        combined_loss("listwise_kl", student, None)


def test_losses_have_gradients():
    student = t([[0.5, -0.5, 0.1]]).requires_grad_()
    for fn in LOSSES.values():
        fn(student, t([[1.0, 0.0, -1.0]]), 1.0).backward()
        assert student.grad is not None and torch.isfinite(student.grad).all()


@pytest.mark.parametrize(
    ("student", "teacher", "fn", "message"),
    [
        ([[1.0, 2.0]], [[1.0, 2.0, 3.0]], listwise_kl, "differ"),
        ([[1.0]], [[1.0]], margin_mse, "at least 2 documents"),
        ([[[1.0, 2.0]]], [[[1.0, 2.0]]], pointwise_mse, "got student"),
    ],
)
def test_shape_errors_list_accepted_forms(student, teacher, fn, message):
    with pytest.raises(InputError, match=message) as info:
        fn(t(student), t(teacher))
    assert "accepted forms" in str(info.value)


def test_unknown_loss_lists_names():
    with pytest.raises(InputError, match="listwise_kl, margin_mse, pointwise_mse"):
        get_loss("ranknet")
    with pytest.raises(InputError, match="temperature"):
        listwise_kl(t([[0.0, 1.0]]), t([[0.0, 1.0]]), temperature=0.0)


def test_twin_consistency_by_hand():
    from turborank.distill.losses import twin_consistency

    student = t([[1.0, 3.0, 0.0], [2.0, 0.0, 5.0], [9.0, 9.0, 9.0]]).requires_grad_()
    twins = torch.tensor([[1, 2], [0, 2], [-1, -1]])  # the third group has no twin
    loss = twin_consistency(student, twins)
    assert loss.item() == pytest.approx((3.0**2 + 3.0**2) / 2)
    loss.backward()
    assert student.grad[2].abs().sum().item() == 0.0 and student.grad[0, 0].item() == 0.0
    assert twin_consistency(student, torch.full((3, 2), -1)).item() == 0.0
    with pytest.raises(InputError, match=r"twins must be \(B, 2\)"):
        twin_consistency(student, torch.tensor([1, 2, 0]))
