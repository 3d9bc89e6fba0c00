"""The experiment runner (paper §5): ``python -m reformer_lab.experiments duplication|charlm|ablation``.

Each named experiment is one config away from its baseline (paper §5): the ``--setting`` picks the
attention (``full``, ``lsh-1``, ``lsh-2``, ``lsh-4``, and ``lsh-8`` for charlm; ``local`` for duplication,
local attention (a limited span, paper §2.1) in chunks of the LSH chunk size,
which cannot reach the first copy of w; every model is
shared-QK, as in the paper's Table 2), the ``--scale`` picks the sizes:

* ``lesson``: CPU, minutes. Duplication: |w| = 63 (length 128), 1 layer, d_model = d_ff = 128, 4 heads.
* ``paper``: the paper's sizes, for a GPU. Duplication (§2.1): |w| = 511 (length 1024), N = 127,
  1 layer, d_model = d_ff = 256, 4 heads, 150K steps (batch 8, Adam: not stated in the paper, our choice).
  charlm: the §5 ablation model (3 layers, d_model 1024, d_ff 4096, 8 heads, batch 8) on enwik8
  (``--data enwik8.zip``) at ``--length`` (default 65536, with axial positions as in trax's later enwik8
  config, since a learned table of 64K × 1024 would dwarf the model; not in the paper).
* ``tiny``: a few seconds, for tests and smoke runs.

``ablation`` (lesson 09, paper §5's Figures 3, 4 and 5 left) trains on the repeated-text task
(:class:`~reformer_lab.data.RepeatedTextTask`: a window of Python's documentation, or of enwik8 with ``--data``,
written twice) and its ``--setting`` changes one thing of the base model ``full`` (full shared-QK attention,
reversible, 2 layers): ``separate-qk`` (Figure 3 left), ``transformer`` (the single-stream Transformer, Figure 3
right), ``lsh-1`` … ``lsh-8`` (Figure 4), ``layers-1``, ``layers-4``, ``layers-8`` (Figure 5 left). Its ``lesson``
scale (our choice, sized for 2 CPU cores): length 128, d_model 128, d_ff 256, 4 heads, chunk 16, 300 steps of
32 sequences. The run ends with :func:`~reformer_lab.measure.ablation_stats.final_evaluation` (bits per position,
text and copy halves, the copy without its source, and for ``full`` and LSH settings Table 2's cross-evaluation
in bits).

A run writes ``results/<experiment>/<run>.json`` (config, seed, metrics over time, final evaluation,
wall time, device, torch version, git commit) and the checkpoint ``<run>.pt`` beside it; rerunning
the same command after an interruption resumes from that checkpoint (``--fresh`` starts over). For
duplication the final evaluation is paper Table 2's row: accuracy on the second copy of w evaluated
with full attention and with LSH-8, LSH-4, LSH-2, LSH-1, from the same weights (and, for a ``local`` run,
with local attention too, its ``local`` column).

Nothing is lost and nothing runs that should not:

* Everything the run needs to the end is checked before the first step: the configs, the data, the
  device, the output directory (created, and written to), and for duplication every Table 2 evaluation
  at the run's length (each evaluation model is built and run on one example).
* ``<run>.run.json`` beside the checkpoint records which run made it (experiment, setting, scale, task,
  data). Resuming is refused, with every differing field listed (checkpoint's value, this run's), when the
  checkpoint's run, its model config (:class:`~reformer_lab.model.ReformerConfig`) or its training config
  (:class:`~reformer_lab.train.TrainConfig`) differs from this run's; no field may change on resume
  (:data:`RESUMABLE_TRAIN_FIELDS` is empty: the learning-rate schedule depends on ``steps``, so a run
  extended to more steps is not the run trained for that many). ``--fresh`` discards the checkpoint.
* Checkpoints are read with ``weights_only=True`` (never running code from the file); a damaged one is
  an error naming it and ``--fresh``. The JSON files and the checkpoint are written atomically
  (:mod:`reformer_lab.files`), so a run killed at any moment leaves whole files, and rerunning
  it ends with the same JSON record (up to times and dates) as a run never interrupted.

Data parallel: ``torchrun --nproc_per_node=N -m reformer_lab.experiments ...`` runs the same command
with DistributedDataParallel (gloo on CPU, nccl on CUDA); ``--batch-size`` is the global batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from reformer_lab.data import CharCorpus, DuplicationTask, RepeatedTextTask, enwik8_corpus
from reformer_lab.files import check_writable, remove_stale_temps, write_json_atomic
from reformer_lab.measure.ablation_stats import final_evaluation
from reformer_lab.measure.memory import peak_rss_bytes
from reformer_lab.measure.provenance import git_commit, git_dirty
from reformer_lab.model import ReformerConfig, ReformerLM
from reformer_lab.train import CheckpointError, TrainConfig, evaluate, load_checkpoint, train
from reformer_lab.validation import as_int, one_of

__all__ = ["EVAL_COLUMNS", "EXPERIMENTS", "RESUMABLE_TRAIN_FIELDS", "SCALES", "ExperimentError", "Spec",
           "ablation_changes", "check_table2", "load_model", "main", "measure_model_step", "resume_conflicts",
           "run_experiment", "run_file_for", "spec_for", "time_model_step"]

EXPERIMENTS = ("duplication", "charlm", "ablation")


class ExperimentError(ValueError):
    """A run that cannot start: unknown name, impossible config, unreadable data, missing device."""

SCALES = ("tiny", "lesson", "paper")
SETTINGS = {"duplication": ("full", "lsh-1", "lsh-2", "lsh-4", "local"),
            "charlm": ("full", "lsh-1", "lsh-2", "lsh-4", "lsh-8"),
            "ablation": ("full", "separate-qk", "transformer", "lsh-1", "lsh-2", "lsh-4", "lsh-8", "layers-1",
                         "layers-4", "layers-8")}
#: Paper Table 2's evaluation columns: attention used at evaluation.
EVAL_COLUMNS = ("full", "lsh-8", "lsh-4", "lsh-2", "lsh-1")
#: TrainConfig fields that may differ between a checkpoint and the run resuming it: none (see the module docstring).
RESUMABLE_TRAIN_FIELDS: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    """One run: the model, the task's size, the optimisation."""

    model: ReformerConfig
    task: dict[str, Any]
    train: TrainConfig


