"""``python -m reformer_lab.bench memory``: every stack variant takes a measured step, tables and targets
are computed from what was measured, and a tiny run prints the table and the target lines."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from reformer_lab.measure import bench
from reformer_lab.measure.bench import MemoryMeasurement, MemorySetting
from reformer_lab.measure.complexity import model_complexity
from reformer_lab.measure.feedforward_stats import table3_bytes
from reformer_lab.reversible import STACK_VARIANTS

TINY = {"length": 128, "d_model": 32, "d_ff": 64, "n_heads": 2, "chunk_size": 32, "ff_chunks": 4, "repeats": 1,
        "threads": 1}
TINY_FLAGS = ["--length", "128", "--d-model", "32", "--d-ff", "64", "--heads", "2", "--chunk", "32",
              "--ff-chunks", "4", "--repeats", "1", "--threads", "1"]


@pytest.mark.parametrize("variant", STACK_VARIANTS)
def test_every_stack_variant_takes_a_measured_step(variant: str) -> None:
    out = bench.memory_step(MemorySetting(variant, n_layers=2, **TINY))
    assert 0 < out["saved_after_forward"] <= out["saved_peak"]
    assert out["cuda_peak"] is None


def test_variants_of_one_depth_are_timed_in_turn() -> None:
    settings = [MemorySetting(v, n_layers=2, **TINY) for v in STACK_VARIANTS]
    seconds = bench.paired_seconds(settings)
    assert list(seconds) == list(STACK_VARIANTS) and all(t > 0 for t in seconds.values())


def test_paired_timing_needs_one_depth_and_known_variants() -> None:
    with pytest.raises(ValueError, match="all else must be equal"):
        bench.paired_seconds([MemorySetting("ordinary", n_layers=1, **TINY),
                              MemorySetting("reversible", n_layers=2, **TINY)])
    with pytest.raises(ValueError, match="at least one setting"):
        bench.paired_seconds([])


def test_reversible_stacks_keep_less_than_the_ordinary_one() -> None:
    saved = {v: bench.memory_step(MemorySetting(v, n_layers=3, **TINY))["saved_after_forward"]
             for v in STACK_VARIANTS}
    assert saved["reversible"] == saved["reversible+chunked"] < saved["ordinary"] / 5


@pytest.mark.parametrize(
    "kw, error, match",
    [
        (dict(variant="checkpointed"), ValueError, "unknown stack variant 'checkpointed'"),
        (dict(variant="ordinary", repeats=0), ValueError, "repeats must be an int >= 1, got 0"),
        (dict(variant="ordinary", threads=1.5), TypeError, "threads must be an int >= 1"),
        (dict(variant="ordinary", length=100), ValueError, "max_len=100 must be a multiple of chunk_size=64"),
        (dict(variant="ordinary", n_heads=3), ValueError, "d_model=256 must be divisible by n_heads=3"),
        (dict(), TypeError, "MemorySetting needs variant"),
    ],
)
def test_bad_settings_are_clear_errors(kw: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        MemorySetting(**kw)


def test_a_setting_is_a_model_config_and_what_the_benchmark_adds() -> None:
    s = MemorySetting("reversible", n_layers=2, **TINY)
    assert s.model == replace(bench.BENCH_MODEL, n_layers=2, max_len=128, d_model=32, d_ff=64, n_heads=2,
                              chunk_size=32, ff_chunks=4)
    assert (s.variant, s.length, s.repeats, s.threads, s.n_layers) == ("reversible", 128, 1, 1, 2)
    assert MemorySetting("reversible", s.model, repeats=1, threads=1) == s
    record = json.loads(json.dumps(s.to_dict()))
    assert record["model"]["n_layers"] == 2 and record["variant"] == "reversible" and record["length"] == 128


def _m(variant: str, n_layers: int, seconds: float, saved: int, after: int | None = None) -> MemoryMeasurement:
    return MemoryMeasurement(MemorySetting(variant, n_layers=n_layers), seconds, after or saved, saved, None)


def test_targets_are_judged_on_the_measurements() -> None:
    met = [_m("ordinary", 12, 1.0, 800), _m("reversible", 12, 1.3, 100), _m("reversible+chunked", 12, 1.5, 100)]
    assert [ok for _, ok, _ in bench.memory_targets(met)] == [True, True]
    missed = [_m("ordinary", 12, 1.0, 700), _m("reversible+chunked", 12, 1.7, 100)]
    assert [ok for _, ok, _ in bench.memory_targets(missed)] == [False, False]
    assert bench.memory_targets(met, at=4) == []  # nothing measured at 4 layers: nothing judged


def test_table_shows_ratios_to_the_ordinary_stack_and_notes_for_failures() -> None:
    failed = MemoryMeasurement(MemorySetting("reversible", n_layers=2), None, None, None, None, "child died")
    table = bench.format_memory_table([_m("ordinary", 2, 1.0, 4 * 2**20), _m("reversible+chunked", 2, 1.5, 2**20),
                                       failed])
    assert "1.50×" in table and "0.25×" in table and "child died" in table and "4.00 MiB" in table


def test_table3_column_uses_the_matching_rows() -> None:
    model = bench.BENCH_MODEL  # 12 layers, LSH attention
    sizes = {"batch": 1, "length": 4096, "d_model": 256, "d_ff": 1024, "n_heads": 4, "n_hashes": 2, "c": 256**2}
    ordinary = table3_bytes("ordinary", model, 4096)
    assert ordinary == 4 * model_complexity("lsh-transformer", n_layers=12, **sizes).memory
    chunked = table3_bytes("reversible+chunked", model, 4096)
    assert chunked == 4 * model_complexity("reformer", n_layers=12, **sizes).memory
    assert ordinary == 12 * chunked
    reversible = table3_bytes("reversible", model, 4096)  # LSH has no reversible row: one LSH Transformer layer
    assert reversible == 4 * model_complexity("lsh-transformer", n_layers=1, **sizes).memory
    full = replace(model, attention="full")
    assert table3_bytes("reversible", full, 4096) == 4 * model_complexity("reversible", n_layers=12, **sizes).memory
    with pytest.raises(ValueError, match="unknown stack variant"):
        table3_bytes("checkpointed", model, 4096)


def test_rounds_sweep_the_depths_and_combine_times_by_median(monkeypatch: pytest.MonkeyPatch) -> None:
    calls, seconds = [], iter([{"ordinary": 1.0, "reversible": 5.0}, {"ordinary": 9.0, "reversible": 9.0},
                               {"ordinary": 3.0, "reversible": 6.0}, {"ordinary": 9.0, "reversible": 9.0},
                               {"ordinary": 2.0, "reversible": 7.0}, "child died"])

    def fake_seconds(group, fresh_process: bool = True):
        calls.append(("time", group[0].n_layers, tuple(s.variant for s in group)))
        return next(seconds)

    def fake_memory(s: MemorySetting, fresh_process: bool = True) -> MemoryMeasurement:
        calls.append(("memory", s.n_layers, s.variant))
        return MemoryMeasurement(s, None, 10, 20, 30)

    monkeypatch.setattr(bench, "measure_seconds", fake_seconds)
    monkeypatch.setattr(bench, "measure_memory", fake_memory)
    settings = [MemorySetting(v, n_layers=n) for n in (1, 2) for v in ("ordinary", "reversible")]
    results = bench.run_memory(settings, rounds=3)
    one_round = [("time", 1, ("ordinary", "reversible")), ("memory", 1, "ordinary"), ("memory", 1, "reversible"),
                 ("time", 2, ("ordinary", "reversible")), ("memory", 2, "ordinary"), ("memory", 2, "reversible")]
    assert calls == one_round * 3
    assert [m.seconds for m in results[:2]] == [2.0, 6.0]
    assert [m.seconds for m in results[2:]] == [9.0, 9.0]  # the failed third round is left out of the median
    assert all("1 round(s) failed" in m.note for m in results[2:])


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--attention", "full", "--length", "100", "--ff-chunks", "8"], "ff_chunks=8 must divide length=100"),
        (["--length", "100"], "max_len=100 must be a multiple of chunk_size=64"),
        (["--rounds", "0"], "--rounds must be an int >= 1, got 0"),
        (["--repeats", "0"], "repeats must be an int >= 1, got 0"),
    ],
)
def test_impossible_flags_stop_with_the_settings_message(flags: list[str], match: str) -> None:
    args = bench._parser().parse_args(["memory", *flags])
    with pytest.raises(SystemExit, match=match):
        bench._memory_settings(args)


def test_tiny_run_prints_the_table_the_targets_and_writes_json(tmp_path: Path, capsys) -> None:
    path, threads = tmp_path / "memory.json", torch.get_num_threads()
    assert bench.main(["memory", "--layers", "1", "2", *TINY_FLAGS, "--in-process", "--json", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "reversible+chunked" in printed and "saved peak" in printed
    assert printed.count("n_l=2:") == 2 and ("[MET]" in printed or "[MISSED]" in printed)
    record = json.loads(path.read_text())
    assert set(record["provenance"]) >= {"device", "torch", "commit", "date"}
    assert len(record["results"]) == 6 and len(record["targets"]) == 2
    assert {r["model"]["n_layers"] for r in record["results"]} == {1, 2}
    assert torch.get_num_threads() == threads  # --threads applied to the measurement only


@pytest.mark.slow
def test_measure_runs_in_a_fresh_process_and_reports_rss() -> None:
    m = bench.measure_memory(MemorySetting("reversible+chunked", n_layers=1, **TINY))
    assert m.saved_peak and m.saved_peak > 0 and m.peak_bytes is not None and m.note == ""
    seconds = bench.measure_seconds([MemorySetting(v, n_layers=1, **TINY) for v in ("ordinary", "reversible+chunked")])
    assert set(seconds) == {"ordinary", "reversible+chunked"} and min(seconds.values()) > 0


def test_a_failed_measurement_fails_the_command_after_writing_what_was_measured(tmp_path: Path, monkeypatch,
                                                                                capsys) -> None:
    """Was: exit 0 with the failure only in a table note."""
    def fake_seconds(group, fresh_process: bool = True):
        return {s.variant: 1.0 for s in group}

    def fake_memory(s: MemorySetting, fresh_process: bool = True) -> MemoryMeasurement:
        if s.variant == "reversible":
            return MemoryMeasurement(s, None, None, None, None, "memory_step raised RuntimeError: out of memory")
        return MemoryMeasurement(s, None, 10, 20, 30)

    monkeypatch.setattr(bench, "measure_seconds", fake_seconds)
    monkeypatch.setattr(bench, "measure_memory", fake_memory)
    path = tmp_path / "memory.json"
    assert bench.main(["memory", "--layers", "1", *TINY_FLAGS, "--json", str(path)]) == 1
    assert "n_l=1 reversible: memory_step raised RuntimeError" in capsys.readouterr().err
    notes = [r["note"] for r in json.loads(path.read_text())["results"]]
    assert notes == ["", "memory_step raised RuntimeError: out of memory", ""]
    monkeypatch.setattr(bench, "measure_memory", lambda s, fresh_process=True: MemoryMeasurement(s, None, 10, 20, 30))
    assert bench.main(["memory", "--layers", "1", *TINY_FLAGS, "--json", str(path)]) == 0


def test_the_device_and_the_json_are_checked_before_measuring(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "run_memory", lambda *a, **k: pytest.fail("measured"))
    with pytest.raises(SystemExit, match="--device must be cpu or cuda, got 'tpu'"):
        bench.main(["memory", *TINY_FLAGS, "--device", "tpu"])
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SystemExit, match="cannot write"):
        bench.main(["memory", *TINY_FLAGS, "--json", str(tmp_path / "a-file" / "m.json")])
