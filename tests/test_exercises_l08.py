"""Lesson 08's graded checks accept the solutions, name the usual mistakes, and agree with the package."""

from __future__ import annotations

import pytest

from reformer_lab.lessons.exercises import l08 as exercises
from reformer_lab.lessons.solutions import l08
from reformer_lab.measure.attention_steps import AttentionSetting
from reformer_lab.measure.speed_stats import SpeedPoint, crossover, lsh_step_flops


def test_the_crossover_solution_is_where_measured_curves_cross() -> None:
    """Points drawn from the solution's cost model cross (by speed_stats.crossover) within 2% of its answer: the
    lesson interpolates between measured powers of two, in log–log, where the cost is a line in L."""
    a, b, c, tokens = 1e-5, 2e-8, 4e-5, 16384
    lengths = [2**k for k in range(8, 16)]
    points = [SpeedPoint("full", n, tokens // n, tokens * (a + b * n / 2)) for n in lengths]
    points += [SpeedPoint("lsh-4", n, tokens // n, tokens * c) for n in lengths]
    found = crossover(points, "lsh-4", "full")
    assert found.kind == "at"
    assert found.length == pytest.approx(l08.crossover_length(a, b, c), rel=0.02)


def test_chunk_flops_is_the_chunk_part_of_the_package_count() -> None:
    setting = AttentionSetting("lsh-4", 2048, 4, d_model=256, n_heads=4, chunk_size=64)
    hashing = 1.0 * 4 * 2048 * 4 * 4 * 2 * 64 * (2 * 2048 // 64) // 2
    chunks = 3.0 * l08.chunk_flops(2048 * 4 * 4, 64, 4, 64, 2)
    assert lsh_step_flops(setting) == pytest.approx(chunks + hashing)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda a, b, c: (c - a) / b, "L/2 of them"),
        (lambda a, b, c: 2 * c / b, "fixed part"),
        (lambda a, b, c: 2 * (a - c) / b, "sign is flipped"),
        (lambda a, b, c: 1.0, "expected"),
    ],
)
def test_crossover_length_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_crossover_length(wrong)
    assert not result.passed and hint in result.message, result.message


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda q, d, r, m, k: 2.0 * q * d * r * m * k, "two products"),
        (lambda q, d, r, m, k: 4.0 * q * d * m * k, "every hash round"),
        (lambda q, d, r, m, k: 4.0 * q * d * r * m, "chunks_seen · chunk_size keys"),
        (lambda q, d, r, m, k: 0.0, "expected"),
    ],
)
def test_chunk_flops_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_chunk_flops(wrong)
    assert not result.passed and hint in result.message, result.message
