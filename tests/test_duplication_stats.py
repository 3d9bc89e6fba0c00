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
    record = run_experiment("duplication", "lsh-2", "tiny", out=directory / "lsh-2-tiny.json", progress=False)
    rep.export_weights(directory / "lsh-2-tiny.pt", rep.weights_path("lsh-2", directory, "tiny"))
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
    assert path.name == "lsh-2-tiny.weights.pt" and path.stat().st_size < (directory / "lsh-2-tiny.pt").stat().st_size
    model = rep.load_lesson_model("lsh-2", directory, "tiny")
    reference = load_model(directory / "lsh-2-tiny.pt")
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
    with pytest.raises(FileNotFoundError, match="python -m reformer_lab.experiments duplication"):
        rep.load_record("full", tmp_path)


def test_bucket_sweep_keeps_the_weights(tiny_run) -> None:
    directory, record = tiny_run
    model = rep.load_lesson_model("lsh-2", directory, "tiny")
    task = rep.task_from_record(record)
    sweep = rep.bucket_sweep(model, task, [8, 16], n_hashes=2, batches=1, batch_size=8, seed=3)
    assert set(sweep) == {8, 16} and all(0.0 <= v <= 1.0 for v in sweep.values())
    assert model.config.chunk_size == 8  # the model itself is untouched


@pytest.mark.parametrize("setting", rep.TRAIN_ROWS)
def test_the_committed_lesson_runs_load(setting) -> None:
    # Lesson 07 loads these: they are committed, so a checkout without them is broken, not a reason to skip.
    assert rep.weights_path(setting).exists(), f"{rep.weights_path(setting)} is missing: lesson 07 needs it"
    record = rep.load_record(setting)
    assert record["setting"] == setting and record["scale"] == "lesson"
    assert rep.weights_path(setting).stat().st_size < 1_500_000
    model = rep.load_lesson_model(setting)
    assert model.config.attention == ("full" if setting == "full" else "lsh")


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
    (tmp_path / "lsh-2-tiny.json").write_text(json.dumps(record))
    marker = tmp_path / "code-ran"
    torch.save({"hostile": _RunsCode(marker)}, rep.weights_path("lsh-2", tmp_path, "tiny"))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        rep.load_lesson_model("lsh-2", tmp_path, "tiny")
    assert not marker.exists()
    assert torch.load(rep.weights_path("full"), weights_only=True)  # a committed file: tensors only
