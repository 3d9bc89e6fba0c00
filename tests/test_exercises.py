"""The shared grader of reformer_lab.lessons.exercises: results, calling the reader's function, numbers, tensors.

Each lesson's checks are tested in tests/test_exercises_lNN.py; every check against its solution in
tests/test_exercise_solutions.py.
"""

from __future__ import annotations

import pytest
import torch

from reformer_lab.lessons.exercises import (
    Case,
    CheckResult,
    Mistake,
    as_answer_tensor,
    first_difference,
    grade,
    grade_tensors,
    run_cases,
    same_tensor,
    show_args,
)
from reformer_lab.validation import ArgumentTypeError

NUMBERS = [Case((1,), 2), Case((3,), 6)]
COUNTS = [Case((torch.tensor([1, 2, 3]),), torch.tensor([2, 4, 6]))]


def _stub(*args):
    raise NotImplementedError


def _broken(*args):
    raise ZeroDivisionError("reader's bug")


# CheckResult and run_cases -------------------------------------------------------------------------------------


def test_a_result_prints_as_one_line_and_is_true_only_when_passed() -> None:
    assert str(CheckResult("Ex", True, "ok")) == "[PASS] Ex: ok"
    assert repr(CheckResult("Ex", False, "no")) == "[FAIL] Ex: no"
    assert str(CheckResult("Ex", False, "later", attempted=False)) == "[TODO] Ex: later"
    assert CheckResult("Ex", True, "") and not CheckResult("Ex", False, "")


def test_run_cases_names_the_first_case_its_verdict_finds_wrong() -> None:
    cases = [Case((1,), None, "the first"), Case((2,), None, "the second")]
    result = run_cases("Ex", lambda x: x, cases, lambda case, got: None if got == 1 else f"got {got}")
    assert not result.passed and result.message == "for the second: got 2"
    assert run_cases("Ex", lambda x: 1, cases, lambda case, got: None).message == "all 2 cases pass."


def test_a_case_is_shown_by_its_arguments_unless_told_otherwise() -> None:
    assert Case((1, "a"), None).label == "(1, 'a')"
    assert Case((1,), None, "one").label == "one"
    assert show_args((torch.tensor([3, 1]), 2)) == "([3, 1], 2)"
    assert show_args((torch.zeros(2, 2),)).startswith("(tensor([[0.")
    assert show_args((torch.arange(65),)).startswith("(tensor([")


@pytest.mark.parametrize("check", [lambda fn: grade("Ex", fn, NUMBERS), lambda fn: grade_tensors("Ex", fn, COUNTS)])
def test_an_untouched_stub_is_todo(check) -> None:
    result = check(_stub)
    assert not result.passed and not result.attempted
    assert str(result) == "[TODO] Ex: not attempted yet: replace `raise NotImplementedError`."


@pytest.mark.parametrize("check", [lambda fn: grade("Ex", fn, NUMBERS), lambda fn: grade_tensors("Ex", fn, COUNTS)])
def test_an_answer_that_raises_fails_naming_the_error_and_the_arguments(check) -> None:
    result = check(_broken)
    assert not result.passed and result.attempted
    assert "calling it with (" in result.message and "raised ZeroDivisionError: reader's bug" in result.message


@pytest.mark.parametrize("check", [lambda fn: grade("Ex", fn, NUMBERS), lambda fn: grade_tensors("Ex", fn, COUNTS)])
def test_a_non_callable_is_a_type_error(check) -> None:
    with pytest.raises(TypeError, match=r"Ex: pass your function itself \(no parentheses\), got int"):
        check(42)
    with pytest.raises(ArgumentTypeError):
        check(42)


def test_the_reader_gets_copies_of_the_tensor_arguments() -> None:
    def vandal(x):
        answer = 2 * x
        x.zero_()
        return answer

    assert grade_tensors("Ex", vandal, COUNTS)
    assert torch.equal(COUNTS[0].args[0], torch.tensor([1, 2, 3]))


# Numbers -------------------------------------------------------------------------------------------------------


