"""Lesson 03's graded checks accept the solutions, read an untouched stub as TODO and name the usual mistakes."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.lessons.exercises import l03 as exercises
from reformer_lab.lessons.solutions import l03
from reformer_lab.measure import attention_stats


def _counts(buckets, chunk, *, same_bucket=True, back=True, ahead=False, wrap=False, windowed=True, add=True):
    """A reader's N_ij with one rule changed, written as loops, independently of the check's own helper."""
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
                ok = ok or (wrap and back and ci == 0 and cj == n_chunks - 1)
                ok = ok or (wrap and ahead and ci == n_chunks - 1 and cj == 0)
                ok = (ok or not windowed) and (not same_bucket or bool(buckets[r, i] == buckets[r, j]))
                counts[i, j] = counts[i, j] + ok if add else max(int(counts[i, j]), int(ok))
    return counts


def test_the_hand_worked_row_is_the_package_reference() -> None:
    reference = attention_stats.visit_counts(exercises.NIJ_BUCKETS, exercises.NIJ_CHUNK_SIZE)
    assert reference[exercises.NIJ_QUERY].tolist() == l03.nij_by_hand()
    assert _counts(exercises.NIJ_BUCKETS, exercises.NIJ_CHUNK_SIZE)[exercises.NIJ_QUERY].tolist() == l03.nij_by_hand()


@pytest.mark.parametrize(
    "kwargs, hint",
    [
        ({"windowed": False}, "the paper's text read literally"),
        ({"back": False}, "previous chunk of its round"),
        ({"ahead": True}, "not ahead"),
        ({"wrap": True}, "do not wrap around"),
        ({"same_bucket": False}, "own bucket"),
        ({"add": False}, "counts rounds"),
    ],
)
def test_nij_by_hand_names_the_mistake(kwargs, hint) -> None:
    row = _counts(exercises.NIJ_BUCKETS, exercises.NIJ_CHUNK_SIZE, **kwargs)[exercises.NIJ_QUERY].tolist()
    result = exercises.check_nij_by_hand(lambda: row)
    assert not result.passed and hint in result.message, result.message


def test_nij_by_hand_explains_a_zero_on_the_diagonal_and_a_wrong_length() -> None:
    row = l03.nij_by_hand()
    row[exercises.NIJ_QUERY] = 0
    assert "N_ii = n_hashes" in exercises.check_nij_by_hand(lambda: row).message
    short = exercises.check_nij_by_hand(lambda: l03.nij_by_hand()[:-1])
    assert not short.passed and "expected shape [12]" in short.message


# Exercise 2: look-ahead window ---------------------------------------------------------------------------------


def test_independent_loop_version_of_the_lookahead_passes() -> None:
    assert exercises.check_lookahead_counts(lambda b, c: _counts(b, c, ahead=True)).passed


@pytest.mark.parametrize(
    "kwargs, hint",
    [
        ({}, "add the next chunk"),  # the typical answer: the lesson's look-back window, unchanged
        ({"back": False, "ahead": True}, "keep the previous chunk"),
        ({"ahead": True, "wrap": True}, "no wrap-around"),
        ({"ahead": True, "same_bucket": False}, "own bucket"),
        ({"windowed": False}, "outgrow"),
        ({"ahead": True, "add": False}, "add up"),
    ],
)
def test_lookahead_counts_names_the_mistake(kwargs, hint) -> None:
    result = exercises.check_lookahead_counts(lambda b, c: _counts(b, c, **kwargs))
    assert not result.passed and hint in result.message, result.message


def test_the_lookahead_window_is_symmetric_and_adds_no_earlier_key() -> None:
    """The two predictions the lesson asks for, on hashed buckets."""
    generator = torch.Generator().manual_seed(0)
    buckets = torch.randint(8, (4, 64), generator=generator)
    ahead, back = l03.lookahead_counts(buckets, 8), attention_stats.visit_counts(buckets, 8)
    assert torch.equal(ahead, ahead.T) and not torch.equal(back, back.T)
    assert torch.equal(ahead.tril(), back.tril())  # within a bucket, a later chunk holds only later positions


# Exercise 3: merge attention over key blocks ------------------------------------------------------------------


def _naive_merge(outputs, lse):
    weights = lse.exp()
    return (weights.unsqueeze(-1) * outputs).sum(0) / weights.sum(0).unsqueeze(-1)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda o, z: o.mean(0), "not equal"),
        (lambda o, z: (z.exp().unsqueeze(-1) * o).sum(0), "normalised over the blocks"),
        (lambda o, z: (torch.softmax(z, dim=-1).unsqueeze(-1) * o).sum(0), "normalise over the blocks (dim 0)"),
        (lambda o, z: (torch.softmax(-z, dim=0).unsqueeze(-1) * o).sum(0), "sign is flipped"),
        (_naive_merge, "Subtract the max over blocks"),  # right formula, but exp underflows for query 0: 0 / 0
    ],
)
def test_merge_key_blocks_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_merge_key_blocks(wrong)
    assert not result.passed and hint in result.message, result.message


def test_the_merge_cases_are_real_attention() -> None:
    """Each case's reference is softmax attention over all keys, and its blocks partition the keys."""
    outputs, lse, full = exercises._key_blocks(9, 2, 3, True, 0)
    assert outputs.shape == (3, 9, 2) and lse.shape == (3, 9)
    torch.testing.assert_close(l03.merge_key_blocks(outputs, lse), full, atol=1e-12, rtol=0)
    assert bool((lse[1:, 0] < -1e8).all())  # query 0 sees nothing in the later blocks


def test_reader_exceptions_are_reported_and_calls_are_type_errors() -> None:
    result = exercises.check_merge_key_blocks(lambda o, z: 1 / 0)
    assert not result.passed and "ZeroDivisionError" in result.message
    with pytest.raises(TypeError, match="no parentheses"):
        exercises.check_lookahead_counts(42)


def test_the_checks_do_not_let_the_reader_modify_the_cases() -> None:
    def vandal(outputs, lse):
        answer = l03.merge_key_blocks(outputs, lse)
        outputs.zero_()
        return answer

    assert exercises.check_merge_key_blocks(vandal).passed
    assert exercises.check_merge_key_blocks(l03.merge_key_blocks).passed
