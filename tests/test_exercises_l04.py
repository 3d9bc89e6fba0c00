"""Lesson 04's graded checks accept the solutions and name the usual mistakes."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.lessons.exercises import l04 as exercises
from reformer_lab.lessons.solutions import l04
from reformer_lab.measure import reversible_stats
from reformer_lab.reversible import reversible_stack


def test_the_swapped_block_is_the_packages_block_with_streams_and_branches_exchanged() -> None:
    # y2 = x2 + g(x1), y1 = x1 + f(y2) is ReversibleBlock(g, f) run on (x2, x1): the solution must invert it
    block = reversible_stack(1, 16, 2, 32, attention="full", seed=0).double().blocks[0]
    f, g = block.g, block.f
    x1, x2 = (torch.randn(1, 8, 16, generator=torch.Generator().manual_seed(i), dtype=torch.float64) for i in (1, 2))
    with torch.no_grad():
        y2 = x2 + g(x1)
        y1 = x1 + f(y2)
        torch.testing.assert_close(block(x2, x1), (y2, y1), atol=0, rtol=0)
        back = l04.invert_swapped_block(f, g, y1, y2)
        package = block.inverse(y2, y1)[::-1]
    torch.testing.assert_close(back, (x1, x2), atol=1e-12, rtol=0)
    torch.testing.assert_close(back, package, atol=0, rtol=0)


def test_saved_bytes_solution_matches_the_measurement() -> None:
    config = reversible_stats.StackConfig(length=64, d_model=16, d_ff=32, chunk_size=16, n_heads=2, n_hashes=2)
    for n in (1, 3):
        measured = reversible_stats.measure(config, n, "reversible").saved_after_forward
        assert l04.reversible_saved_bytes(n, 1, 64, 16, 2, 2) == measured


def _eq8(f, g, y1, y2):
    x2 = y2 - g(y1)
    return y1 - f(x2), x2


@pytest.mark.parametrize("wrong, hint", [
    (_eq8, "that is eq. 8"),  # the typical answer: the paper's inverse copied from the lesson
    (lambda f, g, y1, y2: l04.invert_swapped_block(f, g, y1, y2)[::-1], "in that order"),
    (lambda f, g, y1, y2: (y1 - f(y2), y2 - g(y1)), "g saw x1"),
    (lambda f, g, y1, y2: (y1 + f(y2), y2 + g(y1 + f(y2))), "subtracts"),
    (lambda f, g, y1, y2: (y1, y2), "does not reproduce"),
    (lambda f, g, y1, y2: 1 / 0, "ZeroDivisionError"),
])
def test_invert_swapped_block_mistakes(wrong, hint) -> None:
    result = exercises.check_invert_swapped_block(wrong)
    assert not result.passed and hint in str(result)


def _bytes(n, b, l_, d, h, r, outputs=2, per_layer=False, seed=16, bucket=1):
    return outputs * b * l_ * d * 4 * (n if per_layer else 1) + seed * n + bucket * n * b * h * r * l_


@pytest.mark.parametrize("kwargs, hint", [
    (dict(per_layer=True), "only the *last* block"),
    (dict(outputs=1), "both halves"),
    (dict(bucket=0), "reuse every layer's LSH buckets"),
    (dict(seed=0), "dropout seeds"),
    (dict(bucket=8), "uint8"),
    (dict(seed=8), "2 × 8 bytes"),
])
def test_saved_bytes_mistakes(kwargs, hint) -> None:
    result = exercises.check_reversible_saved_bytes(lambda *a: _bytes(*a, **kwargs))
    assert not result.passed and hint in str(result)
