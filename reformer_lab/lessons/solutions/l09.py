"""Solutions to lesson 09, "what the approximations cost" (paper §5)."""

from __future__ import annotations


def total_bits(text: float, copy: float, length: int) -> float:
    """Of the length − 1 targets, half − 1 are in the first copy (its first character is never a target) and half
    in the second: the total is the mean of the two means weighted by those counts.

    At length 128, a text half at the n-gram's 1.8 bits and a perfect copy give 63·1.8/127 ≈ 0.89 bits/char.
    """
    half = length // 2
    return ((half - 1) * text + half * copy) / (length - 1)


def same_within_noise(baseline: list[float], variant: list[float]) -> bool:
    """Two ranges [min, max] overlap unless one lies entirely beyond the other: each must reach the other's
    start (>=, so ranges that touch overlap)."""
    return max(baseline) >= min(variant) and max(variant) >= min(baseline)
