"""The graded checks accept the solutions and name the usual mistakes."""

from __future__ import annotations

import numpy as np
import pytest

from reformer_lab.lessons import exercises
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
        (lambda n, b, h, p: n * n * b * h, "bytes_per_value"),
    ],
)
def test_qk_bytes_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_qk_bytes(wrong)
    assert not result.passed and hint in result.message


def test_fit_exponent_recognises_linear_axes_and_two_point_fits() -> None:
    linear = exercises.check_fit_exponent(lambda x, y: float(np.polyfit(x, y, 1)[0]))
    assert "log(size) against log(length)" in linear.message
    two_point = exercises.check_fit_exponent(lambda x, y: float(np.log(y[-1] / y[0]) / np.log(x[-1] / x[0])))
    assert "least-squares" in two_point.message


def test_feedforward_bytes_names_missing_layers() -> None:
    result = exercises.check_feedforward_bytes(lambda b, n, f, layers: b * n * f * 4)
    assert "n_layers" in result.message


def test_an_exception_in_the_readers_code_is_reported() -> None:
    result = exercises.check_qk_bytes(lambda *args: 1 / 0)
    assert not result.passed and "ZeroDivisionError" in result.message


def test_passing_a_call_instead_of_a_function_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="no parentheses"):
        exercises.check_qk_bytes(42)
