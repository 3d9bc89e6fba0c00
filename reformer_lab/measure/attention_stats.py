"""What LSH attention computes and what it costs: the numbers behind lesson 03 (paper §2, App. A, Table 1).

Pure compute, no plotting. Every random draw takes an explicit ``torch.Generator`` or seed.

* :func:`clustered_qk`: shared-QK vectors in clusters, so that attention is peaked (as in trained
  models, and as LSH assumes: "softmax is dominated by the largest elements", §2).
* :func:`visit_counts` and :func:`attention_from_counts`: a plain, dense rebuild of which
  (query, key) pairs LSH attention visits and of the attention over them. ``visit_counts`` gives
  Appendix A's N_ij (eq. 16); ``wrap_rounds=True`` rebuilds the peers' look-back instead, where a
  round's first chunk looks back into the previous round's last chunk.
* :func:`combine_rounds`: eqs. 12–14, several rounds' outputs combined through their logsumexps.
* :func:`causal_window_mask`: which keys of a sorted, chunked round a causal query may not see.
* :func:`rounds_error` and :func:`one_query_weights`: how far LSH attention is from full attention
  as ``n_hashes`` grows (paper §5: "at n_rounds = 8 it already almost matches full attention").
* :func:`causal_leak`: causal LSH puts zero weight on later positions, yet a later token can change an
  earlier output through the sort (the same holds for every implementation that sorts by bucket).
* :func:`measure_table1` and :func:`time_table1`: Table 1 measured on this machine.

Weights and counts are dense ``[L, L]`` tensors: these functions are for lesson-sized inputs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from reformer_lab.attention import (
    SELF_PENALTY,
    full_attention,
    lsh_attention,
    memory_efficient_attention,
    unit_keys,
)
from reformer_lab.hashing import random_rotations
from reformer_lab.measure import complexity
from reformer_lab.measure.memory import saved_tensor_bytes, torch_threads
from reformer_lab.validation import as_float, as_int, positive_float

__all__ = [
    "TABLE1_VARIANTS",
    "CausalLeak",
    "LookBackErrors",
    "QueryWeights",
    "RoundsError",
    "Table1Row",
    "attention_from_counts",
    "causal_leak",
    "causal_window_mask",
    "clustered_qk",
    "combine_rounds",
    "loglog_slope",
    "lookback_errors",
    "max_earlier_in_bucket",
    "measure_table1",
    "one_query_weights",
    "rounds_error",
    "time_table1",
    "visit_counts",
    "weight_distance",
]


# ----------------------------------------------------------------------------------------------------
# Structured inputs
# ----------------------------------------------------------------------------------------------------


def clustered_qk(
    length: int,
    dim: int,
    n_clusters: int,
    *,
    noise: float = 0.5,
    scale: float = 8.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Shared-QK vectors ``[length, dim]`` in ``n_clusters`` directions, and each one's cluster label.

    Each vector is a random unit centre plus Gaussian noise of total size about ``noise``, rescaled to
    length ``scale``. Since logits are q·k̂ = ‖q‖·cos θ (keys have unit length), ``scale`` is the
    inverse temperature: at 8 a query puts almost all its weight on its own cluster, the peaked
    attention that makes LSH worthwhile (§2). Labels are drawn uniformly, so positions are mixed.
    """
    length, dim = as_int("length", length, minimum=1), as_int("dim", dim, minimum=1)
    n_clusters = as_int("n_clusters", n_clusters, minimum=1)
    noise, scale = as_float("noise", noise, minimum=0.0), positive_float("scale", scale)
    centres = F.normalize(torch.randn(n_clusters, dim, generator=generator), dim=-1)
    labels = torch.randint(n_clusters, (length,), generator=generator)
    points = centres[labels] + noise * torch.randn(length, dim, generator=generator) / math.sqrt(dim)
    return scale * F.normalize(points, dim=-1), labels


# ----------------------------------------------------------------------------------------------------
# Visited pairs and N_ij (Appendix A), rebuilt densely
# ----------------------------------------------------------------------------------------------------


