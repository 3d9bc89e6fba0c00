"""Lesson 05, chunked feed-forward (paper §3, eq. 10, Table 3): the checks of the three exercises.

Predict the bytes of the one feed-forward chunk alive at once (exercise 1), pick the fewest chunks k that fit a
memory budget (exercise 2, a transfer: eq. 10 needs equal chunks), and Table 3's Reformer row in bytes at the
paper's size, with c counted as the keys a query actually compares (exercise 3). A passing check of exercise 2 or 3
ends with the answer to the notebook's "predict first" question, so the reader can compare.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade
from reformer_lab.measure.memory import format_bytes

__all__ = ["check_fewest_ff_chunks", "check_ff_chunk_bytes", "check_reformer_bytes"]

#: Exercise 2's "predict first": one sequence of 48 positions, d_ff 1024, a budget of 40,000 bytes.
FEWEST_PREDICTION = (1, 48, 1024, 40_000)

#: Exercise 3's "predict first": 64K tokens at the paper's sizes (§5: d_model 1024, d_ff 4096, 8 heads, total
#: batch 8), 12 layers, 2 hash rounds, chunks of 128 (the same as the check's second case).
REFORMER_PREDICTION = (8, 65536, 1024, 4096, 8, 12, 2, 128)


def _with_reveal(result: CheckResult, reveal: str) -> CheckResult:
    """A passing result with the answer to the notebook's prediction appended; any other result unchanged."""
    if not result.passed:
        return result
    return CheckResult(result.exercise, True, f"{result.message} {reveal}")


