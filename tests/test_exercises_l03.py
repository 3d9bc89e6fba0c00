"""Lesson 03's graded checks accept the solutions and name the usual mistakes."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.lessons.exercises import l03 as exercises
from reformer_lab.lessons.solutions import l03


def _naive_combine(outputs, lse):
    weights = lse.exp()
    return (weights.unsqueeze(-1) * outputs).sum(0) / weights.sum(0).unsqueeze(-1)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda o, z: o.mean(0), "not equal"),
        (lambda o, z: (z.exp().unsqueeze(-1) * o).sum(0), "normalised over the rounds"),
        (lambda o, z: (torch.softmax(z, dim=-1).unsqueeze(-1) * o).sum(0), "normalise over the rounds (dim 0)"),
        (lambda o, z: (torch.softmax(-z, dim=0).unsqueeze(-1) * o).sum(0), "sign is flipped"),
        (_naive_combine, "Subtract the max over rounds"),  # right formula, but exp(−1e5) underflows: 0 / 0
    ],
)
def test_combine_rounds_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_combine_rounds(wrong)
    assert not result.passed and hint in result.message, result.message


def _counts(buckets, chunk, *, same_bucket=True, back=True, ahead=False, wrap=False, add=True):
    """A reader's N_ij with one rule changed, written independently of the check's own helper."""
    n_hashes, length = buckets.shape
    counts = torch.zeros(length, length, dtype=torch.int64)
    n_chunks = length // chunk
    for r in range(n_hashes):
        order = sorted(range(length), key=lambda p, r=r: (int(buckets[r, p]), p))
        chunk_of = {p: s // chunk for s, p in enumerate(order)}
        for i in range(length):
            for j in range(length):
                ci, cj = chunk_of[i], chunk_of[j]
                ok = cj == ci or (back and cj == ci - 1) or (ahead and cj == ci + 1)
                ok = ok or (wrap and ci == 0 and cj == n_chunks - 1)
                ok = ok and (not same_bucket or buckets[r, i] == buckets[r, j])
                counts[i, j] = counts[i, j] + ok if add else max(int(counts[i, j]), int(ok))
    return counts


def test_independent_loop_version_passes() -> None:
    assert exercises.check_visit_counts(_counts).passed


@pytest.mark.parametrize(
    "kwargs, hint",
    [
        ({"same_bucket": False}, "own bucket"),
        ({"wrap": True}, "looks back at nothing"),
        ({"ahead": True}, "not ahead"),
        ({"back": False}, "previous chunk"),
        ({"add": False}, "add up"),
    ],
)
def test_visit_counts_names_the_mistake(kwargs, hint) -> None:
    result = exercises.check_visit_counts(lambda b, c: _counts(b, c, **kwargs))
    assert not result.passed and hint in result.message, result.message


def test_visit_counts_without_a_window_is_named() -> None:
    def anywhere(buckets, chunk):
        return sum((b[:, None] == b[None, :]).long() for b in buckets)

    result = exercises.check_visit_counts(anywhere)
    assert "outgrow the window" in result.message


def _mask(sort_indices, chunk, *, slots=False, self_too=False, wrap=False, before=False):
    positions = torch.arange(len(sort_indices)) if slots else sort_indices
    q = positions.view(-1, chunk)
    k = torch.cat([q.roll(1, 0), q], 1)
    qq, kk = q[:, :, None], k[:, None, :]
    mask = kk < qq if before else (kk >= qq if self_too else kk > qq)
    if not wrap:
        mask[0, :, :chunk] = True
    return mask


@pytest.mark.parametrize(
    "kwargs, hint",
    [
        ({"slots": True}, "not sorted slots"),
        ({"self_too": True}, "own position"),
        ({"wrap": True}, "no previous chunk"),
        ({"before": True}, "*later* positions"),
    ],
)
def test_causal_window_mask_names_the_mistake(kwargs, hint) -> None:
    result = exercises.check_causal_window_mask(lambda s, c: _mask(s, c, **kwargs))
    assert not result.passed and hint in result.message, result.message


def test_wrong_shape_and_non_tensor_answers_are_explained() -> None:
    shape = exercises.check_causal_window_mask(lambda s, c: torch.zeros(len(s), dtype=torch.bool))
    assert "expected shape [4, 3, 6]" in shape.message
    text = exercises.check_visit_counts(lambda b, c: "counts")
    assert "expected a tensor of counts" in text.message
    fractional = exercises.check_visit_counts(lambda b, c: l03.visit_counts(b, c) + 0.5)
    assert not fractional.passed


def test_reader_exceptions_are_reported_and_calls_are_type_errors() -> None:
    result = exercises.check_combine_rounds(lambda o, z: 1 / 0)
    assert not result.passed and "ZeroDivisionError" in result.message
    with pytest.raises(TypeError, match="no parentheses"):
        exercises.check_visit_counts(42)


def test_the_checks_do_not_let_the_reader_modify_the_cases() -> None:
    def vandal(outputs, lse):
        answer = l03.combine_rounds(outputs, lse)
        outputs.zero_()
        return answer

    assert exercises.check_combine_rounds(vandal).passed
    assert exercises.check_combine_rounds(l03.combine_rounds).passed