def _check_buckets_2d(buckets: Tensor, chunk_size: int) -> tuple[int, int, int]:
    if not isinstance(buckets, Tensor) or buckets.dim() < 2:
        raise ValueError("buckets must be an integer tensor of shape [..., n_hashes, L]")
    if buckets.is_floating_point() or buckets.dtype == torch.bool:
        raise ValueError(f"buckets must be an integer tensor, got {buckets.dtype}")
    chunk = as_int("chunk_size", chunk_size, minimum=1)
    n_hashes, length = buckets.shape[-2:]
    if length % chunk:
        raise ValueError(f"chunk_size={chunk} must divide the sequence length L={length}")
    return n_hashes, length, chunk


def _sorted_slots(buckets: Tensor) -> Tensor:
    """Slot of each position after sorting each round by (bucket, position): ``[..., n_hashes, L]``."""
    length = buckets.shape[-1]
    order = torch.argsort(buckets.long() * length + torch.arange(length), dim=-1)
    return torch.argsort(order, dim=-1)


def visit_counts(
    buckets: Tensor,
    chunk_size: int,
    *,
    causal: bool = False,
    attend_across_buckets: bool = False,
    wrap_rounds: bool = False,
) -> Tensor:
    """How many times LSH attention visits each (query i, key j): ``[..., L, L]`` int64, from buckets.

    ``buckets``: ``[..., n_hashes, L]``. In round r the positions are sorted by (bucket, position) and
    cut into chunks of ``chunk_size``; query i sees key j when j's chunk is i's own or the one before
    it in the same round (eq. 11; a round's first chunk looks back at nothing), when they share the
    bucket (eq. 4; unless ``attend_across_buckets``), and, if ``causal``, when j ≤ i. The result is
    Appendix A's N_ij = |{r : j ∈ P_i^(r)}| (eq. 16). Self pairs are counted too (they are penalised,
    not removed).

    ``wrap_rounds=True`` rebuilds the peers' look-back instead (trax, HF, reformer-pytorch): the rounds
    are concatenated and the first chunk of round r looks back into the *last chunk of round r − 1*
    (round 0 into the last round), so a pair can be visited twice in one round. With bucket masking
    those borrowed keys never count (the peers offset each round's bucket ids), so the wrap only
    matters with ``attend_across_buckets``. Counts are then the multiplicities the peers' softmax uses.
    """
    n_hashes, length, chunk = _check_buckets_2d(buckets, chunk_size)
    n_chunks = length // chunk
    chunk_of = _sorted_slots(buckets) // chunk  # [..., n_hashes, L]
    counts = torch.zeros(*buckets.shape[:-2], length, length, dtype=torch.int64)
    for r in range(n_hashes):
        q_chunk, k_chunk = chunk_of[..., r, :, None], chunk_of[..., r, None, :]
        seen = (k_chunk == q_chunk) | (k_chunk == q_chunk - 1)
        if not attend_across_buckets:
            seen &= buckets[..., r, :, None] == buckets[..., r, None, :]
        counts += seen
        if wrap_rounds and attend_across_buckets:
            prev = (r - 1) % n_hashes  # the first chunk of round r borrows round prev's last chunk
            borrowed = (chunk_of[..., r, :, None] == 0) & (chunk_of[..., prev, None, :] == n_chunks - 1)
            counts += borrowed
    if causal:
        counts = counts.tril()
    return counts


def attention_from_counts(qk: Tensor, v: Tensor, counts: Tensor, *, dedup: bool = True) -> tuple[Tensor, Tensor]:
    """Softmax attention over the visited pairs ``counts > 0``: ``(out [..., L, d_v], weights [..., L, L])``.

    Logits are q_i·k̂_j (k̂ = q/‖q‖), minus 1e5 on self pairs (eq. 16). With ``dedup`` every visited pair
    counts once (the set, what Appendix A's −log N_ij achieves); without, a pair visited n times gets
    +log n (the multiset, what the peers compute). A row with no visited pair is an error.
    """
    length = qk.shape[-2]
    if counts.shape[-2:] != (length, length) or v.shape[:-1] != qk.shape[:-1]:
        raise ValueError(
            f"need qk [..., L, d], v [..., L, d_v] and counts [..., L, L]; got {tuple(qk.shape)}, "
            f"{tuple(v.shape)} and {tuple(counts.shape)}"
        )
    if not bool((counts > 0).any(-1).all()):
        raise ValueError("every query needs at least one visited key (its own position always is)")
    logits = qk @ unit_keys(qk).transpose(-1, -2) - SELF_PENALTY * torch.eye(length, dtype=qk.dtype)
    if not dedup:
        logits = logits + counts.clamp(min=1).to(qk.dtype).log()
    weights = torch.softmax(logits.masked_fill(counts == 0, -math.inf), dim=-1)
    return weights @ v, weights


