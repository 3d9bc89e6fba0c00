"""Lesson 05, chunked feed-forward (paper §3, eq. 10, Table 3): the checks of the three exercises.

Run a position-wise feed-forward a chunk of positions at a time (exercise 1, eq. 10), the bytes of the one
chunk alive at once (exercise 2), and Table 3's memory entry for the Reformer (exercise 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade, run_cases, same_tensor

__all__ = ["check_chunked_ff", "check_ff_chunk_bytes", "check_reformer_memory"]


class _Recorder:
    """A position-wise function (y = tanh(x·w) per position) that records how many positions each call saw."""

    def __init__(self, width: int, seed: int) -> None:
        self.w = torch.randn(width, 2 * width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        self.seen: list[int] = []

    def __call__(self, x: Tensor) -> Tensor:
        self.seen.append(int(x.shape[-2]))
        return (x @ self.w).tanh()


def _chunked_ff_cases() -> list[Case]:
    """Fresh recorders each time: a case's ``args`` are ``(ff, x, n_chunks)``."""
    cases = []
    for batch, length, width, n_chunks in [(1, 8, 3, 2), (2, 12, 4, 3), (2, 12, 4, 12), (1, 10, 2, 1), (3, 16, 5, 4)]:
        x = torch.randn(batch, length, width, generator=torch.Generator().manual_seed(length), dtype=torch.float64)
        ff = _Recorder(width, seed=width)
        cases.append(Case((ff, x, n_chunks), (x @ ff.w).tanh(), f"(x of shape {list(x.shape)}, n_chunks={n_chunks})"))
    return cases


def _chunked_ff_verdict(case: Case, got: Any) -> str | None:
    """What is wrong with a chunked feed-forward's answer, in words, or None: shape, calls of ff, values."""
    ff, x, n_chunks = case.args
    want, seen, length = case.want, ff.seen, x.shape[-2]
    if not isinstance(got, Tensor):
        return f"return a tensor, you returned {type(got).__name__}."
    if got.shape != want.shape:
        hint = " Hint: concatenate the chunks along the sequence (dim -2)." if got.shape[-2:] != want.shape[-2:] else ""
        return f"expected shape {list(want.shape)}, you returned {list(got.shape)}.{hint}"
    if not seen:
        return "your function never called ff."
    size = length // n_chunks
    if max(seen) > size:
        return (f"ff saw {max(seen)} positions in one call; eq. 10 runs it on L/n_chunks = {size} at a time. "
                "Hint: split x along the sequence (dim -2), not the batch or the features.")
    if sum(seen) != length:
        return f"ff saw {sum(seen)} positions in all, the sequence has {length}: every position exactly once."
    if not same_tensor(got, want, atol=1e-12):
        return ("the values differ from ff(x) (atol 1e-12). Hint: keep the chunks in order when you "
                "concatenate them (torch.cat along dim -2).")
    return None


def check_chunked_ff(fn: Callable[[Callable[[Tensor], Tensor], Tensor, int], Tensor]) -> CheckResult:
    """Exercise 1: ``fn(ff, x, n_chunks)`` applies a position-wise ``ff`` to ``x`` of shape ``[batch, L, d]`` in
    ``n_chunks`` slices along the sequence (paper eq. 10) and concatenates them.

    Checked: the output equals ``ff(x)`` (float64, atol 1e-12), and ``ff`` never saw more than
    L/n_chunks positions at once (so the d_ff-wide activation is never whole).
    """
    return run_cases("Exercise 1 (chunked_ff)", fn, _chunked_ff_cases(), _chunked_ff_verdict)


def check_ff_chunk_bytes(fn: Callable[[int, int, int, int], float]) -> CheckResult:
    """Exercise 2: ``fn(batch, length, d_ff, n_chunks)`` → bytes (float32) of the d_ff-wide feed-forward
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
    return grade("Exercise 2 (ff_chunk_bytes)", fn, cases, mistakes)


def _reformer(b: int, l_: int, d_model: int, d_ff: int, n_h: int, n_l: int, n_r: int, c: int) -> float:
    return float(max(b * l_ * d_model, b * n_h * l_ * n_r * c))


def check_reformer_memory(fn: Callable[..., float]) -> CheckResult:
    """Exercise 3: ``fn(batch, length, d_model, d_ff, n_heads, n_layers, n_hashes, c)`` → Table 3's memory entry
    for the Reformer row, in elements: max(b·l·d_model, b·n_h·l·n_r·c)."""
    sizes = [(1, 65536, 1024, 4096, 4, 16, 8, 16384), (8, 1024, 4096, 16384, 1, 12, 1, 16),
             (2, 256, 32, 1024, 2, 4, 1, 64), (4, 512, 512, 2048, 2, 3, 2, 4)]
    cases = [Case(args, _reformer(*args)) for args in sizes]
    mistakes = [
        Mistake(lambda b, l_, dm, df, h, n, r, c: _reformer(b, l_, dm, df, h, n, r, c) * n,
                "the Reformer is reversible: activations are stored once, not once per layer (no n_l)."),
        Mistake(lambda b, l_, dm, df, h, n, r, c: float(max(b * l_ * df, b * h * l_ * r * c)),
                "the Reformer chunks its feed-forward, so b·l·d_ff becomes b·l·d_model."),
        Mistake(lambda b, l_, dm, df, h, n, r, c: float(max(b * l_ * dm, b * h * l_ * l_)),
                "LSH attention replaces b·n_h·l² by b·n_h·l·n_r·c."),
        Mistake(lambda b, l_, dm, df, h, n, r, c: float(b * l_ * dm + b * h * l_ * r * c),
                "Table 3 takes the larger of the two terms (max), not their sum."),
        Mistake(lambda b, l_, dm, df, h, n, r, c: float(max(b * l_ * dm, b * h * l_ * c)),
                "each of the n_r hash rounds forms its own logits: × n_hashes."),
        Mistake(lambda b, l_, dm, df, h, n, r, c: float(max(b * l_ * dm, b * l_ * r * c)),
                "every head attends on its own: × n_heads."),
    ]
    return grade("Exercise 3 (reformer_memory)", fn, cases, mistakes)
