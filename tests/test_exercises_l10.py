"""Lesson 10's graded checks name the usual mistakes; the solutions agree with the lesson's own counts."""

from __future__ import annotations

import pytest

from reformer_lab.lessons.exercises import l10 as exercises
from reformer_lab.lessons.solutions import l10
from reformer_lab.measure import duplication_stats


def test_max_full_length_is_the_largest_that_fits() -> None:
    for budget, b, h in [(16 * 2**30, 1, 1), (10**9, 2, 3), (12345, 1, 2)]:
        n = l10.max_full_length(budget, b, h)
        assert 4 * b * h * n * n <= budget < 4 * b * h * (n + 1) ** 2


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda m, b, h: exercises._max_full_length(m, b, h, bytes_per=1), "4 bytes"),
        (lambda m, b, h: exercises._max_full_length(m, 1, h), "divide by b"),
        (lambda m, b, h: exercises._max_full_length(m, b, 1), "divide by n_h"),
        (lambda m, b, h: m // (4 * b * h), "square root"),
        (lambda m, b, h: (m / (4 * b * h)) ** 0.5, "whole number"),
    ],
)
def test_max_full_length_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_max_full_length(wrong)
    assert not result.passed and hint in result.message, result.message


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n, m: n * m, "looks back one chunk"),
        (lambda n, m: 2 * m, "multiply by n_r"),
        (lambda n, m: 4 * n * m, "l²/2"),
        (lambda n, m: (2 * n * m) ** 2, "divide by l"),
    ],
)
def test_lsh_break_even_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_lsh_break_even(wrong)
    assert not result.passed and hint in result.message, result.message


@pytest.mark.parametrize("w_len, chunk", [(63, 32), (63, 64), (40, 32), (511, 128)])
def test_local_reach_agrees_with_lesson_07s_count_far_from_the_start(w_len, chunk) -> None:
    # lesson 07 counts the masked queries of one sequence; over whole chunks the two counts coincide
    if (w_len + 1) % chunk == 0:
        assert l10.local_reach(w_len, chunk) == pytest.approx(duplication_stats.local_window_coverage(w_len, chunk),
                                                               abs=1 / w_len)
    assert 0.0 <= l10.local_reach(w_len, chunk) <= 1.0


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda d, m: exercises._reach(d, m, back=0), "chunk before its own"),
        (lambda d, m: float(d < 2 * m), "fixed borders"),
        (lambda d, m: float(d <= m), "count offsets"),
        (lambda d, m: exercises._reach(d, m) * m, "not a count"),
    ],
)
def test_local_reach_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_local_reach(wrong)
    assert not result.passed and hint in result.message, result.message