def combine_rounds(outputs: Tensor, lse: Tensor) -> Tensor:
    """Combine per-round outputs o^(r) ``[n_hashes, ..., L, d]`` through their logsumexps z^(r) ``[n_hashes, ..., L]``.

    Eqs. 12–14: o_i = Σ_r exp(z_i^(r) − z_i) o_i^(r) with z_i = log Σ_r exp(z_i^(r)), i.e. a softmax of
    the z^(r) over rounds, computed stably (the max is subtracted first, so rounds whose z^(r) sit at
    −1e5, e.g. a query that could only see itself, still get weights that sum to 1).
    """
    if outputs.dim() < 2 or lse.shape != outputs.shape[:-1]:
        raise ValueError(
            f"outputs must be [n_hashes, ..., L, d] and lse [n_hashes, ..., L]; got {tuple(outputs.shape)} "
            f"and {tuple(lse.shape)}"
        )
    return (torch.softmax(lse, dim=0).unsqueeze(-1) * outputs).sum(dim=0)


def causal_window_mask(sort_indices: Tensor, chunk_size: int) -> Tensor:
    """Which keys of each chunk's window a causal query may not see, for one sorted round.

    ``sort_indices``: ``[L]``, the original position at each sorted slot. The window of chunk c is the
    previous chunk followed by chunk c, so the result is ``[n_chunks, chunk_size, 2·chunk_size]`` bool,
    True = masked: the key's *original* position is after the query's (causal masks compare positions,
    never sorted slots, §2), or it is chunk 0's look-back half, which does not exist (eq. 11).
    Self pairs are not masked here: they get the finite self penalty instead.
    """
    if sort_indices.dim() != 1 or sort_indices.is_floating_point():
        raise ValueError(f"sort_indices must be a 1-D integer tensor [L], got {tuple(sort_indices.shape)}")
    chunk = as_int("chunk_size", chunk_size, minimum=1)
    length = sort_indices.shape[0]
    if length % chunk:
        raise ValueError(f"chunk_size={chunk} must divide the sequence length L={length}")
    q_pos = sort_indices.view(-1, chunk)
    k_pos = torch.cat([q_pos.roll(1, dims=0), q_pos], dim=1)
    mask = k_pos[:, None, :] > q_pos[:, :, None]
    mask[0, :, :chunk] = True
    return mask


@dataclass(frozen=True)
class LookBackErrors:
    """Max |LSH − full attention| for one hashing, three ways (all attending across buckets).

    ``ours``: :func:`~reformer_lab.attention.lsh_attention` (no wrap between rounds, duplicates counted
    once); ``ours_multiset``: the same with ``dedup=False``; ``peers``: the peers' look-back, where a
    round's first chunk borrows the previous round's last chunk, with duplicates counted per visit.
    ``covered``: whether our rounds' windows together hold every (query, key) pair.
    """

    n_hashes: int
    ours: float
    ours_multiset: float
    peers: float
    covered: bool