def test_numbers_pass_within_the_relative_tolerance() -> None:
    assert grade("Ex", lambda x: 2 * x, NUMBERS).message == "all 2 cases pass."
    assert grade("Ex", lambda x: torch.tensor(2.0 * x), NUMBERS)
    slightly_off = lambda x: 2 * x * (1 + 1e-7)  # noqa: E731
    assert not grade("Ex", slightly_off, NUMBERS)
    assert grade("Ex", slightly_off, NUMBERS, rel=1e-6)


def test_a_known_mistake_earns_its_hint_and_an_unknown_one_the_expected_value() -> None:
    mistakes = [Mistake(lambda x: 1 / 0, "never shown"), Mistake(lambda x: x, "double it.")]
    hinted = grade("Ex", lambda x: x, NUMBERS, mistakes)
    assert str(hinted) == "[FAIL] Ex: for (1): you returned 1. Hint: double it."
    unknown = grade("Ex", lambda x: 7, NUMBERS, mistakes)
    assert unknown.message == "for (1): expected 2, you returned 7."
    assert grade("Ex", lambda x: "two", NUMBERS).message == (
        "for (1): expected a number, you returned 'two' (str): return the value itself."
    )


def test_tolerances_are_checked() -> None:
    with pytest.raises(ValueError, match="rel must be"):
        grade("Ex", lambda x: 2 * x, NUMBERS, rel=-1.0)
    with pytest.raises(ValueError, match="atol must be"):
        grade_tensors("Ex", lambda x: 2 * x, COUNTS, atol=-1e-9)


# Tensors: the converter and the comparison --------------------------------------------------------------------


def test_answers_convert_to_the_references_dtype_only_when_nothing_is_lost() -> None:
    ints, flags, floats = torch.tensor([0, 1]), torch.tensor([True, False]), torch.tensor([0.5])
    assert torch.equal(as_answer_tensor([0.0, 1.0], ints), ints)
    assert torch.equal(as_answer_tensor([True, False], ints), torch.tensor([1, 0]))
    assert as_answer_tensor([0.5, 1.0], ints) is None
    assert torch.equal(as_answer_tensor([1, 0], flags), flags)
    assert as_answer_tensor([2, 0], flags) is None
    assert as_answer_tensor(torch.tensor([1j]), floats) is None
    assert as_answer_tensor("text", floats) is None
    assert as_answer_tensor([torch.zeros(2), torch.zeros(2)], floats) is None
    assert as_answer_tensor(1, floats).dtype == floats.dtype


def test_same_tensor_is_exact_for_integers_and_within_atol_for_floats() -> None:
    want = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert same_tensor([1.0, 2.0 + 1e-12], want, atol=1e-9)
    assert not same_tensor([1.0, 2.0 + 1e-12], want)
    assert not same_tensor([1.0, 2.0, 3.0], want, atol=1.0)
    assert same_tensor([1, 2], torch.tensor([1, 2]), atol=0.5)
    assert not same_tensor([1, 3], torch.tensor([1, 2]), atol=5.0)


def test_first_difference_counts_and_finds_the_first_entry() -> None:
    want = torch.tensor([[1, 2], [3, 4]])
    assert first_difference(torch.tensor([[1, 0], [0, 4]]), want) == (2, (0, 1))
    assert first_difference(torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]), atol=0.1) == (1, (1,))


# Tensors: the grader -------------------------------------------------------------------------------------------


FLOATS = [Case((torch.tensor([1.0, 2.0], dtype=torch.float64),), torch.tensor([0.5, 1.0], dtype=torch.float64))]


def test_exact_mode_accepts_any_lossless_form_and_names_the_first_wrong_entry() -> None:
    for right in (lambda x: 2 * x, lambda x: (2 * x).tolist(), lambda x: (2 * x).double()):
        assert grade_tensors("Ex", right, COUNTS)
    result = grade_tensors("Ex", lambda x: 2 * x - torch.tensor([0, 0, 3]), COUNTS)
    assert result.message == "for ([1, 2, 3]): 1 of 3 entries differ; the first is at [2]: expected 6, you returned 3."


