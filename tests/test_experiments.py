"""The experiment runner: names and configs checked at start, the JSON record, data-parallel equivalence."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from reformer_lab import files
from reformer_lab.measure import experiments
from reformer_lab.measure.ablation_stats import CROSS_COLUMNS
from reformer_lab.measure.experiments import (
    EVAL_COLUMNS,
    SETTINGS,
    ExperimentError,
    ablation_changes,
    load_model,
    main,
    measure_model_step,
    run_experiment,
    spec_for,
)
from reformer_lab.train import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")


ROOT = Path(__file__).resolve().parents[1]


def _no_training(*args, **kwargs):
    raise AssertionError("the run was expected to be refused before training")


def test_unknown_experiment_name_fails_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["copying", "--setting", "full"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'copying'" in capsys.readouterr().err
    with pytest.raises(ValueError,
                       match="experiment must be one of 'duplication', 'charlm', 'ablation'; got 'copying'"):
        spec_for("copying", "full", "lesson")
    with pytest.raises(ValueError, match="setting of duplication must be one of 'full', .*; got 'lsh-8'"):
        spec_for("duplication", "lsh-8", "lesson")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["duplication", "--setting", "lsh-2", "--scale", "tiny", "--length", "36"], "multiple of chunk_size"),
        (["charlm", "--scale", "tiny", "--data", "/nonexistent/enwik8"], "enwik8 file not found"),
        (["duplication", "--scale", "tiny", "--device", "tpu"], "--device must be cpu or cuda"),
        # would train every step, then fail to make the Table 2 row (LSH needs a multiple of the chunk, 8)
        (["duplication", "--setting", "full", "--scale", "tiny", "--length", "20"],
         "fail to make its Table 2 row at length 20: evaluating with lsh-8 attention fails: max_len=20 must be a "
         "multiple of chunk_size=8"),
        (["duplication", "--scale", "tiny", "--length", "21"], "must be even, got 21"),  # was silently 20
        (["charlm", "--scale", "tiny", "--length", "0"], "length must be an int >= 2, got 0"),  # was the default
        (["duplication", "--scale", "tiny", "--steps", "0"], "steps must be an int >= 1, got 0"),
        (["ablation", "--scale", "tiny", "--length", "33"], "length of a repeated-text sequence (w w) must be even, "
                                                            "got 33"),
        (["ablation", "--scale", "tiny", "--length", "2"], "length must be an int >= 4, got 2"),
        (["ablation", "--setting", "lsh-2", "--scale", "tiny", "--length", "36"], "multiple of chunk_size=8"),
        (["ablation", "--setting", "layers-2", "--scale", "tiny"], "invalid choice: 'layers-2'"),
    ],
)
def test_impossible_runs_fail_at_start(argv: list[str], message: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(experiments, "train", _no_training)
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "r.json")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_scales() -> None:
    paper = spec_for("duplication", "lsh-4", "paper")
    assert (paper.model.max_len, paper.model.d_model, paper.model.d_ff, paper.model.n_heads, paper.model.n_layers,
            paper.model.vocab_size, paper.model.n_hashes, paper.train.steps) == (1024, 256, 256, 4, 1, 128, 4, 150_000)
    lesson = spec_for("duplication", "full", "lesson")
    assert lesson.task["w_len"] >= 63 and lesson.model.attention == "full" and lesson.model.shared_qk


@pytest.mark.slow
def test_tiny_run_writes_the_json_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "duplication" / "lsh-2-tiny.json"
    assert main(["duplication", "--setting", "lsh-2", "--scale", "tiny", "--steps", "6", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    for key in ("config", "seed", "metrics", "final", "wall_time_s", "device", "torch", "git_commit", "checkpoint"):
        assert key in record, key
    assert record["config"]["model"]["n_hashes"] == 2 and record["torch"] == torch.__version__
    assert record["final"]["step"] == 6 and len(record["metrics"]["train"]) == 6
    assert list(record["table2"]) == list(EVAL_COLUMNS)
    assert Path(record["checkpoint"]).is_file()
    # Running the same command again resumes from the finished checkpoint: nothing retrained, same result.
    main(["duplication", "--setting", "lsh-2", "--scale", "tiny", "--steps", "6", "--out", str(out)])
    again = json.loads(out.read_text())
    assert again["resumed_from"] == 6 and again["final"] == record["final"]


def _run(argv: list[str], env: dict[str, str]) -> dict:
    subprocess.run(argv, check=True, cwd=ROOT, env=env, capture_output=True, timeout=240)
    return json.loads(Path(argv[argv.index("--out") + 1]).read_text())


@pytest.mark.slow
def test_two_process_data_parallel_matches_one_process(tmp_path: Path) -> None:
    """torchrun, 2 CPU processes (gloo), global batch 8 = 2 × 4, against one process with batch 8.

    Tolerance: relative 1e-5 on every step's loss (fp32; only the order of the gradient sums differs; measured 1e-7).
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REFORMER_LAB_PROGRESS": "0"}
    common = ["-m", "reformer_lab.measure.experiments", "duplication", "--setting", "lsh-2", "--scale", "tiny",
              "--steps", "4", "--batch-size", "8"]
    assert main([*common[2:], "--out", str(tmp_path / "one.json"), "--no-progress"]) == 0
    single = json.loads((tmp_path / "one.json").read_text())
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    double = _run([*torchrun, *common, "--out", str(tmp_path / "two.json")], env)
    assert double["world_size"] == 2 and single["world_size"] == 1
    losses = [[r["loss"] for r in rec["metrics"]["train"]] for rec in (single, double)]
    assert len(losses[0]) == 4
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=1e-5, atol=1e-6)


