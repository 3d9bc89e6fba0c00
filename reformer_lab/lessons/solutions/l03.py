"""Solutions to lesson 03, "shared-QK and LSH attention" (paper §2, Appendix A)."""

from __future__ import annotations

import torch
from torch import Tensor


def nij_by_hand() -> list[int]:
    """Row 2 of N_ij for exercise 1's buckets (2 rounds, 12 positions, chunks of 4).

    Round 0 sorted by (bucket, position): [6 10 4 8 | 11 3 1 0 | 2 5 7 9]. Query 2 (bucket 5) sits in the
    last chunk; its window is the middle chunk and its own, where bucket 5 holds 0, 2, 5, 7 and 9.
    Round 1 sorted: [6 8 0 2 | 3 4 5 7 | 11 1 9 10]. Query 2 (bucket 1) sits in the first chunk, which looks
    back at nothing; bucket 1 holds 0 and 2 there (3, 4, 5, 7 and 11 share the bucket but lie ahead).
    So 0 and 2 (itself) are visited twice, 5, 7 and 9 once.
    """
    return [2, 0, 2, 0, 0, 1, 0, 1, 0, 1, 0, 0]


def lookahead_counts(buckets: Tensor, chunk_size: int) -> Tensor:
    """N_ij when each chunk sees the previous, its own and the next chunk of its round (same bucket, no wrap)."""
    n_hashes, length = buckets.shape
    positions = torch.arange(length)
    counts = torch.zeros(length, length, dtype=torch.int64)
    for r in range(n_hashes):
        order = torch.argsort(buckets[r] * length + positions)  # sort by (bucket, position)
        chunk_of = torch.empty(length, dtype=torch.int64)
        chunk_of[order] = positions // chunk_size  # the chunk each original position lands in
        in_window = (chunk_of[None, :] - chunk_of[:, None]).abs() <= 1  # previous, own or next chunk
        same_bucket = buckets[r][:, None] == buckets[r][None, :]
        counts += in_window & same_bucket
    return counts


def merge_key_blocks(outputs: Tensor, lse: Tensor) -> Tensor:
    """Eqs. 12–14 with disjoint blocks: weight block b by exp(z_b − z), z = logsumexp over blocks (stable)."""
    weights = torch.softmax(lse, dim=0)  # [n_blocks, L], sums to 1 over the blocks; subtracts the max first
    return (weights.unsqueeze(-1) * outputs).sum(dim=0)