def parse_setting(setting: str) -> tuple[str, int]:
    """``"full"`` → ("full", 1); ``"local"`` → ("local", 1); ``"lsh-4"`` → ("lsh", 4)."""
    if setting in ("full", "local"):
        return setting, 1
    kind, _, rounds = setting.partition("-")
    if kind != "lsh" or not rounds.isdigit() or int(rounds) < 1:
        raise ValueError(f"setting must be 'full', 'local' or 'lsh-<n_hashes>', got {setting!r}")
    return "lsh", int(rounds)


_DUPLICATION = {
    "tiny": (dict(w_len=15, n_symbols=15), dict(max_len=32, d_model=32, d_ff=32, n_heads=2, chunk_size=8),
             dict(steps=20, batch_size=8, lr=3e-3, warmup=5, eval_every=10, eval_batches=1, checkpoint_every=10,
                  log_every=1)),
    "lesson": (dict(w_len=63, n_symbols=127), dict(max_len=128, d_model=128, d_ff=128, n_heads=4, chunk_size=32),
               dict(steps=600, batch_size=32, lr=1e-3, warmup=100, eval_every=100, eval_batches=4,
                    checkpoint_every=100, log_every=10)),
    "paper": (dict(w_len=511, n_symbols=127), dict(max_len=1024, d_model=256, d_ff=256, n_heads=4, chunk_size=64),
              dict(steps=150_000, batch_size=8, lr=1e-3, warmup=1000, eval_every=2000, eval_batches=8,
                   checkpoint_every=1000, log_every=100)),
}

