"""Every graded check has a worked solution that passes it, and every check reports an untouched stub as TODO.

Convention: ``reformer_lab.lessons.exercises.lNN.check_F`` grades the reader's ``F``, whose solution is
``reformer_lab.lessons.solutions.lNN.F``. The lesson test files (tests/test_exercises_lNN.py) test each check's
hints; tests/test_exercises.py the grader they share.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

from reformer_lab.lessons import exercises, solutions

LESSONS = [f"l{n:02d}" for n in range(11)]
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _modules(package: ModuleType) -> dict[str, ModuleType]:
    return {
        info.name: importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    }


CHECK_MODULES = _modules(exercises)
SOLUTION_MODULES = _modules(solutions)


def _checks(lesson: str) -> list[str]:
    return sorted(name for name in CHECK_MODULES[lesson].__all__ if name.startswith("check_"))


def _solutions(lesson: str) -> list[str]:
    module = SOLUTION_MODULES[lesson]
    return sorted(
        name
        for name, fn in vars(module).items()
        if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_")
    )


CHECKS = [(lesson, name) for lesson in sorted(CHECK_MODULES) for name in _checks(lesson)]
IDS = [f"{lesson}.{name}" for lesson, name in CHECKS]


def _check(lesson: str, name: str):
    return getattr(CHECK_MODULES[lesson], name)


def test_every_lesson_has_a_module_of_checks_and_one_of_solutions() -> None:
    assert sorted(CHECK_MODULES) == LESSONS
    assert sorted(SOLUTION_MODULES) == LESSONS


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_check_has_exactly_one_solution_and_back(lesson: str) -> None:
    assert _checks(lesson), f"lesson {lesson} has no checks"
    assert [f"check_{name}" for name in _solutions(lesson)] == _checks(lesson)


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_check_a_lesson_module_defines_is_exported(lesson: str) -> None:
    module = CHECK_MODULES[lesson]
    defined = sorted(n for n, fn in vars(module).items() if n.startswith("check_") and inspect.isfunction(fn))
    assert defined == _checks(lesson)
    assert all(_check(lesson, name).__module__ == module.__name__ for name in defined)


@pytest.mark.parametrize("lesson, check_name", CHECKS, ids=IDS)
def test_solution_passes_its_check(lesson: str, check_name: str) -> None:
    solution = getattr(SOLUTION_MODULES[lesson], check_name.removeprefix("check_"))
    result = _check(lesson, check_name)(solution)
    assert result.passed, str(result)
    assert str(result).startswith("[PASS]")


@pytest.mark.parametrize("lesson, check_name", CHECKS, ids=IDS)
def test_an_untouched_stub_is_todo_not_a_failure(lesson: str, check_name: str) -> None:
    def stub(*args, **kwargs):
        raise NotImplementedError

    result = _check(lesson, check_name)(stub)
    assert not result.passed and not result.attempted
    assert str(result).startswith("[TODO]")


@pytest.mark.parametrize("lesson, check_name", CHECKS, ids=IDS)
def test_an_answer_that_raises_fails_and_names_the_error(lesson: str, check_name: str) -> None:
    def broken(*args, **kwargs):
        raise ZeroDivisionError("reader's bug")

    result = _check(lesson, check_name)(broken)
    assert not result.passed and result.attempted
    assert "raised ZeroDivisionError: reader's bug" in str(result)


@pytest.mark.parametrize("lesson, check_name", CHECKS, ids=IDS)
def test_passing_a_result_instead_of_the_function_is_a_type_error(lesson: str, check_name: str) -> None:
    with pytest.raises(TypeError, match="pass your function itself"):
        _check(lesson, check_name)(42)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_what_a_notebook_uses_of_its_exercises_exists_in_its_lessons_module(path: Path) -> None:
    lesson = f"l{path.name[:2]}"
    source = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
    assert f"from reformer_lab.lessons.exercises import {lesson} as exercises" in source
    used = set(re.findall(r"\bexercises\.(\w+)", source))
    assert {f"check_{name}" for name in _solutions(lesson)} <= used, "a check the notebook never calls"
    assert not used - set(CHECK_MODULES[lesson].__all__), f"{path.name} uses names {lesson} does not export"