def test_tolerance_mode_accepts_answers_within_atol_only() -> None:
    close_enough = lambda x: x / 2 + 1e-12  # noqa: E731
    assert not grade_tensors("Ex", close_enough, FLOATS)
    assert grade_tensors("Ex", close_enough, FLOATS, atol=1e-9)
    result = grade_tensors("Ex", lambda x: x / 2 + 1e-6, FLOATS, atol=1e-9)
    assert "2 of 2 entries differ; the first is at [0]: expected 0.5, you returned 0.500001." in result.message


def test_a_shape_mismatch_is_named_with_its_layout() -> None:
    result = grade_tensors("Ex", lambda x: x[:2], COUNTS, layout="[L]")
    assert result.message == "for ([1, 2, 3]): expected shape [3] ([L]), you returned shape [2]."
    assert "expected shape [3], you returned shape [1, 3]." in grade_tensors("Ex", lambda x: x[None], COUNTS).message


def test_a_non_tensor_answer_says_what_was_expected() -> None:
    text = grade_tensors("Ex", lambda x: "six", COUNTS, what="counts")
    assert text.message == "for ([1, 2, 3]): expected a tensor of counts, you returned str 'six'."
    fractional = grade_tensors("Ex", lambda x: x / 2, COUNTS, what="counts (whole numbers)")
    assert "expected a tensor of counts (whole numbers), you returned a Tensor of torch.float32." in fractional.message
    flags = [Case((3,), torch.tensor([True, False, True]))]
    halves = grade_tensors("Ex", lambda n: torch.full((n,), 0.5), flags, what="booleans")
    assert "expected a tensor of booleans" in halves.message
    assert grade_tensors("Ex", lambda n: [1, 0, 1], flags)


def test_nan_answers_are_named() -> None:
    result = grade_tensors("Ex", lambda x: x / 0 * 0, FLOATS, atol=1e-9)
    assert result.message.endswith("your answer contains NaN or inf.")


def test_mistakes_are_recognised_whatever_their_shape() -> None:
    cases = [Case((torch.arange(6).view(2, 3),), torch.arange(6).view(2, 3))]
    mistakes = [Mistake(lambda x: x.T, "rows first."), Mistake(lambda x: x + 1, "no offset.")]
    transposed = grade_tensors("Ex", lambda x: x.T, cases, mistakes)
    assert "expected shape [2, 3], you returned shape [3, 2]. Hint: rows first." in transposed.message
    shifted = grade_tensors("Ex", lambda x: x + 1, cases, mistakes)
    assert shifted.message.endswith("Hint: no offset.")


def test_diagnose_reads_a_hint_off_an_answer_of_the_right_shape_that_no_mistake_explains() -> None:
    seen = []

    def diagnose(x, got):
        seen.append(got.tolist())
        return "too small." if bool((got < 2 * x).any()) else None

    known = [Mistake(lambda x: x, "double it.")]
    assert grade_tensors("Ex", lambda x: x, COUNTS, known, diagnose=diagnose).message.endswith("Hint: double it.")
    assert grade_tensors("Ex", lambda x: x - 1, COUNTS, known, diagnose=diagnose).message.endswith("Hint: too small.")
    assert not grade_tensors("Ex", lambda x: x[:1], COUNTS, diagnose=diagnose).message.endswith("too small.")
    assert seen == [[0, 1, 2]]


def test_describe_says_how_a_difference_in_values_reads() -> None:
    result = grade_tensors("Ex", lambda x: x, COUNTS, describe=lambda got, want: f"{got.tolist()} ≠ {want.tolist()}.")
    assert result.message == "for ([1, 2, 3]): [1, 2, 3] ≠ [2, 4, 6]."


@pytest.mark.parametrize("answer", ["16", b"16", True, None])
def test_a_number_grader_refuses_what_is_not_a_number(answer) -> None:
    from reformer_lab.lessons.exercises import Case, grade

    result = grade("Exercise 0 (n)", lambda: answer, [Case((), 1.0)])
    assert not result.passed and "expected a number" in str(result)