_CHARLM = {
    "tiny": (dict(length=32), dict(d_model=32, d_ff=64, n_heads=2, n_layers=2, chunk_size=8),
             dict(steps=20, batch_size=8, lr=3e-3, warmup=5, eval_every=10, eval_batches=1, checkpoint_every=10,
                  log_every=1)),
    "lesson": (dict(length=128), dict(d_model=128, d_ff=256, n_heads=4, n_layers=2, chunk_size=32),
               dict(steps=1000, batch_size=16, lr=1e-3, warmup=100, eval_every=100, eval_batches=4,
                    checkpoint_every=100, log_every=10)),
    "paper": (dict(length=65536), dict(d_model=1024, d_ff=4096, n_heads=8, n_layers=3, chunk_size=128,
                                      ff_chunks=8, loss_chunks=8, positional="axial"),  # axial: trax's, not §5's
              dict(steps=60_000, batch_size=8, lr=2e-4, warmup=8000, eval_every=2000, eval_batches=2,
                   checkpoint_every=500, log_every=50)),
}

_ABLATION = {
    "tiny": _CHARLM["tiny"],  # the same smoke-test sizes
    "lesson": (dict(length=128), dict(d_model=128, d_ff=256, n_heads=4, n_layers=2, chunk_size=16),
               dict(steps=300, batch_size=32, lr=2e-3, warmup=30, eval_every=25, eval_batches=4,
                    checkpoint_every=50, log_every=10)),
    "paper": (dict(length=4096), dict(d_model=1024, d_ff=4096, n_heads=8, n_layers=3, chunk_size=128,
                                     ff_chunks=8, loss_chunks=8),
              dict(steps=20_000, batch_size=8, lr=2e-4, warmup=2000, eval_every=1000, eval_batches=2,
                   checkpoint_every=500, log_every=50)),
}


def ablation_changes(setting: str) -> dict[str, Any]:
    """The :class:`ReformerConfig` fields an ablation ``setting`` changes in the base model (full shared-QK)."""
    one_of("setting of ablation", setting, SETTINGS["ablation"])
    if setting == "separate-qk":
        return {"attention": "full", "shared_qk": False}
    if setting == "transformer":
        return {"attention": "full", "stack": "transformer", "reversible": False}
    if setting.startswith("layers-"):
        return {"attention": "full", "n_layers": int(setting.split("-")[1])}
    attention, n_hashes = parse_setting(setting)
    return {"attention": attention, "n_hashes": n_hashes}


def _ablation_spec(setting: str, scale: str, length: int | None, vocab_size: int | None) -> tuple[dict, dict, dict]:
    task, model, opt = _ABLATION[scale]
    task = dict(task)
    if length is not None:
        if as_int("length", length, minimum=4) % 2:
            raise ValueError(f"length of a repeated-text sequence (w w) must be even, got {length}")
        task["length"] = length
    model = dict(model, **ablation_changes(setting), vocab_size=vocab_size or 256, max_len=task["length"])
    return task, model, opt


def spec_for(experiment: str, setting: str, scale: str, *, steps: int | None = None, batch_size: int | None = None,
             seed: int = 0, length: int | None = None, vocab_size: int | None = None) -> Spec:
    """The :class:`Spec` of a named run; unknown names and impossible configs raise ``ValueError`` here."""
    one_of("experiment", experiment, EXPERIMENTS)
    one_of(f"setting of {experiment}", setting, SETTINGS[experiment])
    one_of("scale", scale, SCALES)
    changes = {k: v for k, v in (("steps", steps), ("batch_size", batch_size)) if v is not None}
    if experiment == "ablation":
        task, model, opt = _ablation_spec(setting, scale, length, vocab_size)
        return Spec(ReformerConfig(**model), task, TrainConfig(**{**opt, **changes, "seed": seed}))
    attention, n_hashes = parse_setting(setting)
    task, model, opt = (_DUPLICATION if experiment == "duplication" else _CHARLM)[scale]
    task, model = dict(task), dict(model, attention=attention, n_hashes=n_hashes, n_layers=model.get("n_layers", 1))
    if experiment == "duplication":
        if length is not None:  # sequences 0 w 0 w: an even length of at least 4
            if as_int("length", length, minimum=4) % 2:
                raise ValueError(f"length of a duplication sequence (0 w 0 w) must be even, got {length}")
            task["w_len"] = length // 2 - 1
        model.update(vocab_size=task["n_symbols"] + 1, max_len=2 * (task["w_len"] + 1))
    else:
        if length is not None:  # was `length or default`: --length 0 silently ran the default length
            task["length"] = as_int("length", length, minimum=2)
        model.update(vocab_size=vocab_size or 256, max_len=task["length"])
    return Spec(ReformerConfig(**model), task, TrainConfig(**{**opt, **changes, "seed": seed}))


