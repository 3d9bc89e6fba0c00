"""duplication_stats: the committed runs load and the table is the runner's evaluation."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.data import DuplicationTask
from reformer_lab.measure import duplication_stats as rep
from reformer_lab.measure.experiments import EVAL_COLUMNS, load_model, run_experiment


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("duplication")
    record = run_experiment("duplication", "lsh-2", "tiny", out=directory / "lsh-2-tiny-seed0.json", progress=False)
    rep.export_weights(directory / "lsh-2-tiny-seed0.pt", rep.weights_path("lsh-2", directory, "tiny"))
    return directory, record


def test_paper_table2_is_the_papers() -> None:
    assert list(rep.PAPER_TABLE2) == list(rep.TRAIN_ROWS) == ["full", "lsh-4", "lsh-2", "lsh-1"]
    assert all(list(row) == list(EVAL_COLUMNS) for row in rep.PAPER_TABLE2.values())
    assert rep.PAPER_TABLE2["full"]["lsh-1"] == 52.5
    assert rep.PAPER_TABLE2["lsh-4"]["lsh-8"] == 100.0
    assert rep.PAPER_TABLE2["lsh-1"]["lsh-1"] == 77.9
    assert all(rep.PAPER_TABLE2[row]["full"] == 0.8 for row in ("lsh-4", "lsh-2", "lsh-1"))


@pytest.mark.parametrize("w_len", [3, 15, 63])
def test_needed_key_holds_the_target(w_len) -> None:
    batch = DuplicationTask(w_len, 50).batch(8, 1)
    for i in DuplicationTask(w_len, 50).loss_mask().nonzero().flatten().tolist():
        assert torch.equal(batch.inputs[:, rep.needed_key(i, w_len)], batch.targets[:, i])
    with pytest.raises(ValueError, match=rf"position must be an int in \[{w_len + 1}, {2 * w_len}\], got {w_len}"):
        rep.needed_key(w_len, w_len)
    with pytest.raises(ValueError, match="position must be an int in"):
        rep.needed_key(2 * w_len + 1, w_len)


def test_local_window_coverage() -> None:
    assert rep.local_window_coverage(63, 32) == pytest.approx(1 / 63)  # only position 95 reaches back to 32
    assert rep.local_window_coverage(63, 64) == 1.0  # a window of 128 sees everything
    assert rep.local_window_coverage(511, 64) == 0.0


def test_weights_round_trip_and_the_table_is_the_runners(tiny_run) -> None:
    directory, record = tiny_run
    path = rep.weights_path("lsh-2", directory, "tiny")
    assert path.name == "lsh-2-tiny-seed0.weights.pt"
    assert path.stat().st_size < (directory / "lsh-2-tiny-seed0.pt").stat().st_size
    model = rep.load_lesson_model("lsh-2", directory, "tiny")
    reference = load_model(directory / "lsh-2-tiny-seed0.pt")
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert not model.training
    task = rep.task_from_record(record)
    train = record["config"]["train"]
    table = rep.accuracy_table({"lsh-2": model}, task, batches=train["eval_batches"], batch_size=train["batch_size"],
                               seed=train["eval_seed"])
    assert table == {"lsh-2": record["table2"]}
    again = rep.accuracy_table({"lsh-2": model}, task, batches=train["eval_batches"], batch_size=train["batch_size"],
                               seed=train["eval_seed"])
    assert again == table


def test_missing_files_say_how_to_make_them(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="python -m reformer_lab.experiments duplication .*--seed 2"):
        rep.load_record("full", tmp_path, seed=2)


def test_a_record_under_another_name_is_refused(tiny_run, tmp_path) -> None:
    import json

    _, record = tiny_run
    (tmp_path / "lsh-2-tiny-seed1.json").write_text(json.dumps(record))  # the seed-0 run under seed 1's name
    with pytest.raises(ValueError, match="seed 0, not of 'lsh-2', seed 1"):
        rep.load_record("lsh-2", tmp_path, "tiny", seed=1)


def _record(table2, losses, steps=(10, 20)):
    return {"table2": table2, "metrics": {"train": [{"step": s, "loss": x} for s, x in zip(steps, losses, strict=True)],
                                          "eval": [{"step": 20, "accuracy": table2["full"]}]}}


def test_table2_spread_and_curve_band() -> None:
    runs = [_record(dict.fromkeys(EVAL_COLUMNS, a), losses)
            for a, losses in ((0.5, (4.0, 1.0)), (1.0, (3.0, 2.0)), (0.9, (5.0, 0.5)))]
    spread = rep.table2_spread({"full": runs})
    assert spread["full"]["lsh-1"][1:] == (0.5, 1.0) and spread["full"]["lsh-1"].mean == pytest.approx(0.8)
    assert spread["full"]["lsh-1"].percent() == "80.0% [50.0–100.0]"
    assert spread["full"]["lsh-1"].percent(0, mean=False) == "50–100%"
    assert rep.Spread(0.9, 0.89999, 0.90001).percent() == "90.0%"
    assert rep.Spread(0.9, 0.89999, 0.90001).percent(mean=False) == "90.0%"
    assert rep.curve_band(runs) == ([10, 20], [4.0, 1.0], [3.0, 0.5], [5.0, 2.0])
    assert rep.curve_band(runs, "eval", "accuracy") == ([20], [0.9], [0.5], [1.0])
    with pytest.raises(ValueError, match="no table2 entry for \\['lsh-8'\\]"):
        rep.table2_spread({"full": [_record({c: 1.0 for c in EVAL_COLUMNS if c != "lsh-8"}, (1.0, 1.0))]})
    with pytest.raises(ValueError, match="different steps"):
        rep.curve_band([runs[0], _record(runs[0]["table2"], (1.0, 1.0), steps=(10, 30))])


def test_bucket_sweep_keeps_the_weights(tiny_run) -> None:
    directory, record = tiny_run
    model = rep.load_lesson_model("lsh-2", directory, "tiny")
    task = rep.task_from_record(record)
    sweep = rep.bucket_sweep(model, task, [8, 16], n_hashes=2, batches=1, batch_size=8, seed=3)
    assert set(sweep) == {8, 16} and all(0.0 <= v <= 1.0 for v in sweep.values())
    assert model.config.chunk_size == 8  # the model itself is untouched


@pytest.mark.parametrize("setting", rep.SETTINGS)
def test_the_committed_lesson_runs_load(setting) -> None:
    # Lessons 07 and 10 load these: they are committed, so a checkout without them is broken, not a reason to skip.
    commits = set()
    for seed in rep.SEEDS:
        path = rep.weights_path(setting, seed=seed)
        assert path.exists(), f"{path} is missing: lesson 07 needs it"
        record = rep.load_record(setting, seed=seed)
        assert record["setting"] == setting and record["scale"] == "lesson" and record["seed"] == seed
        assert set(rep.EVAL_COLUMNS) <= set(record["table2"])
        assert path.stat().st_size < 1_500_000
        commits.add(record["git_commit"])
    model = rep.load_lesson_model(setting, seed=rep.SEEDS[-1])
    assert model.config.attention == {"full": "full", "local": "local"}.get(setting, "lsh")
    assert len(commits) == 1  # the lesson says every run comes from one commit


class _RunsCode:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_weights_files_are_read_with_weights_only(tiny_run, tmp_path) -> None:
    """The committed lesson weights are plain state dicts, read with weights_only=True: a file with code is refused."""
    import json
    import pickle

    directory, record = tiny_run
    (tmp_path / "lsh-2-tiny-seed0.json").write_text(json.dumps(record))
    marker = tmp_path / "code-ran"
    torch.save({"hostile": _RunsCode(marker)}, rep.weights_path("lsh-2", tmp_path, "tiny"))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        rep.load_lesson_model("lsh-2", tmp_path, "tiny")
    assert not marker.exists()
    assert torch.load(rep.weights_path("full"), weights_only=True)  # a committed file: tensors only
