"""Solutions to lesson 06, "the whole Reformer" (paper §3–5)."""

from __future__ import annotations


def block_parameters(d_model: int, d_ff: int) -> int:
    """One reversible block: F = LayerNorm → shared-QK attention, G = LayerNorm → feed-forward.

    F: LayerNorm scale and shift (2·d_model); to_qk and to_v (d_model² each, no bias; one matrix for
    queries *and* keys, that is shared-QK); to_out (d_model² + d_model). G: LayerNorm (2·d_model);
    w_in (d_model·d_ff + d_ff); w_out (d_ff·d_model + d_model). n_heads, n_hashes and chunk_size add
    nothing: heads split d_model, and the LSH rotations are drawn afresh, not learned.
    """
    attention = 2 * d_model + 3 * d_model * d_model + d_model
    feed_forward = 2 * d_model + (d_model * d_ff + d_ff) + (d_ff * d_model + d_model)
    return attention + feed_forward


def memory_switch(term: str) -> str:
    """The ReformerConfig field that removes each memory term (paper §1's three problems, plus the logits)."""
    if term.startswith("n_layers copies"):
        return "reversible"  # §3: one layer's activations, recomputed going backwards
    if "d_ff" in term:
        return "ff_chunks"  # §3, eq. 10: the feed-forward a chunk of positions at a time
    if "l²" in term:
        return "attention"  # §2: attention="lsh" compares only within chunks of sorted buckets
    return "loss_chunks"  # §3: the output log-probabilities a section of the sequence at a time