def lookback_errors(
    qk: Tensor, v: Tensor, *, n_buckets: int, n_hashes: int, generator: torch.Generator | None = None
) -> LookBackErrors:
    """Compare our round-local look-back (eq. 11) with the peers' wrap-around, against full attention.

    ``qk, v``: ``[L, d]``. One set of rotations is drawn from ``generator``; the three variants use the
    same buckets, so only the look-back and the duplicate counting differ.
    """
    full = full_attention(qk, v)
    rotations = random_rotations(qk.shape[-1], n_buckets, n_hashes, generator=generator, dtype=qk.dtype)
    ours, info = lsh_attention(qk, v, n_buckets=n_buckets, rotations=rotations, attend_across_buckets=True,
                               return_info=True)  # fmt: skip
    multiset = lsh_attention(qk, v, n_buckets=n_buckets, rotations=rotations, attend_across_buckets=True, dedup=False)
    ours_counts = visit_counts(info.buckets, info.chunk_size, attend_across_buckets=True)
    peer_counts = visit_counts(info.buckets, info.chunk_size, attend_across_buckets=True, wrap_rounds=True)
    peers, _ = attention_from_counts(qk, v, peer_counts, dedup=False)
    err = lambda out: float((out - full).abs().max())  # noqa: E731
    return LookBackErrors(n_hashes, err(ours), err(multiset), err(peers), bool((ours_counts > 0).all()))


# ----------------------------------------------------------------------------------------------------
# How close LSH attention gets to full attention
# ----------------------------------------------------------------------------------------------------


def weight_distance(weights: Tensor, reference: Tensor) -> Tensor:
    """Total-variation distance ½·Σ_j |p_ij − p*_ij| of each row: ``[..., L]``, 0 = identical, 1 = disjoint.

    When LSH attention is softmax over a subset S_i of the keys (dedup on), this equals the mass that
    full attention puts outside S_i: the attention LSH misses.
    """
    return 0.5 * (weights - reference).abs().sum(-1)


@dataclass(frozen=True)
class RoundsError:
    """LSH attention against full attention as rounds are added (one row per trial, one column per count).

    ``tv``: mean total-variation distance of the weight rows (:func:`weight_distance`);
    ``rel_error``: ‖o_LSH − o_full‖ / ‖o_full‖ over the whole output.
    """

    n_hashes: tuple[int, ...]
    tv: Tensor
    rel_error: Tensor

    @property
    def mean_tv(self) -> list[float]:
        return self.tv.mean(0).tolist()

    @property
    def mean_rel_error(self) -> list[float]:
        return self.rel_error.mean(0).tolist()


def rounds_error(
    qk: Tensor,
    v: Tensor,
    *,
    n_buckets: int,
    n_hashes: Sequence[int] = (1, 2, 4, 8),
    n_trials: int = 4,
    generator: torch.Generator | None = None,
    causal: bool = False,
    attend_across_buckets: bool = False,
    dedup: bool = True,
) -> RoundsError:
    """Distance of LSH attention from full attention for each count in ``n_hashes``, over ``n_trials`` draws.

    ``qk, v``: ``[L, d]``. Each trial draws ``max(n_hashes)`` rotations once and uses the first r of
    them for r rounds, so the rounds are nested: adding rounds only adds visited pairs.
    """
    counts = tuple(as_int("n_hashes entries", n, minimum=1) for n in n_hashes)
    if not counts:
        raise ValueError("n_hashes must list at least one round count")
    n_trials = as_int("n_trials", n_trials, minimum=1)
    if qk.dim() != 2:
        raise ValueError(f"qk must be [L, d], got {tuple(qk.shape)}")
    full_out, full_weights = full_attention(qk, v, causal=causal, return_weights=True)
    tv = torch.zeros(n_trials, len(counts), dtype=torch.float64)
    rel = torch.zeros_like(tv)
    for t in range(n_trials):
        rotations = random_rotations(qk.shape[-1], n_buckets, max(counts), generator=generator, dtype=qk.dtype)
        for c, rounds in enumerate(counts):
            out, info = lsh_attention(
                qk, v, n_buckets=n_buckets, rotations=rotations[:rounds], causal=causal,
                attend_across_buckets=attend_across_buckets, dedup=dedup, return_info=True,
            )  # fmt: skip
            tv[t, c] = weight_distance(info.weights, full_weights).mean().double()
            rel[t, c] = ((out - full_out).norm() / full_out.norm()).double()
    return RoundsError(counts, tv, rel)


@dataclass(frozen=True)
class QueryWeights:
    """One query's attention row under full attention and under LSH attention with ``n_hashes`` rounds."""

    query: int
    n_hashes: int
    full: Tensor
    lsh: Tensor
    visited: Tensor
    tv: float


