"""Lesson 00's graded checks accept the solutions, report a stub as TODO and name the usual mistakes."""

from __future__ import annotations

import math

import pytest

from reformer_lab.lessons.exercises import l00 as exercises
from reformer_lab.lessons.solutions import l00


def test_a_pass_reveals_the_answers_to_the_predict_first_questions() -> None:
    one = exercises.check_transformer_memory_bytes(l00.transformer_memory_bytes)
    assert "attention wins, 2.25 GiB against 96.0 MiB per layer, 6.75 GiB for the 3 layers" in one.message
    two = exercises.check_ff_attention_crossover(l00.ff_attention_crossover)
    assert "l = 512" in two.message and "128× the feed-forward term" in two.message
    three = exercises.check_longest_sequence(l00.longest_sequence)
    assert "l = 65,536" in three.message and "2× the length" in three.message and "l = 5,792" in three.message


def test_the_transfer_step_grades_the_largest_batch_that_fits_80_gib() -> None:
    fn = l00.transformer_memory_bytes
    asked = exercises.check_transformer_memory_bytes(fn)
    assert asked.passed and "pass it as `largest_batch=`" in asked.message
    assert 80 * 2**30 // fn(1, 12288, 1024, 4096, 3, 8, 2) == 11  # what the solution's docstring computes
    right = exercises.check_transformer_memory_bytes(fn, largest_batch=11)
    assert right.passed and "11 images fit in 80.0 GiB (74.2 GiB); 12 would need 81.0 GiB" in right.message
    assert exercises.check_transformer_memory_bytes(fn, largest_batch=11.0).passed
    for wrong, hint in [(12, "rounded up"), (11.85, "round down"), (35, "stores all 3 layers"),
                        (5, "half precision"), (3, "a larger batch fits too"), (30, "more than 80.0 GiB"),
                        (0, "runs nothing"), ("11", "give a number"), (True, "give a number")]:
        result = exercises.check_transformer_memory_bytes(fn, largest_batch=wrong)
        assert not result.passed and result.attempted and hint in result.message, (wrong, result.message)
    # a wrong function fails as before, whatever the batch; an untouched stub stays TODO
    assert "expected" in exercises.check_transformer_memory_bytes(lambda *a: 1.0, largest_batch=11).message

    def stub(*args):
        raise NotImplementedError

    assert not exercises.check_transformer_memory_bytes(stub, largest_batch=None).attempted


def test_the_solutions_agree_with_the_papers_numbers() -> None:
    GiB = 2**30
    assert l00.longest_sequence(16 * GiB, 1, 1, 1, 4) == 65536  # §2: 64K × 64K fp32 = 16 GiB
    assert l00.ff_attention_crossover(4096, 8) == 512
    # §3: d_ff 4K, 16 layers, 64K tokens; attention dominates there (n_h·l ≫ d_ff)
    assert l00.transformer_memory_bytes(1, 65536, 1024, 4096, 16, 1, 4) == 16 * 16 * GiB


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda b, n, dm, df, nl, h, p: (b * n * df + b * h * n * n) * nl * p, "(max), not their sum"),
        (lambda b, n, dm, df, nl, h, p: max(b * n * df, b * h * n * n) * p, "multiply by n_layers"),
        (lambda b, n, dm, df, nl, h, p: max(b * n * df, b * n * n) * nl * p, "b·n_h·l²"),
        (lambda b, n, dm, df, nl, h, p: max(b * n * dm, b * h * n * n) * nl * p, "d_ff-wide"),
        (lambda b, n, dm, df, nl, h, p: max(b * n * df, b * h * n * n) * nl, "multiply by bytes_per_value"),
        (lambda b, n, dm, df, nl, h, p: max(n * df, h * n * n) * nl * p, "multiply by batch"),
    ],
    ids=["sum", "one-layer", "one-head", "d_model", "values", "one-sequence"],
)
def test_transformer_memory_bytes_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_transformer_memory_bytes(wrong)
    assert not result.passed and result.attempted and hint in result.message, result.message


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda f, h: f // h, "don't round"),
        (lambda f, h: h / f, "upside down"),
        (lambda f, h: math.sqrt(f / h), "no square root"),
        (lambda f, h: f * h, "divide"),
        (lambda f, h: f, "b·n_h·l²"),
    ],
    ids=["floor", "inverted", "sqrt", "times-heads", "no-heads"],
)
def test_ff_attention_crossover_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_ff_attention_crossover(wrong)
    assert not result.passed and hint in result.message, result.message


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda m, b, h, nl, p: math.sqrt(m / (b * h * nl * p)), "round the square root down"),
        (lambda m, b, h, nl, p: math.ceil(math.sqrt(m / (b * h * nl * p))), "round down, not up"),
        (lambda m, b, h, nl, p: round(math.sqrt(m / (b * h * nl * p))), "not up or to the nearest"),
        (lambda m, b, h, nl, p: m // (b * h * nl * p), "square root of what fits"),
        (lambda m, b, h, nl, p: math.isqrt(m // (b * h * p)), "divide by n_layers"),
        (lambda m, b, h, nl, p: math.isqrt(m // (b * h * nl)), "divide by bytes_per_value"),
        (lambda m, b, h, nl, p: math.isqrt(m // (h * nl * p)), "divide by batch"),
        (lambda m, b, h, nl, p: math.isqrt(m // (b * nl * p)), "divide by n_heads"),
    ],
    ids=["float", "ceil", "round", "no-sqrt", "one-layer", "values", "one-sequence", "one-head"],
)
def test_longest_sequence_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_longest_sequence(wrong)
    assert not result.passed and hint in result.message, result.message


def test_a_wrong_answer_without_a_known_mistake_shows_the_expected_value() -> None:
    result = exercises.check_ff_attention_crossover(lambda *args: 1)
    assert not result.passed and f"expected {1024 / 3!r}, you returned 1." in result.message


def test_an_exception_in_the_readers_code_is_reported() -> None:
    result = exercises.check_longest_sequence(lambda *args: 1 / 0)
    assert not result.passed and "ZeroDivisionError" in result.message


def test_passing_a_call_instead_of_a_function_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="no parentheses"):
        exercises.check_transformer_memory_bytes(42)