def _build_task(experiment: str, spec_task: dict[str, Any], data: str | None) -> Any:
    if experiment == "duplication":
        return DuplicationTask(**spec_task)
    corpus = enwik8_corpus(data, spec_task["length"]) if data else CharCorpus.python_docs(spec_task["length"])
    return RepeatedTextTask(corpus, spec_task["length"]) if experiment == "ablation" else corpus


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ReformerLM:
    """The :class:`ReformerLM` saved in a runner checkpoint (``<run>.pt``), in eval mode.

    Read with ``weights_only=True`` (:func:`~reformer_lab.train.load_checkpoint`): tensors and plain values only.
    """
    state = load_checkpoint(path, device)
    if not isinstance(state.get("model_config"), dict):
        raise CheckpointError(path, f"the checkpoint {path} records no model config, so no model can be built")
    model = ReformerLM(ReformerConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def _column_changes(column: str) -> dict[str, Any]:
    """The config changes that evaluate a model with Table 2's ``column`` attention (as ``with_attention``)."""
    attention, n_hashes = parse_setting(column)
    return {"attention": attention, **({"n_hashes": n_hashes} if attention == "lsh" else {})}


def _table2(model: ReformerLM, task: Any, batches: int, batch_size: int, seed: int,
            device: torch.device | str) -> dict[str, float]:
    row = {}
    own = () if model.config.attention in ("full", "lsh") else (model.config.attention,)  # e.g. local's own column
    for column in EVAL_COLUMNS + own:
        other = model.with_attention(**_column_changes(column))
        metrics = evaluate(other, task, batches=batches, batch_size=batch_size, seed=seed, device=device)
        row[column] = metrics["accuracy"]
    return row


def table2_row(model: ReformerLM, task: Any, train_config: TrainConfig, device: torch.device | str) -> dict[str, float]:
    """Second-half accuracy of one trained model evaluated with each of Table 2's attentions (and with its own
    attention, as one more column, when that is none of them: ``local``)."""
    return _table2(model, task, train_config.eval_batches, train_config.eval_batch_size or train_config.batch_size,
                   train_config.eval_seed, device)


def check_table2(model_config: ReformerConfig, task: Any) -> None:
    """Raise ``ValueError`` unless every Table 2 evaluation works at ``model_config``'s length: each column's
    config is made, and an untrained model is evaluated with each on one example (the caller's RNG untouched)."""
    for column in EVAL_COLUMNS:
        try:
            replace(model_config, **_column_changes(column))
        except ValueError as error:
            raise ValueError(f"this run would train, then fail to make its Table 2 row at length "
                             f"{model_config.max_len}: evaluating with {column} attention fails: {error}") from error
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = ReformerLM(model_config)
        try:
            _table2(probe, task, 1, 1, 0, "cpu")
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"this run could not make its Table 2 row: a trial evaluation failed: {error}") from error


def _check_device(device: str) -> None:
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")