def one_query_weights(
    qk: Tensor,
    v: Tensor,
    query: int,
    *,
    n_buckets: int,
    rotations: Tensor,
    n_hashes: int,
    attend_across_buckets: bool = False,
) -> QueryWeights:
    """Query ``query``'s attention row, full and LSH with the first ``n_hashes`` of ``rotations``.

    ``qk, v``: ``[L, d]``; ``rotations``: ``[R, d, n_buckets // 2]`` with R ≥ ``n_hashes``, so a slider
    over ``n_hashes`` adds rounds to the same draw. Non-causal, dedup on (Appendix A).
    """
    length = qk.shape[-2]
    query = as_int("query", query, minimum=0)
    if query >= length:
        raise ValueError(f"query must lie in [0, L) = [0, {length}), got {query}")
    n_hashes = as_int("n_hashes", n_hashes, minimum=1)
    if rotations.dim() != 3 or n_hashes > rotations.shape[0]:
        raise ValueError(f"rotations must be [R, d, n_buckets/2] with R >= n_hashes={n_hashes}")
    _, full = full_attention(qk, v, return_weights=True)
    _, info = lsh_attention(
        qk, v, n_buckets=n_buckets, rotations=rotations[:n_hashes],
        attend_across_buckets=attend_across_buckets, return_info=True,
    )  # fmt: skip
    counts = visit_counts(info.buckets, info.chunk_size, attend_across_buckets=attend_across_buckets)
    row_full, row_lsh = full[query], info.weights[query]
    return QueryWeights(
        query, n_hashes, row_full, row_lsh, counts[query] > 0, float(weight_distance(row_lsh, row_full))
    )


# ----------------------------------------------------------------------------------------------------
# Causal LSH attention and the information that flows through the sort
# ----------------------------------------------------------------------------------------------------


def max_earlier_in_bucket(buckets: Tensor) -> int:
    """The most earlier same-bucket positions any query has in any round: max_{r,i} |{j < i : h_r(j) = h_r(i)}|.

    Causal, bucket-masked LSH attention sees all of a query's earlier same-bucket keys whenever this is
    at most ``chunk_size`` (they sit right before it in the sort, and the window reaches at least one
    chunk back), whatever later tokens do.
    """
    same = buckets[..., :, None] == buckets[..., None, :]
    return int(same.tril(-1).sum(-1).max())


@dataclass(frozen=True)
class CausalLeak:
    """What changing the token at ``position`` did to causal LSH attention.

    ``changed``: ``[position]`` bool, which earlier outputs moved by more than the tolerance;
    ``max_change``: their largest absolute change; ``max_future_weight``: the largest weight any query
    put on a later position, in either run (0 exactly by construction); ``bucket_moved``: whether the
    changed token landed in another bucket in some round.
    """

    position: int
    changed: Tensor
    max_change: float
    max_future_weight: float
    bucket_moved: bool

    @property
    def n_changed(self) -> int:
        return int(self.changed.sum())


def causal_leak(
    qk: Tensor,
    v: Tensor,
    *,
    position: int,
    replacement: Tensor,
    n_buckets: int,
    rotations: Tensor,
    chunk_size: int | None = None,
    attend_across_buckets: bool = False,
    atol: float = 1e-5,
) -> CausalLeak:
    """Replace ``qk[position]`` by ``replacement`` and compare causal LSH attention before and after.

    Same rotations both times, so only the sort can differ. No weight ever lands on a later key, yet an
    earlier query's output can change: the later token's bucket moves other tokens along the sorted
    order, which changes which keys share a chunk with the earlier query. With
    bucket masking that needs a bucket fuller than its window (see :func:`max_earlier_in_bucket`).
    """
    length = qk.shape[-2]
    position = as_int("position", position, minimum=1)
    if qk.dim() != 2 or position >= length:
        raise ValueError(f"qk must be [L, d] and position in [1, L); got {tuple(qk.shape)} and {position}")
    changed_qk = qk.clone()
    changed_qk[position] = replacement
    kwargs = dict(n_buckets=n_buckets, rotations=rotations, chunk_size=chunk_size, causal=True,
                  attend_across_buckets=attend_across_buckets, return_info=True)  # fmt: skip
    before, info_before = lsh_attention(qk, v, **kwargs)
    after, info_after = lsh_attention(changed_qk, v, **kwargs)
    change = (after[:position] - before[:position]).abs().amax(-1)
    future = max(float(info.weights.triu(1).abs().max()) for info in (info_before, info_after))
    moved = bool((info_before.buckets[..., position] != info_after.buckets[..., position]).any())
    return CausalLeak(position, change > atol, float(change.max()), future, moved)


