"""The sort-and-chunk scheme of paper §2 (eqs. 4–5, 11) and the statistics lesson 02 draws from it.

Every claim lesson 02 makes about sorting and chunking has a test here; counts computed from
buckets alone are cross-checked against the weights ``lsh_attention`` returns.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from reformer_lab.attention import lsh_attention, sort_by_bucket
from reformer_lab.hashing import random_rotations
from reformer_lab.measure import chunking_stats as bs


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_buckets(shape: tuple[int, ...], n_buckets: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, n_buckets, shape, generator=_gen(seed))


def _brute_force_counts(buckets: torch.Tensor, chunk: int, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-bucket pairs and visible ones per round, by enumerating the [L, L] masks."""
    length = buckets.shape[-1]
    positions = torch.arange(length)
    distinct = positions[:, None] > positions[None, :] if causal else positions[:, None] != positions[None, :]
    same = (buckets.unsqueeze(-1) == buckets.unsqueeze(-2)) & distinct
    visible = same & bs.window_pairs(buckets, chunk)
    return same.sum((-1, -2)), visible.sum((-1, -2))


def _lsh(buckets: torch.Tensor, n_buckets: int, *, causal: bool, seed: int = 0, **kwargs):
    """lsh_attention in float64 on random vectors with the given buckets; returns LSHInfo."""
    length = buckets.shape[-1]
    qk = torch.randn(*buckets.shape[:-2], length, 8, generator=_gen(seed), dtype=torch.float64)
    v = torch.randn_like(qk)
    _, info = lsh_attention(qk, v, n_buckets=n_buckets, buckets=buckets, causal=causal, return_info=True, **kwargs)
    return info


# ----------------------------------------------------------------------------------------------------
# Sorting (Figure 2c)
# ----------------------------------------------------------------------------------------------------


def test_sort_key_bucket_times_length_plus_position_is_a_stable_sort_by_bucket() -> None:
    buckets = _random_buckets((3, 4, 50), 6)
    length = buckets.shape[-1]
    by_key = torch.argsort(buckets * length + torch.arange(length), dim=-1)
    stable = torch.sort(buckets, dim=-1, stable=True).indices
    assert torch.equal(by_key, stable)
    assert torch.equal(by_key, sort_by_bucket(buckets)[0])
    sorted_buckets = buckets.gather(-1, by_key)
    assert (sorted_buckets.diff(dim=-1) >= 0).all()  # buckets in order
    ties = sorted_buckets.diff(dim=-1) == 0
    assert (by_key.diff(dim=-1)[ties] > 0).all()  # within a bucket, positions ascend


def test_sorted_chunk_counts_fill_every_chunk_and_add_up_to_bucket_sizes() -> None:
    buckets = _random_buckets((2, 3, 64), 8, seed=1)
    counts = bs.sorted_chunk_counts(buckets, 8)  # m = 16, 4 chunks
    assert counts.shape == (2, 3, 8, 4)
    assert (counts.sum(-2) == 16).all()
    assert torch.equal(counts.sum(-1), bs.bucket_sizes(buckets, 8))
    assert (bs.bucket_sizes(buckets, 8).sum(-1) == 64).all()


def test_chunk_size_is_two_l_over_n_buckets() -> None:
    assert bs.chunk_size_for(1024, 16) == 128  # the paper's typical m = 128
    assert bs.chunk_size_for(32, 2) == 32
    with pytest.raises(ValueError, match="must be even"):
        bs.chunk_size_for(32, 3)
    with pytest.raises(ValueError, match="divides L"):
        bs.chunk_size_for(12, 16)  # 2·12/16 is not whole
    with pytest.raises(ValueError, match="divides L"):
        bs.chunk_size_for(24, 10)  # m = 4.8


# ----------------------------------------------------------------------------------------------------
# The window (eqs. 5 and 11)
# ----------------------------------------------------------------------------------------------------


def test_closed_form_pair_counts_equal_brute_force_enumeration() -> None:
    for seed, (length, n_buckets) in enumerate([(32, 8), (48, 8), (64, 16), (16, 2), (40, 4)]):
        buckets = _random_buckets((2, 3, length), n_buckets, seed=seed)
        chunk = bs.chunk_size_for(length, n_buckets)
        for causal in (True, False):
            same, visible = bs.pair_counts(buckets, n_buckets, causal=causal)
            want_same, want_visible = _brute_force_counts(buckets, chunk, causal)
            assert torch.equal(same, want_same) and torch.equal(visible, want_visible)


