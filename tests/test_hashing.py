"""Angular LSH (paper §2, Figure 1): h(x) = argmax([xR; −xR]) with a fresh R per round."""

from __future__ import annotations

import math

import pytest
import torch

from reformer_lab.hashing import check_n_buckets, hash_vectors, random_rotations


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


def test_rotations_shape_dtype_and_batch_shape():
    r = random_rotations(8, 6, 3, generator=_gen(0))
    assert r.shape == (3, 8, 3) and r.dtype == torch.get_default_dtype()
    r = random_rotations(8, 6, 3, generator=_gen(0), batch_shape=(4,), dtype=torch.float64)
    assert r.shape == (4, 3, 8, 3) and r.dtype == torch.float64


def test_rotations_are_gaussian_by_default():
    # 3·64·64 standard normals: mean within 0.05 of 0 and variance within 0.05 of 1 (fixed seed).
    r = random_rotations(64, 128, 3, generator=_gen(0), dtype=torch.float64)
    assert abs(r.mean().item()) < 0.05 and abs(r.var().item() - 1) < 0.05


def test_orthogonal_rotations_are_orthonormal():
    r = random_rotations(16, 12, 4, generator=_gen(0), orthogonal=True, dtype=torch.float64)
    gram = r.transpose(-1, -2) @ r  # [n_hashes, n_buckets/2, n_buckets/2]
    torch.testing.assert_close(gram, torch.eye(6, dtype=torch.float64).expand(4, 6, 6), atol=1e-12, rtol=0)


def test_orthogonal_needs_half_the_buckets_at_most_d():
    with pytest.raises(ValueError, match=r"n_buckets // 2 <= d"):
        random_rotations(4, 10, generator=_gen(0), orthogonal=True)


def test_rotations_fresh_per_round():
    r = random_rotations(8, 8, 4, generator=_gen(0))
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.equal(r[a], r[b])


def test_hash_matches_argmax_of_concatenated_projections():
    x, r = _x(10, 5), random_rotations(5, 8, 2, generator=_gen(1), dtype=torch.float64)
    got = hash_vectors(x, 8, rotations=r)
    for h in range(2):
        for i in range(10):
            projected = x[i] @ r[h]
            assert got[h, i].item() == int(torch.argmax(torch.cat([projected, -projected])))


def test_hash_shape_dtype_and_range():
    buckets = hash_vectors(_x(2, 3, 40, 8), 6, 4, generator=_gen(0))
    assert buckets.shape == (2, 3, 4, 40) and buckets.dtype == torch.long
    assert buckets.min() >= 0 and buckets.max() < 6
    assert len(buckets.unique()) == 6  # 960 hashes of Gaussian data fill all 6 buckets


def test_hash_is_scale_invariant():
    x, r = _x(3, 50, 8), random_rotations(8, 10, 3, generator=_gen(2), dtype=torch.float64)
    base = hash_vectors(x, 10, rotations=r)
    for scale in (1e-3, 0.5, 3.7, 1024.0):
        assert torch.equal(hash_vectors(scale * x, 10, rotations=r), base)


def test_hash_of_negation_shifts_by_half():
    x, r = _x(3, 50, 8), random_rotations(8, 10, 3, generator=_gen(3), dtype=torch.float64)
    assert torch.equal(hash_vectors(-x, 10, rotations=r), (hash_vectors(x, 10, rotations=r) + 5) % 10)


def test_hash_deterministic_for_a_seed_and_different_across_seeds():
    x = _x(64, 8)
    a, b = hash_vectors(x, 8, 2, generator=_gen(7)), hash_vectors(x, 8, 2, generator=_gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, hash_vectors(x, 8, 2, generator=_gen(8)))


def test_generator_draw_equals_explicit_rotations():
    x = _x(2, 30, 8)
    r = random_rotations(8, 6, 3, generator=_gen(5), dtype=x.dtype)
    assert torch.equal(hash_vectors(x, 6, 3, generator=_gen(5)), hash_vectors(x, 6, rotations=r))


def test_without_generator_uses_global_rng():
    x = _x(30, 8)
    torch.manual_seed(11)
    a = hash_vectors(x, 6, 2)
    torch.manual_seed(11)
    assert torch.equal(a, hash_vectors(x, 6, 2))


def test_rounds_hash_independently():
    # Different rotations per round: the 4 rounds' buckets of 64 vectors are pairwise different.
    buckets = hash_vectors(_x(64, 8), 8, 4, generator=_gen(0))
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.equal(buckets[a], buckets[b])


def test_rotations_broadcast_over_leading_dims():
    # One R per head ([n_heads, n_hashes, d, b/2]) hashes x of shape [batch, n_heads, L, d] per head.
    x, r = (
        _x(2, 3, 20, 8),
        random_rotations(8, 6, 2, generator=_gen(0), batch_shape=(3,), dtype=torch.float64),
    )
    got = hash_vectors(x, 6, rotations=r)
    assert got.shape == (2, 3, 2, 20)
    for head in range(3):
        assert torch.equal(got[:, head], hash_vectors(x[:, head], 6, rotations=r[head]))


