"""Every graded check has a worked solution that passes it, and every check reports an untouched stub as TODO.

Convention: ``reformer_lab.lessons.exercises.check_F`` grades the reader's ``F``, whose solution is
``reformer_lab.lessons.solutions.lessonNN.F``. The lesson test files test each check's hints.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from reformer_lab.lessons import exercises, solutions


def _solutions() -> dict[str, object]:
    found = {}
    for info in pkgutil.iter_modules(solutions.__path__):
        module = importlib.import_module(f"{solutions.__name__}.{info.name}")
        for name, fn in vars(module).items():
            if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_"):
                assert name not in found, f"two lessons define the solution {name}"
                found[name] = fn
    return found


SOLUTIONS = _solutions()
CHECKS = sorted(name for name in exercises.__all__ if name.startswith("check_"))


def test_every_check_has_exactly_one_solution_and_back() -> None:
    assert sorted(f"check_{name}" for name in SOLUTIONS) == CHECKS


@pytest.mark.parametrize("check_name", CHECKS)
def test_solution_passes_its_check(check_name: str) -> None:
    result = getattr(exercises, check_name)(SOLUTIONS[check_name.removeprefix("check_")])
    assert result.passed, str(result)
    assert str(result).startswith("[PASS]")


@pytest.mark.parametrize("check_name", CHECKS)
def test_an_untouched_stub_is_todo_not_a_failure(check_name: str) -> None:
    def stub(*args, **kwargs):
        raise NotImplementedError

    result = getattr(exercises, check_name)(stub)
    assert not result.passed and not result.attempted
    assert str(result).startswith("[TODO]")


@pytest.mark.parametrize("check_name", CHECKS)
def test_an_answer_that_raises_fails_and_names_the_error(check_name: str) -> None:
    def broken(*args, **kwargs):
        raise ZeroDivisionError("reader's bug")

    result = getattr(exercises, check_name)(broken)
    assert not result.passed and result.attempted
    assert "raised ZeroDivisionError: reader's bug" in str(result)


@pytest.mark.parametrize("check_name", CHECKS)
def test_passing_a_result_instead_of_the_function_is_a_type_error(check_name: str) -> None:
    with pytest.raises(TypeError, match="pass your function itself"):
        getattr(exercises, check_name)(42)
