"""The LSH attention kernel: sorted chunks attending to themselves and their predecessor (paper §2, Appendix A).

After :func:`reformer_lab.attention.lsh_attention` has hashed and sorted a round, this module does the
attention inside the chunks, in memory linear in L:

* the window: each chunk of ``chunk_size`` sorted positions attends to itself and to the previous
  chunk of the same round, never across rounds (paper eq. 11);
* the masks (:class:`Windows`): keys in another bucket (eqs. 3–5, unless the whole window counts),
  later positions when causal, the first chunk's look-back, and the self penalty of eq. 16;
* Appendix A's N_ij: with several rounds each logit gets −log N_ij, N_ij the number of rounds whose
  window holds the pair, so a pair seen in several rounds counts once;
* the forward and backward passes as one ``torch.autograd.Function`` that reads the look-back chunk
  in place (no ``[…, 2·chunk, d]`` copy of keys or values) and works through the rows in groups;
* :func:`dense_weights`, the ``[B, L, L]`` weights for :class:`~reformer_lab.attention.LSHInfo`.

The shared-QK logit conventions the kernel depends on live here too, and
:mod:`reformer_lab.attention` re-exports them for every attention in the package: keys are unit
vectors k̂_j = q_j/‖q_j‖ (:func:`unit_keys`, §2 "Shared-QK Transformer"), a query's own key gets
−``SELF_PENALTY`` (eq. 16) and a masked key the logit ``MASK_VALUE``, so no row is ever all −inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["MASK_VALUE", "NORM_EPS", "SELF_PENALTY", "Windows", "chunk_attention", "dense_weights", "unit_keys"]

SELF_PENALTY = 1e5  # paper eq. 16: m_ii = 10^5
MASK_VALUE = -1e9  # logit of a masked key (causal, other bucket, outside the window); trax's value
NORM_EPS = 1e-12  # F.normalize's: a zero query gets the key 0 rather than NaN


def unit_keys(q: Tensor) -> Tensor:
    """Shared-QK keys k̂ = q/‖q‖ (paper §2, "Shared-QK Transformer"), in ``q``'s dtype.

    The norm is taken in at least float32: ``NORM_EPS`` (1e-12) is 0 in float16, where a zero query
    would otherwise give 0/0 = NaN and, through its key, NaN in every row that sees it. A query whose
    norm is at most ``NORM_EPS`` (a zero query) gets the key q/NORM_EPS (0 for a zero query), as
    ``F.normalize`` gives, but as a constant: its direction is undefined, and F.normalize's gradient
    there, 1/NORM_EPS = 1e12, overflows float16 and swamps any other. The query side q·k̂_j keeps its
    gradient. The LSH kernel's backward pass (:class:`_ChunkAttention`) follows the same rule.
    """
    work = q.to(torch.promote_types(q.dtype, torch.float32))
    norm = torch.linalg.vector_norm(work, dim=-1, keepdim=True)
    keys = work / norm.clamp_min(NORM_EPS)
    if keys.requires_grad:
        keys = torch.where(norm > NORM_EPS, keys, keys.detach())
    return keys.to(q.dtype)


def _look_back(x: Tensor) -> Tensor:
    """For blocks ``[B, H, n_chunks, chunk, ...]``: each chunk preceded by the previous chunk of its round.

    Chunk 0's "previous chunk" is the round's last chunk (a wrap that the caller masks, eq. 11).
    With a single chunk per round there is no previous chunk and ``x`` is returned as it is.
    """
    if x.shape[2] == 1:
        return x
    return torch.cat([x.roll(1, dims=2), x], dim=3)


@dataclass
class Windows:
    """Where each blocked query and key came from, for masking the logits ``[B, H, n_chunks, chunk, window]``.

    ``q_pos`` ``[B, H, n_chunks, chunk]`` holds original positions (the sort order); ``buckets`` and
    ``chunk_ids`` ``[B, H, L]`` the bucket and chunk of every position in every round.
    """

    q_pos: Tensor
    buckets: Tensor
    chunk_ids: Tensor
    causal: bool
    attend_across_buckets: bool
    dedup: bool

    def part(self, rows: slice) -> Windows:
        return Windows(self.q_pos[rows], self.buckets[rows], self.chunk_ids[rows], self.causal,
                        self.attend_across_buckets, self.dedup)

    @torch.no_grad()
    def mask_(self, logits: Tensor) -> None:
        """Apply eqs. 3–5, 11 and 16 and Appendix A's −log N_ij to ``logits`` in place.

        A slot is valid when its key is in its query's window in the slot's own round (eq. 11: same bucket
        unless attending across buckets, not the wrap at a round's first chunk) and, when causal, not later.
        """
        chunk = self.q_pos.shape[-1]
        counted = self.dedup and self.q_pos.shape[1] > 1
        valid, counts = _window_hits(self.q_pos, _window_codes(self.q_pos, self.buckets, self.attend_across_buckets),
                                     counted)
        logits[..., -chunk:].diagonal(dim1=-2, dim2=-1).sub_(SELF_PENALTY)  # each position's own key
        if counts is not None:  # −log N_ij where N_ij > 1 (invalid slots, N_ij possibly 0, are masked below)
            flat = counts.view(-1)
            where = (flat > 1).nonzero().squeeze(1)
            logits.view(-1).index_add_(0, where, flat[where].to(logits.dtype).log_(), alpha=-1)
        if self.causal:
            valid.logical_and_(_look_back(self.q_pos).unsqueeze(-2) <= self.q_pos.unsqueeze(-1))
        logits.masked_fill_(valid.logical_not_(), MASK_VALUE)


def _row_groups(rows: int, parts: int = 4) -> list[slice]:
    """Split ``rows`` leading entries into about ``parts`` slices (transient memory ÷ parts)."""
    step = -(-rows // min(rows, parts))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


# The chunk products below work on chunks flattened to [N, chunk, ·] (N = rows·rounds·chunks), so chunk t's
# predecessor is entry t − 1. At a round's first chunk that entry is the previous round's last chunk: those
# logits are masked, their probabilities are exactly 0, and every product through them adds zeros.
# Chunks t − 1 and t are adjacent in memory, so a window is a view (:func:`_windows`) and each product is one
# batched matmul into a contiguous output: BLAS writing into a strided slice of the logits is many times slower.


def _windows(x: Tensor) -> Tensor:
    """Chunks t − 1 and t of ``x`` ``[N, chunk, d]`` as one ``[2·chunk, d]`` block, t = 1 … N − 1 (a view; eq. 11)."""
    x = x.contiguous()
    count, chunk, dim = x.shape
    return x.as_strided((count - 1, 2 * chunk, dim), (chunk * dim, dim, 1), x.storage_offset())


def _chunk_logits(a: Tensor, b: Tensor, out: Tensor) -> None:
    """``out[t] = a[t] @ [b[t − 1]; b[t]]ᵀ`` (look-back, own chunk) for contiguous ``out`` ``[N, chunk, window]``."""
    chunk = a.shape[-2]
    if out.shape[-1] == chunk:
        torch.bmm(a, b.mT, out=out)
        return
    torch.bmm(a[1:], _windows(b).mT, out=out[1:])
    out[0, :, :chunk] = 0.0  # the group's first chunk has no predecessor
    out[0, :, chunk:] = a[0] @ b[0].mT


def _chunk_apply(p: Tensor, x: Tensor) -> Tensor:
    """Each query's row of ``p`` ``[N, chunk, window]`` times its window of ``x`` ``[N, chunk, d]``."""
    chunk = x.shape[-2]
    if p.shape[-1] == chunk:
        return torch.bmm(p, x)
    result = x.new_empty(x.shape)
    torch.bmm(p[1:], _windows(x), out=result[1:])
    torch.mm(p[0, :, chunk:], x[0], out=result[0])
    return result


def _chunk_apply_t(p: Tensor, x: Tensor) -> Tensor:
    """The transpose of :func:`_chunk_apply`: ``pᵀ @ x`` summed onto the keys of each window."""
    chunk = x.shape[-2]
    result = torch.bmm(p[..., -chunk:].mT, x)
    if p.shape[-1] > chunk:
        result[:-1].baddbmm_(p[1:, :, :chunk].mT, x[1:])
    return result


class _ChunkAttention(torch.autograd.Function):
    """Attention of sorted chunks to themselves and their predecessor (eq. 11), without copying the keys.

    Inputs are the sorted blocks ``q`` ``[B, H, n_chunks, chunk, d]`` and ``v``; the keys are q/‖q‖ and
    the look-back reads the previous chunk in place, so no ``[…, 2·chunk, d]`` key or value copy exists.
    Forward saves q, v, the probabilities and the output; backward uses
    dS = P ∘ (dP − rowsum(dO ∘ O) + d lse). Both passes run over about four groups of rows, so logits,
    masks and gradients of one group exist at a time.
    Returns the blocked output, its logsumexp ``[B, H, n_chunks, chunk]`` and the probabilities
    (no gradient; for :class:`LSHInfo`).
    """

    @staticmethod
    def forward(ctx, q, v, windows):  # type: ignore[override]
        chunk, n_chunks = q.shape[-2], q.shape[2]
        width = 2 * chunk if n_chunks > 1 else chunk
        probs = q.new_empty(*q.shape[:-1], width)
        out = v.new_empty(v.shape)
        lse = q.new_empty(q.shape[:-1])
        for rows in _row_groups(q.shape[0]):
            q_g = q[rows].flatten(0, 2)
            logits = q_g.new_empty(*q_g.shape[:-1], width)
            _chunk_logits(q_g, unit_keys(q_g), logits)
            logits = logits.view(probs[rows].shape)
            windows.part(rows).mask_(logits)
            top = logits.amax(dim=-1)  # rows are never fully masked: the self key stays
            p = torch.softmax(logits, dim=-1, out=probs[rows])
            lse[rows] = top - p.amax(dim=-1).log()  # p at the top logit is exp(top − lse)
            out[rows] = _chunk_apply(p.flatten(0, 2), v[rows].flatten(0, 2)).view_as(out[rows])
        ctx.save_for_backward(q, v, probs, out)
        ctx.mark_non_differentiable(probs)
        ctx.set_materialize_grads(False)  # no zero-filled gradient for the probabilities (or an unused lse)
        return out, lse, probs

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_lse, _grad_probs):  # type: ignore[override]
        q, v, probs, out = ctx.saved_tensors
        grad_q, grad_v = torch.empty_like(q), torch.empty_like(v)
        grad_out = torch.zeros_like(out) if grad_out is None else grad_out
        for rows in _row_groups(q.shape[0]):
            p, d_out, q_g, v_g = (x[rows].flatten(0, 2) for x in (probs, grad_out, q, v))
            grad_v[rows] = _chunk_apply_t(p, d_out).view_as(grad_v[rows])
            d_s = torch.empty_like(p)
            _chunk_logits(d_out, v_g, d_s)
            row = (d_out * out[rows].flatten(0, 2)).sum(dim=-1, keepdim=True)
            if grad_lse is not None:
                row -= grad_lse[rows].reshape(row.shape)
            d_s.sub_(row).mul_(p)
            norm = q_g.norm(dim=-1, keepdim=True)
            unclamped = norm > NORM_EPS  # a (near-)zero query's key is a constant: no gradient through it
            keys = q_g / norm.clamp(min=NORM_EPS)
            d_keys = _chunk_apply_t(d_s, q_g)
            along = (keys * d_keys).sum(dim=-1, keepdim=True)
            through_key = (d_keys - keys * along).div_(norm.clamp_(min=NORM_EPS)).mul_(unclamped)
            d_q = _chunk_apply(d_s, keys).add_(through_key)
            grad_q[rows] = d_q.view_as(grad_q[rows])
        return grad_q, grad_v, None


