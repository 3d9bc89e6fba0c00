"""Solutions to lesson 05, "chunked feed-forward" (paper §3, eq. 10, Table 3)."""

from __future__ import annotations


def ff_chunk_bytes(batch: int, length: int, d_ff: int, n_chunks: int) -> float:
    """The d_ff-wide activation of one chunk, float32: b · (L / n_chunks) · d_ff · 4 bytes."""
    return 4.0 * batch * (length // n_chunks) * d_ff


def fewest_ff_chunks(batch: int, length: int, d_ff: int, budget_bytes: int) -> int:
    """The smallest divisor c of ``length`` (eq. 10: equal chunks) with 4·b·(L/c)·d_ff ≤ ``budget_bytes``."""
    for c in range(1, length + 1):
        if length % c == 0 and ff_chunk_bytes(batch, length, d_ff, c) <= budget_bytes:
            return c
    raise ValueError(f"even {length} chunks of one position exceed {budget_bytes} bytes")


def reformer_bytes(
    batch: int, length: int, d_model: int, d_ff: int, n_heads: int, n_layers: int, n_hashes: int, chunk_size: int
) -> float:
    """Table 3, Reformer row, × 4 bytes: max(b·l·d_model, b·n_h·l·n_r·c) with c = 2·chunk_size, the keys a query
    compares (its own chunk and the previous one). No n_l (reversible), no d_ff (chunked)."""
    c = 2 * chunk_size
    return 4.0 * max(batch * length * d_model, batch * n_heads * length * n_hashes * c)