def test_window_of_a_rounds_first_chunk_has_no_look_back() -> None:
    buckets = _random_buckets((2, 32), 4, seed=2)  # 2 rounds, m = 4 given below: 8 chunks per round
    window = bs.window_pairs(buckets, 4)
    chunks = sort_by_bucket(buckets)[1] // 4
    for r in range(2):
        first = chunks[r] == 0
        assert (chunks[r][window[r][first].nonzero()[:, 1]] == 0).all()  # chunk 0 sees only chunk 0
        last = chunks[r] == 7
        assert not window[r][first][:, last].any()  # no wrap-around to the round's last chunk


def test_lsh_attention_never_looks_back_across_rounds_or_wraps() -> None:
    # Identical rounds, attending across buckets: the peers' wrap would let the first chunk of round 1
    # see the last chunk of round 0 (the same positions). Ours gives those pairs zero weight.
    length, chunk = 32, 4
    buckets = _random_buckets((1, 1, length), 8, seed=3).expand(1, 2, length).contiguous()
    info = _lsh(buckets, 8, causal=False, chunk_size=chunk, attend_across_buckets=True)
    chunks = info.chunk_ids[0, 0]
    first, last = chunks == 0, chunks == length // chunk - 1
    assert (info.weights[0][first][:, last] == 0).all()
    assert (info.weights[0][first][:, ~first] == 0).all()


def test_buckets_no_larger_than_m_plus_one_lose_no_causal_pair() -> None:
    """Paper §2: if max |P_i| < m then P_i ⊆ P̃_i (causal P_i); a bucket of m + 1 still spans two chunks."""
    checked = 0
    for seed in range(300):
        buckets = _random_buckets((1, 32), 8, seed=seed)  # m = 8
        if bs.bucket_sizes(buckets, 8).max() <= 9:
            same, visible = bs.pair_counts(buckets, 8, causal=True)
            assert torch.equal(same, visible)
            checked += 1
    assert checked > 200


def test_a_bucket_of_m_plus_two_can_span_three_chunks_and_lose_pairs() -> None:
    m = 4  # L = 16, n_buckets = 8
    buckets = torch.tensor([[0, 0, 0] + [1] * 6 + [2] * 7])  # bucket 1 (6 = m + 2) fills slots 3..8: chunks 0, 1, 2
    same, visible = bs.pair_counts(buckets, 8, m, causal=True)
    assert int(same - visible) == 1  # slot 3 (chunk 0) is out of reach of slot 8 (chunk 2)
    info = _lsh(buckets, 8, causal=True, chunk_size=m)
    assert bs.dropped_from_weights(info.weights, info.buckets) == pytest.approx(float(same - visible) / float(same))
    assert info.weights[8, 3] == 0 and info.weights[8, 4] > 0


def test_without_causal_mask_a_small_bucket_straddling_a_boundary_loses_its_forward_pair() -> None:
    """Eq. 5 only looks back: the earlier member of a bucket split by a chunk boundary cannot see the later one."""
    m = 4
    buckets = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2]])  # bucket 1 = slots 3 and 4: chunks 0 and 1
    same, visible = bs.pair_counts(buckets, 4, m, causal=False)
    assert int(same - visible) == 1
    info = _lsh(buckets, 4, causal=False, chunk_size=m)
    assert info.weights[3, 4] == 0 and info.weights[4, 3] > 0
    same, visible = bs.pair_counts(buckets, 4, m, causal=True)
    assert torch.equal(same, visible)  # with the causal mask nothing is lost


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_hashes", [1, 3])
def test_visible_pairs_are_exactly_the_nonzero_weights_of_lsh_attention(causal: bool, n_hashes: int) -> None:
    length, n_buckets, chunk = 48, 8, 6
    qk = torch.randn(2, length, 8, generator=_gen(4), dtype=torch.float64)
    rotations = random_rotations(8, n_buckets, n_hashes, generator=_gen(5), dtype=torch.float64)
    _, info = lsh_attention(
        qk,
        torch.randn_like(qk),
        n_buckets=n_buckets,
        chunk_size=chunk,
        causal=causal,
        rotations=rotations,
        return_info=True,
    )
    visible = bs.visible_pairs(info.buckets, chunk, causal=causal)
    off_diagonal = ~torch.eye(length, dtype=torch.bool)
    nonzero = info.weights > 0
    assert torch.equal(nonzero & off_diagonal, visible)
    # self gets weight only when nothing else is visible (eq. 16's finite 1e5 penalty)
    assert torch.equal(nonzero.diagonal(dim1=-2, dim2=-1), ~visible.any(-1))
    union_loss = 1 - visible.sum() / bs.same_bucket_pairs(info.buckets, causal=causal).sum()
    assert bs.dropped_from_weights(info.weights, info.buckets, causal=causal) == pytest.approx(float(union_loss))
    if n_hashes == 1:
        assert bs.dropped_from_weights(info.weights, info.buckets, causal=causal) == pytest.approx(
            bs.dropped_fraction(info.buckets, n_buckets, chunk, causal=causal)
        )


