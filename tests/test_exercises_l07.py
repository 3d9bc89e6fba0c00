"""Lesson 07's graded checks accept the solutions and name the usual mistakes."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.data import DuplicationTask
from reformer_lab.lessons.exercises import l07 as exercises
from reformer_lab.lessons.solutions import l07

CHECKS = [exercises.check_second_copy_mask, exercises.check_needed_key, exercises.check_masked_accuracy]


@pytest.mark.parametrize("w_len", [1, 5, 63])
def test_the_mask_solution_is_the_tasks_own_mask(w_len) -> None:
    assert torch.equal(l07.second_copy_mask(w_len), DuplicationTask(w_len, 9).loss_mask())


def test_the_needed_key_holds_the_target() -> None:
    task = DuplicationTask(w_len=11, n_symbols=50)
    batch = task.batch(4, 0)
    for i in task.loss_mask().nonzero().flatten().tolist():
        assert torch.equal(batch.inputs[:, l07.needed_key(i, 11)], batch.targets[:, i])


def _mask(n, start, stop):
    mask = torch.zeros(2 * (n + 1), dtype=torch.bool)
    mask[start:stop] = True
    return mask


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n: _mask(n, n + 2, 2 * n + 2), "one to the left"),
        (lambda n: _mask(n, n, 2 * n + 1), "separator"),
        (lambda n: _mask(n, n + 1, 2 * n + 2), "last position"),
        (lambda n: _mask(n, 0, n + 1), "first half"),
        (lambda n: _mask(n, 0, 0)[:-1], "shape"),
        (lambda n: _mask(n, 1, 2), "you marked [1]"),
    ],
)
def test_second_copy_mask_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_second_copy_mask(wrong)
    assert not result.passed and hint in result.message, result.message


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda i, n: i - n - 1, "current"),
        (lambda i, n: n, "not the distance"),
        (lambda i, n: i - n + 1, "one too close"),
        (lambda i, n: i + 1, "cannot read"),
        (lambda i, n: -5, "expected"),
    ],
)
def test_needed_key_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_needed_key(wrong)
    assert not result.passed and hint in result.message, result.message


def _per_row(lo, t, m):
    hits = (lo.argmax(-1) == t) & m
    return float((hits.sum(1).double() / m.sum(1).clamp(min=1)).mean())


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda lo, t, m: float((lo.argmax(-1) == t).double().mean()), "every position"),
        (_per_row, "pool all masked positions"),
        (lambda lo, t, m: float((lo.argmax(-1)[~m] == t[~m]).double().mean()), "mask is False"),
        (lambda lo, t, m: float(((lo.argmax(-1) == t) & m).sum()), "fraction"),
        (lambda lo, t, m: -1.0, "expected"),
        (lambda lo, t, m: [1, 2], "you returned [1, 2]"),
    ],
)
def test_masked_accuracy_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_masked_accuracy(wrong)
    assert not result.passed and hint in result.message, result.message


@pytest.mark.parametrize("check", CHECKS)
def test_a_call_instead_of_a_function_is_a_clear_error(check) -> None:
    with pytest.raises(TypeError, match="pass your function itself"):
        check(3.0)
