"""The training loop: learning, seeding, evaluation that leaves the RNG alone, checkpoints, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reformer_lab.data import DuplicationTask
from reformer_lab.model import ReformerConfig, ReformerLM
from reformer_lab.train import TrainConfig, evaluate, load_checkpoint, progress_enabled, train

pytestmark = pytest.mark.usefixtures("one_thread")


TASK = DuplicationTask(w_len=7, n_symbols=7)


def model(attention: str = "full", dropout: float = 0.0, seed: int = 0) -> ReformerLM:
    torch.manual_seed(seed)
    return ReformerLM(ReformerConfig(vocab_size=8, max_len=16, d_model=32, d_ff=32, n_heads=2, chunk_size=8,
                                     attention=attention, n_hashes=2, dropout=dropout))


def test_loss_goes_down_on_a_tiny_task() -> None:
    config = TrainConfig(steps=30, batch_size=16, lr=3e-3, warmup=5, eval_every=30, eval_batches=1, log_every=1)
    result = train(model(), TASK, config, progress=False)
    first = sum(r["loss"] for r in result.history[:5]) / 5
    last = sum(r["loss"] for r in result.history[-5:]) / 5
    assert last < first - 0.3, (first, last)
    assert result.steps == 30 and result.final["step"] == 30 and 0 <= result.final["accuracy"] <= 1


def test_evaluate_is_deterministic_and_leaves_the_rng_alone() -> None:
    m = model("lsh")
    torch.manual_seed(7)
    before = torch.get_rng_state()
    a = evaluate(m, TASK, batches=2, batch_size=4, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    assert evaluate(m, TASK, batches=2, batch_size=4, seed=3) == a
    assert m.training


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """LSH (random rotations) and dropout: everything random must come back from the checkpoint."""
    config = TrainConfig(steps=8, batch_size=4, lr=3e-3, warmup=2, eval_every=3, eval_batches=1, checkpoint_every=4,
                         log_every=1)
    whole = train(model("lsh", 0.1), TASK, config, checkpoint=tmp_path / "whole.pt", progress=False)

    def interrupt(step: int, record: dict) -> None:
        if step == 6:  # between checkpoints (4 and 8): steps 5 and 6 must not be lost
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(model("lsh", 0.1), TASK, config, checkpoint=tmp_path / "cut.pt", progress=False, callback=interrupt)
    assert load_checkpoint(tmp_path / "cut.pt")["step"] == 6
    resumed = train(model("lsh", 0.1, seed=99), TASK, config, checkpoint=tmp_path / "cut.pt", progress=False)
    assert resumed.resumed_from == 6
    assert resumed.final == whole.final  # exact: same arithmetic in the same order
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]
    assert resumed.evals == whole.evals


def test_checkpoint_contents_and_mismatch(tmp_path: Path) -> None:
    config = TrainConfig(steps=3, batch_size=4, eval_every=0, eval_batches=1, checkpoint_every=0)
    train(model(), TASK, config, checkpoint=tmp_path / "c.pt", progress=False)
    state = load_checkpoint(tmp_path / "c.pt")
    assert {"model", "optimizer", "step", "rng", "data_rng", "history", "evals", "model_config"} <= state.keys()
    assert state["step"] == 3
    with pytest.raises(ValueError, match="another training config .*seed=0 there, 1 here"):
        train(model(), TASK, TrainConfig(steps=3, batch_size=4, seed=1), checkpoint=tmp_path / "c.pt", progress=False)
    same = dict(steps=3, batch_size=4, eval_every=0, eval_batches=1, checkpoint_every=0)
    with pytest.raises(ValueError, match=r"warmup=100 there, 7 here\)"):  # any field that changes the trajectory
        train(model(), TASK, TrainConfig(**same, warmup=7), checkpoint=tmp_path / "c.pt", progress=False)
    resumed = train(model(), TASK, TrainConfig(**dict(same, log_every=1, checkpoint_every=5)),
                    checkpoint=tmp_path / "c.pt", progress=False)  # when to log and save may change
    assert resumed.resumed_from == 3
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")


def test_train_config_validation_and_schedule() -> None:
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0)
    c = TrainConfig(steps=100, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert c.lr_at(0) == pytest.approx(0.1) and c.lr_at(10) == pytest.approx(1.0)
    assert c.lr_at(100) == pytest.approx(0.1)


def test_progress_is_off_under_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    assert progress_enabled(None) is False
    assert progress_enabled(True) is True
    monkeypatch.setenv("REFORMER_LAB_PROGRESS", "1")
    assert progress_enabled(None) is True


def test_train_config_goes_through_the_shared_checks() -> None:
    import numpy as np

    from reformer_lab.validation import ArgumentTypeError

    config = TrainConfig(steps=np.int64(5), batch_size=np.int64(4), warmup=np.int64(0), lr=np.float32(0.5))
    assert (config.steps, config.batch_size, config.warmup) == (5, 4, 0) and type(config.steps) is int
    assert type(config.lr) is float
    for changes, message in [
        (dict(steps=True), r"^steps must be an int >= 1, got the bool True$"),
        (dict(batch_size=2.5), r"^batch_size must be an int >= 1, got 2\.5 \(float\)$"),
        (dict(lr="1e-3"), r"^lr must be a finite number > 0\.0, got '1e-3' \(str\)$"),
        (dict(seed=1.5), r"^seed must be an int, got 1\.5 \(float\)$"),
    ]:
        with pytest.raises(ArgumentTypeError, match=message):
            TrainConfig(**changes)
    with pytest.raises(ValueError, match=r"^warmup must be an int >= 0, got -1$"):
        TrainConfig(warmup=-1)
    with pytest.raises(ValueError, match=r"^min_lr_ratio must be a finite number in \[0\.0, 1\.0\], got 2$"):
        TrainConfig(min_lr_ratio=2)
    with pytest.raises(ValueError, match=r"^batches must be an int >= 1, got 0$"):
        evaluate(model(), TASK, batches=0)  # was a loss and accuracy of 0 over no batches


# Any exception saves the last finished step; evaluate's own seeding


class _FailingTask:
    """TASK, except that the ``fail_at``-th training batch (1-based) breaks: its targets leave the vocabulary.

    The batch is drawn first, so the data generator has moved, and the model's forward pass runs (LSH rotations
    and dropout draw from the global RNG) before the loss refuses the targets: a failure in the middle of a step.
    """

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.calls = fail_at, 0

    def train_batch(self, batch_size, generator):
        batch = TASK.train_batch(batch_size, generator)
        self.calls += 1
        if self.calls == self.fail_at:
            batch.targets[0, 9] = 99  # a counted position (the mask covers 8..14)
        return batch

    def eval_batch(self, batch_size, generator):
        return TASK.eval_batch(batch_size, generator)


def test_an_exception_inside_a_step_saves_the_last_finished_step_and_resume_is_exact(tmp_path: Path) -> None:
    config = TrainConfig(steps=8, batch_size=4, lr=3e-3, warmup=2, eval_every=3, eval_batches=1, checkpoint_every=4,
                         log_every=1)
    whole = train(model("lsh", 0.1), TASK, config, checkpoint=tmp_path / "whole.pt", progress=False)
    with pytest.raises(ValueError, match="targets must be token ids") as failure:
        train(model("lsh", 0.1), _FailingTask(fail_at=7), config, checkpoint=tmp_path / "cut.pt", progress=False)
    assert load_checkpoint(tmp_path / "cut.pt")["step"] == 6  # steps 5 and 6 were after the last periodic save
    assert any("saved the last finished step (6)" in note for note in failure.value.__notes__)
    resumed = train(model("lsh", 0.1, seed=99), TASK, config, checkpoint=tmp_path / "cut.pt", progress=False)
    assert resumed.resumed_from == 6
    # exact: the half-done step 7 had moved the data generator and the global RNG; both were rolled back
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]
    assert resumed.evals == whole.evals and resumed.final == whole.final


def test_an_exception_from_the_callback_saves_that_step(tmp_path: Path) -> None:
    config = TrainConfig(steps=6, batch_size=4, eval_every=0, eval_batches=1, checkpoint_every=0)

    def fail(step: int, record: dict) -> None:
        if step == 2:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        train(model(), TASK, config, checkpoint=tmp_path / "c.pt", progress=False, callback=fail)
    assert load_checkpoint(tmp_path / "c.pt")["step"] == 2  # nothing was saved before


def test_an_exception_inside_the_optimizer_update_saves_nothing_and_says_so(tmp_path: Path, monkeypatch) -> None:
    config = TrainConfig(steps=6, batch_size=4, eval_every=0, eval_batches=1, checkpoint_every=2)
    step = torch.optim.Adam.step
    calls = []

    def failing_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("update failed")
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", failing_step)
    with pytest.raises(RuntimeError, match="update failed") as failure:
        train(model(), TASK, config, checkpoint=tmp_path / "c.pt", progress=False)
    assert load_checkpoint(tmp_path / "c.pt")["step"] == 2  # the periodic checkpoint stays
    assert any("nothing saved" in note and "half-updated" in note for note in failure.value.__notes__)


def test_evaluate_does_not_depend_on_the_global_rng_state() -> None:
    # Every earlier test called evaluate from one global RNG state, so dropping its own torch.manual_seed went
    # unseen: LSH draws its rotations from the global generator. Different states must give identical results.
    m = model("lsh")
    results = []
    for seed in (1, 2, 12345):
        torch.manual_seed(seed)
        results.append(evaluate(m, TASK, batches=2, batch_size=4, seed=3))
    assert results[0] == results[1] == results[2]
    assert evaluate(m, TASK, batches=2, batch_size=4, seed=4) != results[0]  # the seed itself does matter


def test_evaluate_refuses_float_masks_and_an_empty_count() -> None:
    from types import SimpleNamespace

    from reformer_lab.validation import ArgumentTypeError

    class Task:
        def __init__(self, mask):
            self.mask = mask

        def eval_batch(self, batch_size, generator):
            b = TASK.eval_batch(batch_size, generator)
            fields = SimpleNamespace(inputs=b.inputs, targets=b.targets, mask=self.mask(b.mask))
            fields.to = lambda device: fields
            return fields

    with pytest.raises(ArgumentTypeError, match=r"mask must be a bool tensor, got torch\.float32$"):
        evaluate(model(), Task(lambda m: torch.full(m.shape, 0.5)), batches=1, batch_size=2)
    with pytest.raises(ValueError, match="count no position"):  # was loss 0 and accuracy 0
        evaluate(model(), Task(torch.zeros_like), batches=1, batch_size=2)


def test_until_stops_early_on_the_longer_runs_schedule() -> None:
    config = TrainConfig(steps=12, batch_size=8, lr=3e-3, warmup=3, eval_every=4, eval_batches=1, log_every=1)
    whole = train(model(), TASK, config, progress=False)
    first = train(model(), TASK, config, progress=False, until=8)
    assert first.steps == 8 and [r["step"] for r in first.evals] == [4, 8] and first.final["step"] == 8
    # the first 8 steps of the 12-step run, learning rates included (not an 8-step schedule), exactly
    assert first.history == [{**r, "seconds": f["seconds"]} for r, f in zip(whole.history[:8], first.history,
                                                                              strict=True)]
    assert first.evals == whole.evals[:2]
    assert first.history[-1]["lr"] != TrainConfig(steps=8, lr=3e-3, warmup=3).lr_at(7)
    for bad in (0, 13):
        with pytest.raises(ValueError, match=r"^until must be"):
            train(model(), TASK, config, progress=False, until=bad)


def test_train_checks_its_own_arguments(tmp_path: Path) -> None:
    from reformer_lab.validation import ArgumentTypeError

    config = TrainConfig(steps=1, batch_size=2, eval_every=0, eval_batches=1)
    with pytest.raises(ArgumentTypeError, match=r"^resume must be True or False, got 'False'"):
        train(model(), TASK, config, checkpoint=tmp_path / "c.pt", resume="False")  # a non-empty string read as True
    with pytest.raises(ArgumentTypeError, match=r"^progress must be True or False, got 0"):
        train(model(), TASK, config, progress=0)
    with pytest.raises(ArgumentTypeError, match=r"^config must be a TrainConfig, got dict$"):
        train(model(), TASK, {"steps": 1})


# Checkpoint files: read without running code, damage named, written atomically (reformer_lab.train's load/save)


class _RunsCode:
    """Unpickling this creates ``marker``: what torch.load(weights_only=False) does with a hostile file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoints_are_read_with_weights_only_and_never_run_code(tmp_path: Path) -> None:
    from reformer_lab.train import CheckpointError

    marker = tmp_path / "code-ran"
    torch.save({"model": {}, "hostile": _RunsCode(marker)}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"c\.pt holds objects other than tensors and plain values") as failure:
        load_checkpoint(tmp_path / "c.pt")
    assert not marker.exists() and "--fresh" in str(failure.value) and "resume=False" in str(failure.value)
    # what train() saves is all tensors and plain values, so weights_only=True reads it whole
    config = TrainConfig(steps=2, batch_size=4, eval_every=1, eval_batches=1, checkpoint_every=1)
    train(model("lsh", 0.1), TASK, config, checkpoint=tmp_path / "ok.pt", progress=False)
    state = torch.load(tmp_path / "ok.pt", weights_only=True)
    assert state["step"] == 2 and isinstance(state["rng"]["cpu"], torch.Tensor)
    assert isinstance(state["data_rng"], torch.Tensor) and state["model_config"]["attention"] == "lsh"


