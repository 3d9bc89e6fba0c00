"""Attention for the Reformer: full, memory-efficient and LSH attention (paper §2, eqs. 1–6; Appendix A, eqs. 11–16).

* :func:`full_attention`: eq. 1, softmax(QKᵀ/√d)V, and its shared-QK form (§2, "Shared-QK Transformer");
* :func:`memory_efficient_attention`: the same result a chunk of queries at a time, recomputed in the
  backward pass (§2, "Memory-efficient attention"; the paper's full-attention baseline);
* :func:`lsh_attention`: LSH attention (§2, eqs. 2–6): hash (:mod:`reformer_lab.hashing`, Figure 1),
  sort by bucket (:func:`sort_by_bucket`, Figure 2), attend within chunks (Appendix A, eq. 11; the
  kernel is :mod:`reformer_lab.lsh_chunks`), combine the rounds (eqs. 12–15);
* :class:`LSHSelfAttention`, :class:`FullSelfAttention`: the multi-head modules, which share parameter
  names so a model trained with one is evaluated with the other (Table 2).

Conventions, the same for every attention here:

* Shared-QK attention uses unit keys k̂_j = q_j/‖q_j‖ and logits q_i·k̂_j with no further 1/√d.
  A query may attend to itself only when nothing else is visible: its own logit gets a finite
  penalty of 1e5 (paper eq. 16). Masked keys get the logit −1e9, so no row is ever all −inf.
  (``unit_keys``, ``SELF_PENALTY`` and ``MASK_VALUE`` are defined in :mod:`reformer_lab.lsh_chunks`,
  whose kernel needs them, and re-exported here.)
* Causal masks compare original positions: key position > query position is masked.
* LSH attention sorts each round by (bucket, position), cuts it into chunks that never mix rounds,
  and lets each chunk see itself and the previous chunk of the same round (paper eq. 11). Rounds are
  combined through their logsumexps (eqs. 12–15) and, by default, each logit gets −log N_ij
  (Appendix A) so that a pair seen in several rounds counts once.
* Integer arguments and flags are checked by :mod:`reformer_lab.validation` (NumPy integers accepted;
  ``bool`` where an int belongs, or a string where a flag belongs, refused). Queries, keys and values must be
  floating-point tensors of one dtype and device: an integer tensor or a float32/float64 mix is refused in the
  forward pass with an error naming the argument (a ``TypeError`` that is also a ``ValueError``).

Keys are normalised, and logits and softmax computed, in at least float32 (half-precision inputs are upcast;
a zero query in float16 gets the key 0, not NaN). Non-finite inputs are not checked, which would synchronise
the device on every call: a NaN or inf propagates to the rows that see it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from reformer_lab.hashing import check_n_buckets, hash_vectors, random_rotations, rotations_for
from reformer_lab.lsh_chunks import MASK_VALUE, SELF_PENALTY, Windows, chunk_attention, dense_weights, unit_keys
from reformer_lab.validation import ArgumentTypeError, as_bool, as_float, as_int, positive_int

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MASK_VALUE",
    "MAX_WEIGHTS_LENGTH",
    "SELF_PENALTY",
    "FullSelfAttention",
    "LSHInfo",
    "LSHSelfAttention",
    "full_attention",
    "lsh_attention",
    "memory_efficient_attention",
    "sort_by_bucket",
    "unit_keys",
]

MAX_WEIGHTS_LENGTH = 2048  # LSHInfo.weights is an L×L tensor: only built up to this length
DEFAULT_CHUNK_SIZE = 64  # LSHSelfAttention's chunk size when neither it nor n_buckets is given


def _logit_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _check_tensors(**tensors: Tensor | None) -> None:
    """Every given tensor is a floating-point tensor with at least 2 dims, all of one dtype and on one device.

    Integer values would be truncated or multiplied by float weights into zeros, and a float32/float64 mix
    fails only in the backward pass of the recomputing kernels: both are refused here, naming the argument.
    """
    given = {name: t for name, t in tensors.items() if t is not None}
    for name, t in given.items():
        if not isinstance(t, Tensor):
            raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ArgumentTypeError(
                f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64), got {t.dtype}"
            )
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape [..., L, d] (at least 2 dims), got {tuple(t.shape)}")
    names = list(given)
    together = " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"
    ref = given[names[0]]
    if any(t.dtype != ref.dtype for t in given.values()):
        listed = ", ".join(f"{n} {t.dtype}" for n, t in given.items())
        raise ArgumentTypeError(f"{together} must have the same dtype, got {listed}: convert one of them")
    if any(t.device != ref.device for t in given.values()):
        listed = ", ".join(f"{n} on {t.device}" for n, t in given.items())
        raise ValueError(f"{together} must be on the same device, got {listed}")


# ----------------------------------------------------------------------------------------------------
# Full attention and its memory-efficient (chunked, recomputing) twin
# ----------------------------------------------------------------------------------------------------


def _prepare_full(
    q: Tensor, v: Tensor, k: Tensor | None, self_mask: bool | None, scale: float | None
) -> tuple[Tensor, bool, float]:
    """Validate dtypes and shapes; return the keys, whether to apply the self mask, and the logit scale."""
    self_mask = (k is None) if self_mask is None else as_bool("self_mask", self_mask)  # on by default for shared QK
    scale = None if scale is None else as_float("scale", scale)
    _check_tensors(q=q, k=k, v=v)
    if q.shape[-1] == 0:
        raise ValueError(f"q must have a last dim d >= 1, got shape {tuple(q.shape)}")
    if k is None:
        if v.shape[:-1] != q.shape[:-1]:
            raise ValueError(
                f"shared-QK attention needs q and v with the same shape up to the last dim [..., L, :], "
                f"got q {tuple(q.shape)} and v {tuple(v.shape)}"
            )
        return unit_keys(q), self_mask, 1.0 if scale is None else scale
    if k.shape[:-2] != q.shape[:-2] or k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"k must have shape [..., L_k, d] matching q's leading dims and d, got q {tuple(q.shape)} "
            f"and k {tuple(k.shape)}"
        )
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            f"v must have shape [..., L_k, d_v] like k, got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    if k.shape[-2] == 0 and q.shape[-2] > 0:
        raise ValueError(f"k must hold at least one key position (L_k >= 1) for {q.shape[-2]} queries, "
                         f"got k {tuple(k.shape)}: attention over no keys is undefined")
    return k, self_mask, q.shape[-1] ** -0.5 if scale is None else scale


def _masked_logits(q: Tensor, k: Tensor, scale: float, q_start: int, causal: bool, self_mask: bool) -> Tensor:
    """Logits of queries at positions q_start, q_start+1, ... against all of ``k``, with masks.

    Computed in at least float32 from upcast ``q`` and ``k``: a float16 product q·k overflows past 65504.
    """
    dtype = _logit_dtype(q.dtype)
    logits = (q.to(dtype) @ k.to(dtype).transpose(-1, -2)) * scale
    if self_mask or causal:
        q_pos = torch.arange(q_start, q_start + q.shape[-2], device=q.device).unsqueeze(-1)
        k_pos = torch.arange(k.shape[-2], device=q.device)
        if self_mask:
            logits = torch.where(q_pos == k_pos, logits - SELF_PENALTY, logits)
        if causal:
            logits = logits.masked_fill(k_pos > q_pos, MASK_VALUE)
    return logits


def full_attention(
    q: Tensor,
    v: Tensor,
    k: Tensor | None = None,
    *,
    causal: bool = False,
    self_mask: bool | None = None,
    scale: float | None = None,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Plain attention that materialises the ``[..., L, L]`` weights (paper eq. 1).

    With ``k=None`` it is shared-QK attention: keys k̂ = q/‖q‖, logits q·k̂ (scale 1), and the self
    mask is on by default (penalty 1e5, so a query with no other target attends to itself).
    With ``k`` given it is scaled dot-product attention softmax(q kᵀ/√d) v, and the self mask is off
    unless ``self_mask=True`` (it then penalises key position == query position).
    ``causal`` masks keys at positions after the query. ``scale`` overrides the logit scale.
    Returns the output ``[..., L, d_v]``, and the weights too with ``return_weights=True``.

    ``q``, ``k`` and ``v`` must be floating-point tensors of one dtype and device (a ``TypeError``, which
    is also a ``ValueError``, names the argument otherwise); the logits and softmax run in at least
    float32. An empty query set gives an empty output; keys are needed whenever there are queries.
    Non-finite inputs are not checked (that would synchronise the device on every call): a NaN or
    inf propagates to the rows that see it.
    """
    causal, return_weights = as_bool("causal", causal), as_bool("return_weights", return_weights)
    k, self_mask, scale = _prepare_full(q, v, k, self_mask, scale)
    weights = torch.softmax(_masked_logits(q, k, scale, 0, causal, self_mask), dim=-1).to(v.dtype)
    out = weights @ v
    return (out, weights) if return_weights else out