def check_ff_chunk_bytes(fn: Callable[[int, int, int, int], float]) -> CheckResult:
    """Exercise 1: ``fn(batch, length, d_ff, n_chunks)`` → bytes (float32) of the d_ff-wide feed-forward
    activation alive at once when the feed-forward runs ``n_chunks`` chunks (eq. 10)."""
    cases = [Case((1, 256, 1024, 1), 1048576.0), Case((1, 256, 1024, 8), 131072.0),
             Case((8, 4096, 4096, 64), 8388608.0), Case((2, 65536, 4096, 16), 134217728.0)]
    mistakes = [
        Mistake(lambda b, n, f, c: 4.0 * b * n * f, "with n_chunks chunks only L/n_chunks positions are alive."),
        Mistake(lambda b, n, f, c: 1.0 * b * (n // c) * f, "that is a count of floats; each takes 4 bytes."),
        Mistake(lambda b, n, f, c: 4.0 * (n // c) * f, "each sequence of the batch has its own activations: × batch."),
        Mistake(lambda b, n, f, c: 4.0 * b * (n // c) * f / c, "divide by n_chunks once: a chunk holds L/n_chunks "
                "positions, each d_ff wide."),
    ]
    return grade("Exercise 1 (ff_chunk_bytes)", fn, cases, mistakes)


def _fewest(batch: int, length: int, d_ff: int, budget: int, *, per_value: int = 4, with_batch: bool = True,
            strict: bool = False) -> int:
    """The smallest divisor k of ``length`` whose chunk, b·(length/k)·d_ff·4 bytes, fits in ``budget``."""
    for c in range(1, length + 1):
        if length % c:
            continue
        size = (batch if with_batch else 1) * (length // c) * d_ff * per_value
        if size < budget or (size == budget and not strict):
            return c
    raise ValueError("no chunk count fits")  # the cases below always fit at c = length


def check_fewest_ff_chunks(fn: Callable[[int, int, int, int], int]) -> CheckResult:
    """Exercise 2: ``fn(batch, length, d_ff, budget_bytes)`` → the fewest chunks k (a divisor of ``length``: eq. 10
    splits into equal chunks, and we do not pad) such that one chunk's d_ff-wide activation, float32, fits in
    ``budget_bytes`` (≤). Every case fits at k = length."""
    sizes = [(1, 256, 1024, 2**18), (1, 48, 1024, 40_000), (8, 4096, 4096, 2**30), (2, 65536, 4096, 2**24),
             (1, 100, 64, 1000)]
    cases = [Case(args, _fewest(*args)) for args in sizes]
    mistakes = [
        Mistake(lambda b, n, f, budget: _fewest(b, n, f, budget, strict=True),
                "a chunk that fills the budget exactly still fits (≤, not <)."),
        Mistake(lambda b, n, f, budget: n // _fewest(b, n, f, budget),
                "that is the positions per chunk, L/k; return the number of chunks k."),
        Mistake(lambda b, n, f, budget: math.ceil(4 * b * n * f / budget),
                "eq. 10 needs equal chunks, so k must divide the length: take the smallest divisor of the length "
                "that is at least the ratio you computed."),
        Mistake(lambda b, n, f, budget: _fewest(b, n, f, budget, per_value=1),
                "the budget is in bytes, and each float32 value takes 4."),
        Mistake(lambda b, n, f, budget: _fewest(b, n, f, budget, with_batch=False),
                "every sequence of the batch has its own chunk of activations: × batch."),
    ]
    result = grade("Exercise 2 (fewest_ff_chunks)", fn, cases, mistakes)
    b, n, f, budget = FEWEST_PREDICTION
    k, whole = _fewest(*FEWEST_PREDICTION), 4 * b * n * f
    by_size = math.ceil(whole / budget)
    return _with_reveal(result, (
        f"The prediction ({n} positions, d_ff {f}, {budget:,} bytes): k = {k}. By size alone {by_size} chunks would "
        f"do ({whole:,} bytes ÷ {by_size} ≤ {budget:,}), but {by_size} does not divide {n}; {k} chunks of {n // k} "
        f"positions take {4 * b * (n // k) * f:,} bytes."))


def _reformer_bytes(b: int, l_: int, d_model: int, d_ff: int, n_h: int, n_l: int, n_r: int, m: int, *,
                    c: int | None = None, width: int | None = None, layers: int = 1, per_value: int = 4,
                    combine: Callable[[int, int], int] = max) -> float:
    c = 2 * m if c is None else c
    width = d_model if width is None else width
    return float(per_value * combine(b * l_ * width, b * n_h * l_ * n_r * c) * layers)


def check_reformer_bytes(fn: Callable[..., float]) -> CheckResult:
    """Exercise 3: ``fn(batch, length, d_model, d_ff, n_heads, n_layers, n_hashes, chunk_size)`` → Table 3's
    memory entry for the Reformer row in bytes (float32), with c = the keys a query compares per round, 2·chunk_size:
    4·max(b·l·d_model, b·n_h·l·n_r·2·chunk_size)."""
    # the first case has odd n_heads and n_hashes so that every mistake below gives a different number; the
    # second is a 64K-token model with the paper's sizes (§5: d_model 1024, d_ff 4096, 8 heads, batch 8,
    # chunks of 128) and 2 rounds, where the attention term wins; in the third d_model's term wins
    sizes = [(2, 4096, 64, 2048, 3, 6, 5, 32), (8, 65536, 1024, 4096, 8, 12, 2, 128),
             (1, 4096, 512, 2048, 2, 6, 1, 64), (2, 256, 32, 1024, 2, 4, 1, 32)]
    cases = [Case(args, _reformer_bytes(*args)) for args in sizes]
    mistakes = [
        Mistake(lambda b, n, dm, df, h, ly, r, m: _reformer_bytes(b, n, dm, df, h, ly, r, m, c=(4 * m) ** 2),
                "that is Table 3's c = (4l/n_c)² = (4·chunk_size)². A query compares the keys of its own chunk and "
                "the previous one: c = 2·chunk_size."),
        Mistake(lambda b, n, dm, df, h, ly, r, m: _reformer_bytes(b, n, dm, df, h, ly, r, m, c=m),
                "a query also attends one chunk back: 2·chunk_size keys, not chunk_size."),
        Mistake(lambda b, n, dm, df, h, ly, r, m: _reformer_bytes(b, n, dm, df, h, ly, r, m, layers=ly),
                "the Reformer is reversible: activations are stored once, not once per layer (no n_l)."),
        Mistake(lambda b, n, dm, df, h, ly, r, m: _reformer_bytes(b, n, dm, df, h, ly, r, m, width=df),
                "the Reformer chunks its feed-forward, so b·l·d_ff becomes b·l·d_model."),
        Mistake(lambda b, n, dm, df, h, ly, r, m: _reformer_bytes(b, n, dm, df, h, ly, r, m, per_value=1),
                "that is a count of values; in float32 each takes 4 bytes."),
        Mistake(lambda b, n, dm, df, h, ly, r, m: _reformer_bytes(b, n, dm, df, h, ly, r, m,
                                                                  combine=lambda u, v: u + v),
                "Table 3 takes the larger of the two terms (max), not their sum."),
        Mistake(lambda b, n, dm, df, h, ly, r, m: _reformer_bytes(b, n, dm, df, h, ly, 1, m),
                "each of the n_r hash rounds forms its own logits: × n_hashes."),
        Mistake(lambda b, n, dm, df, h, ly, r, m: _reformer_bytes(b, n, dm, df, 1, ly, r, m),
                "every head attends on its own: × n_heads."),
    ]
    result = grade("Exercise 3 (reformer_bytes)", fn, cases, mistakes)
    b, n, d_model, _, h, _, r, m = REFORMER_PREDICTION
    activations, attention = 4 * b * n * d_model, 4 * b * h * n * r * 2 * m
    bigger, smaller = ("attention", "the activations") if attention > activations else ("the activations", "attention")
    paper_c = _reformer_bytes(*REFORMER_PREDICTION, c=(4 * m) ** 2)
    counted = max(attention, activations)
    return _with_reveal(result, (
        f"The prediction (b = {b}, l = {n:,}, {h} heads, {r} rounds, chunks of {m}): {bigger} is larger, "
        f"{format_bytes(counted)} against {format_bytes(min(attention, activations))} for "
        f"{smaller}. n_layers drops out (reversible layers store one layer) and d_ff too (the chunked feed-forward). "
        f"With Table 3's c = (4·{m})² it would read {format_bytes(paper_c)}, {paper_c / counted:,.0f}× more."))