# ----------------------------------------------------------------------------------------------------
# Table 1 measured
# ----------------------------------------------------------------------------------------------------

#: The variants measured for Table 1, as (label, Table 1 row, n_hashes).
TABLE1_VARIANTS = (
    ("dot-product", "dot-product", 1),
    ("memory-efficient", "memory-efficient", 1),
    ("lsh-1", "lsh", 1),
    ("lsh-4", "lsh", 4),
)


@dataclass(frozen=True)
class Table1Row:
    """One measured point of Table 1: a variant at one length.

    ``saved_bytes``: what autograd keeps for the backward pass after the forward (exact, from
    :func:`reformer_lab.measure.memory.saved_tensor_bytes`); ``peak_saved_bytes``: the most it held during the
    forward. ``formula_memory`` / ``formula_time``: Table 1's entries as printed (element counts), with
    n_c = L / chunk_size. ``logits``: how many attention logits one forward pass really forms per
    layer: n_h·l² (dot-product and memory-efficient, the latter one query chunk at a time) or
    n_h·n_r·l·2·chunk_size (LSH: each query against its own and the previous chunk).
    """

    variant: str
    length: int
    n_heads: int
    d_k: int
    n_hashes: int
    chunk_size: int
    saved_bytes: int
    peak_saved_bytes: int
    formula_memory: float
    formula_time: float
    logits: int


def _forward(
    variant: str, qk: Tensor, v: Tensor, n_hashes: int, chunk_size: int, query_chunk_size: int, seed: int
) -> Callable[[], Tensor]:
    """Causal attention of one Table 1 row (``"dot-product"``, ``"memory-efficient"``, ``"lsh"``) as a closure."""
    if variant == "dot-product":
        return lambda: full_attention(qk, v, causal=True)
    if variant == "memory-efficient":
        return lambda: memory_efficient_attention(qk, v, causal=True, query_chunk_size=query_chunk_size)
    n_buckets = 2 * qk.shape[-2] // chunk_size
    generator = torch.Generator().manual_seed(seed)
    return lambda: lsh_attention(
        qk, v, n_buckets=n_buckets, n_hashes=n_hashes, chunk_size=chunk_size, causal=True, generator=generator
    )


def measure_table1(
    lengths: Sequence[int],
    *,
    n_heads: int = 2,
    d_k: int = 64,
    chunk_size: int = 64,
    query_chunk_size: int = 128,
    variants: Sequence[tuple[str, str, int]] = TABLE1_VARIANTS,
    seed: int = 0,
) -> list[Table1Row]:
    """Saved-for-backward bytes of causal attention, batch 1, for each variant and length, beside Table 1.

    The settings match ``python -m reformer_lab.bench attention`` (causal, LSH chunks of ``chunk_size``
    with n_buckets = 2·L/chunk_size, memory-efficient query chunks of ``query_chunk_size``).
    """
    n_heads, d_k = as_int("n_heads", n_heads, minimum=1), as_int("d_k", d_k, minimum=1)
    chunk_size = as_int("chunk_size", chunk_size, minimum=1)
    rows = []
    for length in lengths:
        length = as_int("length", length, minimum=1)
        if length % chunk_size:
            raise ValueError(f"length {length} must be a multiple of chunk_size={chunk_size}")
        generator = torch.Generator().manual_seed(seed)
        qk, v = (torch.randn(1, n_heads, length, d_k, generator=generator).requires_grad_() for _ in range(2))
        for label, row, n_hashes in variants:
            saved = saved_tensor_bytes(_forward(row, qk, v, n_hashes, chunk_size, query_chunk_size, seed))
            table = complexity.attention_complexity(
                row, batch=1, length=length, n_heads=n_heads, d_k=d_k, n_hashes=n_hashes,
                n_chunks=length // chunk_size,
            )  # fmt: skip
            logits = n_heads * n_hashes * length * 2 * chunk_size if row == "lsh" else n_heads * length**2
            rows.append(Table1Row(label, length, n_heads, d_k, n_hashes, chunk_size, saved.total_bytes,
                                  saved.peak_bytes, table.memory, table.time, logits))  # fmt: skip
    return rows


