"""Full, memory-efficient and LSH attention (paper §2, Appendix A) and the multi-head modules."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reformer_lab import attention
from reformer_lab.attention import (
    FullSelfAttention,
    LSHSelfAttention,
    full_attention,
    lsh_attention,
    memory_efficient_attention,
    sort_by_bucket,
)
from reformer_lab.hashing import hash_vectors, random_rotations
from reformer_lab.validation import ArgumentTypeError

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


# ----------------------------------------------------------------------------------------------------
# Brute-force reference: the visited (query, key) pairs, rebuilt from the buckets with plain loops
# ----------------------------------------------------------------------------------------------------


def _visits(buckets: torch.Tensor, chunk: int, causal: bool, across: bool) -> Counter:
    """Counter {(i, j): number of rounds whose window holds key j for query i}, for buckets [H, L]."""
    n_hashes, length = buckets.shape
    visits: Counter = Counter()
    for r in range(n_hashes):
        b = buckets[r].tolist()
        order = sorted(range(length), key=lambda p: (b[p], p))
        slot = {p: s for s, p in enumerate(order)}
        for i in range(length):
            c = slot[i] // chunk
            for s in range(max(c - 1, 0) * chunk, (c + 1) * chunk):  # own chunk and the previous one
                j = order[s]
                if (causal and j > i) or (not across and b[j] != b[i]):
                    continue
                visits[i, j] += 1
    return visits


def _reference(qk, v, visits: Counter, dedup: bool):
    """Softmax over the set (dedup) or multiset of visited pairs; logits q·k̂, self −1e5. [L, d]."""
    length = qk.shape[0]
    keys = qk / qk.norm(dim=-1, keepdim=True)
    weights = torch.zeros(length, length, dtype=qk.dtype)
    for i in range(length):
        js = [j for j in range(length) if (i, j) in visits]
        logits = torch.stack([qk[i] @ keys[j] - (1e5 if i == j else 0.0) for j in js])
        if not dedup:
            logits = logits + torch.tensor([math.log(visits[i, j]) for j in js], dtype=qk.dtype)
        weights[i, js] = torch.softmax(logits, dim=0)
    return weights @ v, weights


# ----------------------------------------------------------------------------------------------------
# full_attention and memory_efficient_attention
# ----------------------------------------------------------------------------------------------------


def test_full_shared_qk_formula():
    q, v = _rand(2, 12, 6), _rand(2, 12, 3, seed=1)
    logits = q @ F.normalize(q, dim=-1).transpose(-1, -2) - 1e5 * torch.eye(12, dtype=F64)
    out, weights = full_attention(q, v, return_weights=True)
    torch.testing.assert_close(weights, torch.softmax(logits, -1), atol=1e-12, rtol=0)
    torch.testing.assert_close(out, torch.softmax(logits, -1) @ v, atol=1e-12, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_full_with_k_is_scaled_dot_product_attention(causal):
    q, k, v = _rand(2, 3, 10, 8), _rand(2, 3, 10, 8, seed=1), _rand(2, 3, 10, 5, seed=2)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(full_attention(q, v, k, causal=causal), want, atol=1e-12, rtol=0)


def test_full_causal_first_query_returns_own_value_and_no_future_weight():
    q, v = _rand(10, 4, dtype=torch.float32), _rand(10, 3, seed=1, dtype=torch.float32)
    out, weights = full_attention(q, v, causal=True, return_weights=True)
    torch.testing.assert_close(out[0], v[0], atol=1e-6, rtol=0)
    assert torch.all(weights.triu(1) == 0)


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("causal", [False, True])
def test_memory_efficient_equals_full_values_and_grads(shared, causal):
    # float64, tolerance 1e-10; L = 21 with query chunks of 8 (last chunk partial).
    q, v = _rand(2, 21, 6).requires_grad_(), _rand(2, 21, 4, seed=1).requires_grad_()
    k = None if shared else _rand(2, 21, 6, seed=2).requires_grad_()
    inputs = [t for t in (q, v, k) if t is not None]
    upstream = _rand(2, 21, 4, seed=3)
    want = full_attention(q, v, k, causal=causal)
    got = memory_efficient_attention(q, v, k, causal=causal, query_chunk_size=8)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=0)
    for g_got, g_want in zip(
        torch.autograd.grad(got, inputs, upstream), torch.autograd.grad(want, inputs, upstream), strict=True
    ):
        torch.testing.assert_close(g_got, g_want, atol=1e-10, rtol=0)


def test_memory_efficient_gradcheck():
    q, k, v = (_rand(1, 6, 3, seed=s).requires_grad_() for s in range(3))
    assert torch.autograd.gradcheck(
        lambda q, k, v: memory_efficient_attention(q, v, k, causal=True, query_chunk_size=4), (q, k, v)
    )


def test_full_attention_bad_shapes():
    with pytest.raises(ValueError, match="same shape up to the last dim"):
        full_attention(_rand(10, 4), _rand(9, 4))
    with pytest.raises(ValueError, match="k must have shape"):
        full_attention(_rand(10, 4), _rand(10, 4), _rand(10, 5))
    with pytest.raises(ValueError, match="query_chunk_size must be an int >= 1, got 0"):
        memory_efficient_attention(_rand(10, 4), _rand(10, 4), query_chunk_size=0)


# ----------------------------------------------------------------------------------------------------
# lsh_attention: invariants
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_hashes", [1, 2, 4])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_one_chunk_per_round_across_buckets_equals_full(n_hashes, causal, dtype, tol):
    # n_buckets = 2: the default chunk 2L/n_buckets = L, so each round's window is the whole sequence.
    qk, v = _rand(2, 3, 16, 8, dtype=dtype), _rand(2, 3, 16, 5, seed=1, dtype=dtype)
    got, info = lsh_attention(
        qk,
        v,
        n_buckets=2,
        n_hashes=n_hashes,
        causal=causal,
        attend_across_buckets=True,
        generator=_gen(n_hashes),
        return_info=True,
    )
    want, weights = full_attention(qk, v, causal=causal, return_weights=True)
    torch.testing.assert_close(got, want, atol=tol, rtol=0)
    torch.testing.assert_close(info.weights, weights, atol=tol, rtol=0)


@pytest.mark.parametrize("n_hashes", [1, 3])
def test_bucket_masking_differs_from_full_with_two_buckets(n_hashes):
    # Documented negative: with same-bucket masking (eq. 4) a query cannot see the other bucket's keys,
    # so one chunk per round still differs from full attention (by far more than 1e-3).
    qk, v = _rand(16, 8), _rand(16, 5, seed=1)
    got = lsh_attention(qk, v, n_buckets=2, n_hashes=n_hashes, generator=_gen(0))
    assert (got - full_attention(qk, v)).abs().max() > 1e-3


CASES = [  # (L, n_buckets, n_hashes, seed): chunks of 2L/n_buckets, several per round
    (24, 6, 3, 0),
    (32, 8, 4, 1),
    (16, 4, 2, 2),
]


@pytest.mark.parametrize("length, n_buckets, n_hashes, seed", CASES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("across", [False, True])
@pytest.mark.parametrize("dedup", [True, False])
def test_matches_brute_force_set_or_multiset(length, n_buckets, n_hashes, seed, causal, across, dedup):
    # dedup=True: softmax over the SET of visited valid pairs; False: over the multiset. float64, 1e-10.
    qk, v = _rand(2, length, 4, seed=seed), _rand(2, length, 3, seed=seed + 10)
    got, info = lsh_attention(
        qk,
        v,
        n_buckets=n_buckets,
        n_hashes=n_hashes,
        causal=causal,
        attend_across_buckets=across,
        dedup=dedup,
        generator=_gen(seed),
        return_info=True,
    )
    chunk = 2 * length // n_buckets
    for b in range(2):
        visits = _visits(info.buckets[b], chunk, causal, across)
        want, weights = _reference(qk[b], v[b], visits, dedup)
        torch.testing.assert_close(got[b], want, atol=1e-10, rtol=0)
        torch.testing.assert_close(info.weights[b], weights, atol=1e-10, rtol=0)


@pytest.mark.parametrize("causal, across, dedup", [(True, False, True), (False, True, True), (True, True, False)])
def test_gradients_match_brute_force(causal, across, dedup):
    # The hand-written backward (windowed matmuls, dS = P∘(dP − rowsum(dO∘O) + dlse), the unit-key Jacobian)
    # against autograd through the loop reference; 5 leading rows run in several row groups. float64, 1e-10.
    length, n_buckets, n_hashes, chunk = 16, 8, 3, 4
    qk, v = _rand(5, length, 4, seed=3).requires_grad_(), _rand(5, length, 3, seed=4).requires_grad_()
    buckets = hash_vectors(qk, n_buckets, n_hashes, generator=_gen(3))
    got = lsh_attention(qk, v, n_buckets=n_buckets, buckets=buckets, causal=causal, attend_across_buckets=across,
                        dedup=dedup)
    want = torch.stack([_reference(qk[b], v[b], _visits(buckets[b], chunk, causal, across), dedup)[0]
                        for b in range(5)])
    upstream = _rand(*got.shape, seed=5)
    for g_got, g_want in zip(torch.autograd.grad(got, (qk, v), upstream), torch.autograd.grad(want, (qk, v), upstream),
                             strict=True):
        torch.testing.assert_close(g_got, g_want, atol=1e-10, rtol=0)


def test_brute_force_cases_exercise_duplicates_and_overflow():
    # Guard for the test above: its cases contain pairs seen in several rounds (so dedup matters)
    # and same-bucket pairs that no window holds (a bucket larger than its chunk window).
    length, n_buckets, n_hashes, seed = CASES[1]
    qk, v = _rand(2, length, 4, seed=seed), _rand(2, length, 3, seed=seed + 10)
    _, info = lsh_attention(
        qk, v, n_buckets=n_buckets, n_hashes=n_hashes, generator=_gen(seed), return_info=True
    )
    buckets = info.buckets[0]
    visits = _visits(buckets, 2 * length // n_buckets, False, False)
    assert max(visits.values()) > 1
    same_bucket = {(i, j) for r in range(n_hashes) for i in range(length) for j in range(length)
                   if buckets[r, i] == buckets[r, j]}  # fmt: skip
    assert same_bucket - set(visits)
    deduped = lsh_attention(qk, v, n_buckets=n_buckets, buckets=info.buckets)
    multiset = lsh_attention(qk, v, n_buckets=n_buckets, buckets=info.buckets, dedup=False)
    assert (deduped - multiset).abs().max() > 1e-6


@pytest.mark.parametrize("n_hashes", [1, 3])
def test_causal_weights_vanish_on_later_positions(n_hashes):
    qk, v = _rand(2, 32, 4, dtype=torch.float32), _rand(2, 32, 3, seed=1, dtype=torch.float32)
    _, info = lsh_attention(
        qk, v, n_buckets=8, n_hashes=n_hashes, causal=True, generator=_gen(0), return_info=True
    )
    assert torch.all(info.weights.triu(1) == 0)
    torch.testing.assert_close(info.weights.sum(-1), torch.ones(2, 32), atol=1e-6, rtol=0)


@pytest.mark.parametrize("n_hashes", [1, 2, 4])
def test_causal_first_position_returns_its_own_value(n_hashes):
    # Position 0 has no valid target but itself (finite self penalty); float32, atol 1e-6.
    qk, v = _rand(3, 32, 4, dtype=torch.float32), _rand(3, 32, 3, seed=1, dtype=torch.float32)
    out = lsh_attention(qk, v, n_buckets=8, n_hashes=n_hashes, causal=True, generator=_gen(0))
    torch.testing.assert_close(out[:, 0], v[:, 0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("n_hashes", [1, 3])
def test_query_alone_in_its_bucket_returns_its_own_value(n_hashes):
    # Position 5 is alone in bucket 7 in every round, so its only valid key is itself (self penalty is
    # finite): its output is v[5] exactly (float32, atol 1e-6) and nothing is NaN.
    qk, v = _rand(16, 4, dtype=torch.float32), _rand(16, 3, seed=1, dtype=torch.float32)
    buckets = (torch.arange(16) % 7).expand(n_hashes, 16).clone()
    buckets[:, 5] = 7
    out = lsh_attention(qk, v, n_buckets=8, buckets=buckets)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[5], v[5], atol=1e-6, rtol=0)


def test_round_weights_sum_to_one():
    qk, v = _rand(2, 32, 4), _rand(2, 32, 3, seed=1)
    _, info = lsh_attention(qk, v, n_buckets=8, n_hashes=4, generator=_gen(0), return_info=True)
    assert info.round_weights.shape == (2, 4, 32)
    torch.testing.assert_close(info.round_weights.sum(-2), torch.ones(2, 32, dtype=F64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dedup", [True, False])
@pytest.mark.parametrize("causal", [False, True])
def test_identical_rounds_give_the_single_round_output(dedup, causal):
    # The same R repeated 3 times visits the same pairs 3 times; float64, 1e-10.
    qk, v = _rand(2, 32, 4), _rand(2, 32, 3, seed=1)
    r = random_rotations(4, 8, 1, generator=_gen(0), dtype=F64)
    one = lsh_attention(qk, v, n_buckets=8, rotations=r, causal=causal)
    three = lsh_attention(qk, v, n_buckets=8, rotations=r.expand(3, -1, -1), causal=causal, dedup=dedup)
    torch.testing.assert_close(three, one, atol=1e-10, rtol=0)


def test_info_shapes_and_sorting():
    qk, v = _rand(2, 3, 32, 4), _rand(2, 3, 32, 5, seed=1)
    out, info = lsh_attention(qk, v, n_buckets=8, n_hashes=2, generator=_gen(0), return_info=True)
    assert out.shape == (2, 3, 32, 5)
    for name in ("buckets", "sort_indices", "undo_indices", "chunk_ids", "round_weights"):
        assert getattr(info, name).shape == (2, 3, 2, 32), name
    assert info.weights.shape == (2, 3, 32, 32) and info.rotations.shape == (2, 4, 4)
    assert info.chunk_size == 8 and info.n_buckets == 8
    sorted_buckets = info.buckets.gather(-1, info.sort_indices)
    keys = sorted_buckets * 32 + info.sort_indices  # (bucket, position) nondecreasing along each round
    assert torch.all(keys.diff(dim=-1) > 0)
    assert torch.equal(info.chunk_ids, info.undo_indices // 8)


def test_weights_omitted_for_long_sequences(monkeypatch):
    monkeypatch.setattr(attention, "MAX_WEIGHTS_LENGTH", 16)
    _, info = lsh_attention(_rand(32, 4), _rand(32, 4), n_buckets=8, generator=_gen(0), return_info=True)
    assert info.weights is None


def test_sort_and_unsort_are_inverse():
    buckets = hash_vectors(_rand(2, 40, 4), 8, 3, generator=_gen(0))
    sort_idx, undo_idx = sort_by_bucket(buckets)
    positions = torch.arange(40).expand(2, 3, 40)
    assert torch.equal(undo_idx.gather(-1, sort_idx), positions)
    assert torch.equal(sort_idx.gather(-1, undo_idx), positions)
    x = _rand(2, 3, 40)
    assert torch.equal(x.gather(-1, sort_idx).gather(-1, undo_idx), x)


def test_leading_dims_are_independent():
    # [batch, heads, L, d] with per-head rotations equals running each (batch, head) slice alone.
    qk, v = _rand(2, 3, 16, 4), _rand(2, 3, 16, 3, seed=1)
    r = random_rotations(4, 4, 2, generator=_gen(0), batch_shape=(3,), dtype=F64)
    out = lsh_attention(qk, v, n_buckets=4, rotations=r, causal=True)
    for b in range(2):
        for h in range(3):
            alone = lsh_attention(qk[b, h], v[b, h], n_buckets=4, rotations=r[h], causal=True)
            torch.testing.assert_close(out[b, h], alone, atol=1e-12, rtol=0)


def test_given_buckets_replay_the_hashing():
    qk, v = _rand(32, 4), _rand(32, 3, seed=1)
    out, info = lsh_attention(qk, v, n_buckets=8, n_hashes=2, generator=_gen(3), return_info=True)
    assert torch.equal(lsh_attention(qk, v, n_buckets=8, buckets=info.buckets), out)
    assert torch.equal(lsh_attention(qk, v, n_buckets=8, rotations=info.rotations), out)


def test_deterministic_for_a_seed():
    qk, v = _rand(32, 4), _rand(32, 3, seed=1)
    a = lsh_attention(qk, v, n_buckets=8, n_hashes=2, generator=_gen(0))
    assert torch.equal(a, lsh_attention(qk, v, n_buckets=8, n_hashes=2, generator=_gen(0)))
    assert not torch.equal(a, lsh_attention(qk, v, n_buckets=8, n_hashes=2, generator=_gen(1)))


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_with_fixed_hashing(causal):
    # float64 gradcheck through sort, chunk, look-back, round combination and unsort (buckets fixed).
    qk, v = _rand(1, 8, 3).requires_grad_(), _rand(1, 8, 2, seed=1).requires_grad_()
    buckets = hash_vectors(qk, 4, 3, generator=_gen(0))
    assert torch.autograd.gradcheck(
        lambda qk, v: lsh_attention(qk, v, n_buckets=4, buckets=buckets, causal=causal), (qk, v)
    )


def test_gradcheck_over_several_row_groups():
    qk, v = _rand(3, 2, 8, 3).requires_grad_(), _rand(3, 2, 8, 2, seed=1).requires_grad_()
    buckets = hash_vectors(qk, 4, 2, generator=_gen(0))
    assert torch.autograd.gradcheck(
        lambda qk, v: lsh_attention(qk, v, n_buckets=4, buckets=buckets, causal=True), (qk, v)
    )


def test_zero_query_gives_finite_output_and_gradients():
    # A zero query has the key 0 (F.normalize's eps), not NaN, in the forward and the backward pass.
    qk, v = _rand(2, 16, 4), _rand(2, 16, 3, seed=1)
    qk[1, 5] = 0.0
    qk.requires_grad_(), v.requires_grad_()
    out = lsh_attention(qk, v, n_buckets=4, n_hashes=2, generator=_gen(0), causal=True)
    out.square().sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(qk.grad).all() and torch.isfinite(v.grad).all()


# ----------------------------------------------------------------------------------------------------
# lsh_attention: bad inputs
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_buckets": 5}, "must be even"),
        ({"n_buckets": 4, "chunk_size": 5}, r"chunk_size=5 must divide the sequence length L=16"),
        ({"n_buckets": 6}, r"default chunk_size 2·L/n_buckets = 32/6 is not an integer"),
        ({"n_buckets": 4, "n_hashes": 0}, r"n_hashes must be an int >= 1, got 0"),
        ({"n_buckets": 4, "rotations": torch.randn(2, 4, 3, dtype=F64)}, r"rotations must have shape"),
        (
            {"n_buckets": 4, "n_hashes": 3, "rotations": torch.randn(2, 4, 2, dtype=F64)},
            "rotations must have",
        ),
        ({"n_buckets": 4, "buckets": torch.zeros(2, 15, dtype=torch.long)}, r"buckets must have shape"),
        ({"n_buckets": 4, "buckets": torch.full((1, 16), 4)}, r"must lie in \[0, n_buckets\)"),
        ({"n_buckets": 4, "buckets": torch.zeros(1, 16, dtype=torch.long), "generator": _gen(0)}, "not both"),
    ],
)
def test_lsh_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lsh_attention(_rand(16, 4), _rand(16, 3), **kwargs)


def test_lsh_mismatched_qk_and_v():
    with pytest.raises(ValueError, match=r"qk and v must have the same shape up to the last dim"):
        lsh_attention(_rand(16, 4), _rand(12, 4), n_buckets=4)
    with pytest.raises(ValueError, match=r"at least 2 dims"):
        lsh_attention(_rand(16), _rand(16), n_buckets=4)


# ----------------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------------


def _lsh_module(seed: int = 0, **kwargs) -> LSHSelfAttention:
    torch.manual_seed(0)  # same weights for every module built here
    return LSHSelfAttention(16, 2, chunk_size=4, seed=seed, **kwargs).double()


def test_lsh_module_shapes_and_memory_of_last_hashing():
    module, x = _lsh_module(n_hashes=2), _rand(3, 32, 16)
    y = module(x)
    assert y.shape == (3, 32, 16)
    assert module.last_rotations.shape == (2, 2, 8, 8)  # [heads, rounds, d_head, n_buckets/2]
    assert module.last_buckets.shape == (3, 2, 2, 32)  # [batch, heads, rounds, L]
    rotations, buckets = module.last_rotations, module.last_buckets
    assert torch.equal(module(x, rotations=rotations), y)
    assert torch.equal(module(x, buckets=buckets), y)
    assert module.last_rotations is None  # given buckets: no rotations were used


def test_lsh_module_same_seed_same_output_and_fresh_hashes_per_call():
    x = _rand(2, 32, 16)
    a, b = _lsh_module(seed=5, n_hashes=2), _lsh_module(seed=5, n_hashes=2)
    first = a(x)
    assert torch.equal(first, b(x))
    assert not torch.equal(first, _lsh_module(seed=6, n_hashes=2)(x))
    assert not torch.equal(first, a(x))  # the next call draws new rotations


def test_lsh_module_n_hashes_override_at_call_time():
    x = _rand(2, 32, 16)
    y1, y4 = _lsh_module(seed=1)(x), _lsh_module(seed=1)(x, n_hashes=4)
    assert _lsh_module(seed=1)(x, n_hashes=4).shape == y1.shape
    assert not torch.allclose(y1, y4)
    assert _lsh_module(seed=1).n_hashes == 1


def test_lsh_module_one_chunk_across_buckets_equals_full_module():
    # Same weights; n_buckets = 2 (one chunk per round) and attend_across_buckets: shared-QK full attention.
    torch.manual_seed(0)
    lsh = LSHSelfAttention(16, 2, n_buckets=2, n_hashes=3, attend_across_buckets=True, causal=True, seed=0)
    full = FullSelfAttention(16, 2, shared_qk=True, causal=True)
    full.load_state_dict(lsh.state_dict())  # the two modules name their parameters alike
    x = _rand(2, 12, 16, dtype=torch.float32)
    torch.testing.assert_close(lsh(x), full(x), atol=1e-5, rtol=0)


def test_lsh_module_bad_inputs():
    with pytest.raises(ValueError, match="must be a multiple of chunk_size=4"):
        _lsh_module()(_rand(2, 30, 16))
    with pytest.raises(ValueError, match="d_model=16"):
        _lsh_module()(_rand(2, 32, 8))
    with pytest.raises(ValueError, match="must be even"):
        LSHSelfAttention(16, 2, n_buckets=3)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        LSHSelfAttention(16, 3)
    with pytest.raises(ValueError, match="n_hashes must be an int >= 1, got 0"):
        LSHSelfAttention(16, 2, n_hashes=0)
    with pytest.raises(ValueError, match="n_hashes must be an int >= 1, got 0"):
        _lsh_module()(_rand(2, 32, 16), n_hashes=0)


def _heads(t: torch.Tensor) -> torch.Tensor:
    return t.view(2, 10, 4, 4).transpose(1, 2)


def test_full_module_shared_versus_separate_qk():
    # Shared: unit keys from the one qk projection, self masked. Separate: softmax(q kᵀ/√d) v. fp32, 1e-6.
    x = _rand(2, 10, 16, dtype=torch.float32)
    shared, separate = FullSelfAttention(16, 4), FullSelfAttention(16, 4, shared_qk=False)
    assert set(shared.state_dict()) == {"to_qk.weight", "to_v.weight", "to_out.weight", "to_out.bias"}
    assert set(separate.state_dict()) == {
        "to_q.weight",
        "to_k.weight",
        "to_v.weight",
        "to_out.weight",
        "to_out.bias",
    }
    with torch.no_grad():
        separate.to_q.weight.copy_(shared.to_qk.weight)
        separate.to_v.weight.copy_(shared.to_v.weight)
        separate.to_out.load_state_dict(shared.to_out.state_dict())
    assert shared(x).shape == separate(x).shape == (2, 10, 16)
    assert not torch.allclose(shared(x), separate(x))
    qk, v = _heads(shared.to_qk(x)), _heads(shared.to_v(x))
    want = shared.to_out(full_attention(qk, v).transpose(1, 2).reshape(2, 10, 16))
    torch.testing.assert_close(shared(x), want, atol=1e-6, rtol=0)
    q, k = _heads(separate.to_q(x)), _heads(separate.to_k(x))
    sdpa = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(
        separate(x), separate.to_out(sdpa.transpose(1, 2).reshape(2, 10, 16)), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("shared_qk", [True, False])
def test_full_module_memory_efficient_flag(shared_qk):
    torch.manual_seed(0)
    plain = FullSelfAttention(16, 2, shared_qk=shared_qk, causal=True).double()
    torch.manual_seed(0)
    chunked = FullSelfAttention(
        16, 2, shared_qk=shared_qk, causal=True, memory_efficient=True, query_chunk_size=3
    )
    x = _rand(2, 10, 16)
    torch.testing.assert_close(chunked.double()(x), plain(x), atol=1e-10, rtol=0)


def test_bfloat16_inputs_are_attended_in_float32_and_keep_their_dtype():
    # The logits and softmax run in float32 (module docstring); the result and gradients come back in bfloat16.
    qk, v = _rand(2, 64, 8, dtype=torch.float32), _rand(2, 64, 8, seed=1, dtype=torch.float32)
    buckets = hash_vectors(qk, 8, 2, generator=_gen(0))
    low_qk, low_v = qk.bfloat16().requires_grad_(), v.bfloat16().requires_grad_()
    got = lsh_attention(low_qk, low_v, n_buckets=8, buckets=buckets, causal=True)
    want = lsh_attention(low_qk.detach().float(), low_v.detach().float(), n_buckets=8, buckets=buckets, causal=True)
    got.float().sum().backward()
    assert got.dtype == low_qk.grad.dtype == low_v.grad.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=0)  # one bfloat16 rounding of the output


# ----------------------------------------------------------------------------------------------------
# Argument checks (reformer_lab.validation) and the module split
# ----------------------------------------------------------------------------------------------------


def test_public_names_are_still_importable_from_attention():
    from reformer_lab import lsh_chunks

    assert set(attention.__all__) == {
        "DEFAULT_CHUNK_SIZE", "MASK_VALUE", "MAX_WEIGHTS_LENGTH", "SELF_PENALTY", "FullSelfAttention", "LSHInfo",
        "LSHSelfAttention", "full_attention", "lsh_attention", "memory_efficient_attention", "sort_by_bucket",
        "unit_keys",
    }
    assert all(hasattr(attention, name) for name in attention.__all__)
    assert attention.SELF_PENALTY == 1e5 and attention.MASK_VALUE == -1e9
    assert attention.unit_keys is lsh_chunks.unit_keys  # one definition of the shared-QK keys


def test_lsh_module_accepts_numpy_integers():
    x = _rand(2, 32, 16)
    torch.manual_seed(0)
    numpy_sized = LSHSelfAttention(
        np.int64(16), np.int64(2), chunk_size=np.int64(4), n_hashes=np.int64(2), seed=np.int64(3)
    ).double()
    assert (numpy_sized.d_model, numpy_sized.n_heads, numpy_sized.chunk_size, numpy_sized.n_hashes) == (16, 2, 4, 2)
    assert all(type(n) is int for n in (numpy_sized.d_model, numpy_sized.n_heads, numpy_sized.n_hashes))
    assert torch.equal(numpy_sized(x), _lsh_module(seed=3, n_hashes=2)(x))
    assert LSHSelfAttention(16, 2, n_buckets=np.int64(4)).n_buckets == 4
    assert FullSelfAttention(np.int64(16), np.int64(2), query_chunk_size=np.int64(8)).query_chunk_size == 8
    assert LSHSelfAttention(16, 2, causal=np.bool_(True)).causal is True


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LSHSelfAttention(16, 2, n_hashes=True), r"^n_hashes must be an int >= 1, got the bool True$"),
        (lambda: LSHSelfAttention(16, 2, chunk_size=4.0), r"^chunk_size must be an int >= 1, got 4\.0 \(float\)$"),
        (lambda: LSHSelfAttention(16.0, 2), r"^d_model must be an int >= 1, got 16\.0 \(float\)$"),
        (lambda: LSHSelfAttention(16, True), r"^n_heads must be an int >= 1, got the bool True$"),
        (lambda: LSHSelfAttention(16, 2, n_buckets=4.0), r"^n_buckets must be an int >= 2, got 4\.0 \(float\)$"),
        (lambda: LSHSelfAttention(16, 2, seed=1.5), r"^seed must be an int, got 1\.5 \(float\)$"),
        (lambda: FullSelfAttention(16, 2, query_chunk_size=2.5), r"^query_chunk_size must be an int >= 1, got 2\.5"),
        (lambda: memory_efficient_attention(_rand(8, 4), _rand(8, 4), query_chunk_size=True), r"^query_chunk_size"),
        (lambda: lsh_attention(_rand(16, 4), _rand(16, 4), n_buckets=4, chunk_size=4.0), r"^chunk_size must be"),
    ],
)
def test_bool_and_float_sizes_are_refused_by_name(make, message):
    with pytest.raises(ArgumentTypeError, match=message):
        make()


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: LSHSelfAttention(16, 2, causal="False"), "causal"),
        (lambda: LSHSelfAttention(16, 2, dedup="False"), "dedup"),
        (lambda: LSHSelfAttention(16, 2, attend_across_buckets="no"), "attend_across_buckets"),
        (lambda: LSHSelfAttention(16, 2, orthogonal_rotations=1), "orthogonal_rotations"),
        (lambda: FullSelfAttention(16, 2, causal="False"), "causal"),
        (lambda: FullSelfAttention(16, 2, shared_qk="False"), "shared_qk"),
        (lambda: FullSelfAttention(16, 2, memory_efficient="yes"), "memory_efficient"),
        (lambda: full_attention(_rand(8, 4), _rand(8, 4), causal="False"), "causal"),
        (lambda: full_attention(_rand(8, 4), _rand(8, 4), self_mask="False"), "self_mask"),
        (lambda: memory_efficient_attention(_rand(8, 4), _rand(8, 4), causal="False"), "causal"),
        (lambda: lsh_attention(_rand(16, 4), _rand(16, 4), n_buckets=4, causal="False"), "causal"),
    ],
)
def test_string_flags_are_refused_not_read_as_true(make, name):
    # "False" is a non-empty string, so a plain truth test would have read it as True.
    with pytest.raises(ArgumentTypeError, match=rf"^{name} must be True or False, got "):
        make()


# ----------------------------------------------------------------------------------------------------
# Half precision, dtypes, empty inputs and the exact self penalty
# ----------------------------------------------------------------------------------------------------


def _lsh_full_equivalent(qk, v, **kwargs):
    """LSH attention with one chunk per round, across buckets: shared-QK full attention exactly."""
    return lsh_attention(qk, v, n_buckets=2, attend_across_buckets=True, generator=_gen(0), **kwargs)


_SHARED_QK = {
    "full": full_attention,
    "memory_efficient": lambda q, v, **kw: memory_efficient_attention(q, v, query_chunk_size=3, **kw),
    "lsh": _lsh_full_equivalent,
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", sorted(_SHARED_QK))
def test_half_precision_zero_query_gives_finite_output_and_gradients(kind, dtype):
    # F.normalize's eps (1e-12) is 0 in float16: a zero query gave 0/0 = NaN keys and all-NaN rows. The key is
    # now normalised in float32, and a zero query's key is a constant 0, so its gradient is finite too.
    qk, v = _rand(2, 8, 4, dtype=torch.float32).to(dtype), _rand(2, 8, 3, seed=1, dtype=torch.float32).to(dtype)
    qk[0, 3] = 0.0
    qk.requires_grad_(), v.requires_grad_()
    out = _SHARED_QK[kind](qk, v, causal=True)
    out.float().square().sum().backward()
    assert out.dtype == dtype
    assert torch.isfinite(out).all() and torch.isfinite(qk.grad).all() and torch.isfinite(v.grad).all()
    want = full_attention(qk.detach().double(), v.detach().double(), causal=True)
    torch.testing.assert_close(out.double(), want, atol=3e-2, rtol=0)  # one half-precision rounding


def test_half_precision_zero_input_row_in_the_modules():
    torch.manual_seed(0)
    for module in (FullSelfAttention(8, 2), FullSelfAttention(8, 2, memory_efficient=True, query_chunk_size=2)):
        x = torch.randn(2, 6, 8)
        x[1, 2] = 0.0  # bias=False: the zero input row projects to a zero query
        out = module.half()(x.half().requires_grad_())
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.float(), module.float()(x), atol=1e-2, rtol=0)


def test_float16_logits_beyond_65504_do_not_overflow():
    # q·k = 64 · 40 · 40 = 102400 > float16's largest value: the logits are formed in float32.
    q = torch.full((1, 2, 64), 40.0, dtype=torch.float16)
    k = torch.full((1, 2, 64), 40.0, dtype=torch.float16)
    v = torch.tensor([[[1.0], [3.0]]], dtype=torch.float16)
    for got in (full_attention(q, v, k, scale=1.0), memory_efficient_attention(q, v, k, scale=1.0)):
        torch.testing.assert_close(got.float(), torch.full((1, 2, 1), 2.0), atol=1e-2, rtol=0)  # was NaN (inf − inf)


@pytest.mark.parametrize("integer", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_and_bool_values_are_refused_by_name(integer):
    # full_attention(q, v_int) returned zeros (float weights cast to int) and lsh_attention truncated.
    q, k = _rand(8, 4), _rand(8, 4, seed=1)
    bad = torch.ones(8, 4, dtype=integer)
    calls = {
        "v": [lambda: full_attention(q, bad), lambda: memory_efficient_attention(q, bad),
              lambda: full_attention(q, bad, k), lambda: lsh_attention(q, bad, n_buckets=4)],
        "q": [lambda: full_attention(bad, q), lambda: memory_efficient_attention(bad, q, k)],
        "k": [lambda: full_attention(q, q, bad), lambda: memory_efficient_attention(q, q, bad)],
        "qk": [lambda: lsh_attention(bad, q, n_buckets=4)],
    }
    for name, makes in calls.items():
        for make in makes:
            with pytest.raises(ArgumentTypeError, match=rf"^{name} must be a floating-point tensor .*got {integer}$"):
                make()


def test_mixed_float_dtypes_fail_in_the_forward_pass():
    # float32 q with float64 v used to run forward and fail only in the recomputing backward pass.
    q32, q64 = _rand(8, 4, dtype=torch.float32), _rand(8, 4)
    message = r"must have the same dtype, got .*torch\.float32.*torch\.float64"
    for make in (
        lambda: full_attention(q32, q64),
        lambda: full_attention(q64, q64, q32),
        lambda: memory_efficient_attention(q32, q64),
        lambda: memory_efficient_attention(q64, q64, q32),
        lambda: lsh_attention(q32, q64, n_buckets=4),
        lambda: full_attention(q32, q32.bfloat16()),
    ):
        with pytest.raises(ArgumentTypeError, match=message.replace("float64", "(float64|bfloat16)")):
            make()
    module = LSHSelfAttention(16, 2, chunk_size=4)
    with pytest.raises(ArgumentTypeError, match=r"^x has dtype torch\.float64 but the module's parameters are"):
        module(_rand(1, 8, 16))
    with pytest.raises(ArgumentTypeError, match=r"^x must be a floating-point tensor"):
        FullSelfAttention(16, 2)(torch.ones(1, 8, 16, dtype=torch.long))


def test_empty_inputs():
    # LSH: L = 0 or an empty batch was a ZeroDivisionError or a misleading n_buckets error; now a ValueError.
    with pytest.raises(ValueError, match=r"^qk must have a sequence length L >= 1 and a dim d >= 1, got shape"):
        lsh_attention(_rand(2, 0, 4), _rand(2, 0, 4), n_buckets=2, chunk_size=4)
    with pytest.raises(ValueError, match=r"^qk must hold at least one sequence: its leading dims \(0,\) are empty"):
        lsh_attention(_rand(0, 8, 4), _rand(0, 8, 4), n_buckets=2, chunk_size=4)
    with pytest.raises(ValueError, match=r"^qk must have a sequence length L >= 1 and a dim d >= 1"):
        lsh_attention(_rand(8, 0), _rand(8, 4), n_buckets=2, chunk_size=4)
    for x in (_rand(1, 0, 16), _rand(0, 8, 16)):
        with pytest.raises(ValueError, match=r"^x must hold at least one sequence of length L >= 1"):
            _lsh_module()(x)
    # Full attention: no queries is an empty result; queries with no keys, or d = 0, are errors.
    assert full_attention(_rand(2, 0, 4), _rand(2, 0, 3)).shape == (2, 0, 3)
    assert memory_efficient_attention(_rand(0, 5, 4), _rand(0, 5, 3)).shape == (0, 5, 3)
    with pytest.raises(ValueError, match=r"^k must hold at least one key position"):
        full_attention(_rand(3, 4), _rand(0, 2), _rand(0, 4))
    with pytest.raises(ValueError, match=r"^q must have a last dim d >= 1"):
        full_attention(_rand(3, 0), _rand(3, 2), _rand(3, 0))  # was a ZeroDivisionError from d ** -0.5


def test_scale_and_return_flags_are_checked():
    q = _rand(8, 4)
    with pytest.raises(ArgumentTypeError, match=r"^scale must be a finite number, got '1' \(str\)$"):
        full_attention(q, q, scale="1")
    with pytest.raises(ValueError, match=r"^scale must be a finite number, got nan$"):
        memory_efficient_attention(q, q, scale=float("nan"))
    with pytest.raises(ArgumentTypeError, match=r"^return_weights must be True or False, got 'False'"):
        full_attention(q, q, return_weights="False")
    with pytest.raises(ArgumentTypeError, match=r"^return_info must be True or False, got 0"):
        lsh_attention(q, q, n_buckets=4, return_info=0)


def _self_penalty_probe(dtype=F64):
    """Query 0 of norm 1e5 + 1 along e_0, query 1 a unit vector along e_1; values 1 and 0.

    Shared-QK logits of query 0: its own key q_0·k̂_0 − 1e5 = (1e5 + 1) − 1e5 = 1, the other key q_0·k̂_1 = 0.
    So out[0] = sigmoid(1) exactly when the penalty is 1e5 (paper eq. 16): 1e3 would give 1, 1e5 + 1 gives 1/2.
    """
    qk = torch.zeros(1, 2, 4, dtype=dtype)
    qk[0, 0, 0], qk[0, 1, 1] = 1e5 + 1, 1.0
    v = torch.tensor([[[1.0], [0.0]]], dtype=dtype)
    return qk, v


@pytest.mark.parametrize(
    "attend",
    [
        lambda qk, v: full_attention(qk, v),
        lambda qk, v: full_attention(qk, v, qk / qk.norm(dim=-1, keepdim=True), self_mask=True, scale=1.0),
        lambda qk, v: memory_efficient_attention(qk, v, query_chunk_size=1),
        lambda qk, v: lsh_attention(qk, v, n_buckets=2, attend_across_buckets=True, generator=_gen(0)),
        lambda qk, v: lsh_attention(qk, v, n_buckets=2, n_hashes=2, attend_across_buckets=True, generator=_gen(0)),
        lambda qk, v: lsh_attention(qk, v, n_buckets=2, buckets=torch.zeros(1, 1, 2, dtype=torch.long)),
    ],
    ids=["full", "full-given-k", "memory-efficient", "lsh", "lsh-2-rounds", "lsh-same-bucket"],
)
def test_the_self_penalty_is_exactly_1e5(attend):
    # With query norms near 1 every self logit is ≈ −1e5 or ≈ −1e3 alike, and exp of either is 0: no test saw the
    # constant. A norm of 1e5 + 1 puts the self logit at 1, beside a logit of 0, where the penalty shows exactly.
    qk, v = _self_penalty_probe()
    out = attend(qk, v)
    assert out[0, 0, 0].item() == pytest.approx(1 / (1 + math.exp(-1)), abs=1e-9)
    assert out[0, 1, 0].item() == pytest.approx(1.0, abs=1e-12)  # query 1's own logit is 1 − 1e5: all weight on key 0


def _cuda_case(device: str, causal: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LSH attention's output and gradients on ``device`` for one fixed float64 input and rotations."""
    generator = torch.Generator().manual_seed(3)
    qk, v = (torch.randn(2, 3, 256, 16, generator=generator, dtype=torch.float64) for _ in range(2))
    rotations = random_rotations(16, 16, 4, generator=generator, dtype=torch.float64)
    qk, v = (t.to(device).requires_grad_() for t in (qk, v))
    out = lsh_attention(qk, v, n_buckets=16, rotations=rotations.to(device), chunk_size=32, causal=causal)
    out.square().sum().backward()
    return out.detach().cpu(), qk.grad.cpu(), v.grad.cpu()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("causal", [False, True])
def test_lsh_attention_on_cuda_equals_cpu(causal: bool) -> None:
    """Same buckets, same output and gradients on a GPU (float64, 1e-10): the GPU timings time this attention."""
    for on_cuda, on_cpu in zip(_cuda_case("cuda", causal), _cuda_case("cpu", causal), strict=True):
        torch.testing.assert_close(on_cuda, on_cpu, atol=1e-10, rtol=1e-10)
