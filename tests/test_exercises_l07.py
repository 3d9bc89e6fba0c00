"""Lesson 07's graded checks accept the solutions, report a stub as TODO and name the usual mistakes."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.lessons.exercises import l07 as exercises
from reformer_lab.lessons.solutions import l07
from reformer_lab.measure import duplication_stats


@pytest.mark.parametrize("w_len", [1, 3, 11, 63])
def test_the_reversed_needed_key_holds_the_target(w_len) -> None:
    g = torch.Generator().manual_seed(w_len)
    w = torch.randint(1, 128, (w_len,), generator=g)
    sequence = torch.cat([torch.zeros(1, dtype=torch.long), w, torch.zeros(1, dtype=torch.long), w.flip(0)])
    for i in range(w_len + 1, 2 * w_len + 1):
        key = l07.reversed_needed_key(i, w_len)
        assert 1 <= key <= w_len and sequence[key] == sequence[i + 1]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda i, n: i - n, "answer for 0w0w"),
        (lambda i, n: 2 * n + 2 - i, "*current* token"),
        (lambda i, n: 2 * n - i, "one too far left"),
        (lambda i, n: i + 1, "cannot read"),
        (lambda i, n: -5, "expected"),
    ],
)
def test_reversed_needed_key_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_reversed_needed_key(wrong)
    assert not result.passed and hint in result.message, result.message


# -- exercise 2 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("w_len, chunk", [(63, 32), (511, 64), (511, 128), (10, 8), (12, 16), (40, 32)])
def test_local_coverage_is_the_packages(w_len, chunk) -> None:
    assert l07.local_coverage(w_len, chunk) == duplication_stats.local_window_coverage(w_len, chunk)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n, m: float(n <= m), "fixed borders"),
        (lambda n, m: exercises._coverage(n, m, back=0), "chunk before its own"),
        (lambda n, m: float(n < 2 * m), "where each query sits"),
        (lambda n, m: exercises._coverage(n, m, offset=1), "not |w| + 1"),
        (lambda n, m: exercises._coverage(n, m, over_all=True), "not by the whole sequence"),
        (lambda n, m: exercises._coverage(n, m, count=True), "not a count"),
    ],
)
def test_local_coverage_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_local_coverage(wrong)
    assert not result.passed and hint in result.message, result.message


# -- exercise 3 -----------------------------------------------------------------------------------------------


def test_predicted_accuracy_keeps_one_round_and_certainty_fixed() -> None:
    assert l07.predicted_accuracy(0.6, 1, 127) == pytest.approx(0.6)
    assert l07.predicted_accuracy(1.0, 4, 127) == pytest.approx(1.0)
    assert l07.predicted_accuracy(1 / 127, 8, 127) == pytest.approx(1 / 127)  # chance stays chance


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda a, n, s: 1 - (1 - a) ** n, "lucky guessing"),
        (lambda a, n, s: 1 - (1 - (a - 1 / s) / (1 - 1 / s)) ** n, "still guess"),
        (lambda a, n, s: a**n, "*every* round"),
        (lambda a, n, s: min(1.0, n * a), "do not add up"),
    ],
)
def test_predicted_accuracy_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_predicted_accuracy(wrong)
    assert not result.passed and hint in result.message, result.message
