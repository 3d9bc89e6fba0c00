"""Solutions to lesson 00, "the memory problem" (paper §1), worked step by step."""

from __future__ import annotations

import math


def transformer_memory_bytes(
    batch: int, length: int, d_model: int, d_ff: int, n_layers: int, n_heads: int, bytes_per_value: int
) -> int:
    """Table 3's Transformer row, max(b·l·d_ff, b·n_h·l²)·n_l, in bytes.

    Per layer a Transformer keeps the feed-forward's d_ff-wide hidden activations (b·l·d_ff values) and the
    attention matrices (one l × l per head and sequence: b·n_h·l²). Table 3 gives the order of the memory, so it
    takes the larger of the two; ``d_model`` does not appear, because d_ff ≥ d_model makes b·l·d_model the
    smaller term. Every layer keeps its own (× n_l); each value takes ``bytes_per_value`` bytes.

    The ablation model on one imagenet64 image in fp16 (l = 12,288, 8 heads, d_ff 4096, 3 layers):
    attention 8·12,288² values = 2.25 GiB per layer against 96 MiB of feed-forward activations; 6.75 GiB in all.

    The largest batch of such images in 80 GiB: the memory is linear in the batch, so
    ``80 * 2**30 // transformer_memory_bytes(1, 12288, 1024, 4096, 3, 8, 2)`` = 11 (74.25 GiB; 12 need 81 GiB).
    """
    feedforward = batch * length * d_ff
    attention = batch * n_heads * length * length
    return max(feedforward, attention) * n_layers * bytes_per_value


def ff_attention_crossover(d_ff: int, n_heads: int) -> float:
    """The length at which b·l·d_ff = b·n_h·l².

    Divide both sides by b·l: d_ff = n_h·l, so l = d_ff / n_h. Batch and layers cancel (both terms carry them).
    Below this length the feed-forward term is the larger (l² shrinks faster than l); above it, attention.
    """
    return d_ff / n_heads


def longest_sequence(memory_bytes: int, batch: int, n_heads: int, n_layers: int, bytes_per_value: int) -> int:
    """The largest whole l with b·n_h·l²·n_l·bytes_per_value ≤ memory_bytes.

    l² ≤ memory_bytes / (b·n_h·n_l·bytes_per_value); take the integer square root (rounding down, since one token
    more would not fit). ``memory_bytes // k`` first is safe: isqrt(⌊x⌋) = ⌊√x⌋ for x ≥ 0. Because memory grows as
    l², 4× the memory buys only 2× the length.
    """
    values = memory_bytes // (batch * n_heads * n_layers * bytes_per_value)
    return math.isqrt(values)