def _window_codes(q_pos: Tensor, buckets: Tensor, attend_across_buckets: bool) -> Tensor:
    """A small integer per position and round ``[B, H, L]``: key j is in query i's window iff c(i) − c(j) ∈ {0, 1}.

    The window is eq. 11's (own chunk and the previous one, same bucket unless attending across buckets).

    c = chunk + 2·rank, rank the number of bucket changes before the position in its round's sort order
    (rank 0 when attending across buckets: the chunks alone decide). In one bucket the codes differ by the
    chunk difference; across buckets by at least 2, with the chunk difference's sign, since sorting by
    bucket makes the chunk non-decreasing in the bucket. Codes stay below n_chunks + 2·L, so they are
    int16 up to L ≈ 16K (int32 above) and N_ij's comparisons (Appendix A) move little memory.
    """
    batch, n_hashes, n_chunks, chunk = q_pos.shape
    length = n_chunks * chunk
    dtype = torch.int16 if n_chunks + 2 * length < 2**15 else torch.int32
    slot_chunk = torch.arange(length, device=q_pos.device, dtype=dtype) // chunk
    sorted_codes = slot_chunk.expand(batch, n_hashes, length).clone()
    if not attend_across_buckets:
        in_order = buckets.gather(-1, q_pos.flatten(2))
        changes = (in_order[..., 1:] != in_order[..., :-1]).cumsum(-1, dtype=dtype)
        sorted_codes[..., 1:] += 2 * changes
    return torch.empty_like(sorted_codes).scatter_(-1, q_pos.flatten(2), sorted_codes)


