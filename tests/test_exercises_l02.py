"""Lesson 02's graded checks accept the solutions, report a stub as TODO and name the usual mistakes."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.attention import lsh_attention
from reformer_lab.lessons import l02_chunking
from reformer_lab.lessons.exercises import l02 as exercises
from reformer_lab.lessons.solutions import l02
from reformer_lab.measure import chunking_stats


def test_lookahead_window_without_lookahead_is_the_package_window() -> None:
    buckets = torch.randint(0, 8, (1, 48), generator=torch.Generator().manual_seed(0))
    order = torch.argsort(buckets[0] * 48 + torch.arange(48))
    assert torch.equal(l02.lookahead_window(order, 12, 0), chunking_stats.window_pairs(buckets, 12)[0])


def test_one_chunk_of_lookahead_keeps_every_pair_of_buckets_up_to_m_without_the_causal_mask() -> None:
    # The answer to the lesson's "predict": a bucket of ≤ m slots touches at most two neighbouring chunks.
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        buckets = torch.randint(0, 16, (64,), generator=g)
        if int(torch.bincount(buckets).max()) > 8:
            continue
        order = torch.argsort(buckets * 64 + torch.arange(64))
        same = buckets[:, None] == buckets[None, :]
        assert not (same & ~l02.lookahead_window(order, 8, 1)).any()


def _window(s, m, a, **kw):
    return exercises._window(s, m, a, **kw)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda s, m, a: _window(s, m, 0), "look-ahead is missing"),
        (lambda s, m, a: _window(s, m, a, back=0), "look-back is gone"),
        (lambda s, m, a: _window(s, m, 1), "not always one"),
        (lambda s, m, a: _window(s, m, a).T, "transposed"),
        (lambda s, m, a: _window(s, m, a, wrap=True), "do not wrap around"),
        (lambda s, m, a: _window(s, m, a, by_position=True), "cut in the sorted order"),
        (lambda s, m, a: _window(s, m, a, use_sort=True), "its inverse"),
    ],
)
def test_lookahead_window_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_lookahead_window(wrong)
    assert not result.passed and hint in result.message, result.message


def test_lookahead_window_accepts_zero_one_masks_and_rejects_a_wrong_shape() -> None:
    assert exercises.check_lookahead_window(lambda s, m, a: l02.lookahead_window(s, m, a).int()).passed
    shape = exercises.check_lookahead_window(lambda s, m, a: l02.lookahead_window(s, m, a)[0])
    assert not shape.passed and "expected shape" in shape.message


# -- exercise 2 -----------------------------------------------------------------------------------------------


def test_lost_pairs_of_the_running_examples_largest_bucket_are_the_pairs_lsh_attention_lost() -> None:
    example = l02_chunking.running_example()
    buckets, m = example.buckets, example.chunk_size
    sizes = torch.bincount(buckets, minlength=example.n_buckets)
    largest = int(sizes.argmax())
    start = int(sizes[:largest].sum())
    same, visible = chunking_stats.pair_counts(example.info.buckets, example.n_buckets, causal=True)
    assert l02.lost_pairs(int(sizes[largest]), start, m) == int(same - visible) == 9


def test_lost_pairs_agrees_with_lsh_attentions_weights_on_random_rounds() -> None:
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        x = torch.randn(32, 8, generator=g)
        _, info = lsh_attention(x, x, n_buckets=8, causal=True, generator=g, return_info=True)
        b = info.buckets[0]
        sizes = torch.bincount(b, minlength=8)
        lost = sum(l02.lost_pairs(int(sizes[k]), int(sizes[:k].sum()), info.chunk_size) for k in range(8) if sizes[k])
        positions = torch.arange(32)
        same = (b[:, None] == b[None, :]) & (positions[None, :] < positions[:, None])
        assert lost == int((same & (info.weights == 0)).sum())


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda s, a, m: exercises._lost(s, a, m, ignore_start=True), "where the bucket starts matters"),
        (lambda s, a, m: exercises._lost(s, a, m, back=0), "also sees the chunk before"),
        (lambda s, a, m: exercises._lost(s, a, m, both_ways=True), "count each lost pair once"),
        (lambda s, a, m: exercises._lost(s, a, m, back=2), "two chunks back is already lost"),
        (lambda s, a, m: -1, "expected"),
    ],
)
def test_lost_pairs_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_lost_pairs(wrong)
    assert not result.passed and hint in result.message, result.message


# -- exercise 3 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda m: torch.tensor([1] * (m + 2) + [2] * (m - 2)), "starts at the last slot of a chunk"),
        (lambda m: torch.tensor([0] * (m - 1) + [1] * (m + 1) + [2] * m), "never loses a causal pair"),
        (lambda m: torch.tensor([0] * (m + 3) + [1] * (2 * m - 3)), "exactly m + 2"),
        (lambda m: torch.tensor([0] * (m - 1) + [1] * (m + 2)), "multiple of"),
        (lambda m: 7, "1-D tensor of bucket ids"),
        (lambda m: torch.tensor([-1] * (3 * m)), "no negative ids"),
    ],
)
def test_losing_buckets_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_losing_buckets(wrong)
    assert not result.passed and hint in result.message, result.message


def test_losing_buckets_accepts_any_valid_counterexample() -> None:
    def list_answer(m):
        return [5] * (m + 2) + [3] * (m - 1) + [9] * (m - 1)  # any ids, in any order; a list will do

    assert exercises.check_losing_buckets(list_answer).passed