def test_dropped_fraction_is_zero_without_same_bucket_pairs() -> None:
    assert bs.dropped_fraction(torch.arange(8).view(1, 8), 8, 2) == 0.0
    assert bs.dropped_from_weights(torch.eye(8), torch.arange(8).view(1, 8)) == 0.0


# ----------------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------------


def test_window_stats_on_a_hand_made_example() -> None:
    # L = 8, n_buckets = 4: mean 2, m = 4. Round 1 has a bucket of 5 (> m); round 2 is balanced.
    buckets = torch.tensor([[[0, 0, 0, 0, 0, 1, 2, 3]], [[0, 0, 1, 1, 2, 2, 3, 3]]])
    stats = bs.window_stats(buckets, 4, kind="hand")
    assert (stats.length, stats.n_buckets, stats.chunk_size, stats.n_rounds) == (8, 4, 4, 2)
    assert stats.p_bucket_over == pytest.approx(1 / 8)
    assert stats.p_round_over == pytest.approx(1 / 2)
    assert stats.max_over_mean == pytest.approx((5 / 2 + 2 / 2) / 2)
    assert stats.dropped_causal == 0.0  # a bucket of m + 1 still fits two chunks
    assert stats.p_round_drops == 0.0
    assert stats.dropped_noncausal == pytest.approx(4 / (20 + 8))  # slot 4 is the only member in chunk 1
    assert stats.mean_size == 2.0


def test_sample_vectors_is_seeded_and_zipf_repeats_tokens() -> None:
    a = bs.sample_vectors("zipf", 64, 16, n_trials=2, generator=_gen(6), noise=0.0)
    b = bs.sample_vectors("zipf", 64, 16, n_trials=2, generator=_gen(6), noise=0.0)
    assert a.shape == (2, 64, 16) and torch.equal(a, b)
    assert len(torch.unique(a[0], dim=0)) < 40  # a small vocabulary repeats
    random = bs.sample_vectors("random", 64, 16, generator=_gen(6))
    assert random.shape == (1, 64, 16) and len(torch.unique(random[0], dim=0)) == 64


def test_random_data_rarely_overflows_at_the_papers_chunk_size_and_zipf_data_does() -> None:
    """The paper's assumption holds for random vectors at m = 128; it fails for a repetitive vocabulary."""
    random = bs.overflow_sweep("random", [1024], [16], n_trials=40, generator=_gen(7))[0]
    zipf = bs.overflow_sweep("zipf", [1024], [16], n_trials=40, generator=_gen(7))[0]
    assert random.chunk_size == 128
    assert random.p_bucket_over < 0.01 and random.dropped_causal < 1e-3
    assert zipf.p_bucket_over > 0.05 and zipf.dropped_causal > 0.01
    assert zipf.max_over_mean > random.max_over_mean


def test_overflow_grows_as_buckets_shrink() -> None:
    sweep = bs.overflow_sweep("random", [256], [8, 32, 128], n_trials=40, generator=_gen(8))
    assert [s.chunk_size for s in sweep] == [64, 16, 4]
    overflow = [s.p_bucket_over for s in sweep]
    assert overflow == sorted(overflow) and overflow[-1] > overflow[0]


def test_overflow_sweep_skips_settings_without_a_whole_chunk_size_and_is_repeatable() -> None:
    first = bs.overflow_sweep("random", [24], [4, 10, 12], n_trials=3, generator=_gen(9))
    again = bs.overflow_sweep("random", [24], [4, 10, 12], n_trials=3, generator=_gen(9))
    assert [s.n_buckets for s in first] == [4, 12] and first == again