def _window_hits(q_pos: Tensor, codes: Tensor, count: bool) -> tuple[Tensor, Tensor | None]:
    """Which blocked slots ``[B, H, n_chunks, chunk, window]`` hold a key of their own round's window, and N_ij.

    ``codes`` are :func:`_window_codes`: a slot's pair is in round r's window iff its codes in round r
    differ by 0 or 1. With ``count``, every round is compared (one pass over all slots per round) and
    N_ij of Appendix A, the number of rounds whose window holds the pair, is returned as ``uint8``; it is
    meaningful where the slot is valid (there it is at least 1). Buffers are reused across rounds.
    """
    n_hashes, n_chunks, chunk = q_pos.shape[1:]
    shape = q_pos.shape + (2 * chunk if n_chunks > 1 else chunk,)
    valid = torch.empty(shape, dtype=torch.bool, device=q_pos.device)
    counts = torch.zeros(shape, dtype=torch.uint8, device=q_pos.device) if count else None
    diff = torch.empty(shape, dtype=codes.dtype, device=q_pos.device)
    hit = torch.empty(shape, dtype=torch.bool, device=q_pos.device)
    for r in range(n_hashes):
        rounds = slice(None) if count else slice(r, r + 1)  # without N_ij only the slot's own round matters
        at_q = codes[:, r].gather(1, q_pos[:, rounds].flatten(1)).view_as(q_pos[:, rounds])
        torch.sub(at_q.unsqueeze(-1), _look_back(at_q).unsqueeze(-2), out=diff[:, rounds])
        torch.eq(diff[:, rounds].bitwise_right_shift_(1), 0, out=hit[:, rounds])  # difference 0 or 1
        valid[:, r] = hit[:, r]
        if counts is not None:
            counts.add_(hit.view(torch.uint8))
    return valid, counts


