"""Lesson 02's graded checks accept the solutions and name the usual mistakes."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.attention import sort_by_bucket
from reformer_lab.lessons.exercises import l02 as exercises
from reformer_lab.lessons.solutions import l02
from reformer_lab.measure import chunking_stats as bucket_stats


@pytest.mark.parametrize(
    "check, solution",
    [
        (exercises.check_sort_by_bucket, l02.sort_by_bucket),
        (exercises.check_window_mask, l02.window_mask),
        (exercises.check_dropped_fraction, l02.dropped_fraction),
    ],
)
def test_solutions_pass_their_checks(check, solution) -> None:
    result = check(solution)
    assert result.passed, str(result)
    assert str(result).startswith("[PASS]")


def test_solutions_agree_with_the_package() -> None:
    buckets = torch.randint(0, 8, (2, 48), generator=torch.Generator().manual_seed(0))
    for round_buckets in buckets:
        order = l02.sort_by_bucket(round_buckets)
        assert torch.equal(order, sort_by_bucket(round_buckets.view(1, -1))[0][0])
        assert torch.equal(l02.window_mask(order, 12), bucket_stats.window_pairs(round_buckets.view(1, -1), 12)[0])
        assert l02.dropped_fraction(round_buckets, 8) == pytest.approx(
            bucket_stats.dropped_fraction(round_buckets.view(1, -1), 8, causal=True)
        )


@pytest.mark.parametrize(
    "check", [exercises.check_sort_by_bucket, exercises.check_window_mask, exercises.check_dropped_fraction]
)
def test_unattempted_exercise_is_todo(check) -> None:
    def stub(*args):
        raise NotImplementedError

    result = check(stub)
    assert not result.passed and not result.attempted and str(result).startswith("[TODO]")


def _unstable_ties(buckets):
    """Sorted by bucket, ties in *descending* position: what an unstable sort may give."""
    return torch.argsort(buckets * len(buckets) - torch.arange(len(buckets)))


def _inverse(order):
    return torch.empty_like(order).scatter_(0, order, torch.arange(len(order)))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_unstable_ties, "ties must be broken by position"),
        (lambda b: torch.sort(b).values, "argsort, not sort"),
        (lambda b: _inverse(l02.sort_by_bucket(b)), "inverse permutation"),
        (lambda b: torch.argsort(b + torch.arange(len(b))), "bucket·L + position"),
        (lambda b: torch.arange(len(b)), "sort by bucket first"),
        (lambda b: torch.zeros(len(b), dtype=torch.long), "permutation"),
    ],
)
def test_sort_check_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_sort_by_bucket(wrong)
    assert not result.passed and result.attempted
    assert hint in result.message, result.message


def _window(sort_indices, m, *, back=1, ahead=0, wrap=False, by_position=False, use_sort=False):
    length = len(sort_indices)
    slots = torch.arange(length) if by_position else (sort_indices if use_sort else _inverse(sort_indices))
    chunks = slots // m
    q, k = chunks[:, None], chunks[None, :]
    mask = (k >= q - back) & (k <= q + ahead)
    if wrap and length // m > 1:
        mask |= (q == 0) & (k == length // m - 1)
    return mask


@pytest.mark.parametrize(
    "options, hint",
    [
        ({"wrap": True}, "the first chunk of a round has no previous chunk"),
        ({"back": 0}, "also attends to the previous chunk"),
        ({"ahead": 1}, "never forward"),
        ({"ahead": 1, "back": 0}, "transposed"),
        ({"by_position": True}, "cut in the sorted order"),
        ({"use_sort": True}, "its inverse"),
    ],
)
def test_window_check_names_the_mistake(options, hint) -> None:
    result = exercises.check_window_mask(lambda s, m: _window(s, m, **options))
    assert not result.passed and hint in result.message, result.message


def test_window_check_accepts_zero_one_masks_and_rejects_other_types() -> None:
    assert exercises.check_window_mask(lambda s, m: l02.window_mask(s, m).int()).passed
    assert exercises.check_window_mask(lambda s, m: l02.window_mask(s, m).tolist()).passed
    halves = exercises.check_window_mask(lambda s, m: l02.window_mask(s, m).float() / 2)
    assert not halves.passed and "expected a tensor of booleans (a bool mask)" in halves.message
    shape = exercises.check_window_mask(lambda s, m: l02.window_mask(s, m)[0])
    assert not shape.passed and "expected shape" in shape.message


def _dropped(buckets, n_buckets, *, chunk=None, causal=True, with_self=False, own_only=False):
    length = len(buckets)
    m = chunk or 2 * length // n_buckets
    positions = torch.arange(length)
    if causal:
        pairs = positions[None, :] <= positions[:, None] if with_self else positions[None, :] < positions[:, None]
    else:
        pairs = positions[None, :] != positions[:, None]
    same = (buckets[:, None] == buckets[None, :]) & pairs
    lost = same & ~_window(l02.sort_by_bucket(buckets), m, back=0 if own_only else 1)
    return 0.0 if not same.any() else int(lost.sum()) / int(same.sum())


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda b, n: _dropped(b, n, chunk=len(b) // n), "chunk size must be 2·L/n_buckets"),
        (lambda b, n: _dropped(b, n, with_self=True), "distinct positions"),
        (lambda b, n: _dropped(b, n, causal=False), "only keys before the query"),
        (lambda b, n: _dropped(b, n, own_only=True), "also sees the previous chunk"),
        (lambda b, n: 1 - _dropped(b, n), "share kept"),
    ],
)
def test_dropped_fraction_check_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_dropped_fraction(wrong)
    assert not result.passed and hint in result.message, result.message


def test_dropped_fraction_check_accepts_a_float32_tensor() -> None:
    result = exercises.check_dropped_fraction(lambda b, n: torch.tensor(l02.dropped_fraction(b, n)))
    assert result.passed, str(result)


def test_an_exception_in_the_readers_code_is_reported() -> None:
    result = exercises.check_window_mask(lambda s, m: s[100])
    assert not result.passed and "IndexError" in result.message


def test_passing_a_call_instead_of_a_function_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="no parentheses"):
        exercises.check_sort_by_bucket(torch.tensor([0, 1]))
