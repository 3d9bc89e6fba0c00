"""A small, reproducible training loop: seeded, periodic evaluation, checkpoints, exact resume, data-parallel.

:func:`train` runs Adam (the paper used Adafactor, §5; for the small lesson models Adam with warm-up
and cosine decay is the simple, well-understood choice) on a task that hands out
:class:`~reformer_lab.data.Batch` es from a ``torch.Generator``.

Reproducibility and resume. Everything random goes through state the checkpoint keeps: the model,
the optimiser, the step, the data generator's state, and torch's global RNG state (dropout and LSH's
random rotations draw from it). Evaluation runs under ``torch.random.fork_rng`` with its own fixed
seed, so evaluating does not move the training stream. A run stopped by any exception (Ctrl-C, a
notebook's interrupt, an error in the model, the task or ``callback``) saves the last finished step
and re-raises; the next call with the same checkpoint path continues from there and ends with the
same metrics as a run that was never interrupted. SIGINT is deferred to the end of the running step,
so no step is half-done; an error in the middle of a step is saved as the step before it, with the
random states of that step's start (the model and optimiser are untouched until the update). Only
an error inside the optimiser's update itself, which may leave the parameters half-updated, saves
nothing, and says so in a note on the exception.

Data parallel. Under ``torchrun`` (``torch.distributed`` initialised) the model is wrapped in
``DistributedDataParallel``; every process draws the same *global* batch and trains on its share, so
with equal loss-mask counts per example (true for every task here) the run equals a single process
with the same global batch (up to the order of floating-point sums). Only rank 0 writes checkpoints.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn

from reformer_lab.data import Batch
from reformer_lab.files import write_atomic
from reformer_lab.validation import ArgumentTypeError, as_bool, as_float, as_int, positive_float, positive_int

__all__ = ["CHECKPOINT_KEYS", "CheckpointError", "TrainConfig", "TrainResult", "Task", "evaluate", "load_checkpoint",
           "progress_enabled", "train"]


class Task(Protocol):
    """What :func:`train` needs from a task (:class:`~reformer_lab.data.DuplicationTask`, ``CharCorpus``)."""

    def train_batch(self, batch_size: int, generator: torch.Generator) -> Batch: ...

    def eval_batch(self, batch_size: int, generator: torch.Generator) -> Batch: ...


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping. ``batch_size`` is the global batch (split across processes).

    The learning rate warms up linearly over ``warmup`` steps, then follows a cosine down to
    ``min_lr_ratio · lr`` at ``steps``. ``eval_every`` / ``checkpoint_every`` / ``log_every`` are in
    steps (0 = only at the end). ``grad_clip`` None or 0 turns gradient clipping off. Every field is
    checked when the config is made (:mod:`reformer_lab.validation`) and stored as a plain Python value.
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    eval_every: int = 200
    eval_batches: int = 4
    eval_batch_size: int | None = None
    eval_seed: int = 1234
    checkpoint_every: int = 200
    log_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {
            "lr": positive_float("lr", self.lr),
            "min_lr_ratio": as_float("min_lr_ratio", self.min_lr_ratio, minimum=0.0, maximum=1.0),
            "weight_decay": as_float("weight_decay", self.weight_decay, minimum=0.0),
            "eval_seed": as_int("eval_seed", self.eval_seed),
            "seed": as_int("seed", self.seed),
        }
        for name in ("steps", "batch_size", "eval_batches"):
            checked[name] = positive_int(name, getattr(self, name))
        for name in ("warmup", "eval_every", "checkpoint_every", "log_every"):
            checked[name] = as_int(name, getattr(self, name), minimum=0)
        if self.grad_clip is not None:
            checked["grad_clip"] = as_float("grad_clip", self.grad_clip, minimum=0.0)
        if self.eval_batch_size is not None:
            checked["eval_batch_size"] = positive_int("eval_batch_size", self.eval_batch_size)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def lr_at(self, step: int) -> float:
        """Learning rate for the update that makes step ``step + 1``."""
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    """``history``: one record per ``log_every`` steps (step, loss, lr, seconds); ``evals``: one per
    evaluation (step, loss, accuracy); ``final``: the last evaluation; ``resumed_from``: the step a
    checkpoint was loaded at (None for a fresh run); ``wall_time``: seconds in this call."""

    history: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    resumed_from: int | None = None
    wall_time: float = 0.0


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def progress_enabled(progress: bool | None) -> bool:
    """``progress=None`` auto-detects: on for an interactive terminal or notebook, off under pytest/nbval,
    when ``REFORMER_LAB_PROGRESS=0``, and on every rank but 0."""
    if _distributed()[0] != 0:
        return False
    if progress is not None:
        return progress
    if os.environ.get("REFORMER_LAB_PROGRESS") in ("0", "1"):
        return os.environ["REFORMER_LAB_PROGRESS"] == "1"
    if "PYTEST_CURRENT_TEST" in os.environ or "NBVAL" in os.environ:
        return False
    return sys.stderr.isatty() or "ipykernel" in sys.modules


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, *, batches: int = 4, batch_size: int = 32, seed: int = 1234,
             n_hashes: int | None = None, device: torch.device | str = "cpu") -> dict[str, float]:
    """Masked loss and next-token accuracy over ``batches`` evaluation batches drawn with ``seed``.

    Runs under ``torch.random.fork_rng`` seeded with ``seed``: the same batches and the same LSH
    rotations every time, and the caller's RNG stream is left untouched.
    """
    batches, batch_size = positive_int("batches", batches), positive_int("batch_size", batch_size)
    seed = as_int("seed", seed)
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(batches):
            b = task.eval_batch(batch_size, generator).to(device)
            logits = model(b.inputs, n_hashes)
            if b.mask.dtype != torch.bool:  # a float mask of 0.5 must not count as True
                raise ArgumentTypeError(f"the task's eval_batch mask must be a bool tensor, got {b.mask.dtype}")
            mask = b.mask
            total_loss += float(torch.nn.functional.cross_entropy(logits[mask], b.targets[mask], reduction="sum"))
            correct += int((logits.argmax(-1)[mask] == b.targets[mask]).sum())
            count += int(mask.sum())
    model.train(was_training)
    if count == 0:  # was a loss of 0 and an accuracy of 0, which reads as a perfect model
        raise ValueError(f"the task's evaluation batches count no position (every mask entry False in {batches} "
                         f"batches of {batch_size}): there is nothing to evaluate")
    return {"loss": total_loss / count, "accuracy": correct / count}


class _DeferredInterrupt:
    """Turns SIGINT into a flag checked between steps (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def installed(self) -> Iterator[_DeferredInterrupt]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: Any) -> None:
            self.requested = True

        signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