def _setup_distributed(device: str) -> tuple[torch.device, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return torch.device(device), 0, 1
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return torch.device("cuda", local), dist.get_rank(), world
    dist.init_process_group("gloo")
    return torch.device("cpu"), dist.get_rank(), world


def run_file_for(out: str | Path) -> Path:
    """``<run>.run.json`` beside the record ``<run>.json``: which run made the checkpoint ``<run>.pt``."""
    return Path(out).with_suffix(".run.json")


def _identity(experiment: str, setting: str, scale: str, spec: Spec, data: str | None) -> dict[str, Any]:
    return {"experiment": experiment, "setting": setting, "scale": scale, "task": dict(spec.task),
            "data": str(Path(data).resolve()) if data else None}


def _setting_of(model_config: dict[str, Any]) -> str:
    attention = model_config.get("attention")
    return attention if attention in ("full", "local") else f"lsh-{model_config.get('n_hashes')}"


def _differences(label: str, saved: dict[str, Any], current: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    keys = list(current) + [key for key in saved if key not in current]
    return [f"{label}{key}: checkpoint {saved.get(key, '(absent)')!r}, this run {current.get(key, '(absent)')!r}"
            for key in keys if key not in skip and saved.get(key, ...) != current.get(key, ...)]


def resume_conflicts(state: dict[str, Any], run_info: dict[str, Any] | None, identity: dict[str, Any],
                     spec: Spec) -> list[str]:
    """Every field in which the checkpoint ``state`` (and its run file ``run_info``, if any) differs from the run
    ``identity``/``spec`` about to resume it, as ``"field: checkpoint X, this run Y"`` (empty: it may resume).

    Compared: the experiment, setting, scale, task and data (from the run file; the setting also from the model
    config), every :class:`ReformerConfig` field, and every :class:`TrainConfig` field but
    :data:`RESUMABLE_TRAIN_FIELDS`.
    """
    saved_model, saved_train = state.get("model_config"), state.get("train_config")
    lines = []
    if run_info is not None:
        names = ("experiment", "setting", "scale", "data")
        lines += _differences("", {k: run_info.get(k) for k in names}, {k: identity[k] for k in names})
        lines += _differences("task.", dict(run_info.get("task") or {}), identity["task"])
    elif (identity["experiment"] != "ablation" and isinstance(saved_model, dict)
          and _setting_of(saved_model) != identity["setting"]):
        lines.append(f"setting: checkpoint {_setting_of(saved_model)!r}, this run {identity['setting']!r}")
    for label, saved, current, skip in (("model.", saved_model, spec.model.to_dict(), ()),
                                        ("train.", saved_train, asdict(spec.train), RESUMABLE_TRAIN_FIELDS)):
        if isinstance(saved, dict):
            lines += _differences(label, saved, current, skip)
        else:
            lines.append(f"{label[:-1]}: the checkpoint records no {label[:-1]} config")
    return lines


def _read_run_file(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ExperimentError(f"the run file {path} cannot be read ({error}); rerun with --fresh to start "
                              "over") from error
    if not isinstance(info, dict):
        raise ExperimentError(f"the run file {path} is not a JSON object; rerun with --fresh to start over")
    return info


def _check_resume(checkpoint: Path, run_file: Path, identity: dict[str, Any], spec: Spec) -> None:
    """Refuse (``ExperimentError``) a checkpoint that cannot be read or that another run made."""
    try:
        state = load_checkpoint(checkpoint, "cpu")
    except CheckpointError as error:
        raise ExperimentError(f"cannot resume: {error.problem}; rerun with --fresh to discard it and start over "
                              "(or choose another --out)") from error
    conflicts = resume_conflicts(state, _read_run_file(run_file), identity, spec)
    if conflicts:
        raise ExperimentError(f"cannot resume from {checkpoint}: another run made it. Differences:\n  "
                              + "\n  ".join(conflicts)
                              + "\nRerun with --fresh to discard that checkpoint and start over, or choose another "
                              "--out.")


def _prepare_outputs(out: Path, checkpoint: Path, run_file: Path) -> None:
    """Before any work: the three paths are distinct files in a writable directory; stale temporaries go."""
    if len({out.resolve(), checkpoint.resolve(), run_file.resolve()}) < 3:
        raise ExperimentError(f"--out {out} would share its name with the checkpoint {checkpoint} or the run file "
                              f"{run_file}: give a .json path")
    try:
        for path in (out, checkpoint, run_file):
            check_writable(path)
            remove_stale_temps(path)
    except OSError as error:
        raise ExperimentError(str(error)) from error


@contextmanager
def _flushing_denormals() -> Iterator[None]:
    """Subnormal floats flushed to zero on CPU within the block (torch's default, off, afterwards).

    Early in training, tiny weights and masked logits make subnormal numbers that slowed a CPU step of the LSH
    models down 2.5× in our measurement; flushing them changes no result we report.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _cross_evaluated(experiment: str, setting: str) -> bool:
    """Whether a run ends with Table 2's cross-evaluation: every duplication run, and ablation's full and LSH runs."""
    ablation_cross = experiment == "ablation" and (setting == "full" or setting.startswith("lsh"))
    return experiment == "duplication" or ablation_cross


def run_experiment(experiment: str, setting: str, scale: str = "lesson", *, device: str = "cpu",
                   steps: int | None = None, batch_size: int | None = None, seed: int = 0,
                   out: str | Path | None = None, data: str | None = None, length: int | None = None,
                   fresh: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Run one named experiment end to end and return (and, on rank 0, write) its JSON record.

    Everything the run needs to its end is checked before the first step (see the module docstring);
    ``ExperimentError`` says what is wrong, and nothing has been trained or written then.
    """
    try:
        task_probe = spec_for(experiment, setting, scale, steps=steps, batch_size=batch_size, seed=seed,
                              length=length)
        task = _build_task(experiment, task_probe.task, data)  # unreadable data fails here, before training
        spec = spec_for(experiment, setting, scale, steps=steps, batch_size=batch_size, seed=seed, length=length,
                        vocab_size=getattr(task, "vocab_size", None))
        _check_device(device)
        if _cross_evaluated(experiment, setting):  # the Table 2 row is made after the last step: check it can be
            check_table2(spec.model, task)
        json.dumps({"task": spec.task, "model": spec.model.to_dict(), "train": asdict(spec.train)})
    except (ValueError, TypeError, OSError) as error:
        raise ExperimentError(str(error)) from error
    out = Path(out) if out else Path("results") / experiment / f"{setting}-{scale}.json"
    checkpoint, run_file = out.with_suffix(".pt"), run_file_for(out)
    identity = _identity(experiment, setting, scale, spec, data)
    torch_device, rank, world = _setup_distributed(device)
    try:
        if spec.train.batch_size % world:
            raise ExperimentError(f"--batch-size {spec.train.batch_size} must be divisible by the {world} processes")
        if rank == 0:
            _prepare_outputs(out, checkpoint, run_file)
        if not fresh and checkpoint.is_file():
            _check_resume(checkpoint, run_file, identity, spec)
        if rank == 0:
            if fresh:  # the old checkpoint must not outlive the run file that names another run
                checkpoint.unlink(missing_ok=True)
            write_json_atomic(run_file, {**identity, "checkpoint": checkpoint.name})
        if world > 1:
            dist.barrier()
        torch.manual_seed(seed)
        model = ReformerLM(spec.model)
        started = time.perf_counter()
        with _flushing_denormals():
            result = train(model, task, spec.train, checkpoint=checkpoint, resume=not fresh, progress=progress,
                           device=torch_device)
        wall = time.perf_counter() - started
        record = _record(experiment, setting, scale, spec, model, result, wall, torch_device, world, checkpoint)
        if experiment == "duplication":
            record["table2"] = table2_row(model, task, spec.train, torch_device)
        if experiment == "ablation":
            record["evaluation"] = final_evaluation(
                model, task, batches=spec.train.eval_batches, seed=spec.train.eval_seed, device=torch_device,
                batch_size=spec.train.eval_batch_size or spec.train.batch_size,
                cross=_cross_evaluated(experiment, setting))
        if rank == 0:
            write_json_atomic(out, record)
    finally:
        if world > 1:
            dist.destroy_process_group()
    return record


def _record(experiment: str, setting: str, scale: str, spec: Spec, model: ReformerLM, result: Any, wall: float,
            device: torch.device, world: int, checkpoint: Path) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"experiment": experiment, "setting": setting, "scale": scale, "seed": spec.train.seed,
            "config": {"model": spec.model.to_dict(), "task": spec.task, "train": asdict(spec.train)},
            "parameters": sum(p.numel() for p in model.parameters()),
            "metrics": {"train": result.history, "eval": result.evals}, "final": result.final,
            "wall_time_s": wall, "resumed_from": result.resumed_from, "device": f"{device} ({name})",
            "world_size": world, "threads": torch.get_num_threads(), "flush_denormal": True, "torch": torch.__version__,
            "python": sys.version.split()[0], "git_commit": git_commit(), "git_dirty": git_dirty(),
            "checkpoint": str(checkpoint),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def time_model_step(config: ReformerConfig, batch_size: int = 1, repeats: int = 3,
                    device: str | torch.device = "cpu") -> dict[str, float]:
    """Seconds per training step (forward + backward + Adam) of the whole model, median of ``repeats``
    after one warm-up, and the peak CUDA memory on a GPU (for ``reformer_lab.measure.bench``)."""
    device = torch.device(device)
    model = ReformerLM(config).to(device)
    optimizer = torch.optim.Adam(model.parameters())
    tokens = torch.randint(0, config.vocab_size, (batch_size, config.max_len), device=device)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeats + 1):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model(tokens, targets=tokens).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    peak = float(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else float("nan")
    return {"seconds": sorted(times[1:])[len(times[1:]) // 2], "peak_cuda_bytes": peak}


def measure_model_step(config: ReformerConfig, batch_size: int = 1, repeats: int = 3, device: str = "cpu",
                       fresh_process: bool = True) -> dict[str, float]:
    """Seconds and peak memory per training step of the whole model (``python -m reformer_lab.bench model``).

    On CPU the step runs in a fresh process and the peak is the growth of its resident set
    (:func:`reformer_lab.measure.memory.peak_rss_bytes`); on CUDA it is PyTorch's peak allocation.
    ``fresh_process=False`` measures in this process (time only on CPU; for quick checks and tests).
    """
    if device.startswith("cuda") or not fresh_process:
        return time_model_step(config, batch_size, repeats, device)
    peak = peak_rss_bytes(time_model_step, config, batch_size, repeats, device, timeout=1800.0)
    return {"seconds": peak.output["seconds"], "peak_rss_bytes": float(peak.delta_bytes)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reformer_lab.experiments", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="experiment", required=True, metavar="{" + ",".join(EXPERIMENTS) + "}")
    for name in EXPERIMENTS:
        p = sub.add_parser(name, help=f"the {name} experiment")
        p.add_argument("--setting", choices=SETTINGS[name], default="full", help="attention used in training")
        p.add_argument("--scale", choices=SCALES, default="lesson")
        p.add_argument("--device", default="cpu", help="cpu or cuda")
        p.add_argument("--steps", type=int, help="override the scale's number of training steps")
        p.add_argument("--batch-size", type=int, help="global batch size (override)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--length", type=int, help="sequence length (override)")
        p.add_argument("--out", type=Path, help="JSON path (default results/<experiment>/<setting>-<scale>.json)")
        p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name in ("charlm", "ablation"):
            p.add_argument("--data", help="enwik8 file or enwik8.zip (default: Python's documentation text, offline)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        record = run_experiment(args.experiment, args.setting, args.scale, device=args.device, steps=args.steps,
                                batch_size=args.batch_size, seed=args.seed, out=args.out,
                                data=getattr(args, "data", None), length=args.length, fresh=args.fresh,
                                progress=False if args.no_progress else None)
    except ExperimentError as error:
        parser.error(str(error))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"final": record["final"], "table2": record.get("table2"),
                          "wall_time_s": round(record["wall_time_s"], 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