def test_model_step_benchmark() -> None:
    config = spec_for("duplication", "lsh-2", "tiny").model
    result = measure_model_step(config, batch_size=2, repeats=2, fresh_process=False)
    assert result["seconds"] > 0


def test_load_model_from_a_runner_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "full-tiny.json"
    main(["duplication", "--setting", "full", "--scale", "tiny", "--steps", "2", "--out", str(out), "--no-progress"])
    model = load_model(out.with_suffix(".pt"))
    assert model.config.attention == "full" and not model.training
    assert model(torch.zeros(1, 32, dtype=torch.long)).shape == (1, 32, 16)


@pytest.mark.slow
def test_charlm_runs_offline_on_the_python_docs(tmp_path: Path) -> None:
    out = tmp_path / "charlm.json"
    main(["charlm", "--setting", "lsh-2", "--scale", "tiny", "--steps", "2", "--out", str(out), "--no-progress"])
    record = json.loads(out.read_text())
    assert record["config"]["model"]["vocab_size"] > 50 and record["final"]["step"] == 2 and "table2" not in record
    paper = spec_for("charlm", "lsh-2", "paper")
    assert (paper.model.n_layers, paper.model.d_model, paper.model.d_ff, paper.model.n_heads) == (3, 1024, 4096, 8)


# Resume, checkpoints, output files: nothing lost, nothing run that should not be