#: TrainConfig fields a resumed run may change: they decide when to log, evaluate and save, not the trajectory.
FREE_TRAIN_FIELDS = ("checkpoint_every", "eval_every", "log_every")

#: What a checkpoint must hold for :func:`train` to resume from it.
CHECKPOINT_KEYS = ("model", "optimizer", "step", "rng", "data_rng", "history", "evals")
#: Besides tensors and dict/list/tuple/set containers, the values ``torch.load(weights_only=True)`` reads back.
_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, torch.Size, torch.device, torch.dtype)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read back (truncated, damaged, not a training checkpoint, or holding objects
    that ``torch.load(weights_only=True)`` refuses) or written. ``path`` is the file, ``problem`` what is wrong
    with it; the message adds how to start over (``advice``)."""

    def __init__(self, path: str | Path, problem: str, advice: str = "delete it, or start over without it "
                 "(train(..., resume=False); python -m reformer_lab.experiments ... --fresh)") -> None:
        super().__init__(f"{problem}; {advice}" if advice else problem)
        self.path, self.problem = Path(path), problem


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path`` (model, optimizer, step, rng, data_rng, history, evals, configs).

    Read with ``torch.load(weights_only=True)``: tensors and plain Python values only, so loading a file
    never runs code from it. A file that cannot be read (a truncated or damaged file, or one that is not a
    training checkpoint) raises :class:`CheckpointError`, naming the file and how to start over.
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Unsupported global" in text:  # not made by train(): refuse to run code from it
            reason = next((line.strip() for line in text.splitlines() if "Unsupported global" in line), text)
            raise CheckpointError(path, f"the checkpoint {path} holds objects other than tensors and plain "
                                  f"values, which are not loaded (that could run code from the file): "
                                  f"{reason[:300]}") from error
        detail = " ".join(line.strip() for line in text.splitlines() if line.strip().startswith("Unsupported"))
        raise CheckpointError(path, f"the checkpoint {path} cannot be read: it is truncated, damaged or not a "
                              f"checkpoint (UnpicklingError: {detail[:200] or text[:200]})") from error
    except Exception as error:  # EOFError, OSError, RuntimeError, KeyError ... : each a truncated or foreign file
        detail = (str(error).splitlines() or [""])[0][:200]
        raise CheckpointError(path, f"the checkpoint {path} cannot be read: it is truncated, damaged or not a "
                              f"checkpoint ({type(error).__name__}: {detail})") from error
    missing = [key for key in CHECKPOINT_KEYS if key not in state] if isinstance(state, dict) else None
    if missing is None or missing:
        what = f"it lacks {', '.join(missing)}" if missing else f"it holds a {type(state).__name__}, not a dict"
        raise CheckpointError(path, f"{path} is not a training checkpoint ({what})")
    return state


def _plain_problem(value: Any, where: str) -> str | None:
    """What in ``value`` ``torch.load(weights_only=True)`` would refuse, and where (None: nothing)."""
    from collections import OrderedDict

    if isinstance(value, Tensor):
        return None if type(value) in (Tensor, nn.Parameter) else f"{where} is a {type(value).__name__}"
    if type(value) in _PLAIN_TYPES:
        return None
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            problem = _plain_problem(key, f"a key of {where}") or _plain_problem(item, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if type(value) in (list, tuple, set):
        return next((p for i, item in enumerate(value) if (p := _plain_problem(item, f"{where}[{i}]"))), None)
    return f"{where} is a {type(value).__module__}.{type(value).__qualname__}"


def _save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: into ``.<name>.<pid>-<random>.tmp`` beside it, flushed and
    fsynced, then renamed over ``path`` and the directory fsynced. ``path`` always holds a whole checkpoint,
    the old or the new, even if the process dies mid-write (a stale temporary file may then remain).

    Only tensors and plain values may be saved (what :func:`load_checkpoint` reads back with
    ``weights_only=True``); anything else raises :class:`CheckpointError` before a byte is written.
    """
    problem = _plain_problem(state, "the checkpoint")
    if problem:
        raise CheckpointError(path, f"cannot save {path}: {problem}, which torch.load(weights_only=True) refuses",
                              "a checkpoint holds tensors and plain values (dict, list, tuple, str, int, float, bool, "
                              "None)")
    write_atomic(path, lambda file: torch.save(state, file))