def test_orthogonal_rotations_are_an_option() -> None:
    stats = bs.overflow_sweep("random", [64], [8], n_trials=4, d=16, generator=_gen(10), orthogonal=True)
    assert stats[0].n_rounds == 4


# ----------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: bs.bucket_sizes(torch.zeros(1, 8, dtype=torch.long), 5), "must be even"),
        (lambda: bs.bucket_sizes(torch.zeros(1, 8), 4), "integer tensor"),
        (lambda: bs.bucket_sizes(torch.zeros(8, dtype=torch.long), 4), r"\[\.\.\., n_hashes, L\]"),
        (lambda: bs.bucket_sizes(torch.full((1, 8), 4), 4), r"\[0, n_buckets\)"),
        (lambda: bs.bucket_sizes([[0, 1]], 4), "torch.Tensor"),
        (lambda: bs.sorted_chunk_counts(torch.zeros(1, 8, dtype=torch.long), 4, 3), "must divide"),
        (lambda: bs.window_pairs(torch.zeros(1, 8, dtype=torch.long), 0), ">= 1"),
        (lambda: bs.dropped_from_weights(torch.zeros(4, 4), torch.zeros(1, 8, dtype=torch.long)), r"\[\.\.\., L, L\]"),
        (lambda: bs.sample_vectors("text", 8, 4, generator=_gen()), "kind must be one of"),
        (lambda: bs.sample_vectors("zipf", 8, 4, generator=_gen(), noise=-1.0), ">= 0"),
        (lambda: bs.overflow_sweep("random", [8], [4], n_trials=0, generator=_gen()), ">= 1"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_every_setting_of_the_lessons_table_has_a_valid_chunk_size() -> None:
    for length, n_buckets in itertools.product([256, 1024], [8, 16, 32, 64, 128]):
        assert bs.chunk_size_for(length, n_buckets) * n_buckets == 2 * length


def test_shared_qk_unit_keys_hash_like_the_queries() -> None:
    from reformer_lab.attention import unit_keys
    from reformer_lab.hashing import hash_vectors

    qk = torch.randn(3, 40, 16, generator=_gen(11)) * torch.rand(3, 40, 1, generator=_gen(12)) * 10
    rotations = random_rotations(16, 8, 4, generator=_gen(13))
    assert torch.equal(hash_vectors(unit_keys(qk), 8, rotations=rotations), hash_vectors(qk, 8, rotations=rotations))


def test_with_gaussian_rotations_more_buckets_overflow_more_at_the_same_chunk_size() -> None:
    """Lesson 02: at m = 128, 64 buckets over 4096 tokens overflow more often than 16 over 1024."""
    short = bs.overflow_sweep("random", [1024], [16], n_trials=40, generator=_gen(14))[0]
    long = bs.overflow_sweep("random", [4096], [64], n_trials=20, generator=_gen(15))[0]
    assert short.chunk_size == long.chunk_size == 128
    assert long.p_bucket_over > 0.005 > short.p_bucket_over
    assert long.dropped_causal < 1e-3  # few pairs are lost all the same


def test_orthogonal_rotations_overflow_less_and_losses_are_rarer_than_overflows() -> None:
    gaussian = bs.overflow_sweep("random", [1024], [128], n_trials=20, generator=_gen(16))
    orthogonal = bs.overflow_sweep("random", [1024], [128], n_trials=20, generator=_gen(16), orthogonal=True)
    for g, o in zip(gaussian, orthogonal, strict=True):
        assert o.p_bucket_over < g.p_bucket_over / 3
        assert g.dropped_causal < g.p_bucket_over and o.dropped_causal <= o.p_bucket_over
        assert g.dropped_noncausal > 0.05  # the look-back-only window loses forward pairs without the causal mask


def test_the_most_frequent_zipf_token_is_about_a_fifth_of_the_sequence() -> None:
    x = bs.sample_vectors("zipf", 4096, 8, generator=_gen(17), noise=0.0)[0]
    _, counts = torch.unique(x, dim=0, return_counts=True)
    assert 0.18 < counts.max() / 4096 < 0.24  # 1/H_64 ≈ 0.21