def test_two_bucket_collision_probability_is_one_minus_angle_over_pi():
    # With 2 buckets, h(x) = h(y) iff sign(x·r) = sign(y·r): probability 1 − θ/π. 4000 Gaussian rounds,
    # fixed seed; tolerance 0.03 (about 4 standard errors).
    theta = math.pi / 3
    pair = torch.tensor([[1.0, 0.0], [math.cos(theta), math.sin(theta)]], dtype=torch.float64)
    buckets = hash_vectors(pair, 2, 4000, generator=_gen(0))
    measured = (buckets[:, 0] == buckets[:, 1]).double().mean().item()
    assert abs(measured - (1 - theta / math.pi)) < 0.03


def test_hash_carries_no_gradient():
    x = _x(10, 4).requires_grad_()
    assert not hash_vectors(x, 4, generator=_gen(0)).requires_grad


@pytest.mark.parametrize("n_buckets, match", [(5, "must be even"), (0, ">= 2"), (1, ">= 2"), (2.0, "int")])
def test_bad_n_buckets(n_buckets, match):
    with pytest.raises(ValueError, match=match):
        check_n_buckets(n_buckets)
    with pytest.raises(ValueError, match=match):
        hash_vectors(_x(8, 4), n_buckets, generator=_gen(0))
    with pytest.raises(ValueError, match=match):
        random_rotations(4, n_buckets)


def test_bad_x():
    with pytest.raises(ValueError, match=r"at least 2 dims"):
        hash_vectors(torch.randn(8), 4)
    with pytest.raises(ValueError, match="floating-point"):
        hash_vectors(torch.ones(8, 4, dtype=torch.long), 4)


@pytest.mark.parametrize(
    "shape",
    [(8, 3), (2, 5, 3), (2, 4, 2), (3, 4, 3)],  # too few dims; wrong d; wrong n_buckets/2; wrong rounds
)
def test_bad_rotation_shapes(shape):
    with pytest.raises(ValueError, match=r"rotations must have shape \[\.\.\., 2, 4, 3\]"):
        hash_vectors(_x(10, 4), 6, 2, rotations=torch.randn(shape, dtype=torch.float64))


def test_rotations_leading_dims_must_broadcast():
    with pytest.raises(ValueError, match="must broadcast"):
        hash_vectors(_x(3, 10, 4), 6, rotations=torch.randn(5, 1, 4, 3, dtype=torch.float64))


def test_rotations_and_generator_exclusive_and_n_hashes_positive():
    r = random_rotations(4, 6, generator=_gen(0), dtype=torch.float64)
    with pytest.raises(ValueError, match="not both"):
        hash_vectors(_x(10, 4), 6, rotations=r, generator=_gen(0))
    with pytest.raises(ValueError, match=r"n_hashes must be an int >= 1, got 0"):
        hash_vectors(_x(10, 4), 6, 0, generator=_gen(0))


# ----------------------------------------------------------------------------------------------------
# Argument checks (reformer_lab.validation): NumPy integers accepted, bool and float refused by name


def test_numpy_integers_are_accepted():
    import numpy as np

    assert check_n_buckets(np.int64(4)) == 4 and type(check_n_buckets(np.int64(4))) is int
    r = random_rotations(np.int64(4), np.int64(4), np.int64(2), generator=_gen(0), batch_shape=(np.int64(3),))
    assert r.shape == (3, 2, 4, 2)
    assert hash_vectors(_x(8, 4), np.int64(4), np.int64(2), generator=_gen(0)).shape == (2, 8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_n_buckets(True), r"^n_buckets must be an int >= 2, got the bool True$"),
        (lambda: random_rotations(4.0, 4), r"^d must be an int >= 1, got 4\.0 \(float\)$"),
        (lambda: random_rotations(4, 4, False), r"^n_hashes must be an int >= 1, got the bool False$"),
        (lambda: random_rotations(4, 4, batch_shape=(2.5,)), r"^batch_shape entries must be an int >= 1"),
        (lambda: random_rotations(4, 4, orthogonal="False"), r"^orthogonal must be True or False, got 'False'"),
        (lambda: hash_vectors(_x(8, 4), 4, 1.0, generator=_gen(0)), r"^n_hashes must be an int >= 1, got 1\.0"),
    ],
)
def test_bool_float_and_string_arguments_are_refused_by_name(call, message):
    from reformer_lab.validation import ArgumentTypeError

    with pytest.raises(ArgumentTypeError, match=message):
        call()