class _ChunkedAttention(torch.autograd.Function):
    """Attention computed over query chunks; the backward pass recomputes each chunk's weights.

    Forward saves q, k, v, the output and each query's logsumexp (all O(L·d)); no L×L tensor
    outlives a chunk. Backward, per chunk: P = exp(S − lse), dV += Pᵀ dO, dS = P ∘ (dO Vᵀ − rowsum(dO ∘ O)),
    dQ = dS K·scale, dK += dSᵀ Q·scale.
    """

    @staticmethod
    def forward(ctx, q, k, v, scale, causal, self_mask, chunk):  # type: ignore[override]
        out = v.new_empty(*q.shape[:-1], v.shape[-1])
        lse = q.new_empty(q.shape[:-1], dtype=_logit_dtype(q.dtype))
        for start, stop, k_stop in _query_chunks(q.shape[-2], k.shape[-2], chunk, causal):
            logits = _masked_logits(
                q[..., start:stop, :], k[..., :k_stop, :], scale, start, causal, self_mask
            )
            lse[..., start:stop] = torch.logsumexp(logits, dim=-1)
            weights = torch.exp(logits - lse[..., start:stop, None]).to(v.dtype)
            out[..., start:stop, :] = weights @ v[..., :k_stop, :]
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.settings = (scale, causal, self_mask, chunk)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        q, k, v, out, lse = ctx.saved_tensors
        scale, causal, self_mask, chunk = ctx.settings
        grad_q, grad_k, grad_v = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for start, stop, k_stop in _query_chunks(q.shape[-2], k.shape[-2], chunk, causal):
            q_c, k_c, v_c, g_c = (
                q[..., start:stop, :],
                k[..., :k_stop, :],
                v[..., :k_stop, :],
                grad_out[..., start:stop, :],
            )
            logits = _masked_logits(q_c, k_c, scale, start, causal, self_mask)
            weights = torch.exp(logits - lse[..., start:stop, None]).to(v.dtype)
            grad_v[..., :k_stop, :] += weights.transpose(-1, -2) @ g_c
            row = (g_c * out[..., start:stop, :]).sum(dim=-1, keepdim=True)
            grad_logits = weights * (g_c @ v_c.transpose(-1, -2) - row) * scale
            grad_q[..., start:stop, :] = grad_logits @ k_c
            grad_k[..., :k_stop, :] += grad_logits.transpose(-1, -2) @ q_c
        return grad_q, grad_k, grad_v, None, None, None, None


