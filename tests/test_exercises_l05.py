"""Lesson 05's graded checks accept the solutions and name the usual mistakes."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.lessons.exercises import l05 as exercises

CHECKS = [exercises.check_chunked_ff, exercises.check_ff_chunk_bytes, exercises.check_reformer_memory]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda ff, x, n: ff(x), "L/n_chunks"),  # right values, but the whole sequence at once
        (lambda ff, x, n: torch.cat([ff(p) for p in x.split(x.shape[0] // n or 1, 0)], 0), "dim -2"),
        (lambda ff, x, n: torch.cat([ff(p) for p in reversed(x.split(x.shape[-2] // n, -2))], -2), "in order"),
        (lambda ff, x, n: ff(x.split(x.shape[-2] // n, -2)[0]), "concatenate"),
        (lambda ff, x, n: [ff(p) for p in x.split(x.shape[-2] // n, -2)], "return a tensor"),
    ],
)
def test_chunked_ff_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_chunked_ff(wrong)
    assert not result.passed and hint in result.message, result.message


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


def _reformer(b, n, dm, df, h, layers, r, c, *, width=None, attention=None, combine=max, factor=1):
    width = dm if width is None else width
    attention = h * n * r * c if attention is None else attention
    return float(combine(b * n * width, b * attention)) * factor


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda b, n, dm, df, h, ly, r, c: _reformer(b, n, dm, df, h, ly, r, c, factor=ly), "no n_l"),
        (lambda b, n, dm, df, h, ly, r, c: _reformer(b, n, dm, df, h, ly, r, c, width=df), "b·l·d_model"),
        (lambda b, n, dm, df, h, ly, r, c: _reformer(b, n, dm, df, h, ly, r, c, attention=h * n * n), "l·n_r·c"),
        (lambda b, n, dm, df, h, ly, r, c: _reformer(b, n, dm, df, h, ly, r, c, combine=lambda u, v: u + v), "(max)"),
        (lambda b, n, dm, df, h, ly, r, c: _reformer(b, n, dm, df, h, ly, r, c, attention=h * n * c), "× n_hashes"),
        (lambda b, n, dm, df, h, ly, r, c: _reformer(b, n, dm, df, h, ly, r, c, attention=n * r * c), "× n_heads"),
    ],
)
def test_reformer_memory_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_reformer_memory(wrong)
    assert not result.passed and hint in result.message, result.message


def test_a_wrong_answer_without_a_known_mistake_shows_the_expected_value() -> None:
    result = exercises.check_reformer_memory(lambda *args: 1.0)
    assert not result.passed and "expected" in result.message


@pytest.mark.parametrize("check", CHECKS)
def test_a_call_instead_of_a_function_is_a_clear_error(check) -> None:
    with pytest.raises(TypeError, match="pass your function itself"):
        check(3.0)
