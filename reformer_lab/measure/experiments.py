"""The experiment runner (paper §5; Table 2 for duplication): ``python -m reformer_lab.experiments duplication|charlm``.

Each named experiment is one config away from its baseline (paper §5): the ``--setting`` picks the
attention (``full``, ``lsh-1``, ``lsh-2``, ``lsh-4``, and ``lsh-8`` for charlm; every model is
shared-QK, as in the paper's Table 2), the ``--scale`` picks the sizes:

* ``lesson``: CPU, minutes. Duplication: |w| = 63 (length 128), 1 layer, d_model = d_ff = 128, 4 heads.
* ``paper``: the paper's sizes, for a GPU. Duplication (§2.1): |w| = 511 (length 1024), N = 127,
  1 layer, d_model = d_ff = 256, 4 heads, 150K steps (batch 8, Adam: not stated in the paper, our choice).
  charlm: the §5 ablation model (3 layers, d_model 1024, d_ff 4096, 8 heads, batch 8) on enwik8
  (``--data enwik8.zip``) at ``--length`` (default 65536, with axial positions as in trax's later enwik8
  config, since a learned table of 64K × 1024 would dwarf the model; not in the paper).
* ``tiny``: a few seconds, for tests and smoke runs.

A run writes ``results/<experiment>/<run>.json`` (config, seed, metrics over time, final evaluation,
wall time, device, torch version, git commit) and the checkpoint ``<run>.pt`` beside it; rerunning
the same command after an interruption resumes from that checkpoint (``--fresh`` starts over). For
duplication the final evaluation is paper Table 2's row: accuracy on the second copy of w evaluated
with full attention and with LSH-8, LSH-4, LSH-2, LSH-1, from the same weights.

Data parallel: ``torchrun --nproc_per_node=N -m reformer_lab.experiments ...`` runs the same command
with DistributedDataParallel (gloo on CPU, nccl on CUDA); ``--batch-size`` is the global batch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from reformer_lab.data import CharCorpus, DuplicationTask, enwik8_corpus
from reformer_lab.measure.memory import peak_rss_bytes
from reformer_lab.model import ReformerConfig, ReformerLM
from reformer_lab.train import TrainConfig, evaluate, load_checkpoint, train
from reformer_lab.validation import one_of

__all__ = ["EVAL_COLUMNS", "EXPERIMENTS", "SCALES", "ExperimentError", "Spec", "load_model", "main",
           "measure_model_step", "run_experiment", "spec_for", "time_model_step"]

EXPERIMENTS = ("duplication", "charlm")


class ExperimentError(ValueError):
    """A run that cannot start: unknown name, impossible config, unreadable data, missing device."""

SCALES = ("tiny", "lesson", "paper")
SETTINGS = {"duplication": ("full", "lsh-1", "lsh-2", "lsh-4"), "charlm": ("full", "lsh-1", "lsh-2", "lsh-4", "lsh-8")}
#: Paper Table 2's evaluation columns: attention used at evaluation.
EVAL_COLUMNS = ("full", "lsh-8", "lsh-4", "lsh-2", "lsh-1")


@dataclass(frozen=True)
class Spec:
    """One run: the model, the task's size, the optimisation."""

    model: ReformerConfig
    task: dict[str, Any]
    train: TrainConfig


def parse_setting(setting: str) -> tuple[str, int]:
    """``"full"`` → ("full", 1); ``"lsh-4"`` → ("lsh", 4)."""
    if setting == "full":
        return "full", 1
    kind, _, rounds = setting.partition("-")
    if kind != "lsh" or not rounds.isdigit() or int(rounds) < 1:
        raise ValueError(f"setting must be 'full' or 'lsh-<n_hashes>', got {setting!r}")
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


def spec_for(experiment: str, setting: str, scale: str, *, steps: int | None = None, batch_size: int | None = None,
             seed: int = 0, length: int | None = None, vocab_size: int | None = None) -> Spec:
    """The :class:`Spec` of a named run; unknown names and impossible configs raise ``ValueError`` here."""
    one_of("experiment", experiment, EXPERIMENTS)
    one_of(f"setting of {experiment}", setting, SETTINGS[experiment])
    one_of("scale", scale, SCALES)
    attention, n_hashes = parse_setting(setting)
    task, model, opt = (_DUPLICATION if experiment == "duplication" else _CHARLM)[scale]
    task, model = dict(task), dict(model, attention=attention, n_hashes=n_hashes, n_layers=model.get("n_layers", 1))
    if experiment == "duplication":
        if length is not None:
            task["w_len"] = length // 2 - 1
        model.update(vocab_size=task["n_symbols"] + 1, max_len=2 * (task["w_len"] + 1))
    else:
        task["length"] = length or task["length"]
        model.update(vocab_size=vocab_size or 256, max_len=task["length"])
    changes = {k: v for k, v in (("steps", steps), ("batch_size", batch_size)) if v is not None}
    return Spec(ReformerConfig(**model), task, TrainConfig(**{**opt, **changes, "seed": seed}))


