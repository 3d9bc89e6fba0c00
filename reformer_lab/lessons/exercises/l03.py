"""Lesson 03, shared-QK and LSH attention (paper §2, eqs. 11–14, Appendix A): the checks of the three exercises.

Combine the hash rounds' outputs by their log-sum-exp weights (exercise 1, eqs. 12–14), count in how many
rounds each key is in a query's window (exercise 2, Appendix A's N_ij), and the causal mask of a chunk's
window (exercise 3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from reformer_lab.attention import sort_by_bucket
from reformer_lab.hashing import hash_vectors
from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade_tensors
from reformer_lab.measure.attention_stats import causal_window_mask, combine_rounds, visit_counts

__all__ = ["check_combine_rounds", "check_visit_counts", "check_causal_window_mask"]


def _combine_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(2003)
    cases = []
    for n_hashes, length, d, offset in [(2, 3, 2, 0.0), (3, 5, 4, 0.0), (4, 6, 3, 2.0), (3, 4, 2, -1e5)]:
        outputs = torch.randn(n_hashes, length, d, generator=generator, dtype=torch.float64)
        lse = offset + 2 * torch.randn(n_hashes, length, generator=generator, dtype=torch.float64)
        shown = f"outputs [{n_hashes}, {length}, {d}] and lse [{n_hashes}, {length}]"
        if offset:
            shown += f" near {offset:g}"
        cases.append(Case((outputs, lse), combine_rounds(outputs, lse), shown))
    return cases


_COMBINE_MISTAKES = [
    Mistake(lambda o, z: o.mean(0),
            "the rounds are not equal: round r counts in proportion to exp(z^(r)), the total (unnormalised) "
            "weight its keys carry (eq. 14)."),
    Mistake(lambda o, z: (z.exp().unsqueeze(-1) * o).sum(0),
            "the weights exp(z^(r)) must be normalised over the rounds: subtract z_i = logsumexp_r z^(r) "
            "(divide by Σ_r exp(z^(r)))."),
    Mistake(lambda o, z: (torch.softmax(z, dim=-1).unsqueeze(-1) * o).sum(0),
            "you normalised over the positions (last dim of lse); normalise over the rounds (dim 0)."),
    Mistake(lambda o, z: (torch.softmax(-z, dim=0).unsqueeze(-1) * o).sum(0),
            "the sign is flipped: a round whose keys carry more weight (larger z^(r)) should count more."),
    Mistake(lambda o, z: o.gather(0, z.argmax(0)[None, :, None].expand(1, *o.shape[1:]))[0],
            "combine all rounds with their weights, not only the round with the largest z^(r)."),
]


def _overflow_diagnosis(outputs: Tensor, lse: Tensor, got: Tensor) -> str | None:
    """The hint for an answer that is right in exact arithmetic but divides 0 by 0 in floating point."""
    if bool(torch.isfinite(got).all()):
        return None
    return ("when every z^(r) is near −1e5 (a query that could see only itself), exp(z) underflows to 0 and "
            "you divide 0 by 0. Subtract the max over rounds first: torch.softmax(lse, dim=0) does it.")


def check_combine_rounds(fn: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """Exercise 1: combine rounds, ``fn(outputs [n_hashes, L, d], lse [n_hashes, L])`` → ``[L, d]``.

    Paper eqs. 12–14: o_i = Σ_r exp(z_i^(r) − z_i) o_i^(r), with z_i = log Σ_r exp(z_i^(r)); within 1e-9.
    """
    return grade_tensors("Exercise 1 (combine_rounds)", fn, _combine_cases(), _COMBINE_MISTAKES, atol=1e-9,
                         diagnose=_overflow_diagnosis)


def _window_counts(buckets: Tensor, chunk: int, *, same_bucket: bool = True, back: bool = True,
                   ahead: bool = False, wrap: bool = False, windowed: bool = True, add: bool = True) -> Tensor:
    """N_ij with one rule changed: the usual ways to get Appendix A's counts wrong."""
    n_hashes, length = buckets.shape
    order = torch.argsort(buckets.long() * length + torch.arange(length), dim=-1)
    chunk_of = torch.argsort(order, dim=-1) // chunk
    counts = torch.zeros(length, length, dtype=torch.int64)
    for r in range(n_hashes):
        q, k = chunk_of[r, :, None], chunk_of[r, None, :]
        seen = k == q
        if back:
            seen = seen | (k == q - 1)
        if ahead:
            seen = seen | (k == q + 1)
        if not windowed:
            seen = torch.ones_like(seen)
        if wrap:
            seen |= (q == 0) & (k == length // chunk - 1)
        if same_bucket:
            seen &= buckets[r, :, None] == buckets[r, None, :]
        counts = counts + seen if add else counts | seen
    return counts


def _visit_cases() -> list[Case]:
    one_bucket = torch.zeros(1, 12, dtype=torch.int64)  # first: every rule of the window shows here
    cases = [Case((one_bucket, 3), visit_counts(one_bucket, 3), "12 positions all in bucket 0 and chunk_size=3")]
    generator = torch.Generator().manual_seed(2020)
    for length, n_buckets, n_hashes, chunk in [(16, 4, 2, 4), (24, 6, 3, 4), (18, 6, 2, 3)]:
        x = torch.randn(length, 6, generator=generator)
        buckets = hash_vectors(x, n_buckets, n_hashes, generator=generator)
        cases.append(Case((buckets, chunk), visit_counts(buckets, chunk),
                          f"buckets [{n_hashes}, {length}] from {n_buckets} buckets and chunk_size={chunk}"))
    crowded = torch.tensor([[0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1]])  # bucket 0 outgrows its window
    cases.append(Case((crowded, 2), visit_counts(crowded, 2), f"buckets {crowded.tolist()} and chunk_size=2"))
    return cases


_VISIT_MISTAKES = [
    Mistake(lambda b, c: _window_counts(b, c, same_bucket=False),
            "only keys in the query's own bucket count (eq. 4): compare the buckets too."),
    Mistake(lambda b, c: _window_counts(b, c, windowed=False),
            "a same-bucket key counts only if its chunk is the query's own or the previous one (eq. 11): a "
            "bucket can outgrow the window."),
    Mistake(lambda b, c: _window_counts(b, c, wrap=True),
            "a round's first chunk looks back at nothing (eq. 11): don't wrap around to the last chunk."),
    Mistake(lambda b, c: _window_counts(b, c, ahead=True),
            "a chunk looks back one chunk, not ahead."),
    Mistake(lambda b, c: _window_counts(b, c, back=False),
            "each chunk also sees the previous chunk of its round."),
    Mistake(lambda b, c: _window_counts(b, c, add=False),
            "N_ij counts rounds: add up the rounds' windows instead of OR-ing them."),
]


def check_visit_counts(fn: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """Exercise 2: Appendix A's N_ij, ``fn(buckets [n_hashes, L], chunk_size)`` → ``[L, L]`` counts.

    N_ij counts the rounds r in which key j is in query i's window: same bucket (eq. 4) and j's chunk is
    i's own or the previous one, after sorting round r by (bucket, position) (eq. 11, no wrap-around).
    """
    return grade_tensors("Exercise 2 (visit_counts)", fn, _visit_cases(), _VISIT_MISTAKES,
                         what="counts (whole numbers)", layout="[L, L], queries by keys")


def _slot_mask(sort_indices: Tensor, chunk: int, *, compare: str = "positions", wrap: bool = False) -> Tensor:
    """The causal window mask with one rule changed (see :func:`check_causal_window_mask`)."""
    positions = sort_indices if compare != "slots" else torch.arange(len(sort_indices))
    q = positions.view(-1, chunk)
    k = torch.cat([q.roll(1, dims=0), q], dim=1)
    if compare == "after-or-self":
        mask = k[:, None, :] >= q[:, :, None]
    elif compare == "before":
        mask = k[:, None, :] < q[:, :, None]
    else:
        mask = k[:, None, :] > q[:, :, None]
    if not wrap:
        mask[0, :, :chunk] = True
    return mask


def _mask_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(1)
    cases = []
    for length, n_buckets, chunk in [(12, 4, 3), (16, 4, 4), (8, 4, 2)]:
        buckets = hash_vectors(torch.randn(length, 4, generator=generator), n_buckets, 1, generator=generator)
        sort_indices = sort_by_bucket(buckets)[0][0]
        cases.append(Case((sort_indices, chunk), causal_window_mask(sort_indices, chunk),
                          f"sort_indices {sort_indices.tolist()} and chunk_size={chunk}"))
    return cases


_MASK_MISTAKES = [
    Mistake(lambda s, c: _slot_mask(s, c, compare="slots"),
            "compare original positions (sort_indices), not sorted slots: after the sort, a later slot can "
            "hold an earlier position (§2: the positions travel with the sort)."),
    Mistake(lambda s, c: _slot_mask(s, c, compare="after-or-self"),
            "don't mask the query's own position: self gets the finite 1e5 penalty instead, so a token with "
            "nothing else to see (position 0) can still attend to itself."),
    Mistake(lambda s, c: _slot_mask(s, c, wrap=True),
            "chunk 0 has no previous chunk (eq. 11): mask its whole look-back half instead of wrapping "
            "around to the last chunk."),
    Mistake(lambda s, c: _slot_mask(s, c, compare="before"),
            "mask keys at *later* positions than the query, not earlier ones."),
]


def check_causal_window_mask(fn: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """Exercise 3: which window keys a causal query may not see, ``fn(sort_indices [L], chunk_size)``.

    Returns bool ``[n_chunks, chunk_size, 2·chunk_size]`` (keys: the previous chunk, then the query's own),
    True where the key's original position is after the query's, or where chunk 0's missing previous
    chunk would be.
    """
    return grade_tensors("Exercise 3 (causal_window_mask)", fn, _mask_cases(), _MASK_MISTAKES, what="booleans",
                         layout="[n_chunks, chunk_size, 2·chunk_size]")
