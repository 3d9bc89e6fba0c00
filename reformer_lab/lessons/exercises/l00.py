"""Lesson 00, the memory problem (paper §1): the checks of the notebook's three exercises.

What a Transformer's memory is made of: the attention matrices QKᵀ (exercise 1), the feed-forward's
activations (exercise 2), and the exponent of a measured power law (exercise 3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade
from reformer_lab.measure import complexity

__all__ = ["check_qk_bytes", "check_feedforward_bytes", "check_fit_exponent"]


def check_qk_bytes(fn: Callable[[int, int, int, int], float]) -> CheckResult:
    """Exercise 1: bytes of the attention matrices QKᵀ, ``fn(length, batch, n_heads, bytes_per_value)``."""
    # batch ≠ n_heads before batch = n_heads: forgetting the batch and forgetting the heads differ there
    shapes = [(1024, 1, 1, 4), (65536, 1, 1, 4), (512, 3, 4, 4), (4096, 8, 8, 2), (2048, 2, 16, 8)]
    cases = [Case(s, complexity.qk_matrix_bytes(*s)) for s in shapes]
    mistakes = [
        Mistake(lambda a, b, h, p: a * b * h * p, "QKᵀ has length × length entries per head: square the length."),
        Mistake(lambda a, b, h, p: a * a * b * p, "every head has its own matrix: multiply by n_heads."),
        Mistake(
            lambda a, b, h, p: a * a * h * p, "every sequence in the batch has its own matrices: multiply by batch."
        ),
        Mistake(lambda a, b, h, p: a * a * b * h, "that is a count of values; multiply by bytes_per_value for bytes."),
        Mistake(lambda a, b, h, p: a * a * b * h * p / 2**30, "return bytes, not GiB: the lesson formats units."),
    ]
    return grade("Exercise 1 (qk_bytes)", fn, cases, mistakes)


def check_feedforward_bytes(fn: Callable[[int, int, int, int], float]) -> CheckResult:
    """Exercise 2: feed-forward activations in fp32, ``fn(batch, length, d_ff, n_layers)``."""
    shapes = [(1, 65536, 4096, 16), (8, 1024, 4096, 12), (2, 512, 2048, 3), (1, 100, 7, 1)]
    cases = [Case(s, complexity.feedforward_activation_bytes(*s)) for s in shapes]
    mistakes = [
        Mistake(lambda b, n, f, layers: b * n * f * 4, "each of the n_layers layers keeps its own activations."),
        Mistake(lambda b, n, f, layers: b * n * f * layers, "4 bytes per fp32 value: multiply the count by 4."),
        Mistake(lambda b, n, f, layers: n * f * layers * 4, "every sequence in the batch has its own activations."),
    ]
    return grade("Exercise 2 (feedforward_bytes)", fn, cases, mistakes)


def _true_exponent(lengths: Sequence[float], sizes: Sequence[float]) -> float:
    return float(np.polyfit(np.log(lengths), np.log(sizes), 1)[0])


def check_fit_exponent(fn: Callable[[Sequence[float], Sequence[float]], float]) -> CheckResult:
    """Exercise 3: the exponent p of ``size ≈ a·length^p``, fitted by least squares on log–log axes."""
    lengths = [256.0, 512.0, 1024.0, 2048.0, 4096.0]
    data = [
        [3.0 * n**2 for n in lengths],
        [5.0 * n + 7.0 for n in lengths],
        [n**2 + 400.0 * n for n in lengths],
        [2.0 * n**1.5 for n in lengths],
    ]
    cases = [Case((lengths, sizes), _true_exponent(lengths, sizes)) for sizes in data]
    mistakes = [
        Mistake(lambda x, y: float(np.polyfit(x, y, 1)[0]), "fit a straight line to log(size) against log(length)."),
        Mistake(
            lambda x, y: float(np.polyfit(np.log(x), np.log(y), 1)[1]), "the exponent is the slope, not the intercept."
        ),
        Mistake(
            lambda x, y: float(np.log(y[-1] / y[0]) / np.log(x[-1] / x[0])),
            "close, but use every point: a least-squares fit (np.polyfit), not the two end points.",
        ),
    ]
    return grade("Exercise 3 (fit_exponent)", fn, cases, mistakes, rel=1e-6)
