"""Lesson 02, bucketing, sorting, chunking (paper §2, Figure 2, eq. 5): the checks of the three exercises.

Each one asks for something the lesson did not write out: eq. 5's window with a look-ahead, as the authors' code
offers for attention that is not causal (exercise 1); how many causal pairs one bucket loses, from where it sits in
the sorted order (exercise 2); and a bucket sequence that makes a bucket of m + 2 lose a pair (exercise 3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, as_answer_tensor, grade, grade_tensors, run_cases

__all__ = ["check_lookahead_window", "check_lost_pairs", "check_losing_buckets"]


def _random_buckets(length: int, n_buckets: int, seed: int) -> Tensor:
    return torch.randint(0, n_buckets, (length,), generator=torch.Generator().manual_seed(seed))


def _sorted_positions(buckets: Tensor) -> Tensor:
    """Positions sorted by the unique key bucket·L + position."""
    return torch.argsort(buckets * len(buckets) + torch.arange(len(buckets)))


def _slots(sort_indices: Tensor) -> Tensor:
    """The inverse permutation: the sorted slot of each position."""
    return torch.empty_like(sort_indices).scatter_(0, sort_indices, torch.arange(len(sort_indices)))


# Exercise 1: a window that also looks ahead -------------------------------------------------------------------


def _window(
    sort_indices: Tensor,
    chunk_size: int,
    chunks_after: int,
    *,
    back: int = 1,
    by_position: bool = False,
    use_sort: bool = False,
    wrap: bool = False,
) -> Tensor:
    """``mask[i, j]``: key position j's chunk is within ``back`` chunks before and ``chunks_after`` after query
    position i's chunk, in the sorted order (and the usual ways to get it wrong)."""
    length = len(sort_indices)
    if by_position:
        slots = torch.arange(length)
    else:
        slots = sort_indices if use_sort else _slots(sort_indices)
    chunks = slots // chunk_size
    q, k = chunks[:, None], chunks[None, :]
    mask = (k >= q - back) & (k <= q + chunks_after)
    n_chunks = length // chunk_size
    if wrap:
        mask |= (k - q) % n_chunks <= chunks_after
        mask |= (q - k) % n_chunks <= back
    return mask


_LOOKAHEAD_MISTAKES = [
    Mistake(lambda s, m, a: _window(s, m, 0), "the look-ahead is missing: a query also sees the next chunks_after "
            "chunks of the sorted order."),
    Mistake(lambda s, m, a: _window(s, m, a, back=0), "the look-back is gone: eq. 5's previous chunk stays in the "
            "window; chunks_after only adds chunks after it."),
    Mistake(lambda s, m, a: _window(s, m, 1), "chunks_after can be 0, 1, 2, …: look ahead that many chunks, not "
            "always one."),
    Mistake(lambda s, m, a: _window(s, m, a).T, "rows are queries and columns keys: your mask is transposed (it "
            "looks back chunks_after chunks and ahead one)."),
    Mistake(lambda s, m, a: _window(s, m, a, wrap=True), "the chunks do not wrap around: the first chunk has no "
            "previous chunk and the last none after it."),
    Mistake(lambda s, m, a: _window(s, m, a, by_position=True),
            "chunks are cut in the sorted order: the chunk of position i is ⌊s_i/m⌋ with s_i its sorted slot (not "
            "⌊i/m⌋), and the mask is indexed by positions."),
    Mistake(lambda s, m, a: _window(s, m, a, use_sort=True),
            "sort_indices[s] is the position at slot s; you need the slot of each position (its inverse)."),
]


def check_lookahead_window(fn: Callable[[Tensor, int, int], Tensor]) -> CheckResult:
    """Exercise 1: ``fn(sort_indices, chunk_size, chunks_after)`` → an ``[L, L]`` bool mask over positions.

    ``mask[i, j]`` is True when key position j's chunk of the sorted order is query position i's own chunk, the
    one before it, or one of the ``chunks_after`` chunks after it (eq. 5 plus a look-ahead); no wrap-around.
    """
    settings = [
        (_sorted_positions(_random_buckets(16, 4, 2)), 4, 1),
        (_sorted_positions(_random_buckets(24, 8, 4)), 4, 2),
        (_sorted_positions(_random_buckets(12, 4, 3)), 3, 0),
        (torch.tensor([5, 2, 4, 0, 3, 1]), 2, 1),
        (_sorted_positions(_random_buckets(32, 16, 6)), 4, 3),
    ]
    cases = [Case((s, m, a), _window(s, m, a), f"sort_indices of length {len(s)}, chunk_size={m}, chunks_after={a}")
             for s, m, a in settings]
    return grade_tensors("Exercise 1 (lookahead_window)", fn, cases, _LOOKAHEAD_MISTAKES,
                         what="booleans (a bool mask)", layout="[L, L], queries by keys")


# Exercise 2: how many pairs one bucket loses -----------------------------------------------------------------


