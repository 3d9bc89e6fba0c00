"""Lesson 10, related work and what came after (paper §4): the checks of the three exercises.

Each one asks for a number the lesson's reasoning predicts: the longest sequence whose full attention weights fit
a memory budget (exercise 1), the length from which LSH attention computes fewer logits than full attention
(exercise 2), and, for a task whose answer lies a fixed distance back, how many queries a local window serves
(exercise 3, a transfer of lesson 07's count).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade

__all__ = ["check_max_full_length", "check_lsh_break_even", "check_local_reach"]


# Exercise 1: the longest full attention a budget holds --------------------------------------------------------


def _max_full_length(budget: int, batch: int, n_heads: int, bytes_per: int = 4) -> float:
    return float(math.isqrt(budget // (bytes_per * batch * n_heads)))


def check_max_full_length(fn: Callable[[int, int, int], int]) -> CheckResult:
    """Exercise 1: ``fn(budget_bytes, batch, n_heads)`` → the largest length l whose float32 attention weights,
    b·n_h·l² numbers of 4 bytes (Table 1's b·n_h·l² term), fit in ``budget_bytes``."""
    triples = [(16 * 2**30, 1, 1), (2**30, 1, 2), (10**9, 2, 3), (16 * 2**30, 8, 8), (1000, 1, 1), (3, 1, 1)]
    cases = [Case(t, _max_full_length(*t)) for t in triples]
    mistakes = [
        Mistake(lambda m, b, h: _max_full_length(m, b, h, bytes_per=1),
                "each weight is a float32: 4 bytes, so divide the budget by 4·b·n_h before the square root."),
        Mistake(lambda m, b, h: _max_full_length(m, 1, h), "every sequence of the batch has its own l×l matrix: "
                "divide by b as well."),
        Mistake(lambda m, b, h: _max_full_length(m, b, 1), "every head has its own l×l matrix: divide by n_h as "
                "well."),
        Mistake(lambda m, b, h: float(m // (4 * b * h)), "that is the number of weights, l²: take its square "
                "root (math.isqrt gives the whole part)."),
        Mistake(lambda m, b, h: math.sqrt(m / (4 * b * h)), "a length is a whole number of tokens: round down "
                "(math.isqrt of the whole number of weights)."),
    ]
    return grade("Exercise 1 (max_full_length)", fn, cases, mistakes)


# Exercise 2: where LSH computes fewer logits ------------------------------------------------------------------


def check_lsh_break_even(fn: Callable[[int, int], int]) -> CheckResult:
    """Exercise 2: ``fn(n_hashes, chunk_size)`` → the length l at which LSH attention's logits, n_r·l·2m (each
    query against its own and the previous chunk of m, in each of n_r rounds), equal full attention's l²."""
    pairs = [(1, 64), (3, 32), (2, 64), (4, 64), (8, 128), (1, 1)]
    cases = [Case(p, float(2 * p[0] * p[1])) for p in pairs]
    mistakes = [
        Mistake(lambda n, m: float(n * m), "each chunk also looks back one chunk (eq. 5): a query compares 2m keys, "
                "not m."),
        Mistake(lambda n, m: float(2 * m), "every round compares its own 2m keys: multiply by n_r."),
        Mistake(lambda n, m: float(4 * n * m), "that uses l²/2 for causal full attention; count all l² logits, "
                "as full attention computes them before masking (Table 1's b·n_h·l²)."),
        Mistake(lambda n, m: float((2 * n * m) ** 2), "set n_r·l·2m equal to l² and divide by l: the answer is "
                "linear in n_r·m."),
    ]
    return grade("Exercise 2 (lsh_break_even)", fn, cases, mistakes)


# Exercise 3: a local window against a fixed distance ----------------------------------------------------------


def _reach(distance: int, m: int, *, back: int = 1) -> float:
    """Share of the m offsets r of a query in its chunk whose key r − distance lies at most ``back`` chunks back."""
    return sum((r - distance) // m >= -back for r in range(m)) / m


def check_local_reach(fn: Callable[[int, int], float]) -> CheckResult:
    """Exercise 3: ``fn(distance, chunk_size)`` → the fraction of queries (spread evenly over the positions of a
    chunk, far from the sequence's start) whose key ``distance`` positions back lies in the query's own chunk of
    ``chunk_size`` or the one before."""
    pairs = [(1, 32), (3, 8), (40, 32), (32, 32), (63, 32), (64, 32), (100, 32), (5, 4), (6, 4), (12, 8)]
    cases = [Case(p, _reach(*p)) for p in pairs]
    mistakes = [
        Mistake(lambda d, m: float(d < 2 * m), "chunks have fixed borders: whether the key is in reach depends on "
                "where the query sits in its chunk. Count the offsets r = 0 … m − 1 whose key r − d is ≥ −m."),
        Mistake(lambda d, m: float(d <= m), "a key up to 2m − 1 back can still be in the previous chunk, for a query "
                "late in its chunk: count offsets, not a yes/no."),
        Mistake(lambda d, m: _reach(d, m, back=0), "a query also sees the chunk before its own (eq. 5)."),
        Mistake(lambda d, m: _reach(d, m) * m, "return a fraction of the queries, not a count."),
    ]
    return grade("Exercise 3 (local_reach)", fn, cases, mistakes)
