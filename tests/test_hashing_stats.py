"""Collision probability, multi-round recall and bucket balance of angular LSH (paper §2, Figure 1).

Monte Carlo tests use fixed seeds; each tolerance is stated next to it, in standard errors.
"""

from __future__ import annotations

import math

import pytest
import torch

from reformer_lab.hashing import hash_vectors, random_rotations
from reformer_lab.measure import hashing_stats as lsh_stats
from reformer_lab.measure.hashing_stats import BucketBalance


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


ANGLES = torch.linspace(0, math.pi, 13, dtype=torch.float64)  # every 15°


# -- exact formulas ---------------------------------------------------------------------------------


def test_two_bucket_formula_at_known_angles() -> None:
    got = lsh_stats.two_bucket_collision([0.0, math.pi / 2, math.pi, math.pi / 3])
    torch.testing.assert_close(got, torch.tensor([1.0, 0.5, 0.0, 2 / 3], dtype=torch.float64), atol=1e-15, rtol=0)


def test_multi_round_recall_is_one_minus_miss_probability_to_the_n() -> None:
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    for n in (1, 2, 3, 8):
        torch.testing.assert_close(lsh_stats.multi_round_recall(p, n), 1 - (1 - p) ** n, atol=1e-15, rtol=0)
    torch.testing.assert_close(lsh_stats.multi_round_recall(p, 1), p, atol=1e-15, rtol=0)
    assert lsh_stats.multi_round_recall(0.5, 2).item() == 0.75
    # More rounds never lower the recall.
    curves = torch.stack([lsh_stats.multi_round_recall(p, n) for n in range(1, 9)])
    assert bool((curves.diff(dim=0) >= 0).all())


@pytest.mark.parametrize("p, n, match", [(1.5, 2, r"\[0, 1\]"), (-0.1, 2, r"\[0, 1\]"), (0.5, 0, ">= 1")])
def test_multi_round_recall_rejects_bad_input(p, n, match) -> None:
    with pytest.raises(ValueError, match=match):
        lsh_stats.multi_round_recall(p, n)


# -- angles and pairs -------------------------------------------------------------------------------


def test_check_angles_accepts_float32_pi_and_returns_float64() -> None:
    theta = lsh_stats.check_angles(torch.linspace(0, math.pi, 5))  # float32 π is a hair above math.pi
    assert theta.dtype == torch.float64 and theta.max().item() == math.pi


@pytest.mark.parametrize("angles", [-0.1, 3.2, [0.0, 4.0], float("nan"), 180.0])
def test_angles_out_of_range_are_a_clear_error(angles) -> None:
    with pytest.raises(ValueError, match=r"\[0, π\] radians"):
        lsh_stats.check_angles(angles)


@pytest.mark.parametrize("angles", [[], "wide"])
def test_empty_or_non_numeric_angles_are_rejected(angles) -> None:
    with pytest.raises(ValueError, match="angles"):
        lsh_stats.check_angles(angles)


def test_pairs_are_unit_vectors_at_exactly_the_asked_angles() -> None:
    x = lsh_stats.pairs_at_angles(ANGLES, d=16, n_trials=50, generator=_gen())
    assert x.shape == (50, 14, 16) and x.dtype == torch.float64
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(50, 14, dtype=torch.float64), atol=1e-12, rtol=0)
    cosines = (x[:, 1:] * x[:, :1]).sum(-1)
    torch.testing.assert_close(cosines, ANGLES.cos().expand(50, -1), atol=1e-12, rtol=0)
    assert not torch.allclose(x[0, 0], x[1, 0])  # each trial draws its own plane


def test_pairs_need_at_least_two_dimensions() -> None:
    with pytest.raises(ValueError, match="d must be an int >= 2, got 1"):
        lsh_stats.pairs_at_angles(ANGLES, d=1, n_trials=5, generator=_gen())


# -- collision probability --------------------------------------------------------------------------


def test_two_bucket_curve_matches_one_minus_theta_over_pi() -> None:
    # 20,000 trials: standard error at most 0.5/sqrt(20000) = 0.0035; tolerance 0.015 (over 4 SE) at every angle.
    measured = lsh_stats.collision_probability(ANGLES, 2, n_trials=20_000, generator=_gen(0))
    exact = lsh_stats.two_bucket_collision(ANGLES)
    assert (measured - exact).abs().max().item() < 0.015


