"""Solutions to lesson 04, "reversible layers" (paper §3, eqs. 7–9; RevNet Algorithm 1)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor


def invert_swapped_block(f: Callable[[Tensor], Tensor], g: Callable[[Tensor], Tensor], y1: Tensor, y2: Tensor
                         ) -> tuple[Tensor, Tensor]:
    """The block computed y2 = x2 + g(x1), then y1 = x1 + f(y2). As in eq. 8, undo the last update first:
    y2 is known, so y1 = x1 + f(y2) gives x1; then y2 = x2 + g(x1) gives x2."""
    x1 = y1 - f(y2)
    x2 = y2 - g(x1)
    return x1, x2


def reversible_saved_bytes(n_layers: int, batch: int, length: int, d_model: int, n_heads: int, n_hashes: int
                           ) -> int:
    """What the reversible Function saves: Y₁ and Y₂ of the last block (float32), two int64 seeds per block,
    and each block's LSH buckets ([batch, n_heads, n_hashes, length], uint8 when there are at most 256)."""
    outputs = 2 * batch * length * d_model * 4
    seeds = n_layers * 2 * 8
    buckets = n_layers * batch * n_heads * n_hashes * length
    return outputs + seeds + buckets