def _lost(size: int, start: int, chunk: int, *, ignore_start: bool = False, back: int = 1, self_pairs: bool = False,
          both_ways: bool = False) -> int:
    """Causal pairs (key before query) of a bucket at slots start … start + size − 1 that fall outside eq. 5's
    window, counted pair by pair (and the usual ways to get it wrong)."""
    slots = torch.arange(size) + (0 if ignore_start else start)
    chunks = slots // chunk
    q, k = chunks[:, None], chunks[None, :]
    earlier = torch.arange(size)[None, :] < torch.arange(size)[:, None]
    if self_pairs:
        earlier = earlier | torch.eye(size, dtype=torch.bool)
    if both_ways:
        earlier = ~torch.eye(size, dtype=torch.bool)
        return int((((q - k).abs() > back) & earlier).sum())
    return int(((q - k > back) & earlier).sum())


_LOST_MISTAKES = [
    Mistake(lambda s, a, m: _lost(s, a, m, ignore_start=True),
            "where the bucket starts matters: its slots are start_slot … start_slot + bucket_size − 1, and the chunk "
            "borders fall at multiples of chunk_size in the whole sorted sequence, not in the bucket."),
    Mistake(lambda s, a, m: _lost(s, a, m, back=0),
            "a query also sees the chunk before its own: only keys two or more chunks back are lost."),
    Mistake(lambda s, a, m: _lost(s, a, m, both_ways=True),
            "causal attention: a query only needs keys earlier in the sequence, which in a bucket sit in earlier "
            "slots; count each lost pair once, from the later query."),
    Mistake(lambda s, a, m: _lost(s, a, m, back=2),
            "a key two chunks back is already lost: the window is the query's chunk and one chunk before it."),
]


def check_lost_pairs(fn: Callable[[int, int, int], int]) -> CheckResult:
    """Exercise 2: ``fn(bucket_size, start_slot, chunk_size)`` → how many causal same-bucket pairs are lost.

    The bucket fills the sorted slots ``start_slot … start_slot + bucket_size − 1`` (sorting keeps a bucket's
    positions in order, so its earlier slots hold its earlier positions); chunks are slots ⌊s/m⌋; a pair is lost
    when the key's chunk is two or more chunks before the query's.
    """
    triples = [(10, 21, 4), (6, 3, 4), (6, 4, 4), (5, 3, 4), (20, 5, 4), (9, 0, 3), (1, 7, 2), (40, 13, 8)]
    cases = [Case(t, _lost(*t)) for t in triples]
    return grade("Exercise 2 (lost_pairs)", fn, cases, _LOST_MISTAKES)


# Exercise 3: a bucket of m + 2 that loses a pair --------------------------------------------------------------


def _losses(buckets: Tensor, chunk: int) -> tuple[int, int]:
    """(largest bucket size, causal same-bucket pairs outside eq. 5's window) with chunks of ``chunk`` slots."""
    length = len(buckets)
    positions = torch.arange(length)
    chunks = _slots(_sorted_positions(buckets)) // chunk
    same = (buckets[:, None] == buckets[None, :]) & (positions[None, :] < positions[:, None])
    lost = same & (chunks[None, :] < chunks[:, None] - 1)
    return int(torch.bincount(buckets).max()), int(lost.sum())


def _losing_verdict(case: Case, got: object) -> str | None:
    (m,) = case.args
    like = torch.zeros(1, dtype=torch.long)
    buckets = as_answer_tensor(got, like)
    if buckets is None or buckets.dim() != 1 or len(buckets) == 0:
        return f"expected a 1-D tensor of bucket ids (whole numbers), you returned {got!r:.80}."
    if int(buckets.min()) < 0:
        return "bucket ids are 0, 1, 2, …: no negative ids."
    if len(buckets) % m:
        return (f"the sequence is cut into chunks of m = {m}, so its length must be a multiple of {m}; "
                f"yours is {len(buckets)}.")
    largest, lost = _losses(buckets, m)
    if largest < m + 2:
        hint = (" A bucket of m + 1 never loses a causal pair: m + 1 consecutive slots touch at most two chunks, and a "
                "query's window is its own chunk and the one before." if largest == m + 1 else "")
        return f"your largest bucket has {largest} positions; it must have m + 2 = {m + 2}.{hint}"
    if largest > m + 2:
        return f"your largest bucket has {largest} positions; the question is about exactly m + 2 = {m + 2}."
    if lost == 0:
        return (f"your bucket of {m + 2} loses no causal pair: it fits in two neighbouring chunks. Hint: m + 2 slots "
                f"span three chunks only if the bucket starts at the last slot of a chunk; put a bucket with a smaller "
                f"id before it to push it there.")
    return None


def check_losing_buckets(fn: Callable[[int], Tensor]) -> CheckResult:
    """Exercise 3: ``fn(m)`` → bucket ids (1-D, length a multiple of m) whose largest bucket holds exactly m + 2
    positions and loses at least one causal same-bucket pair when the sorted sequence is cut into chunks of m."""
    cases = [Case((m,), None, f"m={m}") for m in (2, 3, 4, 8)]
    return run_cases("Exercise 3 (losing_buckets)", fn, cases, _losing_verdict)