def test_two_bucket_curve_is_exact_for_orthogonal_rotations_too() -> None:
    # One column: orthogonalising only normalises it, and the sign of x·r ignores length. Same 0.015 tolerance.
    measured = lsh_stats.collision_probability(ANGLES, 2, n_trials=20_000, generator=_gen(1), orthogonal=True)
    assert (measured - lsh_stats.two_bucket_collision(ANGLES)).abs().max().item() < 0.015


def test_identical_vectors_always_collide_and_opposite_ones_never() -> None:
    for n_buckets in (2, 4, 16):
        p = lsh_stats.collision_probability([0.0, math.pi], n_buckets, n_trials=500, generator=_gen())
        assert p.tolist() == [1.0, 0.0]  # h(−x) = h(x) + n_buckets/2 mod n_buckets, never h(x)


def test_collision_probability_falls_with_angle_and_with_more_buckets() -> None:
    # Locality: non-increasing in θ up to noise (0.01, about 3 SE of a 5,000-trial rate); more buckets, fewer
    # collisions at 60°.
    curves = {b: lsh_stats.collision_probability(ANGLES, b, n_trials=5000, generator=_gen(b)) for b in (2, 4, 8, 16)}
    for curve in curves.values():
        assert curve.diff().max().item() <= 0.01
    at_60 = [curves[b][4].item() for b in (2, 4, 8, 16)]  # θ = 60°
    assert at_60 == sorted(at_60, reverse=True) and at_60[0] - at_60[-1] > 0.3


def test_gaussian_rotations_make_the_curve_independent_of_d() -> None:
    # (xR, yR) for Gaussian R depends only on the angle; d = 2 and d = 64 agree within 0.03 (≈ 4 SE of the difference).
    low = lsh_stats.collision_probability(ANGLES, 8, d=2, n_trials=10_000, generator=_gen(3))
    high = lsh_stats.collision_probability(ANGLES, 8, d=64, n_trials=10_000, generator=_gen(4))
    assert (low - high).abs().max().item() < 0.03


def test_measurement_agrees_with_a_direct_hash_of_the_same_draws() -> None:
    # Re-draw exactly what measure_collisions draws, hash it with hash_vectors, and count by hand.
    got = lsh_stats.measure_collisions(ANGLES, 6, 3, d=8, n_trials=40, generator=_gen(9))
    g = _gen(9)
    x = lsh_stats.pairs_at_angles(ANGLES, 8, 40, generator=g)
    r = random_rotations(8, 6, 3, generator=g, batch_shape=(40,), dtype=torch.float64)
    buckets = hash_vectors(x, 6, rotations=r)
    same = buckets[..., 1:] == buckets[..., :1]
    assert torch.equal(got.per_round_hits, same.sum(0).T)
    assert torch.equal(got.any_round_hits, same.any(1).sum(0))


def test_independent_rounds_give_recall_one_minus_miss_to_the_n() -> None:
    # P[≥ 1 of 4 rounds] measured vs 1 − (1 − p)^4 from the same trials' per-round rate; 10,000 trials:
    # SE of the measured recall ≤ 0.005, tolerance 0.02 (4 SE).
    c = lsh_stats.measure_collisions(ANGLES, 8, 4, n_trials=10_000, generator=_gen(5))
    predicted = lsh_stats.multi_round_recall(c.per_round, 4)
    assert (c.any_round - predicted).abs().max().item() < 0.02
    assert bool((c.any_round >= c.per_round - 1e-12).all())  # the union catches at least what one round does
    one = lsh_stats.measure_collisions(ANGLES, 8, 1, n_trials=200, generator=_gen(5))
    assert torch.equal(one.any_round, one.per_round)


def test_collisions_standard_error() -> None:
    c = lsh_stats.measure_collisions([0.0], 2, n_trials=100, generator=_gen())
    assert c.standard_error(torch.tensor(0.5)).item() == pytest.approx(0.05)
    assert c.n_hashes == 1


