"""Lesson 04, reversible layers (paper §3, eqs. 7–9, Table 3): the checks of the two exercises.

Invert a reversible block the lesson did not show, one that updates its streams in the other order
(exercise 1, a transfer of eq. 8), and predict the bytes a reversible LSH stack keeps for the backward pass at
any depth (exercise 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, first_hint, grade, run_cases, same_tensor

__all__ = ["check_invert_swapped_block", "check_reversible_saved_bytes"]

Branch = Callable[[Tensor], Tensor]

_ATOL = 1e-10


def _branches(seed: int) -> tuple[Branch, Branch]:
    """Two different, non-invertible branch functions F and G of width 6 (RevNet: F, G need not be invertible)."""
    g = torch.Generator().manual_seed(seed)
    wf, wg = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(6, 6, generator=g, dtype=torch.float64)
    return (lambda x: torch.tanh(x @ wf)), (lambda x: torch.relu(x @ wg) - 0.5)


def _eq8(f: Branch, g: Branch, y1: Tensor, y2: Tensor) -> tuple[Tensor, Tensor]:
    """The paper's inverse (eq. 8), right for the paper's block and wrong for the swapped one."""
    x2 = y2 - g(y1)
    return y1 - f(x2), x2


def _invert_swapped(f: Branch, g: Branch, y1: Tensor, y2: Tensor) -> tuple[Tensor, Tensor]:
    x1 = y1 - f(y2)
    return x1, y2 - g(x1)


def _invert_cases() -> list[Case]:
    """The swapped block: y2 = x2 + g(x1) first, then y1 = x1 + f(y2)."""
    cases = []
    for seed, shape in ((0, (4, 6)), (1, (2, 5, 6)), (2, (1, 6))):
        f, g = _branches(seed)
        data = torch.Generator().manual_seed(100 + seed)
        x1, x2 = (torch.randn(shape, generator=data, dtype=torch.float64) for _ in range(2))
        y2 = x2 + g(x1)
        y1 = x1 + f(y2)
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
    Mistake(_eq8, "that is eq. 8, the inverse of the paper's block. This block updated x2 first and x1 last, "
            "so undo the last update first: x1 = y1 − f(y2) (y2 is known), then x2 = y2 − g(x1)."),
    Mistake(lambda f, g, y1, y2: _invert_swapped(f, g, y1, y2)[::-1], "return (x1, x2) in that order."),
    Mistake(lambda f, g, y1, y2: (y1 - f(y2), y2 - g(y1)),
            "g saw x1 in the forward pass, not y1: subtract g of the x1 you have just recovered."),
    Mistake(lambda f, g, y1, y2: (y1 + f(y2), y2 + g(y1 + f(y2))),
            "the forward pass added f and g; the inverse subtracts them."),
]


def _invert_verdict(case: Case, got: Any) -> str | None:
    if _same_pair(got, case.want):
        return None
    hint = first_hint(_INVERT_MISTAKES, case.args, lambda wrong: _same_pair(got, wrong))
    if hint is not None:
        return f"your (x1, x2) is off. Hint: {hint}"
    return "your (x1, x2) does not reproduce the block's inputs (return two tensors; tolerance 1e-10)."


def check_invert_swapped_block(fn: Callable[[Branch, Branch, Tensor, Tensor], tuple[Tensor, Tensor]]
                               ) -> CheckResult:
    """Exercise 1: ``fn(f, g, y1, y2)`` → ``(x1, x2)`` for a block that updates its streams in the other order
    than the paper's eq. 7: y2 = x2 + g(x1) first, then y1 = x1 + f(y2).

    A transfer of eq. 8: undo the last update first. ``f`` and ``g`` are not invertible; answers must match
    to 1e-10 (float64).
    """
    return run_cases("Exercise 1 (invert_swapped_block)", fn, _invert_cases(), _invert_verdict)


def _saved(n: int, b: int, l_: int, d: int, h: int, r: int, *, outputs: int = 2, layers_out: bool = False,
           seed_bytes: int = 16, bucket_bytes: int = 1) -> float:
    stored_outputs = outputs * b * l_ * d * 4 * (n if layers_out else 1)
    return float(stored_outputs + seed_bytes * n + bucket_bytes * n * b * h * r * l_)


def check_reversible_saved_bytes(fn: Callable[..., float]) -> CheckResult:
    """Exercise 2: ``fn(n_layers, batch, length, d_model, n_heads, n_hashes)`` → the bytes a reversible LSH stack
    keeps for the backward pass (float32, at most 256 buckets): the last block's two outputs, two int64 seeds per
    block, and every block's buckets as uint8: 2·b·l·d_model·4 + 16·n_l + n_l·b·n_h·n_r·l.

    The cases are depths and sizes the lesson did not show (up to 24 layers, batch 8); the package's own count
    agrees (tests/test_exercises_l04.py measures it)."""
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