def _timed_step(variant: str, length: int, n_heads: int, d_k: int, chunk_size: int, seed: int) -> Callable[[], None]:
    """One forward+backward step of causal attention, batch 1, as a closure (the benchmark's settings)."""
    if variant in ("full", "memory-efficient"):
        row, rounds = ("dot-product" if variant == "full" else variant), 1
    elif variant.startswith("lsh-") and variant[4:].isdigit():
        row, rounds = "lsh", int(variant[4:])
    else:
        raise ValueError(f"unknown variant {variant!r}: use 'full', 'memory-efficient' or 'lsh-N'")
    generator = torch.Generator().manual_seed(seed)
    qk, v = (torch.randn(1, n_heads, length, d_k, generator=generator).requires_grad_() for _ in range(2))
    forward = _forward(row, qk, v, rounds, chunk_size, 128, seed)
    return lambda: forward().square().mean().backward()


def time_table1(
    lengths: Sequence[int],
    *,
    n_heads: int = 2,
    d_k: int = 64,
    chunk_size: int = 64,
    variants: Sequence[str] = ("full", "memory-efficient", "lsh-1", "lsh-4"),
    repeats: int = 3,
    max_full_length: int | None = None,
    threads: int | None = 1,
    seed: int = 0,
) -> dict[str, dict[int, float]]:
    """Seconds of one forward+backward step, causal, batch 1, in this process: ``{variant: {L: seconds}}``.

    The settings of ``python -m reformer_lab.bench attention`` (LSH chunks of ``chunk_size``,
    memory-efficient query chunks of 128). One warm-up step, then the *fastest* of ``repeats`` steps:
    on a shared machine other work only ever adds time, so the minimum is the least disturbed
    estimate (``bench`` reports the median of steps in a fresh process instead). ``max_full_length``
    skips plain full attention above that length (its L×L tensors). ``threads`` (default 1) sets
    torch's thread count while timing and restores it after: on a busy machine a multi-threaded
    step waits for its slowest thread, which makes the times erratic. None keeps the current count.
    """
    repeats = as_int("repeats", repeats, minimum=1)
    with torch_threads(threads):
        return _time_all(lengths, variants, n_heads, d_k, chunk_size, repeats, max_full_length, seed)


def _time_all(
    lengths: Sequence[int],
    variants: Sequence[str],
    n_heads: int,
    d_k: int,
    chunk_size: int,
    repeats: int,
    max_full_length: int | None,
    seed: int,
) -> dict[str, dict[int, float]]:
    times: dict[str, dict[int, float]] = {name: {} for name in variants}
    for length in lengths:
        length = as_int("length", length, minimum=1)
        if length % chunk_size:
            raise ValueError(f"length {length} must be a multiple of chunk_size={chunk_size}")
        for name in variants:
            if name == "full" and max_full_length is not None and length > max_full_length:
                continue
            step = _timed_step(name, length, n_heads, d_k, chunk_size, seed)
            step()  # warm-up: allocator, thread pools, first-call dispatch
            best = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                step()
                best = min(best, time.perf_counter() - start)
            times[name][length] = best
    return times


def loglog_slope(lengths: Sequence[float], values: Sequence[float]) -> float:
    """The exponent p of a least-squares fit values ≈ a·lengthᵖ on log–log axes."""
    if len(lengths) != len(values) or len(lengths) < 2:
        raise ValueError("lengths and values need the same length, at least 2 points")
    if min(lengths) <= 0 or min(values) <= 0:
        raise ValueError("lengths and values must be positive for a log–log fit")
    return float(np.polyfit(np.log(lengths), np.log(values), 1)[0])