def _query_chunks(n_queries: int, n_keys: int, chunk: int, causal: bool):
    """(start, stop, k_stop) per query chunk; causal chunks never need keys past their last query."""
    for start in range(0, n_queries, chunk):
        stop = min(start + chunk, n_queries)
        yield start, stop, min(stop, n_keys) if causal else n_keys


def memory_efficient_attention(
    q: Tensor,
    v: Tensor,
    k: Tensor | None = None,
    *,
    causal: bool = False,
    self_mask: bool | None = None,
    scale: float | None = None,
    query_chunk_size: int = 128,
) -> Tensor:
    """:func:`full_attention`'s result in memory linear in L (paper §2, "Memory-efficient attention").

    Queries are processed ``query_chunk_size`` at a time, and a custom ``torch.autograd.Function``
    recomputes each chunk's weights in the backward pass, so neither pass keeps an L×L tensor: peak
    extra memory is one ``[..., query_chunk_size, L]`` block. This is the paper's full-attention
    baseline. Arguments mean what they mean in :func:`full_attention` (shared-QK when ``k`` is None).
    """
    query_chunk_size, causal = positive_int("query_chunk_size", query_chunk_size), as_bool("causal", causal)
    k, self_mask, scale = _prepare_full(q, v, k, self_mask, scale)
    return _ChunkedAttention.apply(q, k, v, scale, causal, self_mask, query_chunk_size)


