"""Lesson 08, speed and memory against length (paper §5, Figure 5 right): the checks of the two graded exercises.

Exercise 1 predicts a crossover from a cost model before the lesson's measurement shows it; exercise 2 counts
the floating-point work of LSH attention's chunk products, for the paper's window and for a window that also
looks one chunk ahead.
"""

from __future__ import annotations

from collections.abc import Callable

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade

__all__ = ["check_crossover_length", "check_chunk_flops"]


def check_crossover_length(fn: Callable[[float, float, float], float]) -> CheckResult:
    """Exercise 1: per token, full causal attention costs ``a + b·L/2`` seconds (a fixed part and b per key
    compared; a causal query compares L/2 keys on average) and LSH costs ``c`` at any length; ``fn(a, b, c)`` →
    the length L where the two are equal, 2(c − a)/b."""
    triples = [(1e-5, 2e-8, 4e-5), (0.0, 3.5e-7, 4e-5), (2e-6, 1e-9, 1e-5), (5e-6, 4e-7, 5e-6)]
    cases = [Case((a, b, c), 2 * (c - a) / b) for a, b, c in triples]
    mistakes = [
        Mistake(lambda a, b, c: (c - a) / b, "a causal query sees the keys before it, L/2 of them on average, "
                "not all L: solve a + b·L/2 = c."),
        Mistake(lambda a, b, c: 2 * c / b, "the fixed part a is paid by full attention too: subtract it from c."),
        Mistake(lambda a, b, c: 2 * (a - c) / b, "the sign is flipped: full attention catches up with LSH when "
                "b·L/2 = c − a."),
    ]
    return grade("Exercise 1 (crossover_length)", fn, cases, mistakes)


def check_chunk_flops(fn: Callable[[int, int, int, int, int], float]) -> CheckResult:
    """Exercise 2: ``fn(queries, d_head, n_hashes, chunk_size, chunks_seen)`` → FLOPs of one forward pass's chunk
    products: per round and query, logits against ``chunks_seen · chunk_size`` keys and as many values applied,
    each a dot product of ``d_head`` multiply-adds (2 FLOPs each)."""
    settings = [(32768, 64, 4, 128, 3), (16384, 64, 2, 64, 2), (4096, 32, 8, 32, 2), (100, 16, 1, 10, 1)]
    cases = [Case(s, float(2 * 2 * s[0] * s[1] * s[2] * s[3] * s[4])) for s in settings]
    mistakes = [
        Mistake(lambda q, d, r, m, k: 2.0 * q * d * r * m * k, "two products per query and key: the logit q·k "
                "and the weighted value p·v, each d_head multiply-adds of 2 FLOPs."),
        Mistake(lambda q, d, r, m, k: 4.0 * q * d * m * k, "every hash round repeats the work: multiply by n_hashes."),
        Mistake(lambda q, d, r, m, k: 4.0 * q * d * r * m, "a query compares every key of the chunks it sees: "
                "chunks_seen · chunk_size keys, not chunk_size."),
        Mistake(lambda q, d, r, m, k: 4.0 * q * d * r * (m * k) ** 2 / m, "a query compares chunks_seen · m keys; "
                "(chunks_seen · m)² is what one *chunk* of m queries computes, which counts m queries at once."),
    ]
    return grade("Exercise 2 (chunk_flops)", fn, cases, mistakes)
