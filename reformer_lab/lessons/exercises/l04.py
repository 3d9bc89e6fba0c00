"""Lesson 04, reversible layers (paper §3, eqs. 7–9, Table 3): the checks of the two exercises.

Recover a reversible block's inputs from its outputs (exercise 1, eq. 8), and count the bytes a reversible
LSH stack keeps for the backward pass (exercise 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, first_hint, grade, run_cases, same_tensor

__all__ = ["check_invert_block", "check_reversible_saved_bytes"]

Branch = Callable[[Tensor], Tensor]

_ATOL = 1e-10


def _branches(seed: int) -> tuple[Branch, Branch]:
    """Two different, non-invertible branch functions F and G of width 6 (RevNet: F, G need not be invertible)."""
    g = torch.Generator().manual_seed(seed)
    wf, wg = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(6, 6, generator=g, dtype=torch.float64)
    return (lambda x: torch.tanh(x @ wf)), (lambda x: torch.relu(x @ wg) - 0.5)


def _invert(f: Branch, g: Branch, y1: Tensor, y2: Tensor) -> tuple[Tensor, Tensor]:
    x2 = y2 - g(y1)
    return y1 - f(x2), x2


def _invert_cases() -> list[Case]:
    cases = []
    for seed, shape in ((0, (4, 6)), (1, (2, 5, 6)), (2, (1, 6))):
        f, g = _branches(seed)
        data = torch.Generator().manual_seed(100 + seed)
        x1, x2 = (torch.randn(shape, generator=data, dtype=torch.float64) for _ in range(2))
        y1 = x1 + f(x2)
        y2 = x2 + g(y1)
        cases.append(Case((f, g, y1, y2), (x1, x2), f"y1 of shape {list(shape)}"))
    return cases


def _same_pair(got: Any, want: tuple[Tensor, Tensor]) -> bool:
    """Whether ``got`` is two tensors within 1e-10 of the two in ``want``."""
    try:
        a, b = got
    except (TypeError, ValueError):
        return False
    return same_tensor(a, want[0], _ATOL) and same_tensor(b, want[1], _ATOL)


_INVERT_MISTAKES = [
    Mistake(lambda f, g, y1, y2: _invert(f, g, y1, y2)[::-1], "return (x1, x2) in that order."),
    Mistake(lambda f, g, y1, y2: (y1 - f(y2), y2 - g(y1)),
            "F was applied to x2, not y2: recover x2 = y2 − g(y1) first, then x1 = y1 − f(x2)."),
    Mistake(lambda f, g, y1, y2: (y1 - g(y2 - f(y1)), y2 - f(y1)),
            "y2 had g (the feed-forward) added, y1 had f: undo g on y2 first, then f on y1."),
    Mistake(lambda f, g, y1, y2: (y1 + f(y2 + g(y1)), y2 + g(y1)),
            "the forward pass added f and g; the inverse subtracts them."),
]


def _invert_verdict(case: Case, got: Any) -> str | None:
    if _same_pair(got, case.want):
        return None
    hint = first_hint(_INVERT_MISTAKES, case.args, lambda wrong: _same_pair(got, wrong))
    if hint is not None:
        return f"your (x1, x2) is off. Hint: {hint}"
    return "your (x1, x2) does not reproduce the block's inputs (return two tensors; tolerance 1e-10)."


def check_invert_block(fn: Callable[[Branch, Branch, Tensor, Tensor], tuple[Tensor, Tensor]]) -> CheckResult:
    """Exercise 1: ``fn(f, g, y1, y2)`` → ``(x1, x2)``, a block's inputs from its outputs (paper eq. 8).

    The block computed y1 = x1 + f(x2), y2 = x2 + g(y1) (eq. 7); answers must match to 1e-10 (float64).
    """
    return run_cases("Exercise 1 (invert_block)", fn, _invert_cases(), _invert_verdict)


def _saved(n: int, b: int, l_: int, d: int, h: int, r: int, *, outputs: int = 2, layers_out: bool = False,
           seed_bytes: int = 16, bucket_bytes: int = 1) -> float:
    stored_outputs = outputs * b * l_ * d * 4 * (n if layers_out else 1)
    return float(stored_outputs + seed_bytes * n + bucket_bytes * n * b * h * r * l_)


def check_reversible_saved_bytes(fn: Callable[..., float]) -> CheckResult:
    """Exercise 2: ``fn(n_layers, batch, length, d_model, n_heads, n_hashes)`` → the bytes a reversible LSH stack
    keeps for the backward pass (float32, at most 256 buckets): the last block's two outputs, two int64 seeds per
    block, and every block's buckets as uint8: 2·b·l·d_model·4 + 16·n_l + n_l·b·n_h·n_r·l."""
    sizes = [(1, 1, 64, 32, 2, 2), (12, 1, 4096, 256, 4, 2), (4, 2, 128, 64, 2, 1), (24, 8, 1024, 512, 8, 4)]
    cases = [Case(args, _saved(*args)) for args in sizes]
    mistakes = [
        Mistake(lambda *a: _saved(*a, layers_out=True),
                "a reversible stack keeps only the *last* block's outputs; earlier ones are recomputed (eq. 8)."),
        Mistake(lambda *a: _saved(*a, outputs=1),
                "both halves are kept: Y₁ and Y₂, each b·l·d_model floats."),
        Mistake(lambda *a: _saved(*a, bucket_bytes=0),
                "the backward pass must reuse every layer's LSH buckets: n_l·b·n_h·n_r·l of them, one byte each."),
        Mistake(lambda *a: _saved(*a, seed_bytes=0),
                "each block keeps its two dropout seeds (F and G), int64: 16 bytes per block."),
        Mistake(lambda *a: _saved(*a, bucket_bytes=8),
                "the buckets are stored compactly as uint8 (at most 256 buckets), not int64."),
        Mistake(lambda *a: _saved(*a, seed_bytes=8),
                "two seeds per block, one for F and one for G: 2 × 8 bytes."),
    ]
    return grade("Exercise 2 (reversible_saved_bytes)", fn, cases, mistakes)
