"""The experiment runner: names and configs checked at start, the JSON record, data-parallel equivalence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reformer_lab.measure.experiments import EVAL_COLUMNS, load_model, main, measure_model_step, spec_for


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ROOT = Path(__file__).resolve().parents[1]


def test_unknown_experiment_name_fails_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["copying", "--setting", "full"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'copying'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="experiment must be one of 'duplication', 'charlm'; got 'copying'"):
        spec_for("copying", "full", "lesson")
    with pytest.raises(ValueError, match="setting of duplication must be one of 'full', .*; got 'lsh-8'"):
        spec_for("duplication", "lsh-8", "lesson")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["duplication", "--setting", "lsh-2", "--scale", "tiny", "--length", "36"], "multiple of chunk_size"),
        (["charlm", "--scale", "tiny", "--data", "/nonexistent/enwik8"], "enwik8 file not found"),
        (["duplication", "--scale", "tiny", "--device", "tpu"], "--device must be cpu or cuda"),
    ],
)
def test_impossible_runs_fail_at_start(argv: list[str], message: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
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
