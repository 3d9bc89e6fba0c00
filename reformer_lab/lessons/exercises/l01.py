"""Lesson 01, angular LSH (paper §2, "Locality sensitive hashing", Figure 1): the checks of the three exercises.

Each one carries the lesson's hash somewhere new: the factorised hash the authors' code uses for large bucket
counts (exercise 1), the collision probability of Figure 1's own setting, 2-D with 4 buckets and an exact rotation
(exercise 2), and how many independent rounds a target recall needs (exercise 3, eq. 6 turned around).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from reformer_lab.hashing import hash_vectors
from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade, grade_tensors

__all__ = ["check_factorised_hash", "check_four_bucket_collision", "check_rounds_needed"]


# Exercise 1: a factorised hash ------------------------------------------------------------------------------


def _part(x: Tensor, columns: Tensor, factor: int, *, signed: bool = True) -> Tensor:
    """One factor's hash: argmax([x R_f; −x R_f]) over its own f/2 columns (argmax(x R_f) if not ``signed``)."""
    projected = x @ columns
    return (torch.cat([projected, -projected], dim=-1) if signed else projected).argmax(dim=-1)


def _parts(x: Tensor, rotations: Tensor, factors: Sequence[int], *, signed: bool = True,
           same_columns: bool = False) -> list[Tensor]:
    """The factors' hashes, each from its own group of columns (or all from the first group)."""
    out, start = [], 0
    for f in factors:
        group = rotations[:, : f // 2] if same_columns else rotations[:, start : start + f // 2]
        out.append(_part(x, group, f, signed=signed))
        start += f // 2
    return out


def _combine(parts: Sequence[Tensor], factors: Sequence[int]) -> Tensor:
    """h₁ + f₁·h₂ (+ f₁f₂·h₃ …): the authors' code's order, the first factor the fastest-changing digit."""
    bucket, place = torch.zeros_like(parts[0]), 1
    for h, f in zip(parts, factors, strict=True):
        bucket = bucket + place * h
        place *= f
    return bucket


def _factorised_reference(x: Tensor, rotations: Tensor, factors: Sequence[int]) -> Tensor:
    """The reference for exercise 1: bucket ids in [0, f₁·f₂) of ``x`` [L, d] under ``rotations`` [d, f₁/2 + f₂/2]."""
    return _combine(_parts(x, rotations, factors), factors)


def _factorised_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(2020)
    cases = []
    for length, d, factors in [(24, 8, (4, 6)), (40, 16, (8, 8)), (30, 6, (2, 10)), (50, 32, (16, 4))]:
        x = torch.randn(length, d, generator=generator, dtype=torch.float64)
        rotations = torch.randn(d, sum(f // 2 for f in factors), generator=generator, dtype=torch.float64)
        shown = (f"x of shape [{length}, {d}], rotations of shape [{d}, {rotations.shape[1]}] and "
                 f"factors={factors}")
        cases.append(Case((x, rotations, factors), _factorised_reference(x, rotations, factors), shown))
    return cases


_FACTORISED_MISTAKES = [
    Mistake(lambda x, r, fs: _combine(_parts(x, r, fs)[::-1], fs[::-1]),
            "the digits are the wrong way round: h₁ is the fast digit, so the bucket is h₁ + f₁·h₂ (not h₂ + f₂·h₁)."),
    Mistake(lambda x, r, fs: _parts(x, r, fs)[0] + fs[1] * _parts(x, r, fs)[1],
            "h₁ runs over f₁ values, so h₂ must be multiplied by f₁ (not f₂) to keep every pair (h₁, h₂) apart."),
    Mistake(lambda x, r, fs: _parts(x, r, fs)[0] + _parts(x, r, fs)[1],
            "h₁ + h₂ sends different pairs to the same id (0 + 1 = 1 + 0): make h₂ a second digit, h₁ + f₁·h₂."),
    Mistake(lambda x, r, fs: _parts(x, r, fs)[0] * _parts(x, r, fs)[1],
            "a product h₁·h₂ sends every pair with a 0 to bucket 0: combine them as digits, h₁ + f₁·h₂."),
    Mistake(lambda x, r, fs: _combine(_parts(x, r, fs, signed=False), [f // 2 for f in fs]),
            "each factor still needs its −xR half: argmax([xR_f; −xR_f]) gives f buckets from f/2 columns."),
    Mistake(lambda x, r, fs: _combine(_parts(x, r, fs, same_columns=True), fs),
            "both factors used the same first columns of R, so they are not independent hashes: the first factor "
            "gets columns 0 … f₁/2 − 1, the second the next f₂/2."),
    Mistake(lambda x, r, fs: hash_vectors(x, 2 * r.shape[1], rotations=r[None])[0],
            "that is the plain hash over all the columns at once (2·(f₁/2 + f₂/2) buckets): split R into two groups, "
            "hash with each, and combine the two ids."),
]


def check_factorised_hash(fn: Callable[[Tensor, Tensor, tuple[int, int]], Tensor]) -> CheckResult:
    """Exercise 1: ``fn(x, rotations, factors)`` → bucket ids ``[L]`` in ``[0, f₁·f₂)``.

    ``x`` is ``[L, d]``, ``factors = (f₁, f₂)`` (both even) and ``rotations`` ``[d, f₁/2 + f₂/2]``: the first
    f₁/2 columns hash x into h₁ ∈ [0, f₁), the next f₂/2 into h₂ ∈ [0, f₂), each by argmax([xR; −xR]); the
    bucket is h₁ + f₁·h₂, the rule of the authors' code (trax) for a factorised bucket count.
    """
    return grade_tensors("Exercise 1 (factorised_hash)", fn, _factorised_cases(), _FACTORISED_MISTAKES,
                         what="bucket ids (whole numbers)", layout="[L], one bucket per vector")


# Exercise 2: Figure 1's collision probability ---------------------------------------------------------------


def _four_bucket_reference(theta: float) -> float:
    """P[h(x) = h(y)] in 2-D, 4 buckets, exact random rotation: 1 − 2θ/π up to θ = π/2, then 0."""
    return max(0.0, 1 - 2 * theta / math.pi)


def check_four_bucket_collision(fn: Callable[[float], float]) -> CheckResult:
    """Exercise 2: P[h(x) = h(y)] for 2-D vectors at angle θ (radians), 4 buckets, an exact random rotation."""
    angles = [math.pi / 12, math.pi / 6, 0.0, math.pi / 3, math.pi / 2, 2.0, math.pi]  # π/12 first: mistakes differ
    cases = [Case((theta,), _four_bucket_reference(theta)) for theta in angles]
    mistakes = [
        Mistake(lambda t: 1 - t / math.pi,
                "1 − θ/π is 2 buckets (one line through the origin). With 4 buckets the borders are two "
                "perpendicular lines, and a border falls between x and y for θ out of every π/2 of rotation."),
        Mistake(lambda t: 2 * t / math.pi, "2θ/π is the chance that a border falls between them; the question asks "
                "for the same bucket."),
        Mistake(lambda t: 1 - 2 * t / math.pi,
                "right up to 90°, but a probability cannot go negative: beyond π/2 apart x and y never share a "
                "quarter of the circle (use max(0, …))."),
        Mistake(lambda t: max(0.0, 1 - 4 * t / math.pi),
                "the borders sit every π/2, not every π/4: 4 buckets are 4 quarter arcs."),
        Mistake(lambda t: max(0.0, 1 - t / 90), "θ is in radians here: the borders are π/2 apart, not 90."),
        Mistake(lambda t: max(0.0, math.cos(t)), "cos θ is the similarity, not a probability; ask how often one "
                "of the two perpendicular borders falls between x and y."),
    ]
    return grade("Exercise 2 (four_bucket_collision)", fn, cases, mistakes)


# Exercise 3: rounds for a target recall ---------------------------------------------------------------------


def _rounds_reference(p: float, target: float) -> int:
    """The smallest n ≥ 1 with 1 − (1 − p)^n ≥ target, by counting (no logarithm to round wrongly)."""
    n = 1
    while 1 - (1 - p) ** n < target:
        n += 1
    return n


def _log_rounds(p: float, target: float) -> float:
    return math.log(1 - target) / math.log(1 - p)


def check_rounds_needed(fn: Callable[[float, float], int]) -> CheckResult:
    """Exercise 3: ``fn(p, target)`` → the fewest independent rounds n with P[≥ 1 hit in n] = 1 − (1 − p)^n ≥ target.

    ``p`` in (0, 1) is one round's chance of putting two vectors in one bucket, ``target`` in (0, 1).
    """
    pairs = [(0.52, 0.99), (0.3, 0.9), (0.9, 0.95), (0.05, 0.5), (0.99, 0.5), (0.2, 0.999)]
    cases = [Case((p, t), _rounds_reference(p, t)) for p, t in pairs]
    mistakes = [
        Mistake(lambda p, t: math.floor(_log_rounds(p, t)),
                "rounding down stops one round short of the target: take the ceiling, the first whole n that "
                "reaches it."),
        Mistake(lambda p, t: round(_log_rounds(p, t)), "rounding to the nearest can fall short of the target: take "
                "the ceiling."),
        Mistake(_log_rounds, "the number of rounds is a whole number: the first n whose recall reaches the target "
                "(math.ceil)."),
        Mistake(lambda p, t: math.ceil(math.log(1 - t) / math.log(p)),
                "(1 − p)^n is the chance of missing in every round, so divide by log(1 − p), not log(p)."),
        Mistake(lambda p, t: math.ceil(math.log(t) / math.log(p)),
                "p^n ≥ target asks for a hit in *every* round; eq. 6 needs a hit in at least one: solve "
                "1 − (1 − p)^n ≥ target."),
        Mistake(lambda p, t: math.ceil(t / p), "recall does not add up round by round (n·p can exceed 1): go "
                "through the chance of missing in every round, (1 − p)^n."),
    ]
    return grade("Exercise 3 (rounds_needed)", fn, cases, mistakes)
