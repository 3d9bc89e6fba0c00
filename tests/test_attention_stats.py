"""Lesson 03's claims about LSH attention (paper §2, Appendix A, Table 1), via reformer_lab.measure.attention_stats.

Invariants already covered by tests/test_attention.py (set/multiset semantics against a brute-force
reference, one chunk per round equals full attention, zero weight on later keys, causal position 0
returns its own value) are not repeated here; these tests cover the lesson's other claims and the
helpers it uses.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from reformer_lab.attention import SELF_PENALTY, full_attention, lsh_attention, sort_by_bucket, unit_keys
from reformer_lab.hashing import hash_vectors, random_rotations
from reformer_lab.measure import attention_stats as st
from reformer_lab.measure import complexity

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


# ----------------------------------------------------------------------------------------------------
# Shared-QK and the self mask (§2)
# ----------------------------------------------------------------------------------------------------


def test_with_unit_keys_every_query_scores_itself_highest():
    # q_i·k̂_j = ‖q_i‖ cos θ_ij ≤ ‖q_i‖ = q_i·k̂_i: without the self mask each token would attend mostly to itself.
    qk = _rand(64, 8)
    logits = qk @ unit_keys(qk).T
    assert torch.equal(logits.argmax(-1), torch.arange(64))


def test_hashing_a_query_is_hashing_its_unit_key():
    qk = _rand(64, 8)
    r = random_rotations(8, 8, 3, generator=_gen(0), dtype=F64)
    assert torch.equal(hash_vectors(qk, 8, rotations=r), hash_vectors(unit_keys(qk), 8, rotations=r))


def test_an_infinite_self_mask_would_give_nan_for_causal_position_0():
    # Why the self penalty is finite (eq. 16): with −inf, position 0 has no finite logit left.
    qk, v = _rand(6, 4), _rand(6, 3, seed=1)
    logits = (qk @ unit_keys(qk).T).masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), -math.inf)
    infinite = torch.softmax(logits - torch.diag(torch.full((6,), math.inf, dtype=F64)), -1)
    assert torch.isnan(infinite[0]).all()
    finite = torch.softmax(logits - SELF_PENALTY * torch.eye(6, dtype=F64), -1)
    torch.testing.assert_close(finite[0] @ v, v[0], atol=1e-12, rtol=0)
    assert finite.diagonal()[1:].max() < 1e-30  # with another target, self gets exp(−1e5) ≈ 0


# ----------------------------------------------------------------------------------------------------
# visit_counts, attention_from_counts, combine_rounds, causal_window_mask
# ----------------------------------------------------------------------------------------------------


def _brute_counts(buckets: torch.Tensor, chunk: int, causal: bool, across: bool, wrap: bool) -> Counter:
    """Loops over the sorted rounds; ``wrap``: rounds concatenated, look-back wraps (the peers)."""
    n_hashes, length = buckets.shape
    rows = []  # (round, position) in the peers' concatenated, sorted order
    for r in range(n_hashes):
        rows += [(r, p) for p in sorted(range(length), key=lambda p, r=r: (int(buckets[r, p]), p))]
    visits: Counter = Counter()
    for s, (r, i) in enumerate(rows):
        c = s // chunk
        first_of_round = (s % length) < chunk
        back = range((c - 1) * chunk, c * chunk)
        if first_of_round:
            back = (range(((c - 1) % (len(rows) // chunk)) * chunk, ((c - 1) % (len(rows) // chunk) + 1) * chunk)
                    if wrap else range(0))  # fmt: skip
        for t in [*back, *range(c * chunk, (c + 1) * chunk)]:
            r2, j = rows[t]
            if (causal and j > i) or (not across and (r2 != r or buckets[r, j] != buckets[r, i])):
                continue
            visits[i, j] += 1
    return visits


@pytest.mark.parametrize("length, n_buckets, n_hashes, chunk", [(24, 6, 3, 4), (16, 4, 2, 8), (18, 6, 3, 3)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("across", [False, True])
@pytest.mark.parametrize("wrap", [False, True])
def test_visit_counts_match_loops(length, n_buckets, n_hashes, chunk, causal, across, wrap):
    buckets = hash_vectors(_rand(length, 4), n_buckets, n_hashes, generator=_gen(length))
    got = st.visit_counts(buckets, chunk, causal=causal, attend_across_buckets=across, wrap_rounds=wrap)
    want = torch.zeros(length, length, dtype=torch.int64)
    for (i, j), n in _brute_counts(buckets, chunk, causal, across, wrap).items():
        want[i, j] = n
    assert torch.equal(got, want)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("across", [False, True])
@pytest.mark.parametrize("dedup", [True, False])
def test_attention_over_visit_counts_is_lsh_attention(causal, across, dedup):
    # The lesson's rebuild: softmax over the set (dedup) or multiset of visited pairs. float64, 1e-10.
    qk, v = _rand(2, 32, 4), _rand(2, 32, 3, seed=1)
    out, info = lsh_attention(qk, v, n_buckets=8, n_hashes=3, generator=_gen(1), causal=causal,
                              attend_across_buckets=across, dedup=dedup, return_info=True)  # fmt: skip
    counts = st.visit_counts(info.buckets, info.chunk_size, causal=causal, attend_across_buckets=across)
    got, weights = st.attention_from_counts(qk, v, counts, dedup=dedup)
    torch.testing.assert_close(got, out, atol=1e-10, rtol=0)
    torch.testing.assert_close(weights, info.weights, atol=1e-10, rtol=0)


def test_appendix_a_step_by_step_equals_lsh_attention():
    # What the lesson builds inline: per-round logits with m_ij = ∞ / 1e5 / log N_ij (eq. 16), per-round
    # softmax outputs o^(r) and logsumexps z^(r) (eq. 15), combined by eqs. 12–14. float64, 1e-10.
    length, n_buckets, n_hashes = 12, 4, 3
    qk, v = _rand(length, 4, seed=3), _rand(length, 2, seed=4)
    r = random_rotations(4, n_buckets, n_hashes, generator=_gen(5), dtype=F64)
    buckets = hash_vectors(qk, n_buckets, rotations=r)
    chunk = 2 * length // n_buckets
    counts = st.visit_counts(buckets, chunk)
    logits = qk @ unit_keys(qk).T
    outputs, lse = [], []
    for h in range(n_hashes):
        window = st.visit_counts(buckets[h : h + 1], chunk) > 0
        m = torch.where(window, counts.clamp(min=1).to(F64).log(), math.inf) + SELF_PENALTY * torch.eye(length)
        outputs.append(torch.softmax(logits - m, -1) @ v)
        lse.append(torch.logsumexp(logits - m, -1))
    got = st.combine_rounds(torch.stack(outputs), torch.stack(lse))
    torch.testing.assert_close(got, lsh_attention(qk, v, n_buckets=n_buckets, rotations=r), atol=1e-10, rtol=0)


def test_combine_rounds_is_stable_when_every_round_sits_at_the_self_penalty():
    # Peer notes F1: z^(r) ≈ −1e5 in every round. Weights must still sum to 1 (float32, atol 1e-6).
    outputs = torch.ones(3, 5, 2)
    lse = torch.full((3, 5), -1e5) + torch.arange(3.0)[:, None]
    torch.testing.assert_close(st.combine_rounds(outputs, lse), torch.ones(5, 2), atol=1e-6, rtol=0)


def test_combine_rounds_of_equal_logsumexps_is_the_mean():
    outputs = _rand(4, 6, 3)
    torch.testing.assert_close(st.combine_rounds(outputs, torch.zeros(4, 6, dtype=F64)), outputs.mean(0),
                               atol=1e-12, rtol=0)  # fmt: skip


def test_causal_window_mask_masks_later_positions_and_chunk_0_look_back():
    buckets = hash_vectors(_rand(16, 4), 4, 1, generator=_gen(0))
    sort_indices = sort_by_bucket(buckets)[0][0]
    mask = st.causal_window_mask(sort_indices, 4)
    assert mask.shape == (4, 4, 8)
    assert mask[0, :, :4].all()
    q = sort_indices.view(4, 4)
    for c in range(1, 4):
        keys = torch.cat([q[c - 1], q[c]])
        assert torch.equal(mask[c], keys[None, :] > q[c][:, None])
    assert not mask[:, range(4), [4, 5, 6, 7]].any()  # self is never causally masked


def test_sorted_slots_are_not_positions():
    # Why the mask must compare positions: for this hashing, a later sorted slot holds an earlier position.
    sort_indices = sort_by_bucket(hash_vectors(_rand(16, 4), 4, 1, generator=_gen(0)))[0][0]
    slot_mask = torch.arange(16)[None, :] > torch.arange(16)[:, None]
    position_mask = sort_indices[None, :] > sort_indices[:, None]
    assert not torch.equal(slot_mask, position_mask)


# ----------------------------------------------------------------------------------------------------
# Paper vs peers: the look-back across rounds (other implementations let a round's first chunk look back)
# ----------------------------------------------------------------------------------------------------


def _lookback(n_buckets: int, n_hashes: int) -> st.LookBackErrors:
    # The lesson's example: L = 32, d = 8, float64, rotations from seed 0 (nested across n_hashes).
    qk, v = _rand(32, 8, seed=7), _rand(32, 3, seed=8)
    return st.lookback_errors(qk, v, n_buckets=n_buckets, n_hashes=n_hashes, generator=_gen(0))


@pytest.mark.parametrize("n_hashes", [1, 2, 4, 8])
def test_one_chunk_per_round_equals_full_with_and_without_the_wrap(n_hashes):
    errors = _lookback(2, n_hashes)
    assert max(errors.ours, errors.ours_multiset, errors.peers) < 1e-10 and errors.covered


def test_two_chunks_per_round_ours_is_exact_once_the_rounds_cover_every_pair():
    # Ours: set semantics over round-local windows, so exact as soon as the union holds every pair.
    for n_hashes in (1, 2, 4, 8):
        errors = _lookback(4, n_hashes)
        assert (errors.ours < 1e-10) == errors.covered, n_hashes
    assert not _lookback(4, 1).covered and _lookback(4, 4).covered


def test_two_chunks_per_round_peers_are_exact_only_with_one_round():
    assert _lookback(4, 1).peers < 1e-10  # the first chunk wraps to its own round's second chunk
    assert _lookback(4, 1).ours > 1e-2  # eq. 11: our first chunk looks back at nothing
    for n_hashes in (2, 4, 8):
        errors = _lookback(4, n_hashes)
        assert errors.peers > 1e-2 and errors.ours_multiset > 1e-2  # uneven duplicate counts


# ----------------------------------------------------------------------------------------------------
# Error against full attention as rounds grow
# ----------------------------------------------------------------------------------------------------


def test_clustered_qk_shapes_norms_and_determinism():
    qk, labels = st.clustered_qk(100, 16, 5, scale=6.0, generator=_gen(0))
    assert qk.shape == (100, 16) and labels.shape == (100,)
    torch.testing.assert_close(qk.norm(dim=-1), torch.full((100,), 6.0), atol=1e-5, rtol=0)
    assert 0 <= int(labels.min()) and int(labels.max()) < 5
    again, _ = st.clustered_qk(100, 16, 5, scale=6.0, generator=_gen(0))
    assert torch.equal(qk, again)


def test_weight_distance_is_the_mass_lsh_misses():
    # With dedup, LSH is full attention renormalised over the visited set S_i: TV_i = 1 − Σ_{j∈S_i} p_ij.
    qk, v = _rand(64, 8), _rand(64, 4, seed=1)
    _, full = full_attention(qk, v, return_weights=True)
    _, info = lsh_attention(qk, v, n_buckets=8, n_hashes=2, generator=_gen(0), return_info=True)
    visited = st.visit_counts(info.buckets, info.chunk_size) > 0
    covered = (full * visited).sum(-1)
    torch.testing.assert_close(st.weight_distance(info.weights, full), 1 - covered, atol=1e-10, rtol=0)


LESSON_DATA = dict(length=512, dim=64, n_clusters=8, n_buckets=16)


def _lesson_curves() -> dict[str, st.RoundsError]:
    # The lesson's setting: 512 clustered vectors, 16 buckets (chunks of 64), 4 trials, nested rounds.
    g = _gen(0)
    qk, _ = st.clustered_qk(LESSON_DATA["length"], LESSON_DATA["dim"], LESSON_DATA["n_clusters"], generator=g)
    v = torch.randn(LESSON_DATA["length"], LESSON_DATA["dim"], generator=g)
    flat = 8.0 * torch.nn.functional.normalize(torch.randn(512, 64, generator=g), dim=-1)
    kw = dict(n_buckets=LESSON_DATA["n_buckets"], n_trials=3)
    return {
        "masked": st.rounds_error(qk, v, generator=_gen(1), **kw),
        "across": st.rounds_error(qk, v, generator=_gen(1), attend_across_buckets=True, **kw),
        "multiset": st.rounds_error(qk, v, generator=_gen(1), dedup=False, **kw),
        "flat": st.rounds_error(flat, v, generator=_gen(1), **kw),
    }


@pytest.fixture(scope="module")
def curves() -> dict[str, st.RoundsError]:
    return _lesson_curves()


def test_nested_rounds_never_increase_the_missed_mass(curves):
    # Dedup on: adding rounds only adds visited pairs, so TV (mass missed) cannot grow, trial by trial.
    for name in ("masked", "across", "flat"):
        assert torch.all(curves[name].tv.diff(dim=1) <= 1e-12), name


def test_eight_rounds_almost_match_full_attention_on_clustered_data(curves):
    masked, across = curves["masked"], curves["across"]
    assert masked.mean_tv[0] > 0.4 and masked.mean_tv[-1] < 0.1  # 1 round misses much; 8 rounds < 10%
    assert across.mean_tv[-1] < masked.mean_tv[-1]  # attending across buckets sees more keys
    assert masked.mean_rel_error[-1] < masked.mean_rel_error[0] / 4


def test_counting_duplicates_per_visit_stays_farther_from_full_attention(curves):
    # dedup=False (the peers' multiset): a key found in k rounds weighs k times, so more rounds do not converge.
    masked, multiset = curves["masked"], curves["multiset"]
    assert multiset.mean_tv[0] == pytest.approx(masked.mean_tv[0], abs=1e-12)  # one round: nothing to count twice
    assert multiset.mean_tv[-1] > 2 * masked.mean_tv[-1]


def test_lsh_needs_peaked_attention(curves):
    # Without clusters the attention is spread out and LSH misses most of it even with 8 rounds.
    assert curves["flat"].mean_tv[-1] > 0.5 > curves["masked"].mean_tv[-1]


def test_without_a_causal_mask_early_queries_miss_their_later_bucket_mates():
    # The lesson's data and 8 rounds: chunks look back only, so a non-causal query early in the sequence (early in
    # its bucket) cannot see bucket-mates that spill into the next chunk. A causal query never needs them.
    g = _gen(3)
    qk, _ = st.clustered_qk(512, 64, 8, generator=g)
    v = torch.randn(512, 64, generator=g)
    rotations = random_rotations(64, 16, 8, generator=_gen(5))
    quarters = {}
    for causal in (False, True):
        _, info = lsh_attention(qk, v, n_buckets=16, rotations=rotations, causal=causal, return_info=True)
        _, reference = full_attention(qk, v, causal=causal, return_weights=True)
        missed = st.weight_distance(info.weights, reference)
        quarters[causal] = [float(missed[i : i + 128].mean()) for i in range(0, 512, 128)]
    assert quarters[False][0] > 5 * quarters[False][-1]
    assert quarters[True][0] < quarters[False][0] / 3


def test_one_query_weights_rows_and_visited_set():
    qk, _ = st.clustered_qk(64, 8, 4, generator=_gen(0))
    v = _rand(64, 3, dtype=torch.float32)
    r = random_rotations(8, 8, 4, generator=_gen(1))
    one, four = (st.one_query_weights(qk, v, 5, n_buckets=8, rotations=r, n_hashes=n) for n in (1, 4))
    for w in (one, four):
        torch.testing.assert_close(w.lsh.sum(), torch.tensor(1.0), atol=1e-6, rtol=0)
        assert torch.all(w.lsh[~w.visited] == 0)
    assert torch.all(four.visited[one.visited])  # nested rounds: the visited set only grows
    assert four.tv <= one.tv + 1e-6
    with pytest.raises(ValueError, match="R >= n_hashes=5"):
        st.one_query_weights(qk, v, 5, n_buckets=8, rotations=r, n_hashes=5)
    with pytest.raises(ValueError, match="query must lie in"):
        st.one_query_weights(qk, v, 64, n_buckets=8, rotations=r, n_hashes=1)


# ----------------------------------------------------------------------------------------------------
# Causal LSH: zero weight on the future, yet information flows through the sort
# ----------------------------------------------------------------------------------------------------


def _leak(across: bool, chunk_size: int | None, position: int = 63) -> st.CausalLeak:
    # The lesson's example: L = 64, 8 buckets, 2 rounds, float32; the last token replaced.
    g = _gen(0)
    qk, v = torch.randn(64, 16, generator=g), torch.randn(64, 16, generator=g)
    rotations = random_rotations(16, 8, 2, generator=g)
    replacement = 3 * torch.randn(16, generator=g)
    return st.causal_leak(qk, v, position=position, replacement=replacement, n_buckets=8, rotations=rotations,
                          chunk_size=chunk_size, attend_across_buckets=across)  # fmt: skip


@pytest.mark.parametrize("position", [40, 63])
def test_across_buckets_a_later_token_changes_earlier_outputs_with_zero_weight_on_it(position):
    leak = _leak(across=True, chunk_size=None, position=position)
    assert leak.max_future_weight == 0.0  # exactly: no weight on any later position, before or after
    assert leak.n_changed > 0 and leak.max_change > 1e-2


def test_bucket_masked_and_buckets_within_their_window_no_earlier_output_changes():
    g = _gen(0)
    qk = torch.randn(64, 16, generator=g)
    torch.randn(64, 16, generator=g)
    rotations = random_rotations(16, 8, 2, generator=g)
    buckets = hash_vectors(qk, 8, rotations=rotations)
    assert st.max_earlier_in_bucket(buckets) <= 16  # the default chunk 2·64/8 = 16
    leak = _leak(across=False, chunk_size=None)
    assert leak.bucket_moved and leak.n_changed == 0 and leak.max_change < 1e-5
    assert leak.max_future_weight == 0.0


def test_bucket_masked_with_overfull_buckets_leaks_too():
    leak = _leak(across=False, chunk_size=4)  # 8 buckets of about 8 tokens, windows of 4 to 8 slots
    assert leak.max_future_weight == 0.0
    assert leak.n_changed > 0


def test_causal_leak_bad_position():
    with pytest.raises(ValueError, match="position in"):
        st.causal_leak(_rand(8, 4), _rand(8, 2), position=8, replacement=_rand(4), n_buckets=4,
                       rotations=random_rotations(4, 4, 1, dtype=F64))  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# Table 1 measured
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table1() -> list[st.Table1Row]:
    return st.measure_table1([256, 512], n_heads=2, d_k=16, chunk_size=32)


def _saved(rows: list[st.Table1Row], variant: str) -> list[int]:
    return [r.saved_bytes for r in rows if r.variant == variant]


def test_full_attention_saves_an_l_by_l_matrix_per_head(table1):
    small, large = _saved(table1, "dot-product")
    assert small >= 2 * 256**2 * 4 and large >= 2 * 512**2 * 4
    assert 3.5 < large / small <= 4.0


def test_memory_efficient_and_lsh_save_memory_linear_in_length(table1):
    for variant in ("memory-efficient", "lsh-1", "lsh-4"):
        small, large = _saved(table1, variant)
        assert large == 2 * small, variant


def test_lsh_memory_grows_with_rounds_and_table_1_overcounts_it(table1):
    for row_1, row_4 in zip([r for r in table1 if r.variant == "lsh-1"], [r for r in table1 if r.variant == "lsh-4"],
                            strict=True):  # fmt: skip
        assert row_4.saved_bytes == 4 * row_1.saved_bytes  # everything LSH saves is per round
        assert row_4.logits == 2 * 4 * row_4.length * 2 * 32
        assert 4 * row_4.formula_memory > 10 * row_4.saved_bytes  # (4l/n_c)² per position against ≈ 2·chunk


def test_table1_rows_carry_the_printed_formulas(table1):
    for r in table1:
        variant = "lsh" if r.variant.startswith("lsh") else r.variant
        want = complexity.attention_complexity(variant, batch=1, length=r.length, n_heads=2, d_k=16,
                                               n_hashes=r.n_hashes, n_chunks=r.length // 32)  # fmt: skip
        assert (r.formula_memory, r.formula_time) == (want.memory, want.time)
    me = [r for r in table1 if r.variant == "memory-efficient"]
    full = [r for r in table1 if r.variant == "dot-product"]
    assert [r.formula_memory for r in me] == [r.formula_memory for r in full]  # Table 1's oddity, as printed


def test_measure_table1_rejects_lengths_that_do_not_chunk():
    with pytest.raises(ValueError, match="multiple of chunk_size=32"):
        st.measure_table1([100], chunk_size=32)


def test_time_table1_returns_seconds_skips_long_full_attention_and_restores_threads():
    before = torch.get_num_threads()
    times = st.time_table1([64, 128], n_heads=1, d_k=8, chunk_size=16, variants=("full", "memory-efficient", "lsh-2"),
                           repeats=1, max_full_length=64)  # fmt: skip
    assert set(times["full"]) == {64} and set(times["lsh-2"]) == set(times["memory-efficient"]) == {64, 128}
    assert all(t > 0 for points in times.values() for t in points.values())
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="unknown variant 'sdpa'"):
        st.time_table1([64], chunk_size=16, variants=("sdpa",))
    assert torch.get_num_threads() == before


def test_loglog_slope():
    assert st.loglog_slope([1, 2, 4, 8], [3, 12, 48, 192]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least 2 points"):
        st.loglog_slope([1], [1])
    with pytest.raises(ValueError, match="positive"):
        st.loglog_slope([1, 2], [0, 1])


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="chunk_size=5 must divide"):
        st.visit_counts(torch.zeros(1, 12, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="integer tensor"):
        st.visit_counts(torch.zeros(1, 12), 4)
    with pytest.raises(ValueError, match="lse"):
        st.combine_rounds(torch.zeros(2, 3, 4), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="noise"):
        st.clustered_qk(8, 4, 2, noise=-1.0)
    with pytest.raises(ValueError, match="at least one visited key"):
        st.attention_from_counts(_rand(4, 2), _rand(4, 2), torch.zeros(4, 4, dtype=torch.long))