# ----------------------------------------------------------------------------------------------------
# LSH attention
# ----------------------------------------------------------------------------------------------------


@dataclass
class LSHInfo:
    """What :func:`lsh_attention` did, for lessons and figures (all tensors detached).

    ``buckets``, ``sort_indices``, ``undo_indices``, ``chunk_ids`` and ``round_weights`` have shape
    ``[..., n_hashes, L]``: the bucket of each original position; the original position at each
    sorted slot; the sorted slot of each position; the chunk of each position; and each round's
    weight in the combination (eqs. 12–14; they sum to 1 over rounds). ``weights`` is ``[..., L, L]``:
    the combined attention weight of each query on each original key position (rows sum to 1),
    or None when L > ``MAX_WEIGHTS_LENGTH``. ``rotations`` is None when buckets were given.
    """

    buckets: Tensor
    sort_indices: Tensor
    undo_indices: Tensor
    chunk_ids: Tensor
    round_weights: Tensor
    weights: Tensor | None
    rotations: Tensor | None
    n_buckets: int
    chunk_size: int


def sort_by_bucket(buckets: Tensor) -> tuple[Tensor, Tensor]:
    """Sort each hash round by (bucket, position) (paper §2, Figure 2c), key = bucket·L + position.

    ``buckets``: ``[..., n_hashes, L]``. Returns ``(sort_indices, undo_indices)`` of the same shape:
    ``sort_indices[..., r, s]`` is the original position at sorted slot s of round r, and
    ``undo_indices`` is its inverse (the slot of each position), so gathering with one and then the
    other is the identity.
    """
    if buckets.is_floating_point() or buckets.is_complex() or buckets.dtype == torch.bool:
        raise ArgumentTypeError(f"buckets must be an integer tensor of bucket ids, got {buckets.dtype}")
    length = buckets.shape[-1]
    positions = torch.arange(length, device=buckets.device)
    sort_indices = torch.argsort(buckets * length + positions, dim=-1)
    undo_indices = torch.empty_like(sort_indices).scatter_(
        -1, sort_indices, positions.expand_as(sort_indices)
    )
    return sort_indices, undo_indices


def _resolve_chunk_size(length: int, n_buckets: int, chunk_size: int | None) -> int:
    if chunk_size is None:
        if (2 * length) % n_buckets:
            raise ValueError(
                f"the default chunk_size 2·L/n_buckets = {2 * length}/{n_buckets} is not an integer: "
                f"pass chunk_size, or pick n_buckets dividing 2·L = {2 * length}"
            )
        chunk_size = 2 * length // n_buckets
    chunk_size = positive_int("chunk_size", chunk_size)
    if length % chunk_size:
        raise ValueError(
            f"chunk_size={chunk_size} must divide the sequence length L={length}: pad the sequence or "
            f"choose a chunk_size that divides it"
        )
    return chunk_size


def _check_qk_v(qk: Tensor, v: Tensor) -> None:
    _check_tensors(qk=qk, v=v)
    if v.shape[:-1] != qk.shape[:-1]:
        raise ValueError(
            f"qk and v must have the same shape up to the last dim [..., L, :], "
            f"got qk {tuple(qk.shape)} and v {tuple(v.shape)}"
        )
    if qk.shape[-2] == 0 or qk.shape[-1] == 0:
        raise ValueError(f"qk must have a sequence length L >= 1 and a dim d >= 1, got shape {tuple(qk.shape)}")
    if math.prod(qk.shape[:-2]) == 0:
        raise ValueError(f"qk must hold at least one sequence: its leading dims {tuple(qk.shape[:-2])} are empty")


