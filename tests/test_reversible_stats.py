"""Lesson 04's measured memory curves (paper §3, Table 3): exact, reproducible, and what the lesson claims."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from reformer_lab.measure import reversible_stats as rs
from reformer_lab.reversible import STACK_VARIANTS

SMALL = rs.StackConfig(length=64, d_model=16, d_ff=128, ff_chunks=4, attention="lsh", chunk_size=16)


@pytest.mark.parametrize("attention", ["lsh", "full"])
@pytest.mark.parametrize("variant", STACK_VARIANTS)
def test_the_straight_line_through_depths_1_and_2_predicts_deeper_stacks_exactly(attention: str, variant: str) -> None:
    config = rs.StackConfig(length=64, d_model=16, d_ff=128, ff_chunks=4, attention=attention, chunk_size=16)
    model = rs.layer_model(config, variant)
    for n in (3, 6):
        assert rs.measure(config, n, variant) == model.at(n)  # byte for byte, both quantities


def test_measurements_are_reproducible_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = rs.measure(SMALL, 2, "reversible")
    assert torch.equal(torch.random.get_rng_state(), before)
    assert rs.measure(SMALL, 2, "reversible") == first


def test_reversible_curve_is_flat_in_depth_and_ordinary_linear() -> None:
    curves = rs.memory_curves_data(SMALL, (1, 2, 12), (32, 64), 4, direct=True)
    ordinary = [m.saved_after_forward for m in curves.by_depth["ordinary"]]
    reversible = [m.saved_peak for m in curves.by_depth["reversible"]]
    assert ordinary[2] == 12 * ordinary[0]  # every layer keeps the same bytes
    assert reversible[2] < 1.10 * reversible[0]  # lesson 04's claim: under 10 % growth from 1 to 12 layers
    by_length = [m.saved_after_forward for m in curves.by_length["reversible"]]
    assert by_length[1] > 1.9 * by_length[0]  # linear in L for LSH attention


def test_reversible_saved_after_forward_is_outputs_seeds_and_uint8_buckets() -> None:
    # The formula of lesson 04's exercise 2 (and its solution) is what the package really saves.
    for n in (1, 5):
        want = 2 * 1 * 64 * 16 * 4 + 16 * n + n * 1 * 2 * 2 * 64
        assert rs.measure(SMALL, n, "reversible").saved_after_forward == want


def test_table3_curve_matches_the_papers_rows() -> None:
    full = rs.StackConfig(length=64, d_model=16, d_ff=128, attention="full")
    assert rs.table3_curve(full, "ordinary", 3) == 4 * max(64 * 128, 2 * 64 * 64) * 3
    assert rs.table3_curve(full, "reversible", 3) == 4 * max(64 * 128, 2 * 64 * 64)
    assert rs.table3_curve(full, "reversible+chunked", 3) == 4 * max(64 * 16, 2 * 64 * 64)


def test_curves_have_one_point_per_depth_and_length() -> None:
    curves = rs.memory_curves_data(SMALL, (1, 4), (32, 64, 128), 2, variants=("ordinary",))
    assert list(curves.by_depth) == ["ordinary"] and len(curves.by_depth["ordinary"]) == 2
    assert len(curves.by_length["ordinary"]) == 3 and len(curves.table3_length["ordinary"]) == 3


def test_load_gpu_results(tmp_path) -> None:
    assert rs.load_gpu_results(tmp_path) is None
    (tmp_path / "bench").mkdir()
    records = [{"variant": v, "n_layers": n, "length": 4096, "d_model": 256, "d_ff": 1024, "attention": "lsh",
                "peak_bytes": 1000 * n if v == "ordinary" else 500} for v in STACK_VARIANTS for n in (2, 1)]
    payload = {"provenance": {"device": "cuda (H100)"}, "results": records}
    (tmp_path / "bench" / "memory-cuda.json").write_text(json.dumps(payload))
    gpu = rs.load_gpu_results(tmp_path)
    assert gpu.device == "cuda (H100)" and gpu.depths["ordinary"] == [1, 2] and gpu.peaks["ordinary"] == [1000, 2000]
    nested = [{"variant": r["variant"], "length": 4096, "peak_bytes": r["peak_bytes"],
               "model": {"n_layers": r["n_layers"], "d_model": 256, "d_ff": 1024, "attention": "lsh"}}
              for r in records]  # what the benchmark writes now: the sizes in the model's dict
    (tmp_path / "bench" / "memory-cuda.json").write_text(json.dumps({**payload, "results": nested}))
    assert rs.load_gpu_results(tmp_path) == replace(gpu, source=str(tmp_path / "bench" / "memory-cuda.json"))
    (tmp_path / "bench" / "memory-cuda.json").write_text("{}")
    with pytest.raises(ValueError, match="not a memory benchmark JSON"):
        rs.load_gpu_results(tmp_path)


def test_the_committed_benchmark_file_still_reads(tmp_path) -> None:
    committed = rs.default_results_dir() / "bench" / "memory-cpu.json"  # flat records, written before ReformerConfig
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "memory-cuda.json").write_text(committed.read_text())
    gpu = rs.load_gpu_results(tmp_path)
    assert set(gpu.peaks) == set(STACK_VARIANTS) and gpu.depths["ordinary"][0] == 1
    assert gpu.setting == "L=4096, d_model=256, d_ff=1024, lsh attention"


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="ff_chunks=3 must divide length=64"):
        rs.StackConfig(length=64, ff_chunks=3)
    with pytest.raises(ValueError, match="attention must be one of 'full', 'lsh'.*; got 'sparse'"):
        rs.StackConfig(attention="sparse")
    with pytest.raises(ValueError, match="d_model must be an int >= 1, got 0"):
        rs.StackConfig(d_model=0)
    with pytest.raises(ValueError, match="max_len=48 must be a multiple of chunk_size=32"):
        rs.StackConfig(length=48)  # LSH: the length is the model's max_len
    with pytest.raises(TypeError, match="model must be a ReformerConfig"):
        rs.StackConfig(model={"d_model": 16})
    with pytest.raises(ValueError, match="unknown stack variant"):
        rs.measure(SMALL, 1, "checkpointed")
    with pytest.raises(ValueError, match="n_layers must be"):
        rs.measure(SMALL, 0, "ordinary")
    with pytest.raises(ValueError, match="must not be empty"):
        rs.memory_curves_data(SMALL, (), (64,), 1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA device"):
            rs.cuda_peaks(SMALL, (1,))


# The lesson's statements about its own setting (full attention, d_model 32, d_ff 512, 2 heads, 4 FF chunks)

LESSON = rs.StackConfig(length=256, d_model=32, d_ff=512, ff_chunks=4, attention="full")


def test_reversible_peak_is_below_one_ordinary_layer() -> None:
    # G and then F are recomputed and differentiated one after the other, never both branches at once
    for length in (64, 256):
        config = rs.StackConfig(length=length, d_model=32, d_ff=512, ff_chunks=4, attention="full")
        assert rs.measure(config, 1, "reversible").saved_peak < rs.measure(config, 1, "ordinary").saved_peak


def test_ff_chunks_lower_the_peak_only_where_the_feed_forward_dominates() -> None:
    short = rs.StackConfig(length=64, d_model=32, d_ff=512, ff_chunks=4, attention="full")
    assert rs.measure(short, 2, "reversible+chunked").saved_peak < 0.8 * rs.measure(short, 2, "reversible").saved_peak
    assert rs.measure(LESSON, 2, "reversible+chunked").saved_peak == rs.measure(LESSON, 2, "reversible").saved_peak


def test_table3_is_below_the_measurement_for_full_attention_and_far_above_it_for_lsh() -> None:
    curves = rs.memory_curves_data(LESSON, (1, 12), (64, 128, 256, 512), 12)
    for variant in curves.by_length:
        for measured, formula in zip(curves.by_length[variant], curves.table3_length[variant], strict=True):
            assert formula <= measured.saved_peak  # one tensor per term vs everything a layer keeps
    lsh = rs.memory_curves_data(replace(LESSON, attention="lsh"), (12,), (256,), 12)
    for variant in ("ordinary", "reversible+chunked"):
        assert lsh.table3_depth[variant][0] > 10 * lsh.by_depth[variant][0].saved_peak  # c = (4l/n_c)² over-counts


def test_default_results_dir_is_found_from_the_repo_root_and_from_notebooks(monkeypatch) -> None:
    from pathlib import Path

    repo = Path(rs.__file__).resolve().parents[2]
    monkeypatch.chdir(repo / "notebooks")
    assert rs.default_results_dir() == repo / "results"


def test_scaled_error_is_absolute_below_magnitude_one_and_relative_above() -> None:
    small = torch.tensor([0.5, -0.25], dtype=torch.float64)
    large = torch.tensor([10.0, -4.0], dtype=torch.float64)
    assert rs.scaled_error([small + 0.01], [small]) == pytest.approx(0.01)  # absolute: not 0.01 / 0.5
    assert rs.scaled_error([large + 0.01], [large]) == pytest.approx(0.001)  # relative to the largest entry, 10
    assert rs.scaled_error([small + 0.01, large], [small, large]) == pytest.approx(0.01)  # the worst pair
    zero = torch.zeros(2, dtype=torch.float64)
    assert rs.scaled_error([zero + 1e-12], [zero]) == pytest.approx(1e-12)  # a zero reference: no division by 0
    with pytest.raises(ValueError, match="equally long"):
        rs.scaled_error([small], [small, large])
    with pytest.raises(ValueError, match="non-empty"):
        rs.scaled_error([], [])
