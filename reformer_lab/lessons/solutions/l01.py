"""Solutions to lesson 01, "angular LSH" (paper §2, Figure 1, eq. 6)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def hash_rounds(x: Tensor, rotations: Tensor) -> Tensor:
    """h_r(x) = argmax([x R_r; −x R_r]) for all rounds at once: x [L, d], rotations [n_hashes, d, b/2] → [n_hashes, L].

    ``x @ rotations`` broadcasts x over the rounds; the concatenation and the argmax both run over the
    last dim, the n_buckets scores of one vector in one round.
    """
    projected = x @ rotations  # [n_hashes, L, n_buckets // 2]
    return torch.cat([projected, -projected], dim=-1).argmax(dim=-1)


def two_bucket_collision(theta: float) -> float:
    """With one column r, x and y split when the hyperplane r·z = 0 passes between them: θ out of π directions."""
    return 1 - theta / math.pi


def recall(p: float, n_hashes: int) -> float:
    """At least one hit in n independent rounds = 1 − P[a miss in every round] = 1 − (1 − p)^n."""
    return 1 - (1 - p) ** n_hashes
