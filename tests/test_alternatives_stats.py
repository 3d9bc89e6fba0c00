"""Lesson 10's measurements: recovered attention weight on structured inputs, and step costs at several lengths."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.attention import full_attention, lsh_attention
from reformer_lab.measure import alternatives_stats as stats
from reformer_lab.measure.attention_steps import ALTERNATIVE_VARIANTS, AttentionSetting, attention_function, time_step

pytestmark = pytest.mark.usefixtures("one_thread")


def test_weights_read_off_the_output_for_identity_values_are_the_attention_weights() -> None:
    qk = stats.structured_qk("clusters", 64, 8).double()
    _, full = full_attention(qk, qk, causal=True, return_weights=True)
    setting = AttentionSetting("full", 64, 1, d_model=8, n_heads=1)
    torch.testing.assert_close(stats.attention_weights(attention_function(setting), qk), full, atol=1e-12, rtol=0)
    lsh = AttentionSetting("lsh-2", 64, 1, d_model=8, n_heads=1, chunk_size=16, seed=3)
    _, info = lsh_attention(qk, qk, n_buckets=8, n_hashes=2, chunk_size=16, causal=True,
                            generator=torch.Generator().manual_seed(3), return_info=True)
    torch.testing.assert_close(stats.attention_weights(attention_function(lsh), qk), info.weights, atol=1e-12, rtol=0)


@pytest.fixture(scope="module")
def copy_input() -> dict[str, stats.Recovered]:
    return stats.recovered_weight(stats.structured_qk("copy", 256, 32).double(), chunk_size=32)


def test_exact_variants_recover_all_of_full_attention(copy_input) -> None:
    """full and memory-efficient: 1 (float64, 1e-9); sdpa less, since without the self mask a query weighs its
    own key too (on a copy input as much as its twin)."""
    for name in ("full", "memory-efficient"):
        assert copy_input[name].per_query.min() == pytest.approx(1.0, abs=1e-9)
    assert copy_input["sdpa"].mean_over(slice(128, None)) < 0.8


def test_on_a_copy_input_content_based_attention_finds_the_twin_and_local_does_not(copy_input) -> None:
    """The second half's best key is 128 back: local windows (≤ 63 back) keep almost none of that weight."""
    second = slice(128, None)
    assert copy_input["local"].mean_over(second) < 0.1
    for name in ("routing", "lsh-1", "lsh-2", "lsh-4"):
        assert copy_input[name].mean_over(second) > 0.8, name
    assert set(copy_input) == set(stats.VARIANTS)


def test_on_clusters_more_hash_rounds_recover_more() -> None:
    kept = stats.recovered_weight(stats.structured_qk("clusters", 256, 32), variants=("lsh-1", "lsh-2", "lsh-4"))
    assert kept["lsh-1"].mean < kept["lsh-2"].mean < kept["lsh-4"].mean
    assert all(-1e-6 <= r.per_query.min() and r.per_query.max() <= 1 + 1e-6 for r in kept.values())  # float32


def test_structured_inputs_are_one_sequence_and_checked() -> None:
    assert stats.structured_qk("copy", 16, 4).shape == (1, 1, 16, 4)
    with pytest.raises(ValueError, match="even length"):
        stats.structured_qk("copy", 15, 4)
    with pytest.raises(ValueError, match="kind must be one of"):
        stats.structured_qk("stripes", 16, 4)


@pytest.mark.parametrize("variant", ALTERNATIVE_VARIANTS)
@pytest.mark.parametrize("layer", [False, True])
def test_the_alternative_variants_take_a_timed_step(variant: str, layer: bool) -> None:
    setting = AttentionSetting(variant, length=128, batch=2, d_model=32, n_heads=2, chunk_size=16, repeats=1,
                               layer=layer)
    assert time_step(setting) > 0
    with pytest.raises(ValueError, match="multiple of the chunk size 16"):
        AttentionSetting(variant, length=120, batch=1, chunk_size=16)


def test_step_costs_time_every_variant_and_skip_full_beyond_its_cap() -> None:
    rows = stats.step_costs([64, 128], tokens=256, d_model=16, n_heads=2, chunk_size=16, repeats=1, full_cap=64,
                            fresh_process=False)
    assert [(m.setting.variant, m.setting.length, m.setting.batch) for m in rows[:2]] == [("local", 64, 4),
                                                                                          ("routing", 64, 4)]
    assert len(rows) == 2 * len(stats.VARIANTS)
    skipped = [m for m in rows if m.seconds is None]
    assert [(m.setting.variant, m.setting.length) for m in skipped] == [("full", 128)] and "full_cap" in skipped[0].note
    assert all(m.seconds > 0 for m in rows if m not in skipped)
    with pytest.raises(ValueError, match="multiple of every length"):
        stats.step_costs([96], tokens=256)


def test_step_costs_in_a_fresh_process_report_a_peak() -> None:
    (row,) = stats.step_costs([256], tokens=256, variants=("local",), d_model=16, n_heads=2, chunk_size=32,
                              repeats=1)
    assert row.seconds > 0 and row.peak_bytes is not None and row.note == ""
