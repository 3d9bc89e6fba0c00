"""Lesson 02, bucketing, sorting, chunking (paper §2, Figure 2, eq. 5): the checks of the three exercises.

Sort the positions by (bucket, position) (exercise 1), the window of eq. 5 as a mask (exercise 2), and the
share of same-bucket pairs that the chunks lose (exercise 3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade, grade_tensors

__all__ = ["check_sort_by_bucket", "check_window_mask", "check_dropped_fraction"]


def _random_buckets(length: int, n_buckets: int, seed: int) -> Tensor:
    return torch.randint(0, n_buckets, (length,), generator=torch.Generator().manual_seed(seed))


def _sorted_positions(buckets: Tensor) -> Tensor:
    """The reference for exercise 1: positions sorted by the unique key bucket·L + position."""
    return torch.argsort(buckets * len(buckets) + torch.arange(len(buckets)))


def _slots(sort_indices: Tensor) -> Tensor:
    """The inverse permutation: the sorted slot of each position."""
    return torch.empty_like(sort_indices).scatter_(0, sort_indices, torch.arange(len(sort_indices)))


def _sort_diagnosis(buckets: Tensor, got: Tensor) -> str:
    """What a wrong order of positions did, read off the order itself."""
    length = len(buckets)
    if torch.equal(got, torch.sort(buckets).values):
        return "you returned the sorted bucket ids; return the positions, in sorted order (argsort, not sort)."
    if not torch.equal(torch.sort(got).values, torch.arange(length)):
        return f"the answer must be a permutation of the positions 0 … {length - 1}, each exactly once."
    if torch.equal(got, _slots(_sorted_positions(buckets))):
        return "that is the inverse permutation (the sorted slot of each position); return the position at each slot."
    if torch.equal(got, torch.argsort(buckets + torch.arange(length))):
        return "with the key bucket + position, positions outweigh buckets: use bucket·L + position."
    if not bool((buckets[got].diff() >= 0).all()):
        return "the buckets at your sorted slots are not in increasing order: sort by bucket first."
    return "you sorted by bucket only: ties must be broken by position (key bucket·L + position, or a stable sort)."


def check_sort_by_bucket(fn: Callable[[Tensor], Tensor]) -> CheckResult:
    """Exercise 1: ``fn(buckets)`` → the original positions sorted by (bucket, position) (Figure 2c)."""
    inputs = [
        torch.tensor([2, 0, 2, 1, 0, 2, 1, 0]),
        torch.tensor([3, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1, 1]),
        _random_buckets(16, 4, 0),
        _random_buckets(32, 8, 1),
        torch.tensor([5]),
    ]
    cases = [Case((b,), _sorted_positions(b)) for b in inputs]
    return grade_tensors("Exercise 1 (sort_by_bucket)", fn, cases, what="integer indices (positions)",
                         diagnose=_sort_diagnosis)


def _window(
    sort_indices: Tensor,
    chunk_size: int,
    *,
    by_position: bool = False,
    back: int = 1,
    ahead: int = 0,
    wrap: bool = False,
    use_sort: bool = False,
) -> Tensor:
    """Eq. 5's window and its usual mistakes, as an ``[L, L]`` mask over (query, key) positions."""
    length = len(sort_indices)
    if by_position:
        slots = torch.arange(length)
    else:
        slots = sort_indices if use_sort else _slots(sort_indices)
    chunks = slots // chunk_size
    n_chunks = length // chunk_size
    q, k = chunks[:, None], chunks[None, :]
    mask = (k <= q + ahead) & (k >= q - back)
    if wrap and n_chunks > 1:
        mask |= (q == 0) & (k == n_chunks - 1)
    return mask


_WINDOW_MISTAKES = [
    Mistake(lambda s, m: _window(s, m, wrap=True), "the first chunk of a round has no previous chunk."),
    Mistake(lambda s, m: _window(s, m, back=0), "each chunk also attends to the previous chunk (eq. 5)."),
    Mistake(
        lambda s, m: _window(s, m, ahead=1),
        "a chunk looks back one chunk, never forward: keys in the next chunk are outside the window.",
    ),
    Mistake(
        lambda s, m: _window(s, m, ahead=1, back=0),
        "rows are queries and columns keys: query i looks back, so the mask is transposed.",
    ),
    Mistake(
        lambda s, m: _window(s, m, by_position=True),
        "chunks are cut in the sorted order: the chunk of position i is ⌊s_i/m⌋, s_i its sorted slot "
        "(not ⌊i/m⌋), and the mask is indexed by positions (row = query position i), not by slots.",
    ),
    Mistake(
        lambda s, m: _window(s, m, use_sort=True),
        "sort_indices[s] is the position at slot s; you need the slot of each position (its inverse).",
    ),
]


