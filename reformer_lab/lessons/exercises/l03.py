"""Lesson 03, shared-QK and LSH attention (paper §2, eqs. 11–16, Appendix A): the checks of the three exercises.

Exercise 1 is predict-then-check: one row of Appendix A's N_ij, worked out by hand for the buckets in
:data:`NIJ_BUCKETS`. Exercises 2 and 3 are transfer tasks: N_ij for a window that also looks one chunk *ahead*
(what the authors' code allows for an encoder), and eqs. 12–14's combination of logsumexps reused to merge
softmax attention computed over blocks of keys.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from reformer_lab.attention import SELF_PENALTY, unit_keys
from reformer_lab.hashing import hash_vectors
from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade_tensors

__all__ = [
    "NIJ_BUCKETS",
    "NIJ_CHUNK_SIZE",
    "NIJ_QUERY",
    "check_lookahead_counts",
    "check_merge_key_blocks",
    "check_nij_by_hand",
]

#: Exercise 1's buckets: 2 rounds (rows) of 12 positions, 6 buckets, so chunks of 2·12/6 = 4.
NIJ_BUCKETS = torch.tensor([
    [5, 4, 5, 3, 1, 5, 0, 5, 1, 5, 0, 2],
    [1, 3, 1, 1, 1, 1, 0, 1, 0, 3, 3, 1],
])  # fmt: skip
#: Exercise 1's chunk length m (``chunk_size``).
NIJ_CHUNK_SIZE = 4
#: Exercise 1's query: the reader gives row ``NIJ_QUERY`` of N_ij.
NIJ_QUERY = 2


def _window_counts(buckets: Tensor, chunk: int, *, same_bucket: bool = True, back: bool = True,
                   ahead: bool = False, wrap: bool = False, windowed: bool = True, add: bool = True) -> Tensor:
    """N_ij ``[L, L]`` from ``buckets [n_hashes, L]`` under one window rule: ours is the default.

    Per round: sort by (bucket, position), cut into chunks of ``chunk``; key j counts for query i when j's
    chunk is i's own, the previous one (``back``) or the next one (``ahead``), never wrapping around the
    round's ends unless ``wrap``; and when they share the bucket (``same_bucket``). ``windowed=False``
    ignores the chunks (the paper's text: every round that shares the bucket); ``add=False`` ORs the rounds.
    """
    n_hashes, length = buckets.shape
    n_chunks = length // chunk
    order = torch.argsort(buckets.long() * length + torch.arange(length), dim=-1)
    chunk_of = torch.argsort(order, dim=-1) // chunk
    counts = torch.zeros(length, length, dtype=torch.int64)
    for r in range(n_hashes):
        q, k = chunk_of[r, :, None], chunk_of[r, None, :]
        seen = k == q
        if back:
            seen = seen | (k == q - 1)
            if wrap:
                seen = seen | ((q == 0) & (k == n_chunks - 1))
        if ahead:
            seen = seen | (k == q + 1)
            if wrap:
                seen = seen | ((q == n_chunks - 1) & (k == 0))
        if not windowed:
            seen = torch.ones_like(seen)
        if same_bucket:
            seen = seen & (buckets[r, :, None] == buckets[r, None, :])
        counts = counts + seen if add else counts | seen
    return counts


# Exercise 1: one row of N_ij by hand ------------------------------------------------------------------------


def _row(counts: Tensor) -> Tensor:
    return counts[NIJ_QUERY]


def _without_self(counts: Tensor) -> Tensor:
    row = _row(counts).clone()
    row[NIJ_QUERY] = 0
    return row


_BY_HAND = lambda **rule: (lambda: _row(_window_counts(NIJ_BUCKETS, NIJ_CHUNK_SIZE, **rule)))  # noqa: E731

_BY_HAND_MISTAKES = [
    Mistake(_BY_HAND(windowed=False),
            "you counted every round in which j shares i's bucket: that is the paper's text read literally "
            "(P_i^(r) is the whole bucket). This lesson counts a round only where the chunked window actually "
            "reached j: in round 1, query 2's bucket has 7 members and its window reaches only some of them."),
    Mistake(_BY_HAND(back=False),
            "each chunk also looks at the previous chunk of its round (eq. 11): in round 0, query 2's chunk "
            "looks back into the chunk before it."),
    Mistake(_BY_HAND(ahead=True),
            "a chunk looks back one chunk, not ahead: a bucket-mate in the next chunk is not visited."),
    Mistake(_BY_HAND(wrap=True),
            "a round's first chunk looks back at nothing (eq. 11): do not wrap around to the round's last chunk."),
    Mistake(_BY_HAND(same_bucket=False),
            "only keys in the query's own bucket of that round count (eq. 4), not every key in the window."),
    Mistake(_BY_HAND(add=False),
            "N_ij counts rounds: a key visited in both rounds gets 2, not 1 (the query itself, for one)."),
    Mistake(lambda: _without_self(_window_counts(NIJ_BUCKETS, NIJ_CHUNK_SIZE)),
            "a query is always in its own window, in every round, so N_ii = n_hashes; the 1e5 self penalty is "
            "applied on top of the count, not instead of it."),
]


def check_nij_by_hand(fn: Callable[[], object]) -> CheckResult:
    """Exercise 1: ``fn()`` returns row :data:`NIJ_QUERY` of N_ij for :data:`NIJ_BUCKETS`, chunks of 4.

    N_ij = the number of rounds r in which key j is in query i's window: same bucket in round r, and j's
    chunk is i's own or the one before, after sorting round r by (bucket, position); no wrap-around.
    """
    want = _window_counts(NIJ_BUCKETS, NIJ_CHUNK_SIZE)[NIJ_QUERY]
    case = Case((), want, f"query {NIJ_QUERY}'s row (12 whole numbers, keys j = 0 … 11)")
    result = grade_tensors("Exercise 1 (nij_by_hand)", fn, [case], _BY_HAND_MISTAKES,
                           what="counts (whole numbers)", layout="one count per key j")
    return CheckResult(result.exercise, True, "your row is right.") if result.passed else result


# Exercise 2: N_ij when a chunk also looks ahead --------------------------------------------------------------


def _lookahead_cases() -> list[Case]:
    one_bucket = torch.zeros(1, 12, dtype=torch.int64)  # first: every rule of the window shows here
    reference = lambda b, c: _window_counts(b, c, ahead=True)  # noqa: E731
    cases = [Case((one_bucket, 3), reference(one_bucket, 3), "12 positions all in bucket 0 and chunk_size=3")]
    generator = torch.Generator().manual_seed(2020)
    for length, n_buckets, n_hashes, chunk in [(16, 4, 2, 4), (24, 6, 3, 4), (18, 6, 2, 3)]:
        buckets = hash_vectors(torch.randn(length, 6, generator=generator), n_buckets, n_hashes, generator=generator)
        cases.append(Case((buckets, chunk), reference(buckets, chunk),
                          f"buckets [{n_hashes}, {length}] from {n_buckets} buckets and chunk_size={chunk}"))
    cases.append(Case((NIJ_BUCKETS, NIJ_CHUNK_SIZE), reference(NIJ_BUCKETS, NIJ_CHUNK_SIZE),
                      "exercise 1's buckets and chunk_size=4"))
    return cases


_LOOKAHEAD_MISTAKES = [
    Mistake(lambda b, c: _window_counts(b, c),
            "that is the look-back window of the lesson; add the next chunk of the round too."),
    Mistake(lambda b, c: _window_counts(b, c, back=False, ahead=True),
            "keep the previous chunk: the window is the previous, the own and the next chunk."),
    Mistake(lambda b, c: _window_counts(b, c, ahead=True, wrap=True),
            "no wrap-around: a round's first chunk has no previous chunk and its last chunk no next one."),
    Mistake(lambda b, c: _window_counts(b, c, ahead=True, same_bucket=False),
            "only keys in the query's own bucket of that round count (eq. 4)."),
    Mistake(lambda b, c: _window_counts(b, c, windowed=False),
            "a same-bucket key counts only when its chunk is within one of the query's: a bucket can outgrow "
            "even the three-chunk window."),
    Mistake(lambda b, c: _window_counts(b, c, ahead=True, add=False),
            "N_ij counts rounds: add up the rounds' windows instead of OR-ing them."),
]


def check_lookahead_counts(fn: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """Exercise 2: N_ij when each chunk sees the previous, its own and the next chunk of its round.

    ``fn(buckets [n_hashes, L], chunk_size)`` → ``[L, L]`` counts; same bucket only, no wrap-around.
    """
    return grade_tensors("Exercise 2 (lookahead_counts)", fn, _lookahead_cases(), _LOOKAHEAD_MISTAKES,
                         what="counts (whole numbers)", layout="[L, L], queries by keys")


# Exercise 3: merge attention computed over blocks of keys ---------------------------------------------------

#: The mask value for keys at later positions in exercise 3's causal cases (the authors' code uses −1e9).
_CAUSAL_PENALTY = 1e9


def _key_blocks(length: int, d: int, n_blocks: int, causal: bool, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Shared-QK attention split over ``n_blocks`` blocks of keys: (outputs [B, L, d], lse [B, L], full [L, d])."""
    generator = torch.Generator().manual_seed(seed)
    qk = torch.randn(length, d, generator=generator, dtype=torch.float64)
    v = torch.randn(length, d, generator=generator, dtype=torch.float64)
    logits = qk @ unit_keys(qk).T - SELF_PENALTY * torch.eye(length, dtype=torch.float64)
    if causal:
        logits = logits - _CAUSAL_PENALTY * torch.ones(length, length, dtype=torch.float64).triu(1)
    blocks = torch.arange(length).chunk(n_blocks)
    outputs = torch.stack([torch.softmax(logits[:, b], dim=-1) @ v[b] for b in blocks])
    lse = torch.stack([torch.logsumexp(logits[:, b], dim=-1) for b in blocks])
    return outputs, lse, torch.softmax(logits, dim=-1) @ v


def _merge_cases() -> list[Case]:
    cases = []
    for seed, (length, d, n_blocks, causal) in enumerate([(6, 2, 2, False), (8, 3, 4, False), (9, 2, 3, True),
                                                           (12, 4, 4, True)]):
        outputs, lse, full = _key_blocks(length, d, n_blocks, causal, seed)
        shown = f"{n_blocks} blocks of keys, L={length}, d={d}" + (", causal" if causal else "")
        cases.append(Case((outputs, lse), full, f"outputs [{n_blocks}, {length}, {d}] and lse from {shown}"))
    return cases


_MERGE_MISTAKES = [
    Mistake(lambda o, z: o.mean(0),
            "the blocks are not equal: block b counts in proportion to exp(z_b), the total (unnormalised) "
            "weight its keys carry, as round r does in eq. 14."),
    Mistake(lambda o, z: (z.exp().unsqueeze(-1) * o).sum(0),
            "the weights exp(z_b) must be normalised over the blocks: divide by Σ_b exp(z_b)."),
    Mistake(lambda o, z: (torch.softmax(z, dim=-1).unsqueeze(-1) * o).sum(0),
            "you normalised over the positions (last dim of lse); normalise over the blocks (dim 0)."),
    Mistake(lambda o, z: (torch.softmax(-z, dim=0).unsqueeze(-1) * o).sum(0),
            "the sign is flipped: a block whose keys carry more weight (larger z_b) should count more."),
    Mistake(lambda o, z: o.gather(0, z.argmax(0)[None, :, None].expand(1, *o.shape[1:]))[0],
            "combine all blocks with their weights, not only the block with the largest z_b."),
]


def _underflow_diagnosis(outputs: Tensor, lse: Tensor, got: Tensor) -> str | None:
    """The hint for an answer that is right in exact arithmetic but divides 0 by 0 in floating point."""
    if bool(torch.isfinite(got).all()):
        return None
    return ("in a causal case, query 0 sees only itself: its own block's z is near −1e5 (the self penalty) and "
            "every other block's near −1e9, so exp(z) underflows to 0 in all of them and you "
            "divide 0 by 0. Subtract the max over blocks first: torch.softmax(lse, dim=0) does it.")


def check_merge_key_blocks(fn: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """Exercise 3: ``fn(outputs [B, L, d], lse [B, L])`` → full attention ``[L, d]``, within 1e-9.

    Block b's softmax over its keys gives outputs[b] and its logsumexp lse[b]; the blocks partition the
    keys, so the merge is eqs. 12–14 with every N_ij = 1: o_i = Σ_b exp(z_b,i − log Σ_b' exp z_b',i) o_b,i.
    """
    return grade_tensors("Exercise 3 (merge_key_blocks)", fn, _merge_cases(), _MERGE_MISTAKES, atol=1e-9,
                         diagnose=_underflow_diagnosis)