def _tiny(out: Path, *extra: str) -> list[str]:
    return ["duplication", "--scale", "tiny", "--steps", "2", "--out", str(out), "--no-progress", *extra]


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_resume_refuses_another_runs_checkpoint_and_lists_every_difference(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Was: --setting lsh-2 on a full run's --out resumed it; its record said lsh-2 over full attention's weights."""
    out = tmp_path / "run.json"
    assert main(_tiny(out, "--setting", "full")) == 0
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    err = _refused(_tiny(out, "--setting", "lsh-2"), capsys)
    assert f"cannot resume from {out.with_suffix('.pt')}" in err
    for line in ("setting: checkpoint 'full', this run 'lsh-2'", "model.attention: checkpoint 'full', this run 'lsh'",
                 "model.n_hashes: checkpoint 1, this run 2", "--fresh"):
        assert line in err, line
    # the training config too: every field (RESUMABLE_TRAIN_FIELDS is empty), each with both values
    err = _refused(["duplication", "--setting", "full", "--scale", "tiny", "--steps", "3", "--seed", "1",
                    "--batch-size", "4", "--out", str(out)], capsys)
    for line in ("train.steps: checkpoint 2, this run 3", "train.seed: checkpoint 0, this run 1",
                 "train.batch_size: checkpoint 8, this run 4"):
        assert line in err, line
    assert "model." not in err and experiments.RESUMABLE_TRAIN_FIELDS == ()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == saved  # nothing touched
    # --fresh discards it: the record, the checkpoint and the run file are all lsh-2's
    assert main(_tiny(out, "--setting", "lsh-2", "--fresh")) == 0
    assert json.loads(out.read_text())["setting"] == "lsh-2" and load_model(out.with_suffix(".pt")).config.n_hashes == 2
    assert json.loads(experiments.run_file_for(out).read_text())["setting"] == "lsh-2"
    assert main(_tiny(out, "--setting", "lsh-2")) == 0  # and the same command resumes it
    assert json.loads(out.read_text())["resumed_from"] == 2


def test_resume_conflicts_cover_experiment_task_and_data() -> None:
    spec = spec_for("duplication", "lsh-2", "tiny")
    identity = {"experiment": "duplication", "setting": "lsh-2", "scale": "tiny", "task": spec.task, "data": None}
    state = {"model_config": spec.model.to_dict(), "train_config": asdict(spec.train)}
    assert experiments.resume_conflicts(state, {**identity, "checkpoint": "x.pt"}, identity, spec) == []
    assert experiments.resume_conflicts(state, None, identity, spec) == []  # no run file: the configs decide
    other = {**identity, "experiment": "charlm", "task": {"w_len": 9, "n_symbols": 15}, "data": "/data/enwik8"}
    assert experiments.resume_conflicts(state, other, identity, spec) == [
        "experiment: checkpoint 'charlm', this run 'duplication'", "data: checkpoint '/data/enwik8', this run None",
        "task.w_len: checkpoint 9, this run 15"]
    full = {**state, "model_config": {**state["model_config"], "attention": "full", "n_hashes": 1}}
    assert experiments.resume_conflicts(full, None, identity, spec)[0] == "setting: checkpoint 'full', this run 'lsh-2'"
    assert experiments.resume_conflicts({}, None, identity, spec) == [
        "model: the checkpoint records no model config", "train: the checkpoint records no train config"]


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_checkpoint_is_a_clear_error_naming_the_file_and_fresh(
        damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Was: an OSError/EOFError/RuntimeError from torch.load naming neither the file nor --fresh."""
    out = tmp_path / "run.json"
    assert main(_tiny(out, "--setting", "lsh-2")) == 0
    checkpoint = out.with_suffix(".pt")
    data = checkpoint.read_bytes()
    checkpoint.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"not a checkpoint" * 9}
                           [damage])
    err = _refused(_tiny(out, "--setting", "lsh-2"), capsys)
    assert f"cannot resume: the checkpoint {checkpoint} cannot be read: it is truncated, damaged" in err
    assert "rerun with --fresh" in err
    assert main(_tiny(out, "--setting", "lsh-2", "--fresh")) == 0


class _RunsCode:
    """Unpickling this creates ``marker``: what torch.load(weights_only=False) would do with a hostile file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_the_runner_never_runs_code_from_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Was: torch.load(weights_only=False) on <out>.pt, which the runner loads by itself."""
    out, marker = tmp_path / "run.json", tmp_path / "code-ran"
    torch.save({"model": {}, "step": 1, "hostile": _RunsCode(marker)}, out.with_suffix(".pt"))
    err = _refused(_tiny(out, "--setting", "lsh-2"), capsys)
    assert "holds objects other than tensors and plain values" in err and "--fresh" in err
    with pytest.raises(CheckpointError, match="holds objects other than tensors"):
        load_model(out.with_suffix(".pt"))
    assert not marker.exists()


def test_the_output_is_checked_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: an unwritable --out failed at the first checkpoint, or after the whole run."""
    monkeypatch.setattr(experiments, "train", _no_training)
    (tmp_path / "a-file").write_text("")
    err = _refused(_tiny(tmp_path / "a-file" / "run.json", "--setting", "full"), capsys)
    assert f"cannot write {tmp_path / 'a-file' / 'run.json'}" in err
    (tmp_path / "a-dir.json").mkdir()
    assert "it is a directory" in _refused(_tiny(tmp_path / "a-dir.json", "--setting", "full"), capsys)
    assert "would share its name with the checkpoint" in _refused(_tiny(tmp_path / "x.pt"), capsys)


def test_results_are_written_atomically_and_stale_temporaries_cleared(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: out.write_text, in place: a kill mid-write left a truncated record."""
    out = tmp_path / "run.json"
    stale = [tmp_path / ".run.json.123-dead.tmp", tmp_path / ".run.pt.123-dead.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")

    def in_place(*args, **kwargs):
        raise AssertionError("a result file was written in place")

    monkeypatch.setattr(Path, "write_text", in_place)
    monkeypatch.setattr(Path, "write_bytes", in_place)
    assert main(_tiny(out, "--setting", "full")) == 0
    assert json.loads(out.read_text())["final"]["step"] == 2
    assert not any(path.exists() for path in stale) and not list(tmp_path.glob("*.tmp"))