@dataclass
class _Run:
    model: nn.Module
    step_model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    result: TrainResult
    step: int = 0
    updating: bool = False  # inside optimizer.step(): the parameters may be half-updated

    def state(self, config: TrainConfig) -> dict[str, Any]:
        model_config = getattr(self.model, "config", None)
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                "rng": _rng_state(self.device), "data_rng": self.generator.get_state(),
                "history": self.result.history, "evals": self.result.evals, "train_config": asdict(config),
                "model_config": model_config.to_dict() if hasattr(model_config, "to_dict") else None}

    def restore(self, state: dict[str, Any], config: TrainConfig) -> None:
        saved = state.get("train_config", {})
        differ = [f"{key}={saved[key]!r} there, {getattr(config, key)!r} here" for key in sorted(saved)
                  if key not in FREE_TRAIN_FIELDS and hasattr(config, key) and saved[key] != getattr(config, key)]
        if differ:
            raise ValueError("checkpoint was made with another training config (" + "; ".join(differ)
                             + "): use another checkpoint path or resume=False")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["data_rng"])
        _set_rng_state(state["rng"], self.device)
        self.step = self.result.resumed_from = int(state["step"])
        self.result.history, self.result.evals = list(state["history"]), list(state["evals"])


def _one_step(run: _Run, task: Task, config: TrainConfig) -> float:
    rank, world = _distributed()
    batch = task.train_batch(config.batch_size, run.generator).split(rank, world).to(run.device)
    for group in run.optimizer.param_groups:
        group["lr"] = config.lr_at(run.step)
    run.optimizer.zero_grad(set_to_none=True)
    loss = run.step_model(batch.inputs, targets=batch.targets, mask=batch.mask)
    loss.backward()
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    run.updating = True
    run.optimizer.step()
    value = loss.detach()
    if world > 1:
        dist.all_reduce(value)
        value /= world
    return float(value)


def _save_on_error(run: _Run, config: TrainConfig, path: Path, error: BaseException, at_boundary: bool,
                   step_start: tuple[dict[str, Any], Tensor] | None) -> None:
    """Save the last finished step after ``error`` stopped the run, and note on ``error`` what was saved."""
    if not at_boundary and (run.updating or step_start is None):
        error.add_note(f"reformer_lab.train: nothing saved to {path}: the error came during the optimiser update "
                       f"of step {run.step + 1}, so the parameters may be half-updated; the last checkpoint stays")
        return
    state = run.state(config)
    if not at_boundary:  # mid-step: the model and optimiser are still step run.step's; roll the RNGs back too
        state["rng"], state["data_rng"] = step_start  # type: ignore[misc]
    try:
        _save(path, state)
    except Exception as save_error:  # the original error matters more; report this one beside it
        error.add_note(f"reformer_lab.train: saving step {run.step} to {path} failed too: {save_error!r}")
        return
    error.add_note(f"reformer_lab.train: saved the last finished step ({run.step}) to {path}; "
                   "train(..., checkpoint=that path) resumes from it")