def chunk_attention(q: Tensor, v: Tensor, windows: Windows) -> tuple[Tensor, Tensor, Tensor]:
    """Attention of the sorted blocks ``q``, ``v`` ``[B, H, n_chunks, chunk, ·]`` within their windows (eq. 11).

    Keys are ``unit_keys(q)``; ``windows`` says where each slot came from and masks the logits.
    Returns the blocked output, its logsumexp ``[B, H, n_chunks, chunk]`` (both differentiable in
    ``q`` and ``v``) and the probabilities ``[B, H, n_chunks, chunk, window]`` (no gradient).
    """
    return _ChunkAttention.apply(q, v, windows)


def dense_weights(probs: Tensor, round_weights: Tensor, sort_idx: Tensor, q_pos: Tensor) -> Tensor:
    """The combined weight of each query on each original key position, ``[B, L, L]`` (rows sum to 1).

    ``probs`` are :func:`chunk_attention`'s per-round probabilities, ``round_weights`` ``[B, H, L]`` each
    round's weight per position (eqs. 12–14), ``sort_idx`` ``[B, H, L]`` the sort order and ``q_pos`` the
    same positions as blocks ``[B, H, n_chunks, chunk]``; each window slot is scattered onto its key.
    """
    k_pos = _look_back(q_pos)
    batch, _, length = sort_idx.shape
    scaled = probs * round_weights.gather(-1, sort_idx).view_as(q_pos).unsqueeze(-1).to(probs.dtype)
    index = (q_pos.unsqueeze(-1) * length + k_pos.unsqueeze(-2)).expand(probs.shape)
    dense = torch.zeros(batch, length * length, dtype=probs.dtype, device=probs.device)
    return dense.scatter_add_(1, index.reshape(batch, -1), scaled.reshape(batch, -1)).view(
        batch, length, length
    )
