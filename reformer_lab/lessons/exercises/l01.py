"""Lesson 01, angular LSH (paper §2, "Locality sensitive hashing", Figure 1): the checks of the three exercises.

Hash every round at once with h(x) = argmax([xR; −xR]) (exercise 1), the chance that two vectors share a
bucket with two buckets (exercise 2), and the recall of several independent rounds (exercise 3, eq. 6).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from reformer_lab.hashing import hash_vectors, random_rotations
from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, first_difference, grade, grade_tensors

__all__ = ["check_hash_rounds", "check_two_bucket_collision", "check_recall"]


def _hash_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(2020)
    cases = []
    for length, d, n_hashes, n_buckets in [(12, 4, 1, 4), (20, 8, 3, 6), (16, 5, 2, 2), (30, 16, 4, 16)]:
        x = torch.randn(length, d, generator=generator, dtype=torch.float64)
        rotations = random_rotations(d, n_buckets, n_hashes, generator=generator, dtype=torch.float64)
        shown = f"x of shape [{length}, {d}] and rotations of shape [{n_hashes}, {d}, {n_buckets // 2}]"
        cases.append(Case((x, rotations), hash_vectors(x, n_buckets, rotations=rotations), shown))
    return cases


def _bucket_difference(got: Tensor, want: Tensor) -> str:
    """Which buckets differ, named by round and vector."""
    count, (r, i) = first_difference(got, want)
    return (f"{count} of {want.numel()} buckets differ from reformer_lab.hashing.hash_vectors; the first is "
            f"round {r}, vector {i}: expected {int(want[r, i])}, you returned {int(got[r, i])}.")


def _scores(x: Tensor, rotations: Tensor) -> Tensor:
    return x @ rotations  # [n_hashes, L, n_buckets // 2]


def _cat(p: Tensor, **kw: Any) -> Tensor:
    return torch.cat([p, -p], **kw)


_HASH_MISTAKES = [
    Mistake(lambda x, r: _scores(x, r).argmax(-1),
            "your buckets ignore −xR: argmax(xR) only reaches the first n_buckets/2 buckets. Take the argmax "
            "of torch.cat([xR, -xR], dim=-1), so that a large negative projection picks a bucket too."),
    Mistake(lambda x, r: _scores(x, r).abs().argmax(-1),
            "abs(xR) forgets the sign, so x and −x share a bucket; the sign should choose between bucket j "
            "and bucket j + n_buckets/2: use [xR; −xR]."),
    Mistake(lambda x, r: torch.cat([-_scores(x, r), _scores(x, r)], dim=-1).argmax(-1),
            "[−xR; xR] is the wrong order: the paper's [xR; −xR] puts the positive projections first, so "
            "bucket j < n_buckets/2 means column j of R won with a positive sign."),
    Mistake(lambda x, r: _cat(_scores(x, r)).argmax(-1),
            "torch.cat joins along dim 0 by default, which stacked the rounds of −xR under those of xR. "
            "Concatenate along the last dim: torch.cat([xR, -xR], dim=-1)."),
    Mistake(lambda x, r: _cat(_scores(x, r), dim=-1).argmax(1),
            "argmax over the wrong axis: take it over the n_buckets scores of each vector (dim=-1), which "
            "leaves one bucket per round and vector."),
    Mistake(lambda x, r: _cat(_scores(x, r), dim=-1).argmax(0),
            "argmax over the wrong axis (over the rounds): take it over the n_buckets scores (dim=-1)."),
    Mistake(lambda x, r: _cat(_scores(x, r), dim=-1).argmax(),
            "argmax without dim= flattens everything into one number: use argmax(dim=-1)."),
    Mistake(lambda x, r: _cat(_scores(x, r), dim=-1).argmax(-1).T,
            "right buckets, wrong layout: return [n_hashes, L] (rounds first, as hash_vectors does), "
            "not [L, n_hashes]."),
    Mistake(lambda x, r: _cat(x @ r[0], dim=-1).argmax(-1),
            "you hashed one round: rotations holds n_hashes matrices, one per round; return [n_hashes, L] "
            "(x @ rotations broadcasts over the rounds)."),
]


def check_hash_rounds(fn: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """Exercise 1: all rounds at once, ``fn(x, rotations)`` → buckets ``[n_hashes, L]``.

    ``x`` has shape ``[L, d]`` and ``rotations`` ``[n_hashes, d, n_buckets // 2]``; round r gives
    h_r(x) = argmax([x R_r; −x R_r]) (paper §2). Buckets are compared exactly, with
    :func:`reformer_lab.hashing.hash_vectors`.
    """
    return grade_tensors("Exercise 1 (hash_rounds)", fn, _hash_cases(), _HASH_MISTAKES,
                         what="bucket ids (whole numbers)", layout="[n_hashes, L]", describe=_bucket_difference)


def check_two_bucket_collision(fn: Callable[[float], float]) -> CheckResult:
    """Exercise 2: P[h(x) = h(y)] with 2 buckets for vectors at angle θ (radians): 1 − θ/π."""
    angles = [math.pi / 6, math.pi / 3, 0.0, math.pi / 2, 2.5, math.pi]  # π/6 first: the mistakes differ there
    cases = [Case((theta,), 1 - theta / math.pi) for theta in angles]
    mistakes = [
        Mistake(lambda t: t / math.pi, "θ/π is the chance that they split; the question asks for the same bucket."),
        Mistake(lambda t: 1 - t / (2 * math.pi),
                "the hyperplane orthogonal to r is a line through the origin with two ends: it separates x and y "
                "for θ out of π of its directions, not θ out of 2π."),
        Mistake(lambda t: math.cos(t), "cos θ is the similarity, not a probability (it goes negative); ask how "
                "often a random hyperplane passes between x and y."),
        Mistake(lambda t: 1 - t / 180, "θ is in radians here: divide by π, not by 180."),
        Mistake(lambda t: max(0.0, 1 - 2 * t / math.pi),
                "that is 4 buckets with an exact 2-D rotation; with 2 buckets there is one hyperplane, the sign "
                "of x·r."),
    ]
    return grade("Exercise 2 (two_bucket_collision)", fn, cases, mistakes)


def check_recall(fn: Callable[[float, int], float]) -> CheckResult:
    """Exercise 3: P[share a bucket in at least one of n independent rounds], ``fn(p, n_hashes)`` (eq. 6)."""
    pairs = [(0.3, 4), (0.5, 2), (0.9, 3), (0.1, 8), (0.55, 1), (0.0, 5), (1.0, 2)]
    cases = [Case((p, n), 1 - (1 - p) ** n) for p, n in pairs]
    mistakes = [
        Mistake(lambda p, n: p**n, "p^n is the chance of colliding in every round; eq. 6 takes the union of "
                "the rounds, so one collision is enough."),
        Mistake(lambda p, n: n * p, "adding the rounds' probabilities counts the trials that collide in several "
                "rounds more than once (and can exceed 1); go through the chance of missing in every round."),
        Mistake(lambda p, n: (1 - p) ** n, "(1 − p)^n is the chance of missing in every round; recall is the "
                "complement."),
        Mistake(lambda p, n: 1 - p**n, "1 − p^n is the chance that at least one round misses; you want at least "
                "one round that hits."),
    ]
    return grade("Exercise 3 (recall)", fn, cases, mistakes)