def _periodic(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


def _bar(config: TrainConfig, start: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=config.steps, initial=start, disable=not enabled, desc="train", dynamic_ncols=True)


def train(model: nn.Module, task: Task, config: TrainConfig, *, checkpoint: str | Path | None = None,
          resume: bool = True, progress: bool | None = None, device: str | torch.device = "cpu",
          callback: Callable[[int, dict[str, float]], None] | None = None, until: int | None = None) -> TrainResult:
    """Train ``model`` on ``task`` for ``config.steps`` steps; see the module docstring.

    ``model(inputs, targets=..., mask=...)`` must return the mean loss (as
    :class:`~reformer_lab.model.ReformerLM` does). ``checkpoint``: a file written every
    ``checkpoint_every`` steps, at the end, and with the last finished step when any exception stops
    the run (which is then re-raised, with a note saying what was saved); with ``resume=True`` an
    existing one is loaded first. ``callback(step, record)`` runs after every finished step. The global RNG is
    seeded with ``config.seed`` at the start (dropout and LSH hashing draw from it). ``until`` stops after that
    many steps while keeping ``config.steps``'s learning-rate schedule: the first steps of the longer run.
    """
    if not isinstance(config, TrainConfig):
        raise ArgumentTypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    stop = config.steps if until is None else as_int("until", until, minimum=1, maximum=config.steps)
    resume = as_bool("resume", resume)
    if progress is not None:
        progress = as_bool("progress", progress)
    device = torch.device(device)
    rank, world = _distributed()
    model.to(device).train()
    torch.manual_seed(config.seed)
    step_model: nn.Module = model
    if world > 1:
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                         else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run = _Run(model, step_model, optimizer, torch.Generator().manual_seed(config.seed), device, TrainResult())
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None and resume and path.is_file():
        run.restore(load_checkpoint(path, device), config)
    started = time.perf_counter()
    try:
        _loop(run, task, config, path, progress_enabled(progress), callback, stop)
    finally:
        run.result.wall_time = time.perf_counter() - started
    return run.result


def _loop(run: _Run, task: Task, config: TrainConfig, path: Path | None, show: bool,
          callback: Callable[[int, dict[str, float]], None] | None, stop: int) -> None:
    rank, _ = _distributed()
    save = path is not None and rank == 0
    started, at_boundary = time.perf_counter(), True
    eval_size = config.eval_batch_size or config.batch_size
    step_start: tuple[dict[str, Any], Tensor] | None = None
    with _bar(config, run.step, show) as bar, _DeferredInterrupt().installed() as interrupt:
        try:
            while run.step < stop:
                if save:  # the random states a half-done step is rolled back to
                    step_start = (_rng_state(run.device), run.generator.get_state())
                at_boundary, run.updating = False, False
                loss = _one_step(run, task, config)
                run.step += 1
                at_boundary, run.updating = True, False
                record = {"step": run.step, "loss": loss, "lr": config.lr_at(run.step - 1),
                          "seconds": time.perf_counter() - started}
                if _periodic(run.step, config.log_every, config.steps):
                    run.result.history.append(record)
                if _periodic(run.step, config.eval_every, config.steps):
                    metrics = evaluate(run.model, task, batches=config.eval_batches, batch_size=eval_size,
                                       seed=config.eval_seed, device=run.device)
                    run.result.evals.append({"step": run.step, **metrics})
                    bar.set_postfix(loss=f"{loss:.3f}", acc=f"{metrics['accuracy']:.3f}")
                if save and _periodic(run.step, config.checkpoint_every, config.steps):
                    _save(path, run.state(config))  # type: ignore[arg-type]
                bar.update(1)
                if callback is not None:
                    callback(run.step, record)
                if interrupt.requested:
                    raise KeyboardInterrupt
        except BaseException as error:  # KeyboardInterrupt included: save the last finished step, then re-raise
            if save:
                _save_on_error(run, config, path, error, at_boundary, step_start)  # type: ignore[arg-type]
            raise
    run.result.steps = run.step
    run.result.final = dict(run.result.evals[-1]) if run.result.evals else {}
