"""Figure 5 (right)'s numbers: crossovers and flatness from points, Table 1 in bytes, the stage split of a step,
the FLOP count, and a cost model that recovers the costs it was fitted to."""

from __future__ import annotations

import json
import math

import pytest

from reformer_lab.measure import speed_stats as ss
from reformer_lab.measure.attention_steps import AttentionSetting
from reformer_lab.measure.complexity import attention_complexity

pytestmark = pytest.mark.usefixtures("one_thread")


def _points(variant: str, seconds_of_length, tokens: int = 16384, peak=None) -> list[ss.SpeedPoint]:
    return [ss.SpeedPoint(variant, n, tokens // n, seconds_of_length(n), peak(n) if peak else None)
            for n in (1024, 2048, 4096, 8192, 16384)]


def test_crossover_interpolates_power_laws_exactly() -> None:
    """full ∝ L, LSH flat: in log–log both are lines, so the interpolated crossover is exact (1e-9)."""
    points = _points("full", lambda n: n / 1000) + _points("lsh-2", lambda n: 3.0)
    found = ss.crossover(points, "lsh-2", "full")
    assert found.kind == "at" and found.length == pytest.approx(3000, rel=1e-9)
    assert "L ≈ 3,000" in found.describe()


def test_crossover_from_the_start_and_never() -> None:
    points = _points("full", lambda n: n / 1000) + _points("lsh-2", lambda n: 0.5) + _points("lsh-8", lambda n: 99)
    assert ss.crossover(points, "lsh-2", "full").kind == "from the start"
    assert ss.crossover(points, "lsh-8", "full").kind == "never"
    with pytest.raises(ValueError, match="no length where both"):
        ss.crossover(points, "lsh-4", "full")


def test_crossover_is_the_last_change_of_sign() -> None:
    """A curve that dips below and comes back is judged where it becomes and *stays* faster."""
    times = {1024: 1.0, 2048: 3.0, 4096: 1.0, 8192: 1.0, 16384: 1.0}
    points = _points("full", lambda n: 2.0) + _points("lsh-4", times.__getitem__)
    points[-1] = ss.SpeedPoint("lsh-4", 16384, 1, 1.0)
    found = ss.crossover(points, "lsh-4", "full")
    assert found.kind == "at" and 2048 < found.length < 4096


def test_flatness_is_slowest_over_fastest() -> None:
    points = _points("lsh-2", lambda n: 1.0 + (n == 4096))
    assert ss.flatness(points, "lsh-2") == 2.0
    with pytest.raises(ValueError, match="two measured"):
        ss.flatness(points[:1], "lsh-2")


def test_table1_bytes_is_the_printed_row_times_four() -> None:
    lsh = attention_complexity("lsh", batch=2, length=8192, n_heads=4, d_k=64, n_hashes=4, n_chunks=8192 // 64)
    assert ss.table1_bytes("lsh-4", 8192, 2) == 4 * lsh.memory
    assert ss.table1_bytes("lsh-4", 8192, 2) == 4 * 2 * 4 * 8192 * 4 * (4 * 64) ** 2
    assert ss.table1_bytes("full", 1024, 16) == ss.table1_bytes("sdpa", 1024, 16) == 4 * 16 * 4 * 1024**2
    assert ss.table1_bytes("memory-efficient", 1024, 16) == 4 * 16 * 4 * 1024**2  # the table's l², as printed


def test_cost_model_recovers_the_costs_it_was_fitted_to() -> None:
    """Points made from known per-token costs give back those costs (1e-6) and predict other tokens and chunks."""
    a, b, c, e = 2e-6, 3e-8, 5000.0, 40.0
    points = _points("full", lambda n: 16384 * (a + b * n / 2), peak=lambda n: 16384 * (c + e * n / 2))
    for chunk in (32, 64, 128):
        points += [ss.SpeedPoint("lsh-2", 8192, 2, 16384 * (a + b * 2 * 2 * chunk), int(16384 * (c + e * 4 * chunk)),
                                 chunk_size=chunk)]
    model = ss.fit_cost_model(points)
    for variant in ("full", "lsh-2"):
        assert model.coefficients[variant] == pytest.approx((a, b, c, e), rel=1e-6)
    assert model.seconds("lsh-2", 999, 32768, chunk=256) == pytest.approx(32768 * (a + b * 2 * 512), rel=1e-6)
    assert model.peak_bytes("full", 4096, 4096) == pytest.approx(4096 * (c + e * 2048), rel=1e-6)


def test_a_variant_measured_at_one_work_has_no_slope() -> None:
    model = ss.fit_cost_model(_points("lsh-8", lambda n: 3.0, peak=lambda n: 2**30))
    a, b, c, e = model.coefficients["lsh-8"]
    assert (b, e) == (0.0, 0.0) and a == pytest.approx(3.0 / 16384) and c == pytest.approx(2**30 / 16384)


def test_cost_model_never_fits_a_negative_cost() -> None:
    points = _points("sdpa", lambda n: 1.0 - n / 32768)
    a, b, _, _ = ss.fit_cost_model(points).coefficients["sdpa"]
    assert a >= 0 and b >= 0


def test_load_bench_reads_the_benchmark_json_and_names_a_missing_file(tmp_path) -> None:
    record = dict(variant="lsh-2", length=1024, batch=4, d_model=256, n_heads=4, chunk_size=64, repeats=1,
                  device="cpu", seed=0, layer=True, seconds=0.5, peak_bytes=2**20, note="")
    peer = dict(record, variant="reformer-pytorch")
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"provenance": {"commit": "abc"}, "results": [record, peer]}))
    provenance, points = ss.load_bench(path)
    assert provenance == {"commit": "abc"}
    assert points == [ss.SpeedPoint("lsh-2", 1024, 4, 0.5, 2**20, 64, 4, 256)]
    with pytest.raises(FileNotFoundError, match="python -m reformer_lab.bench attention --json"):
        ss.load_bench(tmp_path / "missing.json")
    other = tmp_path / "bench-2.json"
    other.write_text(json.dumps({"provenance": {"commit": "def"}, "results": [dict(record, length=2048, batch=2)]}))
    provenances, merged = ss.load_benches([other, path])
    assert [p["commit"] for p in provenances] == ["def", "abc"]  # in path order: bench-2.json < bench.json
    assert [p.length for p in merged] == [2048, 1024]
    with pytest.raises(FileNotFoundError, match="matched nothing"):
        ss.load_benches([])