def test_a_damaged_checkpoint_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    """Was: EOFError, OSError(22), RuntimeError or KeyError from torch.load, naming neither the file nor a remedy."""
    from reformer_lab.train import CheckpointError

    config = TrainConfig(steps=2, batch_size=4, eval_every=0, eval_batches=1, checkpoint_every=0)
    path = tmp_path / "c.pt"
    train(model(), TASK, config, checkpoint=path, progress=False)
    whole = path.read_bytes()
    for cut in (0, 100, len(whole) // 2, len(whole) - 10):
        path.write_bytes(whole[:cut])
        with pytest.raises(CheckpointError, match=rf"checkpoint {path} cannot be read: it is truncated, damaged") as e:
            load_checkpoint(path)
        assert e.value.path == path and "--fresh" in str(e.value)
    path.write_bytes(b"hello world" * 10)
    with pytest.raises(CheckpointError, match="truncated, damaged or not a checkpoint"):
        load_checkpoint(path)
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match=r"is not a training checkpoint \(it holds a list, not a dict\)"):
        load_checkpoint(path)
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="is not a training checkpoint .it lacks optimizer, step"):
        load_checkpoint(path)
    path.write_bytes(b"")  # train() itself refuses to resume from it, with the same message
    with pytest.raises(CheckpointError, match="cannot be read"):
        train(model(), TASK, config, checkpoint=path, progress=False)


