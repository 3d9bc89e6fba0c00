"""Solutions to lesson 01, "angular LSH" (paper §2, Figure 1, eq. 6)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def factorised_hash(x: Tensor, rotations: Tensor, factors: tuple[int, int]) -> Tensor:
    """Two small hashes as the two digits of one bucket id: h₁ + f₁·h₂ ∈ [0, f₁·f₂).

    The first f₁/2 columns of R give h₁ = argmax([xR₁; −xR₁]) ∈ [0, f₁), the next f₂/2 columns give h₂ ∈ [0, f₂).
    R needs f₁/2 + f₂/2 columns where a plain hash with f₁·f₂ buckets needs f₁·f₂/2 (8 instead of 32 for 8 × 8).
    """
    f1, f2 = factors
    p1, p2 = x @ rotations[:, : f1 // 2], x @ rotations[:, f1 // 2 : f1 // 2 + f2 // 2]
    h1 = torch.cat([p1, -p1], dim=-1).argmax(dim=-1)
    h2 = torch.cat([p2, -p2], dim=-1).argmax(dim=-1)
    return h1 + f1 * h2


def four_bucket_collision(theta: float) -> float:
    """Figure 1's setting: the 4 arcs are quarters of the circle, so their borders are 2 perpendicular lines.

    A random rotation puts a border between x and y with probability θ/(π/2) while θ ≤ π/2; beyond that a
    quarter arc can never hold both, so P[h(x) = h(y)] = max(0, 1 − 2θ/π).
    """
    return max(0.0, 1 - 2 * theta / math.pi)


def rounds_needed(p: float, target: float) -> int:
    """The smallest n with 1 − (1 − p)^n ≥ target, i.e. (1 − p)^n ≤ 1 − target.

    Counting up avoids a logarithm landing a hair above a whole number; math.ceil(log(1 − target) / log(1 − p))
    gives the same n away from such ties.
    """
    n = 1
    while 1 - (1 - p) ** n < target:
        n += 1
    return n
