"""Solutions to lesson 02, "bucketing, sorting, chunking" (paper §2, Figure 2, eq. 5)."""

from __future__ import annotations

import torch
from torch import Tensor


def sort_by_bucket(buckets: Tensor) -> Tensor:
    """Positions sorted by bucket, ties broken by position: one integer key, bucket·L + position, is unique."""
    length = len(buckets)
    return torch.argsort(buckets * length + torch.arange(length))


def window_mask(sort_indices: Tensor, chunk_size: int) -> Tensor:
    """mask[i, j]: key j is in query i's own or previous chunk of the sorted order (eq. 5).

    The chunk of position i is ⌊s_i/m⌋, where s_i is its slot in the sorted order: the inverse of
    ``sort_indices`` (which holds the position at each slot). Chunk 0 has no previous chunk.
    """
    length = len(sort_indices)
    slots = torch.empty_like(sort_indices)
    slots[sort_indices] = torch.arange(length)
    chunks = slots // chunk_size
    query, key = chunks[:, None], chunks[None, :]
    return (key == query) | (key == query - 1)


def dropped_fraction(buckets: Tensor, n_buckets: int) -> float:
    """Share of causal same-bucket pairs (key before query) that fall outside the query's window."""
    length = len(buckets)
    chunk_size = 2 * length // n_buckets  # m = 2L/n_buckets
    positions = torch.arange(length)
    same = (buckets[:, None] == buckets[None, :]) & (positions[None, :] < positions[:, None])
    inside = window_mask(sort_by_bucket(buckets), chunk_size)
    total = int(same.sum())
    return 0.0 if total == 0 else int((same & ~inside).sum()) / total
