"""Lesson 07, the duplication task (paper §2.1, Table 2): the checks of the three exercises.

On sequences 0w0w: which positions the loss counts (exercise 1), the key a one-layer model must attend to
(exercise 2), and the paper's masked accuracy (exercise 3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade, grade_tensors

__all__ = ["check_second_copy_mask", "check_needed_key", "check_masked_accuracy"]


def _mask(w_len: int, start: int, stop: int) -> Tensor:
    """A ``[2·(w_len + 1)]`` bool mask, True at positions start … stop − 1."""
    mask = torch.zeros(2 * (w_len + 1), dtype=torch.bool)
    mask[start:stop] = True
    return mask


def _marked_positions(got: Tensor, want: Tensor) -> str:
    expected = want.nonzero().flatten().tolist()
    return (f"expected True at positions {expected[0]}…{expected[-1]}, "
            f"you marked {got.nonzero().flatten().tolist()}.")


def check_second_copy_mask(fn: Callable[[int], Tensor]) -> CheckResult:
    """Exercise 1: ``fn(w_len)`` → the ``[2·(w_len + 1)]`` bool mask of the positions whose target is a symbol of
    the second copy of w (what :meth:`~reformer_lab.data.DuplicationTask.loss_mask` returns)."""
    cases = [Case((n,), _mask(n, n + 1, 2 * n + 1), f"w_len={n}") for n in (1, 3, 7, 63)]
    mistakes = [
        Mistake(lambda n: _mask(n, n + 2, 2 * n + 2),
                "you marked where the second w *sits*; the mask marks the positions whose *target* (the next token) "
                "is in it, one to the left."),
        Mistake(lambda n: _mask(n, n, 2 * n + 1),
                "the target of position |w| is the separator 0: it is fixed, not part of w, and the paper does not "
                "count it."),
        Mistake(lambda n: _mask(n, n + 1, 2 * n + 2),
                "the last position has no next token (its target is padding); stop at 2·|w|."),
        Mistake(lambda n: _mask(n, 0, n + 1),
                "that is the first half; only the second copy of w can be predicted."),
    ]
    return grade_tensors("Exercise 1 (second_copy_mask)", fn, cases, mistakes, what="booleans (a bool mask)",
                         layout="the whole sequence, 2·(|w| + 1)", describe=_marked_positions)


def check_needed_key(fn: Callable[[int, int], int]) -> CheckResult:
    """Exercise 2: ``fn(position, w_len)`` → the position whose token is ``targets[position]`` on the second copy
    of w (the key a one-layer model must attend to): ``position − w_len``."""
    pairs = [(64, 63), (100, 63), (126, 63), (4, 3), (6, 3), (600, 511), (1022, 511)]
    cases = [Case((i, n), float(i - n)) for i, n in pairs]
    mistakes = [
        Mistake(lambda i, n: i - n - 1, "position − (|w| + 1) holds the *current* token's first copy; the model "
                "must predict the next token, which sits one further on: position − |w|."),
        Mistake(lambda i, n: n, "return the key's position, not the distance to it."),
        Mistake(lambda i, n: i - n + 1, "one too close: the period of 0w0w is |w| + 1, and the target is "
                "token position + 1."),
        Mistake(lambda i, n: i + 1, "that is where the target sits in the second copy; the model cannot read "
                "it (causal attention), it must find the same symbol in the first copy."),
    ]
    return grade("Exercise 2 (needed_key)", fn, cases, mistakes)


def _pooled(logits: Tensor, targets: Tensor, mask: Tensor) -> float:
    """The reference: hits over all masked positions of the batch together."""
    return float((logits.argmax(-1)[mask] == targets[mask]).double().mean())


def _per_row(logits: Tensor, targets: Tensor, mask: Tensor) -> float:
    hits = (logits.argmax(-1) == targets) & mask
    return float((hits.sum(1).double() / mask.sum(1).clamp(min=1)).mean())


def _accuracy_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(7)
    cases = []
    for batch, length, vocab in ((2, 8, 5), (3, 16, 7), (4, 10, 3)):
        logits = torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64)
        targets = torch.randint(0, vocab, (batch, length), generator=generator)
        right = torch.rand(batch, length, generator=generator) < 0.5  # make about half the predictions right
        targets = torch.where(right, logits.argmax(-1), targets)
        mask = torch.rand(batch, length, generator=generator) < 0.5
        mask[0, :] = False
        mask[0, 1] = True  # rows with different counts: the per-row average differs from the pooled one
        shown = f"logits of shape {list(logits.shape)}, {int(mask.sum())} masked positions"
        cases.append(Case((logits, targets, mask), _pooled(logits, targets, mask), shown))
    return cases


def check_masked_accuracy(fn: Callable[[Tensor, Tensor, Tensor], float]) -> CheckResult:
    """Exercise 3: ``fn(logits [B, L, V], targets [B, L], mask [B, L] bool)`` → the fraction of masked positions
    whose argmax prediction equals the target, pooled over the batch (the paper's masked accuracy)."""
    mistakes = [
        Mistake(lambda lo, t, m: float((lo.argmax(-1) == t).double().mean()),
                "you averaged over every position; only the masked ones (the second w) count."),
        Mistake(_per_row, "you averaged each sequence first and then the sequences; pool all masked positions "
                "(a sequence with more of them weighs more)."),
        Mistake(lambda lo, t, m: float((lo.argmax(-1)[~m] == t[~m]).double().mean()),
                "you counted the positions where the mask is False; keep those where it is True."),
        Mistake(lambda lo, t, m: float(((lo.argmax(-1) == t) & m).sum()),
                "return a fraction (hits / masked positions), not the number of hits."),
    ]
    return grade("Exercise 3 (masked_accuracy)", fn, _accuracy_cases(), mistakes, rel=1e-6)
