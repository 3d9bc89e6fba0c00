"""Solutions to lesson 08, "speed and memory against length" (paper §5, Figure 5 right)."""

from __future__ import annotations


def crossover_length(a: float, b: float, c: float) -> float:
    """Full attention per token a + b·L/2 equals LSH's c at L = 2(c − a)/b."""
    return 2 * (c - a) / b


def chunk_flops(queries: int, d_head: int, n_hashes: int, chunk_size: int, chunks_seen: int) -> float:
    """Each round, each query: chunks_seen·chunk_size keys, one logit and one weighted value per key, d_head
    multiply-adds (2 FLOPs) each."""
    keys = chunks_seen * chunk_size
    return 2.0 * 2 * queries * n_hashes * keys * d_head
