"""The training loop: learning, seeding, evaluation that leaves the RNG alone, checkpoints, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reformer_lab.data import DuplicationTask
from reformer_lab.model import ReformerConfig, ReformerLM
from reformer_lab.train import TrainConfig, evaluate, load_checkpoint, progress_enabled, train


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    with pytest.raises(ValueError, match="checkpoint was made with seed"):
        train(model(), TASK, TrainConfig(steps=3, batch_size=4, seed=1), checkpoint=tmp_path / "c.pt", progress=False)
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