def test_lsh_step_flops_counts_products_hashing_and_projections() -> None:
    bare = AttentionSetting("lsh-2", 1024, 2, d_model=64, n_heads=2, chunk_size=32)
    layer = AttentionSetting("lsh-2", 1024, 2, d_model=64, n_heads=2, chunk_size=32, layer=True)
    queries, d_head, n_buckets = 2048 * 2, 32, 64
    products, hashing = 2 * queries * 2 * 64 * 32 * 2, 2 * queries * 2 * d_head * n_buckets // 2
    assert ss.lsh_step_flops(bare) == 3 * products + hashing  # no backward pass through the hashing
    assert ss.lsh_step_flops(layer) == 3 * (products + 2 * 2048 * 64 * 3 * 64) + hashing
    with pytest.raises(ValueError, match="LSH step"):
        ss.lsh_step_flops(AttentionSetting("full", 1024, 2))


def test_time_breakdown_puts_every_stage_of_a_step_somewhere() -> None:
    stages = ss.time_breakdown(AttentionSetting("lsh-2", 256, 2, d_model=32, n_heads=2, chunk_size=32, layer=True))
    assert set(stages) == {*ss.STAGES, "step", "unprofiled"}
    assert 0 < stages["unprofiled"]
    for stage in ("projections", "hashing", "sort", "chunk products", "softmax", "backward: chunks",
                  "backward: the rest", "masks and N_ij"):
        assert stages[stage] > 0, stage
    assert sum(stages[s] for s in ss.STAGES) <= stages["step"] * 1.05
    with pytest.raises(ValueError, match="splits an LSH step"):
        ss.time_breakdown(AttentionSetting("sdpa", 256, 2))


def test_matmul_rate_is_a_positive_flop_rate() -> None:
    rate = ss.matmul_rate((8, 16, 16, 16), repeats=2)
    assert math.isfinite(rate) and rate > 1e6


def test_measure_grid_times_every_setting_and_checks_lengths() -> None:
    points = ss.measure_grid(256, (128, 256), ("lsh-1", "sdpa"), d_model=32, n_heads=2, chunk_size=32, repeats=1,
                             progress=False)
    assert [(p.variant, p.length, p.batch) for p in points] == [("lsh-1", 128, 2), ("sdpa", 128, 2),
                                                               ("lsh-1", 256, 1), ("sdpa", 256, 1)]
    assert all(p.seconds > 0 and p.peak_bytes is None for p in points)
    with pytest.raises(ValueError, match="multiple of every length"):
        ss.measure_grid(1000, (128,), ("sdpa",), progress=False)