def _build_task(experiment: str, spec_task: dict[str, Any], data: str | None) -> Any:
    if experiment == "duplication":
        return DuplicationTask(**spec_task)
    if data:
        return enwik8_corpus(data, spec_task["length"])
    return CharCorpus.python_docs(spec_task["length"])


def git_commit() -> str:
    """The current git commit of the working directory ("unknown" outside a repository)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None outside a repository)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, check=True, timeout=10)
        return bool(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ReformerLM:
    """The :class:`ReformerLM` saved in a runner checkpoint (``<run>.pt``), in eval mode."""
    state = load_checkpoint(path, device)
    model = ReformerLM(ReformerConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def table2_row(model: ReformerLM, task: Any, train_config: TrainConfig, device: torch.device | str) -> dict[str, float]:
    """Second-half accuracy of one trained model evaluated with each of Table 2's attentions."""
    row = {}
    for column in EVAL_COLUMNS:
        attention, n_hashes = parse_setting(column)
        other = model.with_attention(attention, n_hashes if attention == "lsh" else None)
        row[column] = evaluate(other, task, batches=train_config.eval_batches,
                               batch_size=train_config.eval_batch_size or train_config.batch_size,
                               seed=train_config.eval_seed, device=device)["accuracy"]
    return row


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


def run_experiment(experiment: str, setting: str, scale: str = "lesson", *, device: str = "cpu",
                   steps: int | None = None, batch_size: int | None = None, seed: int = 0,
                   out: str | Path | None = None, data: str | None = None, length: int | None = None,
                   fresh: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Run one named experiment end to end and return (and, on rank 0, write) its JSON record."""
    try:
        task_probe = spec_for(experiment, setting, scale, steps=steps, batch_size=batch_size, seed=seed,
                              length=length)
        task = _build_task(experiment, task_probe.task, data)  # unreadable data fails here, before training
        spec = spec_for(experiment, setting, scale, steps=steps, batch_size=batch_size, seed=seed, length=length,
                        vocab_size=getattr(task, "vocab_size", None))
        _check_device(device)
    except (ValueError, OSError) as error:
        raise ExperimentError(str(error)) from error
    out = Path(out) if out else Path("results") / experiment / f"{setting}-{scale}.json"
    checkpoint = out.with_suffix(".pt")
    torch_device, rank, world = _setup_distributed(device)
    if spec.train.batch_size % world:
        raise ExperimentError(f"--batch-size {spec.train.batch_size} must be divisible by the {world} processes")
    try:
        torch.manual_seed(seed)
        model = ReformerLM(spec.model)
        started = time.perf_counter()
        result = train(model, task, spec.train, checkpoint=checkpoint, resume=not fresh, progress=progress,
                       device=torch_device)
        wall = time.perf_counter() - started
        record = _record(experiment, setting, scale, spec, result, wall, torch_device, world, checkpoint)
        if experiment == "duplication":
            record["table2"] = table2_row(model, task, spec.train, torch_device)
        if rank == 0:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(record, indent=1))
    finally:
        if world > 1:
            dist.destroy_process_group()
    return record


def _record(experiment: str, setting: str, scale: str, spec: Spec, result: Any, wall: float, device: torch.device,
            world: int, checkpoint: Path) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"experiment": experiment, "setting": setting, "scale": scale, "seed": spec.train.seed,
            "config": {"model": spec.model.to_dict(), "task": spec.task, "train": asdict(spec.train)},
            "parameters": sum(p.numel() for p in ReformerLM(spec.model).parameters()),
            "metrics": {"train": result.history, "eval": result.evals}, "final": result.final,
            "wall_time_s": wall, "resumed_from": result.resumed_from, "device": f"{device} ({name})",
            "world_size": world, "threads": torch.get_num_threads(), "torch": torch.__version__,
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
        if name == "charlm":
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
