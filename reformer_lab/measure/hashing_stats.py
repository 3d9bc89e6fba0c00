"""How well angular LSH does its job: collision probability, multi-round recall, bucket balance.

The paper (§2) asks two things of its hash h(x) = argmax([xR; −xR]): "nearby vectors get the same
hash with high probability and [...] hash-buckets are of similar size with high probability". It
gives no formula for either. This module measures both, with explicit generators so every number
is repeatable:

* :func:`measure_collisions` and :func:`collision_probability`: the fraction of random trials in
  which two vectors at angle θ share a bucket, in one round and in at least one of ``n_hashes``
  rounds (eq. 6's union of rounds).
* :func:`two_bucket_collision`: the exact answer for ``n_buckets = 2``. Then R is one column r and
  h(x) is the sign of x·r, i.e. hyperplane LSH (Charikar 2002), and P[h(x) = h(y)] = 1 − θ/π.
  (Background, not a statement of the Reformer paper.)
* :func:`multi_round_recall`: 1 − (1 − p)^n, the chance that independent rounds find a neighbour
  at least once ("this probability can be reduced by doing multiple rounds of hashing", §2).
* :func:`hashed_bucket_counts`, :func:`uniform_bucket_counts` and :class:`BucketBalance`: how even
  bucket sizes are for random data (the chunking of §2 assumes a bucket rarely reaches twice the
  average size).

Angles are in radians throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from reformer_lab.hashing import check_n_buckets, hash_vectors, random_rotations
from reformer_lab.validation import as_int

__all__ = [
    "BucketBalance",
    "Collisions",
    "check_angles",
    "collision_probability",
    "hashed_bucket_counts",
    "measure_collisions",
    "multi_round_recall",
    "pairs_at_angles",
    "two_bucket_collision",
    "uniform_bucket_counts",
]

_TRIAL_BLOCK = 1000


def check_angles(angles: float | Sequence[float] | Tensor) -> Tensor:
    """``angles`` as a 1-D float64 tensor, or a ValueError unless every angle lies in [0, π] (radians)."""
    try:
        theta = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"angles must be numbers in radians, got {angles!r}") from None
    if theta.numel() == 0:
        raise ValueError("angles is empty: give at least one angle in [0, π]")
    slack = 1e-6  # float32 π rounds up: let it through
    bad = ~((theta >= -slack) & (theta <= math.pi + slack))  # also catches NaN
    if bad.any():
        raise ValueError(
            f"angles must lie in [0, π] radians (the angle between two vectors), got {theta[bad][0].item()!r}; "
            "convert degrees with math.radians"
        )
    return theta.clamp(0, math.pi)


def two_bucket_collision(angles: float | Sequence[float] | Tensor) -> Tensor:
    """Exact P[h(x) = h(y)] for ``n_buckets = 2`` and vectors at angle θ: 1 − θ/π.

    With one column r, argmax([x·r; −x·r]) is the sign of x·r: x and y split exactly when the
    random hyperplane orthogonal to r passes between them, which happens with probability θ/π
    for any rotation-invariant r (Gaussian or uniformly random).
    """
    return 1 - check_angles(angles) / math.pi


def multi_round_recall(p: float | Tensor, n_hashes: int) -> Tensor:
    """P[share a bucket in at least one of ``n_hashes`` independent rounds] = 1 − (1 − p)^n_hashes.

    ``p`` is the per-round collision probability (a number or a tensor of them, each in [0, 1]).
    Paper eq. 6 takes the union of the rounds' buckets, so one collision is enough.
    """
    n = as_int("n_hashes", n_hashes, minimum=1)
    prob = torch.as_tensor(p, dtype=torch.float64)
    if not bool(((prob >= 0) & (prob <= 1)).all()):
        raise ValueError(f"p is a probability and must lie in [0, 1], got {p!r}")
    return 1 - (1 - prob) ** n


def pairs_at_angles(
    angles: float | Sequence[float] | Tensor, d: int, n_trials: int, *, generator: torch.Generator
) -> Tensor:
    """Random vectors with fixed angles to a random reference: ``[n_trials, 1 + n_angles, d]`` float64.

    Row 0 of each trial is a random unit vector u; row 1 + i is cos θ_i · u + sin θ_i · v, with v a
    random unit vector orthogonal to u. Each trial draws its own plane (u, v).
    """
    theta = check_angles(angles)
    d = as_int("d", d, minimum=2)
    n_trials = as_int("n_trials", n_trials, minimum=1)
    u = torch.randn(n_trials, d, generator=generator, dtype=torch.float64)
    v = torch.randn(n_trials, d, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True)
    v = v - (v * u).sum(-1, keepdim=True) * u
    v = v / v.norm(dim=-1, keepdim=True)
    others = theta.cos()[None, :, None] * u[:, None] + theta.sin()[None, :, None] * v[:, None]
    return torch.cat([u[:, None], others], dim=1)


@dataclass(frozen=True, eq=False)
class Collisions:
    """What :func:`measure_collisions` saw: for each angle, how often x and y shared a bucket.

    ``per_round_hits[a, r]`` counts the trials in which the pair at angle ``a`` collided in round r;
    ``any_round_hits[a]`` those in which it collided in at least one round.
    """

    angles: Tensor  # [n_angles], radians
    per_round_hits: Tensor  # [n_angles, n_hashes]
    any_round_hits: Tensor  # [n_angles]
    n_trials: int

    @property
    def n_hashes(self) -> int:
        return int(self.per_round_hits.shape[1])

    @property
    def per_round(self) -> Tensor:
        """P[h(x) = h(y)] in one round, averaged over the rounds (they are identically distributed)."""
        return self.per_round_hits.double().mean(dim=1) / self.n_trials

    @property
    def any_round(self) -> Tensor:
        """P[h_r(x) = h_r(y) for at least one round r]: the multi-round recall of eq. 6."""
        return self.any_round_hits.double() / self.n_trials

    def standard_error(self, p: Tensor) -> Tensor:
        """Binomial standard error of a rate ``p`` estimated from ``n_trials`` trials: sqrt(p(1 − p)/n)."""
        return (p * (1 - p) / self.n_trials).sqrt()


def measure_collisions(
    angles: float | Sequence[float] | Tensor,
    n_buckets: int,
    n_hashes: int = 1,
    *,
    d: int = 64,
    n_trials: int = 2000,
    generator: torch.Generator,
    orthogonal: bool = False,
) -> Collisions:
    """Hash vectors at each angle θ ``n_trials`` times with ``n_hashes`` rounds and count the collisions.

    Each trial draws a random plane, the vectors at every angle in it (:func:`pairs_at_angles`), and
    ``n_hashes`` fresh matrices R of shape ``[d, n_buckets // 2]``
    (:func:`reformer_lab.hashing.random_rotations`). All angles share the trial's draws, so the curves
    are smooth in θ. For Gaussian R (the default, as in the authors' code) the answer does not
    depend on ``d``; for ``orthogonal=True`` it does.
    """
    theta = check_angles(angles)
    n_buckets = check_n_buckets(n_buckets)
    n_hashes = as_int("n_hashes", n_hashes, minimum=1)
    n_trials = as_int("n_trials", n_trials, minimum=1)
    per_round = torch.zeros(len(theta), n_hashes, dtype=torch.long)
    any_round = torch.zeros(len(theta), dtype=torch.long)
    for start in range(0, n_trials, _TRIAL_BLOCK):  # blocks bound the memory; draws stay in a fixed order
        block = min(_TRIAL_BLOCK, n_trials - start)
        x = pairs_at_angles(theta, d, block, generator=generator)  # [block, 1 + n_angles, d]
        rotations = random_rotations(
            d, n_buckets, n_hashes, generator=generator, orthogonal=orthogonal, batch_shape=(block,),
            dtype=torch.float64,
        )
        buckets = hash_vectors(x, n_buckets, rotations=rotations)  # [block, n_hashes, 1 + n_angles]
        same = buckets[..., 1:] == buckets[..., :1]  # [block, n_hashes, n_angles]
        per_round += same.sum(dim=0).T
        any_round += same.any(dim=1).sum(dim=0)
    return Collisions(theta, per_round, any_round, n_trials)


def collision_probability(
    angles: float | Sequence[float] | Tensor,
    n_buckets: int,
    n_hashes: int = 1,
    *,
    d: int = 64,
    n_trials: int = 2000,
    generator: torch.Generator,
    orthogonal: bool = False,
) -> Tensor:
    """Measured P[x and y share a bucket in at least one of ``n_hashes`` rounds], one value per angle θ.

    With ``n_hashes = 1`` this is the per-round collision probability. A float64 tensor of shape
    ``[n_angles]``; see :func:`measure_collisions` for how it is measured.
    """
    return measure_collisions(
        angles, n_buckets, n_hashes, d=d, n_trials=n_trials, generator=generator, orthogonal=orthogonal
    ).any_round


def hashed_bucket_counts(
    n_buckets: int,
    *,
    length: int,
    d: int = 64,
    n_trials: int = 100,
    generator: torch.Generator,
    orthogonal: bool = False,
) -> Tensor:
    """Bucket sizes when ``length`` random Gaussian vectors are hashed: ``[n_trials, n_buckets]`` counts.

    Each trial draws new vectors and one new R. Random isotropic data is a friendly case; real
    queries cluster, which makes buckets less even (lesson 02).
    """
    n_buckets = check_n_buckets(n_buckets)
    length = as_int("length", length, minimum=1)
    n_trials = as_int("n_trials", n_trials, minimum=1)
    x = torch.randn(n_trials, length, as_int("d", d, minimum=1), generator=generator)
    rotations = random_rotations(
        x.shape[-1], n_buckets, generator=generator, orthogonal=orthogonal, batch_shape=(n_trials,)
    )
    buckets = hash_vectors(x, n_buckets, rotations=rotations)[:, 0]  # [n_trials, length]
    return _count(buckets, n_buckets)


def uniform_bucket_counts(n_buckets: int, *, length: int, n_trials: int = 100, generator: torch.Generator) -> Tensor:
    """The ideal to compare with: each of ``length`` items in a uniformly random bucket, ``[n_trials, n_buckets]``."""
    n_buckets = check_n_buckets(n_buckets)
    length = as_int("length", length, minimum=1)
    n_trials = as_int("n_trials", n_trials, minimum=1)
    return _count(torch.randint(n_buckets, (n_trials, length), generator=generator), n_buckets)


def _count(buckets: Tensor, n_buckets: int) -> Tensor:
    counts = torch.zeros(buckets.shape[0], n_buckets, dtype=torch.long)
    return counts.scatter_add_(1, buckets, torch.ones_like(buckets))


@dataclass(frozen=True, eq=False)
class BucketBalance:
    """Summary of bucket sizes over many trials (each row of ``counts`` is one trial's bucket sizes).

    ``mean_size`` is length / n_buckets, the average bucket; the paper's chunks hold twice that
    (m = 2l/n_buckets), so ``p_over_twice`` is the share of buckets that would not fit one chunk.
    """

    counts: Tensor

    def __post_init__(self) -> None:
        if self.counts.dim() != 2 or self.counts.shape[1] < 2 or self.counts.shape[0] < 1:
            raise ValueError(f"counts must have shape [n_trials, n_buckets >= 2], got {tuple(self.counts.shape)}")
        if (self.counts < 0).any():
            raise ValueError("counts must be non-negative")
        if not bool((self.counts.sum(1) == self.counts[0].sum()).all()) or self.counts[0].sum() == 0:
            raise ValueError("every trial must hash the same, positive number of items")

    @property
    def n_buckets(self) -> int:
        return int(self.counts.shape[1])

    @property
    def length(self) -> int:
        return int(self.counts[0].sum())

    @property
    def mean_size(self) -> float:
        return self.length / self.n_buckets

    @property
    def relative_sizes(self) -> Tensor:
        """Every bucket's size divided by the average size, flattened over trials."""
        return self.counts.reshape(-1).double() / self.mean_size

    @property
    def cv(self) -> float:
        """Coefficient of variation of bucket sizes: standard deviation over mean."""
        return float(self.relative_sizes.std(correction=0))

    @property
    def max_over_mean(self) -> float:
        """The largest bucket of a trial divided by the average bucket, averaged over trials."""
        return float(self.counts.max(dim=1).values.double().mean() / self.mean_size)

    @property
    def p_over_twice(self) -> float:
        """Share of buckets larger than twice the average size (they overflow a chunk of 2l/n_buckets)."""
        return float((self.relative_sizes > 2).double().mean())

    @property
    def p_trial_overflows(self) -> float:
        """Share of trials (sequences) in which at least one bucket is larger than twice the average."""
        return float((self.counts.max(dim=1).values > 2 * self.mean_size).double().mean())

    @property
    def p_empty(self) -> float:
        """Share of buckets with nothing in them."""
        return float((self.counts == 0).double().mean())
