"""Graded checks for the lessons' exercises.

Each ``check_*`` function runs the reader's function on a handful of cases, compares it with the
package's reference, and says what is wrong in words ("you counted one head; there are n_heads").
It never raises for a wrong answer: it returns a :class:`CheckResult` that prints as one line, so a
lesson keeps running. Solutions live in :mod:`reformer_lab.solutions`, one module per lesson.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reformer_lab import complexity

__all__ = ["CheckResult", "check_qk_bytes", "check_fit_exponent", "check_feedforward_bytes"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one graded check; prints as a single line."""

    exercise: str
    passed: bool
    message: str
    attempted: bool = True

    def __str__(self) -> str:
        mark = "PASS" if self.passed else ("TODO" if not self.attempted else "FAIL")
        return f"[{mark}] {self.exercise}: {self.message}"

    __repr__ = __str__

    def __bool__(self) -> bool:
        return self.passed


@dataclass(frozen=True)
class _Mistake:
    """A wrong answer we know how to recognise, and the hint it earns."""

    wrong: Callable[..., float]
    hint: str


def _close(got: Any, want: float, rel: float) -> bool:
    try:
        return math.isclose(float(got), float(want), rel_tol=rel, abs_tol=0.0)
    except (TypeError, ValueError):
        return False


def _grade(
    exercise: str,
    fn: Callable[..., Any],
    cases: Sequence[tuple[tuple, float]],
    mistakes: Sequence[_Mistake] = (),
    rel: float = 1e-9,
) -> CheckResult:
    if not callable(fn):
        raise TypeError(f"{exercise}: pass your function itself (no parentheses), got {type(fn).__name__}")
    for args, want in cases:
        shown = ", ".join(repr(a) for a in args)
        try:
            got = fn(*args)
        except NotImplementedError:
            return CheckResult(exercise, False, "not attempted yet: replace `raise NotImplementedError`.", False)
        except Exception as error:  # the reader's code may raise anything; report it, don't crash the lesson
            return CheckResult(exercise, False, f"calling it with ({shown}) raised {type(error).__name__}: {error}")
        if _close(got, want, rel):
            continue
        for mistake in mistakes:
            if _close(got, mistake.wrong(*args), rel):
                return CheckResult(exercise, False, f"for ({shown}) you returned {got!r}. Hint: {mistake.hint}")
        return CheckResult(exercise, False, f"for ({shown}) expected {want!r}, you returned {got!r}.")
    return CheckResult(exercise, True, f"all {len(cases)} cases pass.")


def check_qk_bytes(fn: Callable[[int, int, int, int], float]) -> CheckResult:
    """Lesson 00, exercise 1: bytes of the attention matrices QKᵀ, ``fn(length, batch, n_heads, bytes_per_value)``."""
    cases = [
        ((a, b, h, p), complexity.qk_matrix_bytes(a, b, h, p))
        for a, b, h, p in [(1024, 1, 1, 4), (65536, 1, 1, 4), (4096, 8, 8, 2), (512, 3, 4, 4), (2048, 2, 16, 8)]
    ]
    mistakes = [
        _Mistake(lambda a, b, h, p: a * b * h * p, "QKᵀ has length × length entries per head: square the length."),
        _Mistake(lambda a, b, h, p: a * a * b * p, "every head has its own matrix: multiply by n_heads."),
        _Mistake(
            lambda a, b, h, p: a * a * h * p, "every sequence in the batch has its own matrices: multiply by batch."
        ),
        _Mistake(lambda a, b, h, p: a * a * b * h, "that is a count of values; multiply by bytes_per_value for bytes."),
        _Mistake(lambda a, b, h, p: a * a * b * h * p / 2**30, "return bytes, not GiB: the lesson formats units."),
    ]
    return _grade("Exercise 1 (qk_bytes)", fn, cases, mistakes)


def check_feedforward_bytes(fn: Callable[[int, int, int, int], float]) -> CheckResult:
    """Lesson 00, exercise 2: feed-forward activations in fp32, ``fn(batch, length, d_ff, n_layers)``."""
    shapes = [(1, 65536, 4096, 16), (8, 1024, 4096, 12), (2, 512, 2048, 3), (1, 100, 7, 1)]
    cases = [(s, complexity.feedforward_activation_bytes(*s)) for s in shapes]
    mistakes = [
        _Mistake(lambda b, n, f, layers: b * n * f * 4, "each of the n_layers layers keeps its own activations."),
        _Mistake(lambda b, n, f, layers: b * n * f * layers, "4 bytes per fp32 value: multiply the count by 4."),
        _Mistake(lambda b, n, f, layers: n * f * layers * 4, "every sequence in the batch has its own activations."),
    ]
    return _grade("Exercise 2 (feedforward_bytes)", fn, cases, mistakes)


def _true_exponent(lengths: Sequence[float], sizes: Sequence[float]) -> float:
    return float(np.polyfit(np.log(lengths), np.log(sizes), 1)[0])


def check_fit_exponent(fn: Callable[[Sequence[float], Sequence[float]], float]) -> CheckResult:
    """Lesson 00, exercise 3: the exponent p of ``size ≈ a·length^p``, fitted by least squares on log–log axes."""
    lengths = [256.0, 512.0, 1024.0, 2048.0, 4096.0]
    data = [
        [3.0 * n**2 for n in lengths],
        [5.0 * n + 7.0 for n in lengths],
        [n**2 + 400.0 * n for n in lengths],
        [2.0 * n**1.5 for n in lengths],
    ]
    cases = [((lengths, sizes), _true_exponent(lengths, sizes)) for sizes in data]
    mistakes = [
        _Mistake(lambda x, y: float(np.polyfit(x, y, 1)[0]), "fit a straight line to log(size) against log(length)."),
        _Mistake(
            lambda x, y: float(np.polyfit(np.log(x), np.log(y), 1)[1]), "the exponent is the slope, not the intercept."
        ),
        _Mistake(
            lambda x, y: float(np.log(y[-1] / y[0]) / np.log(x[-1] / x[0])),
            "close, but use every point: a least-squares fit (np.polyfit), not the two end points.",
        ),
    ]
    return _grade("Exercise 3 (fit_exponent)", fn, cases, mistakes, rel=1e-6)
