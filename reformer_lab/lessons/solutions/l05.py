"""Solutions to lesson 05, "chunked feed-forward" (paper §3, eq. 10, Table 3)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def chunked_ff(ff: Callable[[Tensor], Tensor], x: Tensor, n_chunks: int) -> Tensor:
    """Eq. 10: run the position-wise ``ff`` on ``n_chunks`` equal slices of the sequence (dim −2), in order."""
    size = x.shape[-2] // n_chunks
    return torch.cat([ff(part) for part in x.split(size, dim=-2)], dim=-2)


def ff_chunk_bytes(batch: int, length: int, d_ff: int, n_chunks: int) -> float:
    """The d_ff-wide activation of one chunk, float32: b · (L / n_chunks) · d_ff · 4 bytes."""
    return 4.0 * batch * (length // n_chunks) * d_ff


def reformer_memory(
    batch: int, length: int, d_model: int, d_ff: int, n_heads: int, n_layers: int, n_hashes: int, c: int
) -> float:
    """Table 3, Reformer row: max(b·l·d_model, b·n_h·l·n_r·c); no n_l (reversible), no d_ff (chunked)."""
    return float(max(batch * length * d_model, batch * n_heads * length * n_hashes * c))
