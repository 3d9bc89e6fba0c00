"""The benchmark's pieces: every variant runs, tables and targets are computed from what was measured."""

from __future__ import annotations

import json

import pytest
import torch

from reformer_lab.measure import bench
from reformer_lab.measure.attention_steps import AttentionLayer, attention_function
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
    results = [_m("lsh-2", 1024, 1.0, 100), _m("lsh-2", 8192, 1.1, 100), _m("sdpa", 8192, 2.4, 50),
               _m("full", 8192, 3.0, 600), _m("lsh-8", 8192, 4.0, 300), _m("sdpa", 1024, 0.5, 50)]
    targets = {claim: met for claim, met, _ in bench.attention_targets(results)}
    assert targets == {
        "L=8192: LSH-8 ≤ 4× LSH-2's time": True,
        "L=8192: LSH-2 peak ≥ 5× below full": True,
        "LSH-2 faster than fused SDPA at every L ≥ 2048": True,
        "LSH-2 flat within 1.2× across L": True,
    }
    slow = [_m("lsh-2", 1024, 1.0, 100), _m("lsh-2", 8192, 2.0, 100), _m("sdpa", 8192, 1.0, 50),
            _m("lsh-8", 8192, 9.0, 100)]
    assert [met for _, met, _ in bench.attention_targets(slow)] == [False, False, False]


def test_peer_targets_compare_our_module_with_each_peer() -> None:
    results = [_m("ours-module", 8192, 0.4, 400), _m("reformer-pytorch", 8192, 1.0, 1000),
               _m("hf-transformers", 8192, 0.8, 700)]
    targets = {claim: met for claim, met, _ in bench.peers_targets(results)}
    assert targets == {
        "L=8192: ≤ 0.4× reformer-pytorch's time": True,
        "L=8192: ≤ 0.5× reformer-pytorch's peak memory": True,
        "L=8192: ≤ 0.4× hf-transformers's time": False,
        "L=8192: ≤ 0.5× hf-transformers's peak memory": False,
    }
    assert bench.peers_targets(results[1:]) == []


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


# Arguments checked before any measurement; a failed measurement fails the command (after writing what it measured)


