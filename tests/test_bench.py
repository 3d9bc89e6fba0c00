"""The benchmark's pieces: every variant runs, tables and targets are computed from what was measured."""

from __future__ import annotations

import pytest

from reformer_lab.measure import bench
from reformer_lab.measure.bench import AttentionSetting, Measurement


@pytest.mark.parametrize("variant", bench.ATTENTION_VARIANTS)
def test_every_attention_variant_takes_a_timed_step(variant: str) -> None:
    seconds = bench.time_step(AttentionSetting(variant, length=128, batch=1, d_model=32, n_heads=2, chunk_size=16,
                                               repeats=1))
    assert seconds > 0


def test_unknown_variant_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="variant must be one of 'lsh-1'.*; got 'lsh-9000x'"):
        bench.time_step(AttentionSetting("lsh-9000x", 64, 1))


def _m(variant: str, length: int, seconds: float, peak: int) -> Measurement:
    return Measurement(AttentionSetting(variant, length, 16384 // length), seconds, peak)


def test_targets_are_judged_on_the_measurements() -> None:
    results = [_m("lsh-2", 1024, 1.0, 100), _m("lsh-2", 8192, 1.2, 100), _m("sdpa", 8192, 2.4, 50),
               _m("full", 8192, 3.0, 600)]
    targets = {claim: met for claim, met, _ in bench.attention_targets(results)}
    assert targets == {
        "L=8192: LSH-2 faster than sdpa (fwd+bwd)": True,
        "L=8192: LSH-2 peak memory ≥5× below full": True,
        "LSH-2 time per step flat within 1.5× across L": True,
    }
    slow = [_m("lsh-2", 1024, 1.0, 100), _m("lsh-2", 8192, 2.0, 100), _m("sdpa", 8192, 1.0, 50)]
    assert [met for _, met, _ in bench.attention_targets(slow)] == [False, False]


def test_table_shows_ratios_to_the_reference_and_notes_for_skips() -> None:
    skipped = Measurement(AttentionSetting("full", 16384, 1), None, None, "skipped: too big")
    table = bench.format_table([_m("lsh-2", 1024, 0.5, 2**20), _m("full", 1024, 1.0, 4 * 2**20), skipped], "lsh-2")
    assert "2.00×" in table and "4.00×" in table and "skipped: too big" in table


def test_full_attention_beyond_the_cap_is_skipped_with_its_size() -> None:
    reason = bench._skip_reason(AttentionSetting("full", 16384, 1, n_heads=4), full_cap=8192)
    assert "4.00 GiB" in reason


def test_lengths_must_divide_tokens() -> None:
    args = bench._parser().parse_args(["attention", "--lengths", "3000", "--tokens", "16384"])
    with pytest.raises(SystemExit, match="multiple"):
        bench._settings(args, ["lsh-2"])


@pytest.mark.slow
def test_measure_runs_in_a_fresh_process_and_reports_time_and_memory() -> None:
    m = bench.measure(AttentionSetting("full", 512, 1, d_model=64, n_heads=1, repeats=1))
    assert m.seconds and m.seconds > 0
    assert m.peak_bytes and m.peak_bytes > 512 * 512 * 4  # at least the L×L weights were resident


@pytest.mark.slow
def test_model_benchmark_prints_a_row_per_setting(capsys) -> None:
    argv = ["model", "--scale", "tiny", "--settings", "full", "lsh-2", "--batch", "1", "--repeats", "1"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "full" in out and "lsh-2" in out and "time ÷ full" in out


def test_model_benchmark_rejects_unknown_settings() -> None:
    with pytest.raises(SystemExit, match="setting of duplication must be one of .*; got 'lsh-3x'"):
        bench.main(["model", "--settings", "lsh-3x"])
