"""Solutions to lesson 05, "chunked feed-forward" (paper §3, eq. 10, Table 3)."""

from __future__ import annotations


def ff_chunk_bytes(batch: int, length: int, d_ff: int, n_chunks: int) -> float:
    """The d_ff-wide activation of one chunk, float32: b · (L / n_chunks) · d_ff · 4 bytes."""
    return 4.0 * batch * (length // n_chunks) * d_ff


def fewest_ff_chunks(batch: int, length: int, d_ff: int, budget_bytes: int) -> int:
    """The smallest divisor k of ``length`` (eq. 10: equal chunks) with 4·b·(L/k)·d_ff ≤ ``budget_bytes``.

    One sequence of 48 positions, d_ff 1024, 40,000 bytes: by size 5 chunks would do, but 5 does not divide 48;
    k = 6 (chunks of 8 positions, 32,768 bytes).
    """
    for k in range(1, length + 1):
        if length % k == 0 and ff_chunk_bytes(batch, length, d_ff, k) <= budget_bytes:
            return k
    raise ValueError(f"even {length} chunks of one position exceed {budget_bytes} bytes")


def reformer_bytes(
    batch: int, length: int, d_model: int, d_ff: int, n_heads: int, n_layers: int, n_hashes: int, chunk_size: int
) -> float:
    """Table 3, Reformer row, × 4 bytes: max(b·l·d_model, b·n_h·l·n_r·c) with c = 2·chunk_size, the keys a query
    compares (its own chunk and the previous one). No n_l (reversible), no d_ff (chunked).

    At b = 8, l = 64K, d_model 1024, 8 heads, 2 rounds, chunks of 128: attention, 8 GiB, against 2 GiB of
    activations (Table 3's own c = (4·128)² would give 8 TiB, 1024× more).
    """
    c = 2 * chunk_size
    return 4.0 * max(batch * length * d_model, batch * n_heads * length * n_hashes * c)