def test_measurements_repeat_with_the_seed() -> None:
    a = lsh_stats.collision_probability(ANGLES, 8, 2, n_trials=1500, generator=_gen(7))
    b = lsh_stats.collision_probability(ANGLES, 8, 2, n_trials=1500, generator=_gen(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_buckets": 5}, "must be even"),
        ({"n_buckets": 0}, ">= 2"),
        ({"n_hashes": 0}, "n_hashes must be an int >= 1, got 0"),
        ({"n_trials": 0}, "n_trials must be an int >= 1, got 0"),
        ({"angles": [0.5, 7.0]}, r"\[0, π\]"),
        ({"d": 1}, "d must be an int >= 2, got 1"),
    ],
)
def test_collision_probability_rejects_bad_input(kwargs, match) -> None:
    args = {"angles": [0.5], "n_buckets": 4, "n_hashes": 1, "d": 8, "n_trials": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        lsh_stats.collision_probability(**args, generator=_gen())


# -- bucket balance ---------------------------------------------------------------------------------


def test_bucket_balance_statistics_on_a_hand_made_example() -> None:
    b = BucketBalance(torch.tensor([[2, 2, 2, 2], [5, 1, 1, 1]]))
    assert (b.n_buckets, b.length, b.mean_size) == (4, 8, 2.0)
    assert b.p_over_twice == 1 / 8  # only the 5 exceeds 2 × 2
    assert b.p_trial_overflows == 0.5
    assert b.max_over_mean == pytest.approx((1.0 + 2.5) / 2)
    assert b.p_empty == 0.0
    rel = torch.tensor([1, 1, 1, 1, 2.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    assert b.cv == pytest.approx(rel.std(correction=0).item())


@pytest.mark.parametrize(
    "counts, match",
    [
        (torch.tensor([1, 2, 3]), "shape"),
        (torch.tensor([[3]]), "shape"),
        (torch.tensor([[2, 2], [3, 2]]), "same, positive"),
        (torch.tensor([[0, 0]]), "same, positive"),
        (torch.tensor([[-1, 3]]), "non-negative"),
    ],
)
def test_bucket_balance_rejects_bad_counts(counts, match) -> None:
    with pytest.raises(ValueError, match=match):
        BucketBalance(counts)


def test_hashed_counts_add_up_and_fill_every_bucket() -> None:
    counts = lsh_stats.hashed_bucket_counts(16, length=512, d=32, n_trials=20, generator=_gen())
    assert counts.shape == (20, 16) and bool((counts.sum(1) == 512).all())
    assert BucketBalance(counts).p_empty == 0.0


def test_uniform_counts_match_the_binomial_spread() -> None:
    # Uniform buckets: sizes are Binomial(l, 1/b), so cv = sqrt((1 − 1/b) · b / l); 200 trials, within 10%.
    length, n_buckets = 1024, 16
    balance = BucketBalance(lsh_stats.uniform_bucket_counts(n_buckets, length=length, n_trials=200, generator=_gen()))
    assert balance.cv == pytest.approx(math.sqrt((1 - 1 / n_buckets) * n_buckets / length), rel=0.1)


def test_orthogonal_rotations_balance_random_data_like_uniform_buckets_and_gaussian_ones_do_not() -> None:
    # Isotropic data and orthonormal columns: every signed axis is equally likely, so bucket sizes spread like
    # uniform buckets (cv within 15%). Gaussian columns differ in length and direction: a measured finding, with
    # a wide margin at this seed (cv about 0.44 against 0.13 for l = 4096, 64 buckets, d = 64).
    kwargs = {"length": 4096, "d": 64, "n_trials": 30}
    orthogonal = BucketBalance(lsh_stats.hashed_bucket_counts(64, generator=_gen(1), orthogonal=True, **kwargs))
    gaussian = BucketBalance(lsh_stats.hashed_bucket_counts(64, generator=_gen(2), **kwargs))
    binomial_cv = math.sqrt((1 - 1 / 64) * 64 / 4096)
    assert orthogonal.cv == pytest.approx(binomial_cv, rel=0.15)
    assert gaussian.cv > 2 * orthogonal.cv
    assert gaussian.p_over_twice > orthogonal.p_over_twice


@pytest.mark.parametrize("fn", [lsh_stats.hashed_bucket_counts, lsh_stats.uniform_bucket_counts])
def test_bucket_counts_reject_odd_buckets_and_empty_sequences(fn) -> None:
    with pytest.raises(ValueError, match="must be even"):
        fn(7, length=100, generator=_gen())
    with pytest.raises(ValueError, match="length must be an int >= 1, got 0"):
        fn(8, length=0, generator=_gen())
