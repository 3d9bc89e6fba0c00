"""Lesson 05's graded checks accept the solutions, read an untouched stub as TODO, and name the usual mistakes."""

from __future__ import annotations

import math

import pytest

from reformer_lab.lessons.exercises import l05 as exercises
from reformer_lab.lessons.solutions import l05
from reformer_lab.measure import feedforward_stats


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda b, n, f, c: 4.0 * b * n * f, "only L/n_chunks"),
        (lambda b, n, f, c: 1.0 * b * (n // c) * f, "4 bytes"),
        (lambda b, n, f, c: 4.0 * (n // c) * f, "× batch"),
        (lambda b, n, f, c: 4.0 * b * (n // c) * f / c, "divide by n_chunks once"),
    ],
)
def test_ff_chunk_bytes_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_ff_chunk_bytes(wrong)
    assert not result.passed and hint in result.message, result.message


def _fewest(b, n, f, budget, *, per_value=4, batch=True, fits=lambda size, budget: size <= budget):
    sizes = {c: (b if batch else 1) * (n // c) * f * per_value for c in range(1, n + 1) if n % c == 0}
    return next(c for c, size in sizes.items() if fits(size, budget))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda b, n, f, budget: math.ceil(4 * b * n * f / budget), "k must divide the length"),  # the typical one
        (lambda b, n, f, budget: _fewest(b, n, f, budget, fits=lambda s, bu: s < bu), "≤, not <"),
        (lambda b, n, f, budget: n // _fewest(b, n, f, budget), "return the number of chunks"),
        (lambda b, n, f, budget: _fewest(b, n, f, budget, per_value=1), "each float32 value takes 4"),
        (lambda b, n, f, budget: _fewest(b, n, f, budget, batch=False), "× batch"),
    ],
)
def test_fewest_ff_chunks_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_fewest_ff_chunks(wrong)
    assert not result.passed and hint in result.message, result.message


def test_the_fewest_chunks_bring_the_counted_recomputation_under_the_budget() -> None:
    # the solution's count against the package's tracker: the reversible backward's FF peak at that count fits a
    # budget of one chunk plus the d_model-wide rest, and one count fewer does not fit the chunk alone
    budget = 300_000
    c = l05.fewest_ff_chunks(1, 256, 1024, budget)
    assert c == 4 and l05.ff_chunk_bytes(1, 256, 1024, 2) > budget
    (row,) = feedforward_stats.chunk_memory([c], length=256, d_model=32, d_ff=1024, vocab=64)
    assert row.ff_recompute_peak >= l05.ff_chunk_bytes(1, 256, 1024, c)


def _reformer(b, n, dm, df, h, layers, r, m, *, c=None, width=None, combine=max, factor=1, per_value=4):
    c = 2 * m if c is None else c
    width = dm if width is None else width
    return float(per_value * combine(b * n * width, b * h * n * r * c)) * factor


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda b, n, dm, df, h, ly, r, m: _reformer(b, n, dm, df, h, ly, r, m, c=(4 * m) ** 2), "(4l/n_c)²"),
        (lambda b, n, dm, df, h, ly, r, m: _reformer(b, n, dm, df, h, ly, r, m, c=m), "one chunk back"),
        (lambda b, n, dm, df, h, ly, r, m: _reformer(b, n, dm, df, h, ly, r, m, factor=ly), "no n_l"),
        (lambda b, n, dm, df, h, ly, r, m: _reformer(b, n, dm, df, h, ly, r, m, width=df), "b·l·d_model"),
        (lambda b, n, dm, df, h, ly, r, m: _reformer(b, n, dm, df, h, ly, r, m, per_value=1), "4 bytes"),
        (lambda b, n, dm, df, h, ly, r, m: _reformer(b, n, dm, df, h, ly, r, m, combine=lambda u, v: u + v), "(max)"),
        (lambda b, n, dm, df, h, ly, r, m: _reformer(b, n, dm, df, h, ly, 1, m), "× n_hashes"),
        (lambda b, n, dm, df, h, ly, r, m: _reformer(b, n, dm, df, 1, ly, r, m), "× n_heads"),
    ],
)
def test_reformer_bytes_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_reformer_bytes(wrong)
    assert not result.passed and hint in result.message, result.message


def test_reformer_bytes_agrees_with_the_table3_helper() -> None:
    config = feedforward_stats.Table3Config(length=256, d_model=32, d_ff=1024, n_heads=2, n_layers=4, n_hashes=1,
                                            chunk_size=32)
    assert l05.reformer_bytes(1, 256, 32, 1024, 2, 4, 1, 32) == 4 * config.formula("reformer", config.window_c).memory


def test_a_pass_reveals_the_answers_to_the_predict_first_questions() -> None:
    assert "all 4 cases pass." == exercises.check_ff_chunk_bytes(l05.ff_chunk_bytes).message  # nothing to predict
    two = exercises.check_fewest_ff_chunks(l05.fewest_ff_chunks)
    assert two.passed and "k = 6" in two.message and "5 does not divide 48" in two.message
    assert "6 chunks of 8 positions take 32,768 bytes" in two.message
    assert l05.fewest_ff_chunks(1, 48, 1024, 40_000) == 6
    three = exercises.check_reformer_bytes(l05.reformer_bytes)
    assert three.passed and "attention is larger, 8.00 GiB against 2.00 GiB for the activations" in three.message
    assert "n_layers drops out" in three.message and "d_ff too" in three.message
    assert "8.00 TiB, 1,024× more" in three.message
    assert l05.reformer_bytes(8, 65536, 1024, 4096, 8, 12, 2, 128) == 8 * 2**30
    # a failing answer gets no reveal
    wrong = exercises.check_fewest_ff_chunks(lambda b, n, f, budget: math.ceil(4 * b * n * f / budget))
    assert not wrong.passed and "k = 6" not in wrong.message


def test_a_wrong_answer_without_a_known_mistake_shows_the_expected_value() -> None:
    result = exercises.check_reformer_bytes(lambda *args: 1.0)
    assert not result.passed and "expected" in result.message


