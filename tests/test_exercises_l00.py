"""Lesson 00's graded checks accept the solutions and name the usual mistakes."""

from __future__ import annotations

import numpy as np
import pytest

from reformer_lab.lessons.exercises import l00 as exercises
from reformer_lab.lessons.solutions import l00


@pytest.mark.parametrize(
    "check, solution",
    [
        (exercises.check_qk_bytes, l00.qk_bytes),
        (exercises.check_feedforward_bytes, l00.feedforward_bytes),
        (exercises.check_fit_exponent, l00.fit_exponent),
    ],
)
def test_solutions_pass_their_checks(check, solution) -> None:
    result = check(solution)
    assert result.passed, str(result)
    assert str(result).startswith("[PASS]")


def test_unattempted_exercise_is_todo_not_failure() -> None:
    def stub(*args):
        raise NotImplementedError

    result = exercises.check_qk_bytes(stub)
    assert not result.passed and not result.attempted
    assert str(result).startswith("[TODO]")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n, b, h, p: n * b * h * p, "square the length"),
        (lambda n, b, h, p: n * n * b * p, "multiply by n_heads"),
        (lambda n, b, h, p: n * n * h * p, "multiply by batch"),
        (lambda n, b, h, p: n * n * b * h, "bytes_per_value"),
        (lambda n, b, h, p: n * n * b * h * p / 2**30, "not GiB"),
    ],
)
def test_qk_bytes_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_qk_bytes(wrong)
    assert not result.passed and hint in result.message


def test_fit_exponent_recognises_linear_axes_intercepts_and_two_point_fits() -> None:
    linear = exercises.check_fit_exponent(lambda x, y: float(np.polyfit(x, y, 1)[0]))
    assert "log(size) against log(length)" in linear.message
    intercept = exercises.check_fit_exponent(lambda x, y: float(np.polyfit(np.log(x), np.log(y), 1)[1]))
    assert "not the intercept" in intercept.message
    two_point = exercises.check_fit_exponent(lambda x, y: float(np.log(y[-1] / y[0]) / np.log(x[-1] / x[0])))
    assert "least-squares" in two_point.message


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda b, n, f, layers: b * n * f * 4, "n_layers"),
        (lambda b, n, f, layers: b * n * f * layers, "multiply the count by 4"),
        (lambda b, n, f, layers: n * f * layers * 4, "every sequence in the batch"),
    ],
)
def test_feedforward_bytes_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_feedforward_bytes(wrong)
    assert not result.passed and hint in result.message


def test_a_wrong_answer_without_a_known_mistake_shows_the_expected_value() -> None:
    result = exercises.check_qk_bytes(lambda *args: 1)
    assert not result.passed and "expected 4194304.0, you returned 1." in result.message


def test_an_exception_in_the_readers_code_is_reported() -> None:
    result = exercises.check_qk_bytes(lambda *args: 1 / 0)
    assert not result.passed and "ZeroDivisionError" in result.message


def test_passing_a_call_instead_of_a_function_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="no parentheses"):
        exercises.check_qk_bytes(42)