def check_window_mask(fn: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """Exercise 2: ``fn(sort_indices, chunk_size)`` → eq. 5's window P̃ as an ``[L, L]`` bool mask.

    ``mask[i, j]`` is True when key position j sits in query position i's own chunk or the previous one
    of the sorted order.
    """
    orders = [
        (_sorted_positions(_random_buckets(16, 4, 2)), 4),
        (_sorted_positions(_random_buckets(12, 4, 3)), 3),
        (_sorted_positions(_random_buckets(24, 8, 4)), 6),
        (torch.tensor([3, 0, 1, 2]), 4),
        (torch.tensor([5, 2, 4, 0, 3, 1]), 2),
    ]
    cases = [Case((order, m), _window(order, m)) for order, m in orders]
    return grade_tensors("Exercise 2 (window_mask)", fn, cases, _WINDOW_MISTAKES, what="booleans (a bool mask)",
                         layout="[L, L], queries by keys")


def _dropped(
    buckets: Tensor,
    n_buckets: int,
    *,
    chunk: int | None = None,
    causal: bool = True,
    with_self: bool = False,
    own_only: bool = False,
    kept: bool = False,
    count: bool = False,
) -> float:
    """Share of causal same-bucket pairs outside the window, and the usual ways to get it wrong."""
    length = len(buckets)
    chunk = chunk or 2 * length // n_buckets
    positions = torch.arange(length)
    if causal:
        pairs = positions[None, :] <= positions[:, None] if with_self else positions[None, :] < positions[:, None]
    else:
        pairs = positions[None, :] != positions[:, None]
    same = (buckets[:, None] == buckets[None, :]) & pairs
    lost = same & ~_window(_sorted_positions(buckets), chunk, back=0 if own_only else 1)
    total = int(same.sum())
    if count:
        return float(lost.sum())
    share = 0.0 if total == 0 else int(lost.sum()) / total
    return 1.0 - share if kept else share


_DROPPED_MISTAKES = [
    Mistake(
        lambda b, n: _dropped(b, n, chunk=len(b) // n),
        "chunk size must be 2·L/n_buckets: each chunk holds twice the mean bucket size.",
    ),
    Mistake(
        lambda b, n: _dropped(b, n, with_self=True),
        "count pairs of distinct positions (j < i): i itself is always in its own chunk.",
    ),
    Mistake(
        lambda b, n: _dropped(b, n, causal=False),
        "causal attention: only keys before the query (j < i) belong to P_i.",
    ),
    Mistake(
        lambda b, n: _dropped(b, n, own_only=True),
        "a query also sees the previous chunk: only keys two or more chunks back are lost.",
    ),
    Mistake(lambda b, n: _dropped(b, n, kept=True), "that is the share kept; return the share lost."),
    Mistake(
        lambda b, n: _dropped(b, n, count=True),
        "return a fraction of all same-bucket pairs, not a count.",
    ),
]


def check_dropped_fraction(fn: Callable[[Tensor, int], float]) -> CheckResult:
    """Exercise 3: ``fn(buckets, n_buckets)`` → share of causal same-bucket pairs (j < i) lost.

    A pair is lost when the key is outside the query's window (own or previous chunk of the sorted order,
    chunk size m = 2·L/n_buckets).
    """
    inputs = [
        (torch.tensor([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3]), 8),
        (torch.tensor([1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1]), 6),
        (torch.tensor([5, 5, 5, 5, 5, 5, 5, 5, 0, 1, 2, 3, 4, 6, 7, 5]), 8),
        (_random_buckets(64, 2, 5) * 7, 16),  # two big buckets, ids 0 and 7
        (torch.tensor([0, 1, 2, 3]), 4),
    ]
    cases = [Case((b, n), _dropped(b, n)) for b, n in inputs]
    return grade("Exercise 3 (dropped_fraction)", fn, cases, _DROPPED_MISTAKES, rel=1e-6)