def test_write_json_atomic_fsyncs_and_keeps_the_old_file_when_a_write_fails(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.json"
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    files.write_json_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and len(synced) == 2  # the file, then the directory
    with pytest.raises(TypeError):  # encoded before anything is written
        files.write_json_atomic(path, {"a": object()})

    def no_rename(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        files.write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["r.json"]


# The ablation experiment (lesson 09, paper §5: Figures 3, 4, 5 left): one change from the base model each


ABLATION_CHANGES = {
    "full": {"attention": "full", "n_hashes": 1},
    "separate-qk": {"attention": "full", "shared_qk": False},
    "transformer": {"attention": "full", "stack": "transformer", "reversible": False},
    "lsh-1": {"attention": "lsh", "n_hashes": 1},
    "lsh-2": {"attention": "lsh", "n_hashes": 2},
    "lsh-4": {"attention": "lsh", "n_hashes": 4},
    "lsh-8": {"attention": "lsh", "n_hashes": 8},
    "layers-1": {"attention": "full", "n_layers": 1},
    "layers-4": {"attention": "full", "n_layers": 4},
    "layers-8": {"attention": "full", "n_layers": 8},
}


@pytest.mark.parametrize("setting", SETTINGS["ablation"])
def test_ablation_changes_one_thing_of_the_base_model(setting: str) -> None:
    assert ablation_changes(setting) == ABLATION_CHANGES[setting]
    base = spec_for("ablation", "full", "tiny").model.to_dict()
    assert (base["attention"], base["shared_qk"], base["stack"], base["reversible"], base["n_layers"]) == (
        "full", True, "reversible", True, 2)
    for scale in ("tiny", "lesson"):
        model = spec_for("ablation", setting, scale).model.to_dict()
        assert {key: model[key] for key in ABLATION_CHANGES[setting]} == ABLATION_CHANGES[setting]
        base = spec_for("ablation", "full", scale).model.to_dict()
        changed = {key for key in model if model[key] != base[key]}
        assert changed <= set(ABLATION_CHANGES[setting]), changed  # nothing else moves


def test_ablation_changes_refuses_unknown_settings() -> None:
    assert set(ABLATION_CHANGES) == set(SETTINGS["ablation"])  # the table above covers every setting
    for unknown in ("local", "layers-2", "lsh-3", "bogus"):
        with pytest.raises(ValueError, match=rf"^setting of ablation must be one of 'full', .*; got '{unknown}'$"):
            ablation_changes(unknown)
        with pytest.raises(ValueError, match="setting of ablation must be one of"):
            spec_for("ablation", unknown, "tiny")


def test_ablation_scales_and_length() -> None:
    for setting in SETTINGS["ablation"]:
        lesson = spec_for("ablation", setting, "lesson")
        assert (lesson.task["length"], lesson.model.max_len, lesson.model.chunk_size, lesson.train.steps) == (
            128, 128, 16, 300), setting
        assert (lesson.model.d_model, lesson.model.d_ff, lesson.model.n_heads, lesson.train.batch_size) == (
            128, 256, 4, 32)
    assert spec_for("ablation", "full", "lesson").model.vocab_size == 256  # before the corpus says otherwise
    assert spec_for("ablation", "full", "lesson", vocab_size=97).model.vocab_size == 97
    longer = spec_for("ablation", "lsh-2", "tiny", length=64, steps=3, batch_size=2)
    assert (longer.task["length"], longer.model.max_len, longer.train.steps, longer.train.batch_size) == (64, 64, 3, 2)
    with pytest.raises(ValueError, match=r"^length of a repeated-text sequence \(w w\) must be even, got 33$"):
        spec_for("ablation", "full", "tiny", length=33)
    with pytest.raises(ValueError, match=r"^length must be an int >= 4, got 2$"):
        spec_for("ablation", "full", "tiny", length=2)


def test_ablation_full_at_a_length_off_the_chunk_fails_at_start(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(experiments, "train", _no_training)  # its LSH columns need chunks of 8: refused before training
    err = _refused(_tiny_ablation(tmp_path / "r.json", "full", "--length", "36"), capsys)
    assert "36" in err  # the length that cannot be cut into chunks of 8


def _tiny_ablation(out: Path, setting: str, *extra: str) -> list[str]:
    return ["ablation", "--setting", setting, "--scale", "tiny", "--steps", "4", "--out", str(out), "--no-progress",
            *extra]


@pytest.mark.parametrize("setting", ["full", "lsh-2", "separate-qk", "transformer", "layers-1"])
def test_ablation_tiny_run_records_its_final_evaluation(setting: str, tmp_path: Path) -> None:
    out = tmp_path / "ablation" / f"{setting}-tiny.json"
    record = run_experiment("ablation", setting, "tiny", steps=4, out=out, progress=False)
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))  # the record on disk is the one returned
    assert record["experiment"] == "ablation" and record["setting"] == setting and record["final"]["step"] == 4
    model = record["config"]["model"]
    assert {key: model[key] for key in ABLATION_CHANGES[setting]} == ABLATION_CHANGES[setting]
    assert record["config"]["task"] == {"length": 32} and model["vocab_size"] > 50  # the docs' characters
    evaluation = record["evaluation"]
    assert len(evaluation["position_bits"]) == 31  # length − 1 targets
    assert {"total", "text", "copy", "unrelated_copy"} <= set(evaluation)
    assert ("cross" in evaluation) == (setting in ("full", "lsh-2"))
    if "cross" in evaluation:
        assert tuple(evaluation["cross"]) == CROSS_COLUMNS
    # the final evaluation of training (nats) and the recorded one (bits) are the same number: the same batches,
    # seed and batch size. 1e-6 bits: evaluate sums the float32 losses in float32; measured 4e-9 (layers-1) to
    # 6.0e-7 (separate-qk) bits here
    assert abs(record["final"]["loss"] / math.log(2) - evaluation["total"]) < 1e-6
    assert Path(record["checkpoint"]).is_file()


def test_ablation_resumes_its_own_run_and_refuses_another_setting(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.json"
    assert main(_tiny_ablation(out, "full")) == 0
    first = json.loads(out.read_text())
    assert main(_tiny_ablation(out, "full")) == 0  # the same command: resumes the finished checkpoint
    again = json.loads(out.read_text())
    assert again["resumed_from"] == 4 and again["final"] == first["final"]
    assert again["evaluation"] == first["evaluation"]  # the same weights, evaluated again
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for setting, line in (("separate-qk", "model.shared_qk: checkpoint True, this run False"),
                          ("transformer", "model.stack: checkpoint 'reversible', this run 'transformer'"),
                          ("layers-4", "model.n_layers: checkpoint 2, this run 4")):
        err = _refused(_tiny_ablation(out, setting), capsys)
        assert f"cannot resume from {out.with_suffix('.pt')}" in err
        assert f"setting: checkpoint 'full', this run '{setting}'" in err and line in err, err
    with pytest.raises(ExperimentError, match="setting: checkpoint 'full', this run 'lsh-2'"):
        run_experiment("ablation", "lsh-2", "tiny", steps=4, out=out, progress=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == saved  # nothing touched


def test_ablation_resume_conflicts_without_a_run_file_name_the_changed_fields() -> None:
    """Without the run file the setting cannot be read off the model config (full, separate-qk, transformer and the
    layers-N settings all have full attention): the differing config fields say it, and no wrong setting is named."""
    spec = spec_for("ablation", "separate-qk", "tiny")
    identity = {"experiment": "ablation", "setting": "separate-qk", "scale": "tiny", "task": spec.task, "data": None}
    full = spec_for("ablation", "full", "tiny")
    state = {"model_config": full.model.to_dict(), "train_config": asdict(full.train)}
    assert experiments.resume_conflicts(state, None, identity, spec) == [
        "model.shared_qk: checkpoint True, this run False"]
    own = {"model_config": spec.model.to_dict(), "train_config": asdict(spec.train)}
    assert experiments.resume_conflicts(own, None, identity, spec) == []