def _check_buckets(buckets: Tensor, qk: Tensor, n_buckets: int, n_hashes: int | None) -> None:
    want = f"[..., n_hashes, L] with ... = {tuple(qk.shape[:-2])} and L = {qk.shape[-2]}"
    if buckets.dim() != qk.dim() or buckets.shape[:-2] != qk.shape[:-2] or buckets.shape[-1] != qk.shape[-2]:
        raise ValueError(f"buckets must have shape {want}, got {tuple(buckets.shape)}")
    if buckets.is_floating_point() or buckets.dtype == torch.bool:
        raise ValueError(f"buckets must be an integer tensor, got {buckets.dtype}")
    if n_hashes is not None and buckets.shape[-2] != n_hashes:
        raise ValueError(f"buckets hold {buckets.shape[-2]} rounds but n_hashes={n_hashes}")
    if buckets.numel() and (buckets.min() < 0 or buckets.max() >= n_buckets):
        raise ValueError(f"bucket ids must lie in [0, n_buckets) = [0, {n_buckets})")


def lsh_attention(
    qk: Tensor,
    v: Tensor,
    *,
    n_buckets: int,
    n_hashes: int | None = None,
    chunk_size: int | None = None,
    causal: bool = False,
    rotations: Tensor | None = None,
    generator: torch.Generator | None = None,
    buckets: Tensor | None = None,
    attend_across_buckets: bool = False,
    dedup: bool = True,
    return_info: bool = False,
) -> Tensor | tuple[Tensor, LSHInfo]:
    """Shared-QK LSH attention (paper §2 and Appendix A) for ``qk, v`` of shape ``[..., L, d]``.

    1. Hash ``qk`` into ``n_buckets`` buckets, ``n_hashes`` rounds (:func:`hash_vectors`), with the
       given ``rotations`` (``[..., n_hashes, d, n_buckets // 2]``), fresh ones drawn from
       ``generator`` (torch's global generator if None; shared by all leading dims), or use the
       given ``buckets`` (``[..., n_hashes, L]``) as they are. ``n_hashes`` defaults to what
       rotations or buckets hold, else 1.
    2. Per round, sort by (bucket, position) and cut into chunks of ``chunk_size``
       (default 2·L/n_buckets, paper §2; it must divide L). Chunks never mix rounds.
    3. Each chunk attends to itself and the previous chunk of its round; a round's first chunk looks
       back at nothing (eq. 11). Logits q·k̂ with k̂ = q/‖q‖; keys in another bucket are masked
       (eqs. 3–5) unless ``attend_across_buckets`` (the authors' later default: the whole window
       counts); self gets −1e5; ``causal`` masks later original positions (eq. 16).
    4. Each round gives o^(r) and its logsumexp z^(r); rounds combine with softmax weights over z^(r)
       (eqs. 12–15). With ``dedup`` (default) every logit also gets −log N_ij, N_ij the number of
       rounds whose window holds key j for query i (Appendix A), so the result is softmax attention
       over the *set* of visited pairs; ``dedup=False`` counts a pair once per round that visits it
       (the peers' multiset).

    ``qk`` and ``v`` must be floating-point tensors of one dtype with at least one sequence (non-empty
    leading dims), L >= 1 and d >= 1; anything else is a ``ValueError`` or ``TypeError`` naming the argument.
    Memory is O(n_hashes·L·chunk_size), plus the hash projections ``[..., n_hashes, L, n_buckets/2]``
    held briefly while hashing. Everything is differentiable in ``qk`` and ``v`` (the hashing itself
    is piecewise constant). Returns the output ``[..., L, d_v]``, and an
    :class:`LSHInfo` too with ``return_info=True``.
    """
    _check_qk_v(qk, v)
    causal, dedup, return_info = as_bool("causal", causal), as_bool("dedup", dedup), as_bool("return_info", return_info)
    attend_across_buckets = as_bool("attend_across_buckets", attend_across_buckets)
    n_buckets = check_n_buckets(n_buckets)
    if n_hashes is not None:
        n_hashes = positive_int("n_hashes", n_hashes)
    length, dim, dim_v = qk.shape[-2], qk.shape[-1], v.shape[-1]
    chunk = _resolve_chunk_size(length, n_buckets, chunk_size)
    if buckets is None:
        rotations = rotations_for(qk, n_buckets, n_hashes, rotations=rotations, generator=generator)
        buckets = hash_vectors(qk, n_buckets, n_hashes, rotations=rotations)
    elif rotations is not None or generator is not None:
        raise ValueError("given buckets replace hashing: pass buckets, or rotations/generator, not both")
    else:
        _check_buckets(buckets, qk, n_buckets, n_hashes)

    lead = qk.shape[:-2]
    batch, rounds, n_chunks = math.prod(lead), buckets.shape[-2], length // chunk
    flat_buckets = buckets.reshape(batch, rounds, length).to(torch.long)
    sort_idx, undo_idx = sort_by_bucket(flat_buckets)

    # Gather into sorted blocks [B, H, n_chunks, chunk, d]; each chunk then attends to itself and its predecessor.
    logit_dtype = _logit_dtype(qk.dtype)
    gather_at = (sort_idx + torch.arange(batch, device=qk.device).view(batch, 1, 1) * length).reshape(-1)
    blocks = (batch, rounds, n_chunks, chunk)
    sorted_qk = qk.reshape(batch * length, dim).index_select(0, gather_at).view(*blocks, dim)
    sorted_v = v.reshape(batch * length, dim_v).index_select(0, gather_at).view(*blocks, dim_v)
    q_pos = sort_idx.view(blocks)
    windows = Windows(q_pos, flat_buckets, undo_idx // chunk, causal, attend_across_buckets, dedup)
    sorted_out, lse, probs = chunk_attention(sorted_qk.to(logit_dtype), sorted_v.to(logit_dtype), windows)

    # Unsort each round back to original positions, then combine the rounds (eqs. 12–14).
    unsort_at = (
        undo_idx + torch.arange(batch * rounds, device=qk.device).view(batch, rounds, 1) * length
    ).reshape(-1)
    round_out = sorted_out.reshape(-1, dim_v).index_select(0, unsort_at).view(batch, rounds, length, dim_v)
    round_lse = lse.reshape(-1).index_select(0, unsort_at).view(batch, rounds, length)
    round_weights = torch.softmax(round_lse, dim=1)
    out = (round_weights.unsqueeze(-1) * round_out.to(round_weights.dtype)).sum(dim=1)
    out = out.to(v.dtype).view(*lead, length, dim_v)
    if not return_info:
        return out

    weights = None
    if length <= MAX_WEIGHTS_LENGTH:
        weights = dense_weights(probs, round_weights.detach(), sort_idx, q_pos)
        weights = weights.view(*lead, length, length)
    info = LSHInfo(
        buckets=buckets.detach(),
        sort_indices=sort_idx.view(*lead, rounds, length),
        undo_indices=undo_idx.view(*lead, rounds, length),
        chunk_ids=(undo_idx // chunk).view(*lead, rounds, length),
        round_weights=round_weights.detach().view(*lead, rounds, length),
        weights=weights,
        rotations=None if rotations is None else rotations.detach(),
        n_buckets=n_buckets,
        chunk_size=chunk,
    )
    return out, info


# ----------------------------------------------------------------------------------------------------
# Multi-head modules
# ----------------------------------------------------------------------------------------------------


def _split_heads(x: Tensor, n_heads: int) -> Tensor:
    """``[..., L, n_heads·d_head]`` → ``[..., n_heads, L, d_head]``."""
    return x.unflatten(-1, (n_heads, -1)).transpose(-2, -3)


def _merge_heads(x: Tensor) -> Tensor:
    """``[..., n_heads, L, d_head]`` → ``[..., L, n_heads·d_head]``."""
    return x.transpose(-2, -3).flatten(-2)


def check_module_input(x: Tensor, d_model: int, weight: Tensor) -> None:
    """``x`` is ``[..., L, d_model]``, floating-point and, outside autocast, of the parameters' dtype."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        what = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise ArgumentTypeError(f"x must be a floating-point tensor [..., L, d_model={d_model}], got {what}")
    if x.dim() < 2 or x.shape[-1] != d_model:
        raise ValueError(f"x must have shape [..., L, d_model={d_model}], got {tuple(x.shape)}")
    if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise ArgumentTypeError(
            f"x has dtype {x.dtype} but the module's parameters are {weight.dtype}: convert one of them "
            f"(x.to({weight.dtype}) or module.to({x.dtype}))"
        )


def _check_heads(d_model: int, n_heads: int) -> tuple[int, int]:
    d_model, n_heads = positive_int("d_model", d_model), positive_int("n_heads", n_heads)
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
    return d_model, n_heads


class LSHSelfAttention(nn.Module):
    """Multi-head shared-QK LSH self-attention (paper §2): projections to qk and v, LSH, output projection.

    Chunking: give ``chunk_size`` (then n_buckets = 2·L/chunk_size for each input length, paper §2),
    ``n_buckets`` (then chunk_size = 2·L/n_buckets), or both; with neither, chunk_size is
    ``DEFAULT_CHUNK_SIZE``. ``n_hashes`` is the default number of rounds; ``forward(x, n_hashes=8)``
    overrides it, so a model trained with one count can be evaluated with another (paper Table 2).

    Hashing randomness: each forward draws fresh rotations, a different set per head (shared across
    the batch), from ``self.generator``, a ``torch.Generator`` seeded with ``seed`` (torch's global
    generator when ``seed`` is None), unless a ``generator``, ``rotations`` or ``buckets`` is passed.
    The rotations and buckets used are kept in ``last_rotations`` and ``last_buckets``; passing
    ``buckets=module.last_buckets`` replays the hashing exactly (what a reversible backward needs,
    since a reconstructed input can hash differently), ``rotations=module.last_rotations`` re-hashes
    with the same matrices.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        chunk_size: int | None = None,
        n_buckets: int | None = None,
        n_hashes: int = 1,
        causal: bool = False,
        attend_across_buckets: bool = False,
        dedup: bool = True,
        orthogonal_rotations: bool = False,
        seed: int | None = None,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.d_model, self.n_heads = _check_heads(d_model, n_heads)
        self.chunk_size = None if chunk_size is None else positive_int("chunk_size", chunk_size)
        self.n_buckets = None if n_buckets is None else check_n_buckets(n_buckets)
        self.n_hashes = positive_int("n_hashes", n_hashes)
        self.causal, self.dedup = as_bool("causal", causal), as_bool("dedup", dedup)
        self.attend_across_buckets = as_bool("attend_across_buckets", attend_across_buckets)
        self.orthogonal_rotations = as_bool("orthogonal_rotations", orthogonal_rotations)
        self.generator = None if seed is None else torch.Generator().manual_seed(as_int("seed", seed))
        d_model, bias = self.d_model, as_bool("bias", bias)
        self.to_qk = nn.Linear(d_model, d_model, bias=bias)
        self.to_v = nn.Linear(d_model, d_model, bias=bias)
        self.to_out = nn.Linear(d_model, d_model)
        self.last_rotations: Tensor | None = None
        self.last_buckets: Tensor | None = None

    def chunking(self, length: int) -> tuple[int | None, int]:
        """``(chunk_size, n_buckets)`` for a sequence of ``length``; chunk_size None = 2·L/n_buckets."""
        if self.n_buckets is not None:
            return self.chunk_size, self.n_buckets
        chunk = self.chunk_size or DEFAULT_CHUNK_SIZE
        if length % chunk:
            raise ValueError(
                f"sequence length {length} must be a multiple of chunk_size={chunk}: pad the input"
            )
        return chunk, 2 * length // chunk

    def forward(
        self,
        x: Tensor,
        n_hashes: int | None = None,
        rotations: Tensor | None = None,
        buckets: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        return_info: bool = False,
    ) -> Tensor | tuple[Tensor, LSHInfo]:
        """``x``: ``[..., L, d_model]`` → ``[..., L, d_model]`` (and an :class:`LSHInfo` if asked)."""
        check_module_input(x, self.d_model, self.to_v.weight)
        return_info = as_bool("return_info", return_info)
        if x.shape[-2] == 0 or math.prod(x.shape[:-2]) == 0:
            raise ValueError(f"x must hold at least one sequence of length L >= 1, got shape {tuple(x.shape)}")
        chunk, n_buckets = self.chunking(x.shape[-2])
        qk, v = _split_heads(self.to_qk(x), self.n_heads), _split_heads(self.to_v(x), self.n_heads)
        if buckets is None:
            if rotations is None:
                rounds = self.n_hashes if n_hashes is None else n_hashes
                rotations = random_rotations(
                    qk.shape[-1],
                    n_buckets,
                    rounds,
                    generator=generator or self.generator,
                    orthogonal=self.orthogonal_rotations,
                    batch_shape=(self.n_heads,),
                    dtype=qk.dtype,
                ).to(qk.device)
            buckets = hash_vectors(qk, n_buckets, n_hashes, rotations=rotations)
        self.last_rotations, self.last_buckets = rotations, buckets.detach()
        result = lsh_attention(
            qk,
            v,
            n_buckets=n_buckets,
            n_hashes=n_hashes,
            chunk_size=chunk,
            causal=self.causal,
            buckets=buckets,
            attend_across_buckets=self.attend_across_buckets,
            dedup=self.dedup,
            return_info=return_info,
        )
        if return_info:
            out, info = result
            info.rotations = rotations
            return self.to_out(_merge_heads(out)), info
        return self.to_out(_merge_heads(result))


class FullSelfAttention(nn.Module):
    """Multi-head full self-attention, shared-QK (paper §2) or with separate Q and K projections (eq. 1).

    ``shared_qk=True``: one projection ``to_qk``, unit keys, no 1/√d, self masked (as
    :func:`full_attention` with ``k=None``). Its parameters are named like
    :class:`LSHSelfAttention`'s, so either module loads the other's ``state_dict`` (train with full
    attention, evaluate with LSH, as in paper Table 2). ``shared_qk=False``: projections ``to_q`` and
    ``to_k`` and ordinary scaled dot-product attention. ``memory_efficient=True`` computes the same
    thing with :func:`memory_efficient_attention` (query chunks of ``query_chunk_size``, recomputed
    in backward).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        shared_qk: bool = True,
        causal: bool = False,
        memory_efficient: bool = False,
        query_chunk_size: int = 128,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.d_model, self.n_heads = _check_heads(d_model, n_heads)
        self.shared_qk, self.causal = as_bool("shared_qk", shared_qk), as_bool("causal", causal)
        self.memory_efficient = as_bool("memory_efficient", memory_efficient)
        self.query_chunk_size = positive_int("query_chunk_size", query_chunk_size)
        d_model, bias = self.d_model, as_bool("bias", bias)
        if self.shared_qk:
            self.to_qk = nn.Linear(d_model, d_model, bias=bias)
        else:
            self.to_q = nn.Linear(d_model, d_model, bias=bias)
            self.to_k = nn.Linear(d_model, d_model, bias=bias)
        self.to_v = nn.Linear(d_model, d_model, bias=bias)
        self.to_out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[..., L, d_model]`` → ``[..., L, d_model]``."""
        check_module_input(x, self.d_model, self.to_v.weight)
        v = _split_heads(self.to_v(x), self.n_heads)
        if self.shared_qk:
            q, k = _split_heads(self.to_qk(x), self.n_heads), None
        else:
            q, k = _split_heads(self.to_q(x), self.n_heads), _split_heads(self.to_k(x), self.n_heads)
        if self.memory_efficient:
            out = memory_efficient_attention(
                q, v, k, causal=self.causal, query_chunk_size=self.query_chunk_size
            )
        else:
            out = full_attention(q, v, k, causal=self.causal)
        return self.to_out(_merge_heads(out))
