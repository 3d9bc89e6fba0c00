"""Lesson 01's graded checks accept the solutions, report a stub as TODO and name the usual mistakes."""

from __future__ import annotations

import math

import pytest
import torch

from reformer_lab.hashing import hash_vectors
from reformer_lab.lessons.exercises import l01 as exercises
from reformer_lab.lessons.solutions import l01


def _halves(x, r, fs):
    f1, f2 = fs
    return (hash_vectors(x, f1, rotations=r[None, :, : f1 // 2])[0],
            hash_vectors(x, f2, rotations=r[None, :, f1 // 2 : f1 // 2 + f2 // 2])[0])


def test_factorised_solution_is_two_package_hashes_as_digits() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g, dtype=torch.float64)
    r = torch.randn(8, 7, generator=g, dtype=torch.float64)  # f₁ = 6, f₂ = 8: 3 + 4 columns
    h1, h2 = _halves(x, r, (6, 8))
    buckets = l01.factorised_hash(x, r, (6, 8))
    assert torch.equal(buckets, h1 + 6 * h2)
    assert torch.equal(buckets % 6, h1) and torch.equal(buckets // 6, h2)
    assert int(buckets.max()) < 48 and len(set(buckets.tolist())) > 24


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x, r, fs: _halves(x, r, fs)[1] + fs[1] * _halves(x, r, fs)[0], "wrong way round"),
        (lambda x, r, fs: _halves(x, r, fs)[0] + fs[1] * _halves(x, r, fs)[1], "multiplied by f₁ (not f₂)"),
        (lambda x, r, fs: _halves(x, r, fs)[0] + _halves(x, r, fs)[1], "same id"),
        (lambda x, r, fs: _halves(x, r, fs)[0] * _halves(x, r, fs)[1], "product"),
        (lambda x, r, fs: hash_vectors(x, 2 * r.shape[1], rotations=r[None])[0], "plain hash over all the columns"),
    ],
)
def test_factorised_hash_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_factorised_hash(wrong)
    assert not result.passed and result.attempted
    assert hint in result.message, result.message


def test_factorised_hash_without_the_negative_half_or_with_shared_columns_gets_its_hint() -> None:
    def unsigned(x, r, fs):
        f1, f2 = fs
        return (x @ r[:, : f1 // 2]).argmax(-1) + (f1 // 2) * (x @ r[:, f1 // 2 : f1 // 2 + f2 // 2]).argmax(-1)

    def shared(x, r, fs):
        f1, f2 = fs
        h1 = hash_vectors(x, f1, rotations=r[None, :, : f1 // 2])[0]
        return h1 + f1 * hash_vectors(x, f2, rotations=r[None, :, : f2 // 2])[0]

    assert "−xR half" in exercises.check_factorised_hash(unsigned).message
    assert "same first columns" in exercises.check_factorised_hash(shared).message


# -- exercise 2: Figure 1's collision probability -----------------------------------------------------------


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda t: 1 - t / math.pi, "1 − θ/π is 2 buckets"),
        (lambda t: 2 * t / math.pi, "chance that a border falls between them"),
        (lambda t: 1 - 2 * t / math.pi, "cannot go negative"),
        (lambda t: max(0.0, 1 - 4 * t / math.pi), "not every π/4"),
        (lambda t: max(0.0, 1 - t / 90), "radians"),
        (lambda t: max(0.0, math.cos(t)), "similarity"),
    ],
)
def test_four_bucket_collision_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_four_bucket_collision(wrong)
    assert not result.passed and hint in result.message, result.message


def test_four_bucket_formula_matches_a_measurement_in_figure_1s_setting() -> None:
    from reformer_lab.measure import hashing_stats

    angles = torch.tensor([0.0, math.pi / 6, math.pi / 3, math.pi / 2, 2.5], dtype=torch.float64)
    measured = hashing_stats.collision_probability(angles, 4, d=2, orthogonal=True, n_trials=20000,
                                                   generator=torch.Generator().manual_seed(1))
    predicted = torch.tensor([l01.four_bucket_collision(float(t)) for t in angles], dtype=torch.float64)
    assert (measured - predicted).abs().max().item() < 0.015


# -- exercise 3: rounds for a target recall -----------------------------------------------------------------


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda p, t: math.floor(math.log(1 - t) / math.log(1 - p)), "rounding down"),
        (lambda p, t: math.log(1 - t) / math.log(1 - p), "whole number"),
        (lambda p, t: math.ceil(math.log(1 - t) / math.log(p)), "not log(p)"),
        (lambda p, t: math.ceil(math.log(t) / math.log(p)), "in *every* round"),
        (lambda p, t: math.ceil(t / p), "does not add up"),
    ],
)
def test_rounds_needed_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_rounds_needed(wrong)
    assert not result.passed and hint in result.message, result.message


def test_rounds_needed_agrees_with_the_ceiling_of_the_logarithm_away_from_ties() -> None:
    for p, t in [(0.52, 0.99), (0.1, 0.5), (0.75, 0.999)]:
        assert l01.rounds_needed(p, t) == math.ceil(math.log(1 - t) / math.log(1 - p))
        n = l01.rounds_needed(p, t)
        assert 1 - (1 - p) ** n >= t > 1 - (1 - p) ** (n - 1)
