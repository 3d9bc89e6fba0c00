"""Lesson 01's graded checks accept the solutions and name the usual mistakes."""

from __future__ import annotations

import math

import pytest
import torch

from reformer_lab.lessons.exercises import l01 as exercises
from reformer_lab.lessons.solutions import l01


@pytest.mark.parametrize(
    "check, solution",
    [
        (exercises.check_hash_rounds, l01.hash_rounds),
        (exercises.check_two_bucket_collision, l01.two_bucket_collision),
        (exercises.check_recall, l01.recall),
    ],
)
def test_solutions_pass_their_checks(check, solution) -> None:
    result = check(solution)
    assert result.passed, str(result)
    assert str(result).startswith("[PASS]")


@pytest.mark.parametrize("check", [exercises.check_hash_rounds, exercises.check_two_bucket_collision,
                                   exercises.check_recall])
def test_unattempted_is_todo_and_a_call_is_a_clear_error(check) -> None:
    def stub(*args):
        raise NotImplementedError

    result = check(stub)
    assert not result.passed and not result.attempted and str(result).startswith("[TODO]")
    with pytest.raises(TypeError, match="no parentheses"):
        check(0.5)


def _scores(x, r):
    return x @ r


def _cat(p, **kw):
    return torch.cat([p, -p], **kw)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x, r: _scores(x, r).argmax(-1), "your buckets ignore −xR"),
        (lambda x, r: _scores(x, r).abs().argmax(-1), "abs(xR) forgets the sign"),
        (lambda x, r: torch.cat([-_scores(x, r), _scores(x, r)], -1).argmax(-1), "wrong order"),
        (lambda x, r: _cat(_scores(x, r)).argmax(-1), "dim 0 by default"),
        (lambda x, r: _cat(_scores(x, r), dim=-1).argmax(1), "argmax over the wrong axis"),
        (lambda x, r: _cat(_scores(x, r), dim=-1).argmax(0), "argmax over the wrong axis (over the rounds)"),
        (lambda x, r: _cat(_scores(x, r), dim=-1).argmax(), "argmax without dim="),
        (lambda x, r: _cat(_scores(x, r), dim=-1).argmax(-1).T, "wrong layout"),
        (lambda x, r: _cat(x @ r[0], dim=-1).argmax(-1), "you hashed one round"),
    ],
)
def test_hash_rounds_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_hash_rounds(wrong)
    assert not result.passed and result.attempted
    assert hint in result.message, result.message


def test_hash_rounds_accepts_any_whole_number_tensor_and_reports_the_first_wrong_bucket() -> None:
    assert exercises.check_hash_rounds(lambda x, r: l01.hash_rounds(x, r).double())
    assert exercises.check_hash_rounds(lambda x, r: l01.hash_rounds(x, r).tolist())

    def off_by_one(x, r):
        return (l01.hash_rounds(x, r) + 1) % (2 * r.shape[-1])

    result = exercises.check_hash_rounds(off_by_one)
    assert "buckets differ from reformer_lab.hashing.hash_vectors" in result.message
    assert "round 0, vector 0" in result.message
    fractional = exercises.check_hash_rounds(lambda x, r: l01.hash_rounds(x, r) + 0.5)
    assert "whole numbers" in fractional.message


def test_hash_rounds_gets_fresh_inputs_so_mutating_them_changes_nothing() -> None:
    def mutating(x, r):
        buckets = l01.hash_rounds(x, r)
        x.zero_()
        r.mul_(-1)
        return buckets

    assert exercises.check_hash_rounds(mutating).passed
    assert exercises.check_hash_rounds(l01.hash_rounds).passed  # the cases were not touched


def test_an_exception_in_the_readers_hash_is_reported() -> None:
    result = exercises.check_hash_rounds(lambda x, r: r @ x)
    assert not result.passed and "RuntimeError" in result.message and "rotations of shape" in result.message


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda t: t / math.pi, "chance that they split"),
        (lambda t: 1 - t / (2 * math.pi), "not θ out of 2π"),
        (lambda t: math.cos(t), "similarity"),
        (lambda t: 1 - t / 180, "radians"),
        (lambda t: max(0.0, 1 - 2 * t / math.pi), "4 buckets with an exact 2-D rotation"),
    ],
)
def test_two_bucket_collision_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_two_bucket_collision(wrong)
    assert not result.passed and hint in result.message, result.message


def test_two_bucket_collision_accepts_a_torch_answer() -> None:
    assert exercises.check_two_bucket_collision(lambda t: 1 - torch.tensor(t, dtype=torch.float64) / torch.pi)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda p, n: p**n, "colliding in every round"),
        (lambda p, n: n * p, "more than once"),
        (lambda p, n: (1 - p) ** n, "complement"),
        (lambda p, n: 1 - p**n, "at least one round misses"),
    ],
)
def test_recall_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_recall(wrong)
    assert not result.passed and hint in result.message, result.message


def test_the_notebooks_checks_are_exported() -> None:
    assert exercises.__all__ == ["check_hash_rounds", "check_two_bucket_collision", "check_recall"]


@pytest.mark.parametrize("n_buckets", [2, 4, 16])
def test_the_lessons_hash_equals_the_package_and_has_the_properties_the_lesson_shows(n_buckets) -> None:
    # Lesson 01, "Check it" and "Two properties of the argmax": the inline hash (here the solution's vectorised
    # version) equals hash_vectors; scaling by c > 0 changes nothing; −x goes to (h(x) + n_buckets/2) mod n_buckets.
    from reformer_lab.hashing import hash_vectors, random_rotations

    g = torch.Generator().manual_seed(n_buckets)
    x = torch.randn(40, 8, generator=g, dtype=torch.float64)
    rotations = random_rotations(8, n_buckets, 3, generator=g, dtype=torch.float64)
    buckets = l01.hash_rounds(x, rotations)
    assert torch.equal(buckets, hash_vectors(x, n_buckets, rotations=rotations))
    for c in (1e-3, 0.5, 7.0, 1e4):
        assert torch.equal(l01.hash_rounds(c * x, rotations), buckets)
    assert torch.equal(l01.hash_rounds(-x, rotations), (buckets + n_buckets // 2) % n_buckets)
