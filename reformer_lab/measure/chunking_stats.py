"""How well the sort-and-chunk scheme of paper §2 (Figure 2, eqs. 4–5 and 11) holds up.

LSH attention sorts each hash round by (bucket, position), cuts the sorted sequence into chunks of
m = 2l/n_buckets and lets every chunk attend to itself and the previous chunk of its round. The
paper assumes a bucket rarely grows past twice its mean size l/n_buckets, i.e. past one chunk:
"If max_i |P_i| < m, then P_i ⊆ P̃_i". This module measures that assumption, from buckets alone:

* :func:`bucket_sizes` and :func:`sorted_chunk_counts`: how many positions each bucket holds, and
  how many of them land in each chunk of the sorted order.
* :func:`pair_counts` and :func:`dropped_fraction`: how many same-bucket pairs of distinct positions
  (eq. 4's P_i, without i itself) exist, and how many of them fall outside the window of eq. 5
  (P̃_i), so attention never sees them. ``causal=True`` counts only keys before the query (eq. 2).
* :func:`window_pairs`, :func:`same_bucket_pairs`, :func:`visible_pairs` and
  :func:`dropped_from_weights`: the same sets as ``[L, L]`` masks, to cross-check the counts
  against the attention weights that :func:`reformer_lab.attention.lsh_attention` returns.
* :func:`sample_vectors`, :func:`window_stats` and :func:`overflow_sweep`: the statistics over many
  random sequences, for isotropic random vectors and for a structured, Zipf-distributed vocabulary.

Conventions (those of :mod:`reformer_lab.attention`): buckets have shape ``[..., n_hashes, L]`` with ids in
``[0, n_buckets)`` in every round; chunks never mix rounds, and a round's first chunk looks back at nothing
(eq. 11).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from reformer_lab.hashing import check_n_buckets, hash_vectors, random_rotations
from reformer_lab.validation import as_int, one_of

__all__ = [
    "KINDS",
    "WindowStats",
    "bucket_sizes",
    "chunk_size_for",
    "dropped_fraction",
    "dropped_from_weights",
    "overflow_sweep",
    "pair_counts",
    "same_bucket_pairs",
    "sample_vectors",
    "sorted_chunk_counts",
    "visible_pairs",
    "window_pairs",
    "window_stats",
]

KINDS = ("random", "zipf")


# ----------------------------------------------------------------------------------------------------
# Checking inputs
# ----------------------------------------------------------------------------------------------------


def chunk_size_for(length: int, n_buckets: int) -> int:
    """The paper's chunk size m = 2·l/n_buckets (§2), or a ValueError if it is not a whole divisor of l."""
    length = as_int("length", length, minimum=1)
    n_buckets = check_n_buckets(n_buckets)
    if (2 * length) % n_buckets or length % (2 * length // n_buckets):
        raise ValueError(
            f"m = 2·L/n_buckets = {2 * length}/{n_buckets} must be a whole number that divides L={length}: "
            f"pick n_buckets with n_buckets/2 dividing L"
        )
    return 2 * length // n_buckets


def _check_buckets(buckets: Tensor, n_buckets: int | None = None) -> Tensor:
    """``buckets`` as a long tensor ``[..., n_hashes, L]``, or a ValueError saying what is wrong."""
    if not isinstance(buckets, Tensor):
        raise ValueError(f"buckets must be a torch.Tensor, got {type(buckets).__name__}")
    if buckets.dim() < 2:
        raise ValueError(f"buckets must have shape [..., n_hashes, L], got {tuple(buckets.shape)}")
    if buckets.is_floating_point() or buckets.is_complex() or buckets.dtype == torch.bool:
        raise ValueError(f"buckets must be an integer tensor, got {buckets.dtype}")
    if buckets.shape[-1] == 0:
        raise ValueError("buckets must hold at least one position (L >= 1)")
    if n_buckets is not None and (buckets.min() < 0 or buckets.max() >= n_buckets):
        raise ValueError(f"bucket ids must lie in [0, n_buckets) = [0, {n_buckets})")
    return buckets.long()


def _check_chunk(length: int, chunk_size: int) -> int:
    chunk_size = as_int("chunk_size", chunk_size, minimum=1)
    if length % chunk_size:
        raise ValueError(f"chunk_size={chunk_size} must divide the sequence length L={length}")
    return chunk_size


def _resolve_chunk(length: int, n_buckets: int, chunk_size: int | None) -> int:
    return chunk_size_for(length, n_buckets) if chunk_size is None else _check_chunk(length, chunk_size)


# ----------------------------------------------------------------------------------------------------
# Counting, from buckets alone
# ----------------------------------------------------------------------------------------------------


def bucket_sizes(buckets: Tensor, n_buckets: int) -> Tensor:
    """How many positions each bucket holds, per round: ``[..., n_hashes, L]`` → ``[..., n_hashes, n_buckets]``."""
    n_buckets = check_n_buckets(n_buckets)
    buckets = _check_buckets(buckets, n_buckets)
    sizes = torch.zeros(*buckets.shape[:-1], n_buckets, dtype=torch.long, device=buckets.device)
    return sizes.scatter_add_(-1, buckets, torch.ones_like(buckets))


def sorted_chunk_counts(buckets: Tensor, n_buckets: int, chunk_size: int | None = None) -> Tensor:
    """``n[b, c]``: positions of bucket b that land in chunk c once a round is sorted by (bucket, position).

    Returns ``[..., n_hashes, n_buckets, n_chunks]``. Sorting puts each bucket in one run of
    consecutive slots, and chunk c holds slots c·m … c·m + m − 1 (paper §2, Figure 2c–d), so the
    counts follow from the sorted bucket ids alone. ``chunk_size`` defaults to m = 2·L/n_buckets.
    """
    n_buckets = check_n_buckets(n_buckets)
    buckets = _check_buckets(buckets, n_buckets)
    length = buckets.shape[-1]
    chunk = _resolve_chunk(length, n_buckets, chunk_size)
    n_chunks = length // chunk
    sorted_buckets = buckets.sort(dim=-1).values  # the bucket at every sorted slot
    slot_chunk = torch.arange(length, device=buckets.device) // chunk
    index = sorted_buckets * n_chunks + slot_chunk
    counts = torch.zeros(*buckets.shape[:-1], n_buckets * n_chunks, dtype=torch.long, device=buckets.device)
    counts.scatter_add_(-1, index, torch.ones_like(index))
    return counts.view(*buckets.shape[:-1], n_buckets, n_chunks)


def pair_counts(
    buckets: Tensor, n_buckets: int, chunk_size: int | None = None, *, causal: bool = True
) -> tuple[Tensor, Tensor]:
    """Same-bucket pairs of distinct positions, and how many of them the chunk window keeps, per round.

    Returns ``(same, visible)``, each ``[..., n_hashes]``. A pair is an ordered (query i, key j),
    i ≠ j, with h(i) = h(j) (eq. 4); with ``causal`` only keys before the query count (eq. 2: j < i).
    It is visible when chunk(j) ∈ {chunk(i) − 1, chunk(i)} in the sorted order (eq. 5). From
    ``n = sorted_chunk_counts(...)``: pairs inside one chunk are n(n − 1) (half of them causal), and
    the look-back adds n[b, c]·n[b, c − 1]; with position breaking ties, those keys always sit
    before the query, so they are causal too. Everything else is lost: keys two or more chunks
    back and, without ``causal``, every key sorted into a *later* chunk than its query.
    """
    n = sorted_chunk_counts(buckets, n_buckets, chunk_size)
    sizes = n.sum(-1)
    within = (n * (n - 1)).sum((-1, -2))
    look_back = (n[..., 1:] * n[..., :-1]).sum((-1, -2))
    if causal:
        return (sizes * (sizes - 1)).sum(-1) // 2, within // 2 + look_back
    return (sizes * (sizes - 1)).sum(-1), within + look_back


def dropped_fraction(buckets: Tensor, n_buckets: int, chunk_size: int | None = None, *, causal: bool = True) -> float:
    """Share of all same-bucket pairs (pooled over rounds and leading dims) that no chunk window holds.

    0.0 when there are no same-bucket pairs at all. See :func:`pair_counts` for what a pair is.
    """
    same, visible = pair_counts(buckets, n_buckets, chunk_size, causal=causal)
    total = int(same.sum())
    return 0.0 if total == 0 else float(total - int(visible.sum())) / total


# ----------------------------------------------------------------------------------------------------
# The same sets as [L, L] masks (for cross-checks against attention weights)
# ----------------------------------------------------------------------------------------------------


def _chunk_of_positions(buckets: Tensor, chunk: int) -> Tensor:
    """Chunk of every original position after sorting by key bucket·L + position: ``[..., n_hashes, L]``."""
    length = buckets.shape[-1]
    positions = torch.arange(length, device=buckets.device)
    order = torch.argsort(buckets * length + positions, dim=-1)
    slots = torch.empty_like(order).scatter_(-1, order, positions.expand_as(order))
    return slots // chunk


def window_pairs(buckets: Tensor, chunk_size: int) -> Tensor:
    """P̃_i per round (eq. 11): ``[..., n_hashes, L, L]``, True where key j lies in query i's own or previous chunk.

    The window ignores buckets and causality; it holds i itself. Chunk ids start at 0 in every round,
    so a round's first chunk has no previous chunk (no wrap to the last chunk, unlike the peers).
    """
    buckets = _check_buckets(buckets)
    chunks = _chunk_of_positions(buckets, _check_chunk(buckets.shape[-1], chunk_size))
    q_chunk, k_chunk = chunks.unsqueeze(-1), chunks.unsqueeze(-2)
    return (k_chunk == q_chunk) | (k_chunk == q_chunk - 1)


def _distinct(length: int, causal: bool, device: torch.device) -> Tensor:
    positions = torch.arange(length, device=device)
    return positions.unsqueeze(-1) > positions if causal else positions.unsqueeze(-1) != positions


def same_bucket_pairs(buckets: Tensor, *, causal: bool = True) -> Tensor:
    """∪_r P_i^(r) without i (eq. 6): ``[..., L, L]``, True where j ≠ i shares i's bucket in some round."""
    buckets = _check_buckets(buckets)
    same = (buckets.unsqueeze(-1) == buckets.unsqueeze(-2)).any(dim=-3)
    return same & _distinct(buckets.shape[-1], causal, buckets.device)


def visible_pairs(buckets: Tensor, chunk_size: int, *, causal: bool = True) -> Tensor:
    """∪_r (P_i^(r) ∩ P̃_i^(r)) without i: ``[..., L, L]``, the pairs LSH attention actually scores.

    These are exactly the off-diagonal non-zero weights of ``lsh_attention(..., buckets=buckets)``
    with bucket masking on (its default).
    """
    buckets = _check_buckets(buckets)
    same = buckets.unsqueeze(-1) == buckets.unsqueeze(-2)
    seen = (same & window_pairs(buckets, chunk_size)).any(dim=-3)
    return seen & _distinct(buckets.shape[-1], causal, buckets.device)


def dropped_from_weights(weights: Tensor, buckets: Tensor, *, causal: bool = True) -> float:
    """Share of same-bucket pairs (union over rounds) whose attention weight is exactly zero.

    ``weights``: ``[..., L, L]`` (``LSHInfo.weights``); ``buckets``: ``[..., n_hashes, L]``
    (``LSHInfo.buckets``). Equals ``1 − visible/same`` from :func:`visible_pairs` and
    :func:`same_bucket_pairs`, and with one round :func:`dropped_fraction`, when every visible pair
    gets a positive weight (logits within ~80 of each other in float32).
    """
    buckets = _check_buckets(buckets)
    length = buckets.shape[-1]
    if weights.shape[-2:] != (length, length) or weights.shape[:-2] != buckets.shape[:-2]:
        raise ValueError(
            f"weights must have shape [..., L, L] = {(*buckets.shape[:-2], length, length)}, got {tuple(weights.shape)}"
        )
    same = same_bucket_pairs(buckets, causal=causal)
    total = int(same.sum())
    return 0.0 if total == 0 else float((same & (weights == 0)).sum()) / total


# ----------------------------------------------------------------------------------------------------
# Statistics over many sequences
# ----------------------------------------------------------------------------------------------------


def sample_vectors(
    kind: str,
    length: int,
    d: int,
    *,
    n_trials: int = 1,
    generator: torch.Generator,
    vocab_size: int = 64,
    zipf_exponent: float = 1.0,
    noise: float = 0.1,
) -> Tensor:
    """``n_trials`` sequences of shared-QK vectors, ``[n_trials, length, d]``.

    ``kind="random"``: i.i.d. standard Gaussian vectors (isotropic directions). ``kind="zipf"``: a
    structured sequence, like the embeddings of a text: tokens drawn from a vocabulary of
    ``vocab_size`` random directions with Zipf frequencies (rank k has weight k^−zipf_exponent),
    each copy jittered by Gaussian ``noise`` (relative to the unit-scale embedding). Frequent tokens
    repeat, and repeats hash alike, so their buckets swell.
    """
    one_of("kind", kind, KINDS)
    length, d = as_int("length", length, minimum=1), as_int("d", d, minimum=1)
    n_trials = as_int("n_trials", n_trials, minimum=1)
    if kind == "random":
        return torch.randn(n_trials, length, d, generator=generator)
    vocab_size = as_int("vocab_size", vocab_size, minimum=1)
    if zipf_exponent < 0 or noise < 0:
        raise ValueError(f"zipf_exponent and noise must be >= 0, got {zipf_exponent} and {noise}")
    embeddings = torch.randn(n_trials, vocab_size, d, generator=generator) / d**0.5
    frequencies = torch.arange(1, vocab_size + 1, dtype=torch.float64) ** -zipf_exponent
    tokens = torch.multinomial(frequencies.expand(n_trials, -1), length, replacement=True, generator=generator)
    picked = embeddings.gather(1, tokens.unsqueeze(-1).expand(-1, -1, d))
    return picked + noise / d**0.5 * torch.randn(n_trials, length, d, generator=generator)


@dataclass(frozen=True)
class WindowStats:
    """How buckets fit the chunks, summarised over ``n_rounds`` hashed sequences (one round each).

    ``p_bucket_over``: share of buckets holding more than m = 2·L/n_buckets positions, twice the mean
    (the paper's "probability of a bucket growing to twice its size"). ``p_round_over``: share of
    rounds with at least one such bucket. ``max_over_mean``: the largest bucket over the mean size
    L/n_buckets, averaged over rounds. ``dropped_causal`` / ``dropped_noncausal``: share of
    same-bucket pairs outside the window (:func:`dropped_fraction`), pooled over rounds.
    ``p_round_drops``: share of rounds that lose at least one causal pair.
    """

    kind: str
    length: int
    n_buckets: int
    chunk_size: int
    n_rounds: int
    p_bucket_over: float
    p_round_over: float
    max_over_mean: float
    dropped_causal: float
    dropped_noncausal: float
    p_round_drops: float

    @property
    def mean_size(self) -> float:
        """The average bucket, L/n_buckets = m/2."""
        return self.length / self.n_buckets


def window_stats(buckets: Tensor, n_buckets: int, chunk_size: int | None = None, *, kind: str = "") -> WindowStats:
    """:class:`WindowStats` for ``buckets`` ``[..., n_hashes, L]``; every (sequence, round) counts once."""
    n_buckets = check_n_buckets(n_buckets)
    buckets = _check_buckets(buckets, n_buckets)
    length = buckets.shape[-1]
    chunk = _resolve_chunk(length, n_buckets, chunk_size)
    rounds = buckets.reshape(-1, length)
    sizes = bucket_sizes(rounds.unsqueeze(-2), n_buckets).squeeze(-2)  # [rounds, n_buckets]
    over = sizes > 2 * length / n_buckets
    same, visible = pair_counts(rounds.unsqueeze(-2), n_buckets, chunk, causal=True)
    return WindowStats(
        kind=kind,
        length=length,
        n_buckets=n_buckets,
        chunk_size=chunk,
        n_rounds=rounds.shape[0],
        p_bucket_over=float(over.double().mean()),
        p_round_over=float(over.any(dim=-1).double().mean()),
        max_over_mean=float(sizes.max(dim=-1).values.double().mean() / (length / n_buckets)),
        dropped_causal=dropped_fraction(rounds, n_buckets, chunk, causal=True),
        dropped_noncausal=dropped_fraction(rounds, n_buckets, chunk, causal=False),
        p_round_drops=float((visible < same).double().mean()),
    )


def overflow_sweep(
    kind: str,
    lengths: Sequence[int],
    n_buckets: Sequence[int],
    *,
    n_trials: int,
    d: int = 64,
    generator: torch.Generator,
    orthogonal: bool = False,
) -> list[WindowStats]:
    """:func:`window_stats` for every (length, n_buckets) pair with a valid chunk size m = 2·L/n_buckets.

    Each trial samples a sequence (:func:`sample_vectors`) and hashes it with fresh rotations, so the
    statistics average over data and hash together. Pairs whose m is not a whole divisor of L are
    skipped. Memory: one ``[n_trials, L, n_buckets/2]`` projection at a time.
    """
    n_trials = as_int("n_trials", n_trials, minimum=1)
    results = []
    for length in lengths:
        for buckets_count in n_buckets:
            try:
                chunk_size_for(length, buckets_count)
            except ValueError:
                continue
            vectors = sample_vectors(kind, length, d, n_trials=n_trials, generator=generator)
            rotations = random_rotations(
                d, buckets_count, 1, generator=generator, orthogonal=orthogonal, batch_shape=(n_trials,)
            )
            buckets = hash_vectors(vectors, buckets_count, rotations=rotations)
            results.append(window_stats(buckets, buckets_count, kind=kind))
    return results
