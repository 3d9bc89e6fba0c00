"""Solutions to lesson 00, "the memory problem" (paper §1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def qk_bytes(length: int, batch: int, n_heads: int, bytes_per_value: int) -> int:
    """One length × length matrix per head and per sequence."""
    return length * length * batch * n_heads * bytes_per_value


def feedforward_bytes(batch: int, length: int, d_ff: int, n_layers: int) -> int:
    """Every layer keeps its d_ff-wide hidden activations for the backward pass, 4 bytes each in fp32."""
    return batch * length * d_ff * n_layers * 4


def fit_exponent(lengths: Sequence[float], sizes: Sequence[float]) -> float:
    """Slope of the least-squares line through (log length, log size)."""
    slope, _intercept = np.polyfit(np.log(lengths), np.log(sizes), 1)
    return float(slope)
