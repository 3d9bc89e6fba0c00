"""Solutions to lesson 10, "related work and what came after" (paper §4)."""

from __future__ import annotations

import math


def max_full_length(budget_bytes: int, batch: int, n_heads: int) -> int:
    """b·n_h·l² float32 weights of 4 bytes must fit: l = ⌊√(budget / (4·b·n_h))⌋.

    At 16 GiB (16·2³⁰ bytes, the paper's "16GB"), batch 1, one head: 65,536, the 64K tokens of §2.
    """
    return math.isqrt(budget_bytes // (4 * batch * n_heads))


def lsh_break_even(n_hashes: int, chunk_size: int) -> int:
    """n_r·l·2m = l² at l = 2·m·n_r: beyond it LSH computes fewer logits (its time per token stays flat)."""
    return 2 * chunk_size * n_hashes


def local_reach(distance: int, chunk_size: int) -> float:
    """A query at offset r of its chunk reaches r − distance ≥ −m: all m offsets when distance ≤ m, the last
    2m − distance of them when m < distance < 2m, none from 2m on."""
    m = chunk_size
    return min(m, max(0, 2 * m - distance)) / m