def test_a_checkpoint_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Temporary file, fsync, rename, fsync of the directory: a failed or killed write leaves the old checkpoint."""
    import os

    from reformer_lab import train as train_module

    path = tmp_path / "c.pt"
    train_module._save(path, {"step": 1, "w": torch.ones(3)})
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    train_module._save(path, {"step": 2, "w": torch.ones(3)})
    assert len(synced) == 2 and torch.load(path, weights_only=True)["step"] == 2  # the file, then the directory

    def no_rename(src, dst):
        assert Path(src).parent == path.parent and torch.load(src, weights_only=True)["step"] == 3  # whole, beside it
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        train_module._save(path, {"step": 3, "w": torch.ones(3)})
    assert torch.load(path, weights_only=True)["step"] == 2 and [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_a_checkpoint_holds_only_what_weights_only_reads_back(tmp_path: Path) -> None:
    import numpy as np

    from reformer_lab import train as train_module
    from reformer_lab.train import CheckpointError

    for bad, where in [({"history": [{"loss": np.float64(1.0)}]}, r"the checkpoint\['history'\]\[0\]\['loss'\] is a "
                                                                 r"numpy\.float64"),
                       ({"x": _RunsCode(tmp_path / "m")}, r"the checkpoint\['x'\] is a .*_RunsCode")]:
        with pytest.raises(CheckpointError, match=where):
            train_module._save(tmp_path / "c.pt", bad)
    assert list(tmp_path.iterdir()) == []  # refused before a byte was written