def test_rotations_for_draws_what_hash_vectors_uses():
    from reformer_lab.hashing import rotations_for

    x = _x(10, 4)
    drawn = rotations_for(x, 6, 2, generator=_gen(3))
    assert torch.equal(drawn, random_rotations(4, 6, 2, generator=_gen(3), dtype=torch.float64))
    assert torch.equal(hash_vectors(x, 6, 2, generator=_gen(3)), hash_vectors(x, 6, 2, rotations=drawn))
    assert rotations_for(x, 6, rotations=drawn) is drawn
    with pytest.raises(ValueError, match="not both"):
        rotations_for(x, 6, rotations=drawn, generator=_gen(0))


# ----------------------------------------------------------------------------------------------------
# Ties (argmax's first-index rule) and the distribution of orthogonal rotations


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("n_buckets", [2, 4, 16])
def test_the_zero_vector_hashes_to_bucket_0_like_argmax(dtype, n_buckets):
    # xR = 0 ties every entry of [xR; -xR]: argmax takes the first, so h(0) = 0 in every round (documented).
    rotations = random_rotations(8, n_buckets, 5, generator=_gen(0), dtype=dtype)
    buckets = hash_vectors(torch.zeros(3, 8, dtype=dtype), n_buckets, rotations=rotations)
    assert torch.equal(buckets, torch.zeros(5, 3, dtype=torch.long))


def _concat_argmax(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    projected = x.unsqueeze(-3) @ rotations
    return torch.argmax(torch.cat([projected, -projected], dim=-1), dim=-1)


@pytest.mark.parametrize(
    ("x", "bucket"),
    [
        ((1.0, -1.0), 0),  # xR = [1, -1]: [1, -1, -1, 1] ties x·r_0 with -x·r_1; the first (bucket 0) wins
        ((-1.0, 1.0), 1),  # xR = [-1, 1]: [-1, 1, 1, -1] ties x·r_1 with -x·r_0; bucket 1, not 2
        ((1.0, 1.0), 0),  # xR = [1, 1]: a tie inside xR; the first column
        ((-1.0, -1.0), 2),  # xR = [-1, -1]: a tie inside -xR; its first column, bucket 2
        ((2.0, 0.0), 0),  # no tie
        ((0.0, -3.0), 3),  # no tie
    ],
)
def test_exact_ties_follow_argmax_first_index_rule(x, bucket):
    # R = I (d = 2, 4 buckets) makes the projections exactly equal; every tie must go where argmax puts it.
    rotations = torch.eye(2, dtype=torch.float64).unsqueeze(0)
    xs = torch.tensor([x], dtype=torch.float64)
    got = hash_vectors(xs, 4, rotations=rotations)
    assert got.item() == bucket == _concat_argmax(xs, rotations).item()


def test_nan_and_inf_hash_like_argmax_of_the_concatenation():
    # Not meaningful buckets, but in range and the same as argmax([xR; -xR]) (NaN counts as largest).
    rotations = random_rotations(4, 8, 3, generator=_gen(1), dtype=torch.float64)
    x = torch.tensor([[float("nan")] * 4, [float("inf"), 0, 0, 0], [0, float("-inf"), 1, 0], [1, float("nan"), 0, 0]],
                     dtype=torch.float64)
    got = hash_vectors(x, 8, rotations=rotations)
    assert torch.equal(got, _concat_argmax(x, rotations))
    assert got.min() >= 0 and got.max() < 8


def test_orthogonal_rotations_are_uniformly_distributed():
    # Orthonormality alone does not make the draw uniform (Haar): without the sign fix, QR's Q has a fixed
    # sign pattern (LAPACK makes R's diagonal negative). 4000 draws of d = 4, 3 columns, fixed seed. For a
    # uniform draw each column is uniform on the sphere S^3: every entry has mean 0 (standard error
    # 0.5/√4000 ≈ 0.008; tolerance 0.04), E[r²] = 1/d = 0.25 (standard error ≈ 0.004; tolerance 0.02),
    # and is positive with probability 1/2 (standard error 0.008; tolerance 0.04). Two distinct entries of
    # one column are uncorrelated (E[r_0j r_1j] = 0, standard error ≈ 0.004; tolerance 0.02).
    r = random_rotations(4, 6, 4000, generator=_gen(0), orthogonal=True, dtype=torch.float64)
    assert r.shape == (4000, 4, 3)
    assert r.mean(0).abs().max() < 0.04
    assert (r.square().mean(0) - 0.25).abs().max() < 0.02
    assert ((r > 0).double().mean(0) - 0.5).abs().max() < 0.04
    assert (r[:, 0, :] * r[:, 1, :]).mean(0).abs().max() < 0.02
    # The angle of the first column to the fixed axis e_0: |cos| = |r_00|, uniform on S^3, has
    # E|r_00| = Γ(d/2) / (√π Γ((d+1)/2)) = 1 / (√π · 3√π/4) = 4/(3π) ≈ 0.424 (standard error ≈ 0.004).
    assert abs(r[:, 0, 0].abs().mean().item() - 4 / (3 * math.pi)) < 0.02
