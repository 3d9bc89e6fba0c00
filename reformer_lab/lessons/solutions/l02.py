"""Solutions to lesson 02, "bucketing, sorting, chunking" (paper §2, Figure 2, eq. 5)."""

from __future__ import annotations

import torch
from torch import Tensor


def lookahead_window(sort_indices: Tensor, chunk_size: int, chunks_after: int) -> Tensor:
    """mask[i, j]: key j's chunk is query i's own, the one before, or one of the ``chunks_after`` after it.

    The chunk of position i is ⌊s_i/m⌋ with s_i its slot in the sorted order, the inverse of ``sort_indices``
    (which holds the position at each slot). Chunk indices outside 0 … n_chunks − 1 simply match no key, so
    the first chunk looks back at nothing and the last ahead at nothing.
    """
    length = len(sort_indices)
    slots = torch.empty_like(sort_indices)
    slots[sort_indices] = torch.arange(length)
    chunks = slots // chunk_size
    query, key = chunks[:, None], chunks[None, :]
    return (key >= query - 1) & (key <= query + chunks_after)


def lost_pairs(bucket_size: int, start_slot: int, chunk_size: int) -> int:
    """Causal pairs of one bucket that are two or more chunks apart in the sorted order.

    Slot order within a bucket is position order, so a pair (earlier slot a, later slot b) is a key before its
    query; it is lost when ⌊b/m⌋ − ⌊a/m⌋ ≥ 2. Count the bucket's slots per chunk, then pairs of chunks.
    """
    slots = torch.arange(start_slot, start_slot + bucket_size)
    per_chunk = torch.bincount(slots // chunk_size)
    return sum(int(per_chunk[c]) * int(per_chunk[: max(c - 1, 0)].sum()) for c in range(len(per_chunk)))


def losing_buckets(m: int) -> Tensor:
    """m − 1 positions of bucket 0, then m + 2 of bucket 1, then m − 1 of bucket 2: length 3m.

    Bucket 0 fills slots 0 … m − 2, so bucket 1 starts at slot m − 1, the last slot of chunk 0, and ends at slot
    2m, the first slot of chunk 2: its last position's query cannot see its first position's key.
    """
    return torch.tensor([0] * (m - 1) + [1] * (m + 2) + [2] * (m - 1))