def _never_measure(*args, **kwargs):
    raise AssertionError("an impossible benchmark was measured")


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--d-model", "32", "--heads", "3"], "d_model=32 must be divisible by n_heads=3"),  # was: measured 30
        (["--lengths", "0"], "--lengths entries must be an int >= 1, got 0"),  # was: ZeroDivisionError
        (["--tokens", "0"], "--tokens must be an int >= 1, got 0"),  # was: batch 0
        (["--chunk", "0"], "--chunk must be an int >= 1, got 0"),  # was: ZeroDivisionError
        (["--repeats", "0"], "--repeats must be an int >= 1, got 0"),  # was: a table note and exit 0
        (["--heads", "0"], "n_heads must be an int >= 1, got 0"),
        (["--d-model", "0"], "d_model must be an int >= 1, got 0"),
        (["--full-cap", "-1"], "--full-cap must be an int >= 0, got -1"),
        (["--device", "tpu"], "--device must be cpu or cuda, got 'tpu'"),
        (["--lengths", "100", "--tokens", "200"], "length 100 must be a multiple of --chunk 64"),
    ],
)
def test_impossible_attention_flags_stop_before_measuring(flags, match, monkeypatch) -> None:
    monkeypatch.setattr(bench, "measure", _never_measure)
    with pytest.raises(SystemExit, match=match):
        bench.main(["attention", "--lengths", "128", "--tokens", "256", *flags])


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(d_model=32, n_heads=3), "d_model=32 must be divisible by n_heads=3"),
        (dict(batch=0), "batch must be an int >= 1, got 0"),
        (dict(repeats=0), "repeats must be an int >= 1, got 0"),
        (dict(chunk_size=48), "length 64 must be a multiple of the chunk size 48"),
        (dict(variant="lsh-9000x"), "variant must be one of"),
    ],
)
def test_attention_settings_are_checked_when_made(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        AttentionSetting(**{"variant": "lsh-2", "length": 64, "batch": 1, **kw})
    assert AttentionSetting("full", 64, 1, chunk_size=48).chunk_size == 48  # full attention has no chunks


def test_an_unwritable_json_stops_before_measuring(tmp_path, monkeypatch) -> None:
    """Was: found out after the whole benchmark, when the JSON was written."""
    monkeypatch.setattr(bench, "measure", _never_measure)
    (tmp_path / "a-file").write_text("")
    for command in (["attention", "--lengths", "128", "--tokens", "128"], ["model"], ["memory"]):
        with pytest.raises(SystemExit, match="cannot write .*a-file/r.json"):
            bench.main([*command, "--json", str(tmp_path / "a-file" / "r.json")])


def test_a_failed_measurement_fails_the_command_after_writing_what_was_measured(tmp_path, monkeypatch,
                                                                                capsys) -> None:
    """Was: exit 0, the failure hidden in a table note."""
    def measure(s, timeout=900.0):
        if s.variant == "full":
            return Measurement(s, None, None, "time_step raised RuntimeError in the child process: boom")
        return Measurement(s, 0.5, 2**20)

    monkeypatch.setattr(bench, "measure", measure)
    path = tmp_path / "out" / "attention.json"
    argv = ["attention", "--lengths", "128", "--tokens", "128", "--variants", "lsh-2", "full", "--json", str(path)]
    assert bench.main(argv) == 1
    err = capsys.readouterr().err
    assert "1 measurement(s) failed" in err and "full L=128: time_step raised RuntimeError" in err
    records = json.loads(path.read_text())["results"]
    assert [r["seconds"] for r in records] == [0.5, None] and not list(path.parent.glob("*.tmp"))
    monkeypatch.setattr(bench, "measure", lambda s, timeout=900.0: Measurement(s, 0.5, 2**20))
    assert bench.main(argv) == 0
    skipped = ["attention", "--lengths", "128", "--tokens", "128", "--variants", "full", "--full-cap", "64"]
    assert bench.main(skipped) == 0  # a skip asked for is not a failure


def test_a_failed_model_measurement_fails_the_command(tmp_path, monkeypatch, capsys) -> None:
    from reformer_lab.measure import experiments

    def measure_model_step(config, batch_size, repeats, device):
        if config.attention == "full":
            raise RuntimeError("the child process died without reporting (SIGKILL)")
        return {"seconds": 0.25, "peak_rss_bytes": 2.0**20}

    monkeypatch.setattr(experiments, "measure_model_step", measure_model_step)
    path = tmp_path / "model.json"
    assert bench.main(["model", "--scale", "tiny", "--settings", "full", "lsh-2", "--json", str(path)]) == 1
    assert "full: the child process died" in capsys.readouterr().err
    rows = json.loads(path.read_text())["results"]
    assert rows[0]["seconds"] is None and rows[1]["seconds"] == 0.25


@pytest.mark.parametrize("variant", bench.ATTENTION_VARIANTS)
def test_every_variant_takes_a_timed_step_as_a_whole_layer(variant: str) -> None:
    setting = AttentionSetting(variant, length=128, batch=2, d_model=32, n_heads=2, chunk_size=16, repeats=1,
                               layer=True)
    assert bench.time_step(setting) > 0


def test_the_exact_variants_compute_the_attention_they_name() -> None:
    """full and memory-efficient give one layer output (1e-5, float32); sdpa gives full attention without the
    self mask, which its fused kernel cannot take."""
    from reformer_lab.attention import full_attention

    def layer_output(attend) -> torch.Tensor:
        torch.manual_seed(0)
        return AttentionLayer(32, 4, attend)(torch.randn(2, 256, 32, generator=torch.Generator().manual_seed(1)))

    def variant(name: str):
        return attention_function(AttentionSetting(name, length=256, batch=2, d_model=32, n_heads=4, layer=True))

    full = layer_output(variant("full"))
    torch.testing.assert_close(layer_output(variant("memory-efficient")), full, atol=1e-5, rtol=1e-5)
    unmasked = layer_output(lambda qk, v: full_attention(qk, v, causal=True, self_mask=False))
    torch.testing.assert_close(layer_output(variant("sdpa")), unmasked, atol=1e-5, rtol=1e-5)
    assert (unmasked - full).abs().max() > 0.1  # the self mask matters: the comparison above could fail


def test_layer_is_a_boolean_and_is_recorded() -> None:
    with pytest.raises(TypeError, match="layer"):
        AttentionSetting("lsh-2", 128, 1, layer="yes")
    args = bench._parser().parse_args(["attention", "--layer", "--lengths", "1024", "--tokens", "4096"])
    assert all(s.layer and s.batch == 4 for s in bench._settings(args, ["lsh-2", "sdpa"]))
