"""Solutions to lesson 03, "shared-QK and LSH attention" (paper §2, Appendix A)."""

from __future__ import annotations

import torch
from torch import Tensor


def combine_rounds(outputs: Tensor, lse: Tensor) -> Tensor:
    """Eqs. 12–14: weight round r by exp(z^(r) − z), z = logsumexp over rounds; softmax subtracts the max."""
    weights = torch.softmax(lse, dim=0)  # [n_hashes, L], sums to 1 over the rounds
    return (weights.unsqueeze(-1) * outputs).sum(dim=0)


def visit_counts(buckets: Tensor, chunk_size: int) -> Tensor:
    """N_ij: in how many rounds key j is in query i's window (same bucket, own or previous chunk, no wrap)."""
    n_hashes, length = buckets.shape
    positions = torch.arange(length)
    counts = torch.zeros(length, length, dtype=torch.int64)
    for r in range(n_hashes):
        order = torch.argsort(buckets[r] * length + positions)  # sort by (bucket, position)
        chunk_of = torch.empty(length, dtype=torch.int64)
        chunk_of[order] = positions // chunk_size  # the chunk each original position lands in
        q_chunk, k_chunk = chunk_of[:, None], chunk_of[None, :]
        in_window = (k_chunk == q_chunk) | (k_chunk == q_chunk - 1)  # chunk 0 - 1 = -1 matches nothing
        same_bucket = buckets[r][:, None] == buckets[r][None, :]
        counts += in_window & same_bucket
    return counts


def causal_window_mask(sort_indices: Tensor, chunk_size: int) -> Tensor:
    """True where a key in chunk c's window (previous chunk, then chunk c) is later than the query, or absent."""
    q_pos = sort_indices.view(-1, chunk_size)  # original positions of each chunk's queries
    previous = torch.cat([q_pos[-1:], q_pos[:-1]])  # placeholder for chunk 0, masked below
    k_pos = torch.cat([previous, q_pos], dim=1)
    mask = k_pos[:, None, :] > q_pos[:, :, None]  # compare ORIGINAL positions
    mask[0, :, :chunk_size] = True  # chunk 0 looks back at nothing (eq. 11)
    return mask
