"""Lesson 09's graded checks name the usual mistakes; the solutions agree with the package's split and verdict."""

from __future__ import annotations

import random
from statistics import mean
from types import SimpleNamespace

import numpy as np
import pytest

from reformer_lab.lessons.exercises import l09 as exercises
from reformer_lab.lessons.solutions import l09
from reformer_lab.measure.ablation_stats import split_bits, verdict


def _stub(*args):
    raise NotImplementedError


# Exercise 1 -----------------------------------------------------------------------------------------------------


def test_total_bits_passes_the_solution_and_reveals_the_prediction() -> None:
    result = exercises.check_total_bits(l09.total_bits)
    assert result.passed, str(result)
    assert str(result).startswith("[PASS] Exercise 1 (total_bits): all 6 cases pass.")
    assert "0.89 bits/char" in result.message and "(63 text targets, 64 copy targets)" in result.message


def test_total_bits_reads_todo_for_an_untouched_stub() -> None:
    result = exercises.check_total_bits(_stub)
    assert str(result) == "[TODO] Exercise 1 (total_bits): not attempted yet: replace `raise NotImplementedError`."


@pytest.mark.parametrize("length", [4, 16, 128, 1024])
def test_total_bits_is_the_mean_that_split_bits_takes_over_all_targets(length) -> None:
    per_position = np.random.default_rng(length).uniform(0.0, 4.0, length - 1)
    split = split_bits(per_position, SimpleNamespace(length=length, half=length // 2))
    assert l09.total_bits(split["text"], split["copy"], length) == pytest.approx(split["total"], rel=1e-12)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda t, c, n: (t + c) / 2, "the halves have different numbers of targets: half − 1 and half"),
        (lambda t, c, n: ((n // 2 - 1) * t + n // 2 * c) / n, "length − 1 targets, not length"),
        (lambda t, c, n: (n // 2) * (t + c) / (n - 1), "half − 1 targets, not half"),
        (lambda t, c, n: (n // 2 * t + (n // 2 - 1) * c) / (n - 1), "the weights are swapped"),
    ],
    ids=["plain average", "length targets", "half and half", "swapped"],
)
def test_total_bits_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_total_bits(wrong)
    assert not result.passed and result.attempted
    assert hint in result.message, result.message
    assert "0.89" not in result.message  # the prediction is revealed only to a passing answer


def test_total_bits_wants_a_number() -> None:
    result = exercises.check_total_bits(lambda t, c, n: str(l09.total_bits(t, c, n)))
    assert not result.passed and "expected a number" in result.message


# Exercise 2 -----------------------------------------------------------------------------------------------------


def test_same_within_noise_passes_the_solution_and_shows_both_verdicts() -> None:
    result = exercises.check_same_within_noise(l09.same_within_noise)
    assert result.passed, str(result)
    assert str(result).startswith("[PASS] Exercise 2 (same_within_noise): all 13 cases pass.")
    assert "same within noise, though the means differ by 0.05" in result.message
    assert "worse by 0.10 ± 0.02" in result.message


def test_same_within_noise_reads_todo_for_an_untouched_stub() -> None:
    result = exercises.check_same_within_noise(_stub)
    assert str(result) == ("[TODO] Exercise 2 (same_within_noise): not attempted yet: replace "
                           "`raise NotImplementedError`.")


def test_same_within_noise_is_the_verdicts_rule() -> None:
    rng = random.Random(0)
    for _ in range(500):  # values on a coarse grid, so touching ranges come up often
        baseline = [rng.randint(0, 12) / 4 for _ in range(rng.randint(1, 4))]
        variant = [rng.randint(0, 12) / 4 for _ in range(rng.randint(1, 4))]
        assert l09.same_within_noise(baseline, variant) == (verdict(baseline, variant) == "same within noise")


def _first_last(baseline, variant):
    return baseline[-1] >= variant[0] and variant[-1] >= baseline[0]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda b, v: mean(b) == mean(v), "compare the ranges, not the means"),
        (lambda b, v: abs(mean(b) - mean(v)) < 0.05, "compare the ranges, not the means"),
        (lambda b, v: min(b) <= mean(v) <= max(b), "compare the ranges, not the means"),
        (lambda b, v: max(b) >= min(v), "entirely below the baseline"),
        (lambda b, v: max(v) >= min(b), "entirely above the baseline"),
        (lambda b, v: max(b) > min(v) and max(v) > min(b), "touching ranges overlap"),
        (_first_last, "take min() and max()"),
        (lambda b, v: min(b) <= min(v) <= max(b) or min(b) <= max(v) <= max(b), "hold the other whole"),
    ],
    ids=["means equal", "means close", "mean in range", "one side (below)", "one side (above)", "strict",
         "first and last", "an end inside"],
)
def test_same_within_noise_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_same_within_noise(wrong)
    assert not result.passed and result.attempted
    assert hint in result.message, result.message
    assert "seed ranges are [" in result.message


def test_same_within_noise_wants_true_or_false() -> None:
    result = exercises.check_same_within_noise(lambda b, v: verdict(b, v))
    assert not result.passed and "expected True or False, you returned 'same within noise' (str)" in result.message
    numpy_bool = exercises.check_same_within_noise(lambda b, v: np.max(b) >= np.min(v) and np.max(v) >= np.min(b))
    assert numpy_bool.passed, str(numpy_bool)


def test_an_answer_that_sorts_its_lists_in_place_changes_no_case() -> None:
    def sorting(baseline, variant):
        baseline.sort()
        variant.sort()
        return baseline[-1] >= variant[0] and variant[-1] >= baseline[0]

    assert exercises.check_same_within_noise(sorting).passed
    unsorted = exercises.check_same_within_noise(_first_last)  # the cases are still unsorted afterwards
    assert "take min() and max()" in unsorted.message


def test_passing_a_result_instead_of_the_function_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="pass your function itself"):
        exercises.check_same_within_noise(True)
