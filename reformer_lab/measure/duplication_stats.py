"""Lesson 07, the duplication task (paper §2.1, Table 2): read the committed runs, evaluate them.

Pure compute, no plotting, over what ``make runs-duplication`` (``python -m reformer_lab.experiments duplication
--setting <setting> --scale lesson --seed <N>`` per run) wrote to ``results/duplication/``:

* ``<setting>-lesson-seed<N>.json``: the runner's record (config, seed, metrics over time, Table 2's row as
  ``table2``, provenance), for every setting of :data:`SETTINGS` and every seed of :data:`SEEDS`;
* ``<setting>-lesson-seed<N>.weights.pt``: the trained weights only (a ``state_dict``; the runner's own ``.pt``
  checkpoint also holds the optimiser and RNG states and is not committed). :func:`export_weights` makes it.

:func:`accuracy_table` evaluates every trained model with every attention of Table 2's columns, from the
same weights, with a fixed evaluation seed (so the table is the same on every run: it is the runner's own
``table2`` evaluation); :func:`table2_spread` summarises the ``table2`` rows that the records already hold over
the seeds, and :func:`curve_band` one metric's learning curve over the seeds. :data:`PAPER_TABLE2` holds the
paper's numbers for comparison. :func:`needed_key` and
:func:`local_window_coverage` make the task's point in numbers: the key a query needs is |w| positions back,
out of reach of a local window.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from reformer_lab.attention import FullSelfAttention, full_attention
from reformer_lab.data import DuplicationTask
from reformer_lab.files import write_atomic
from reformer_lab.measure.experiments import EVAL_COLUMNS, table2_row
from reformer_lab.model import ReformerConfig, ReformerLM
from reformer_lab.reversible import AttentionBranch
from reformer_lab.train import TrainConfig
from reformer_lab.validation import as_int, positive_int

__all__ = [
    "EVAL_COLUMNS",
    "PAPER_TABLE2",
    "RESULTS_DIR",
    "SEEDS",
    "SETTINGS",
    "Spread",
    "TRAIN_ROWS",
    "accuracy_table",
    "bucket_sweep",
    "curve_band",
    "export_weights",
    "full_attention_variants",
    "load_lesson_model",
    "load_record",
    "load_records",
    "local_window_coverage",
    "needed_key",
    "run_name",
    "table2_spread",
    "task_from_record",
    "weights_path",
]

#: Table 2's rows (attention in training), in the paper's order.
TRAIN_ROWS = ("full", "lsh-4", "lsh-2", "lsh-1")

#: Paper Table 2, accuracy in % on the second copy of w (|w| = 511, N = 127, 1 layer, 150K steps).
#: Rows: attention in training; columns: attention at evaluation (``EVAL_COLUMNS``).
PAPER_TABLE2: dict[str, dict[str, float]] = {
    "full": {"full": 100.0, "lsh-8": 94.8, "lsh-4": 92.5, "lsh-2": 76.9, "lsh-1": 52.5},
    "lsh-4": {"full": 0.8, "lsh-8": 100.0, "lsh-4": 99.9, "lsh-2": 99.4, "lsh-1": 91.9},
    "lsh-2": {"full": 0.8, "lsh-8": 100.0, "lsh-4": 99.9, "lsh-2": 98.1, "lsh-1": 86.8},
    "lsh-1": {"full": 0.8, "lsh-8": 99.9, "lsh-4": 99.6, "lsh-2": 94.8, "lsh-1": 77.9},
}

#: Where the runner writes the duplication results of this repository.
RESULTS_DIR = Path(__file__).resolve().parents[2] / "results" / "duplication"

#: The settings of the committed lesson runs (``make runs-duplication``): Table 2's four rows and local attention.
SETTINGS = ("full", "lsh-4", "lsh-2", "lsh-1", "local")

#: The training seeds of the committed lesson runs: every setting was trained once with each.
SEEDS = (0, 1, 2)


def needed_key(position: int, w_len: int) -> int:
    """The position a causal model must read to predict ``targets[position]`` on the second copy of w
    (``position`` must be a masked one, |w| + 1 … 2·|w|).

    In 0w0w the target of position i is token i + 1, which repeats token i + 1 − (|w| + 1) = i − |w|:
    the sequence has period |w| + 1, and the key that *holds the answer* is |w| positions back.
    """
    w_len = positive_int("w_len", w_len)
    return as_int("position", position, minimum=w_len + 1, maximum=2 * w_len) - w_len


def local_window_coverage(w_len: int, chunk_size: int) -> float:
    """Fraction of the masked queries whose needed key lies in a *local* window: the query's own chunk of
    ``chunk_size`` consecutive positions and the chunk before it (LSH's chunking without the hashing)."""
    w_len, chunk_size = positive_int("w_len", w_len), positive_int("chunk_size", chunk_size)
    masked = range(w_len + 1, 2 * w_len + 1)
    seen = [(needed_key(i, w_len) // chunk_size) >= (i // chunk_size) - 1 for i in masked]
    return sum(seen) / len(seen)


def run_name(setting: str, scale: str = "lesson", seed: int = 0) -> str:
    """The file stem of one run: ``<setting>-<scale>-seed<seed>``."""
    return f"{setting}-{scale}-seed{as_int('seed', seed, minimum=0)}"


def weights_path(setting: str, directory: str | Path | None = None, scale: str = "lesson", seed: int = 0) -> Path:
    """``<directory>/<setting>-<scale>-seed<seed>.weights.pt`` (default directory: :data:`RESULTS_DIR`)."""
    return Path(directory or RESULTS_DIR) / f"{run_name(setting, scale, seed)}.weights.pt"


def load_record(setting: str, directory: str | Path | None = None, scale: str = "lesson",
                seed: int = 0) -> dict[str, Any]:
    """The runner's JSON record ``<setting>-<scale>-seed<seed>.json``."""
    path = Path(directory or RESULTS_DIR) / f"{run_name(setting, scale, seed)}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; make it with `python -m reformer_lab.experiments duplication "
                                f"--setting {setting} --scale {scale} --seed {seed} --out {path}` "
                                f"(`make runs-duplication` makes every lesson run)")
    record = json.loads(path.read_text())
    if record.get("setting") != setting or record.get("seed") != seed:
        raise ValueError(f"{path} holds the run of setting {record.get('setting')!r}, seed {record.get('seed')!r}, "
                         f"not of {setting!r}, seed {seed}")
    return record


def load_records(settings: Sequence[str], seeds: Sequence[int] = SEEDS, directory: str | Path | None = None,
                 scale: str = "lesson") -> dict[str, list[dict[str, Any]]]:
    """``{setting: [record of each seed, in the order of seeds]}`` (:func:`load_record` for each)."""
    if not settings or not seeds:
        raise ValueError("load_records needs at least one setting and one seed")
    return {s: [load_record(s, directory, scale, n) for n in seeds] for s in settings}


class Spread(NamedTuple):
    """One number over several runs: their ``mean``, smallest (``low``) and largest (``high``) value."""

    mean: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        values = [float(v) for v in values]
        if not values:
            raise ValueError("a Spread needs at least one value")
        return cls(sum(values) / len(values), min(values), max(values))

    def percent(self, digits: int = 1, *, mean: bool = True) -> str:
        """The spread of fractions in %: ``"94.5% [93.2–95.4]"`` (mean, then the range), or with ``mean=False``
        the range alone, ``"93.2–95.4%"``; the range is left out (one number) where it rounds to one value."""
        low, high = f"{100 * self.low:.{digits}f}", f"{100 * self.high:.{digits}f}"
        if not mean:
            return f"{low}%" if low == high else f"{low}–{high}%"
        middle = f"{100 * self.mean:.{digits}f}%"
        return middle if low == high else f"{middle} [{low}–{high}]"


def table2_spread(records: Mapping[str, Sequence[Mapping[str, Any]]],
                  columns: Sequence[str] = EVAL_COLUMNS) -> dict[str, dict[str, Spread]]:
    """Table 2 over seeds: ``{train setting: {eval column: Spread}}`` of the ``table2`` rows that the runner
    wrote into each record (each run's own weights, evaluated with every attention of ``columns``)."""
    out = {}
    for setting, runs in records.items():
        if not runs:
            raise ValueError(f"no record for setting {setting!r}")
        missing = [c for r in runs for c in columns if c not in r.get("table2", {})]
        if missing:
            raise ValueError(f"a record of {setting!r} has no table2 entry for {sorted(set(missing))}")
        out[setting] = {c: Spread.of([r["table2"][c] for r in runs]) for c in columns}
    return out


def curve_band(runs: Sequence[Mapping[str, Any]], series: str = "train",
               metric: str = "loss") -> tuple[list[int], list[float], list[float], list[float]]:
    """``(steps, median, low, high)`` of one logged metric (``series`` "train" or "eval") over several runs that
    logged it at the same steps: the middle value and the range at each step."""
    if not runs:
        raise ValueError("curve_band needs at least one run")
    steps = [r["step"] for r in runs[0]["metrics"][series]]
    for run in runs[1:]:
        if [r["step"] for r in run["metrics"][series]] != steps:
            raise ValueError(f"the runs logged {series!r} at different steps, so their curves cannot be banded")
    values = [[r["metrics"][series][i][metric] for r in runs] for i in range(len(steps))]
    return steps, [float(statistics.median(v)) for v in values], [min(v) for v in values], [max(v) for v in values]


def task_from_record(record: Mapping[str, Any]) -> DuplicationTask:
    """The :class:`DuplicationTask` a run was trained on."""
    return DuplicationTask(**record["config"]["task"])


def export_weights(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the model weights of a runner checkpoint (``<run>.pt``) alone to ``out`` (a ``state_dict``), atomically:
    an interrupted export leaves the previous file or none, never half of one."""
    from reformer_lab.measure.experiments import load_model

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = load_model(checkpoint).state_dict()
    return write_atomic(out, lambda f: torch.save(state, f))


def load_lesson_model(setting: str, directory: str | Path | None = None, scale: str = "lesson",
                      seed: int = 0) -> ReformerLM:
    """The trained model of one setting and seed, rebuilt from its JSON config and its weights file, in eval mode."""
    record = load_record(setting, directory, scale, seed)
    path = weights_path(setting, directory, scale, seed)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; make it with export_weights() in this module from the run's "
                                "checkpoint")
    with torch.random.fork_rng(devices=[]):  # the throw-away initialisation leaves the caller's RNG alone
        model = ReformerLM(ReformerConfig.from_dict(record["config"]["model"]))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def accuracy_table(models: Mapping[str, ReformerLM], task: DuplicationTask, *, batches: int = 4,
                   batch_size: int = 32, seed: int = 1234) -> dict[str, dict[str, float]]:
    """Table 2 measured: ``{train setting: {eval column: accuracy in [0, 1]}}``, from the same weights.

    Uses the runner's :func:`~reformer_lab.measure.experiments.table2_row`, so the numbers are the runner's own
    evaluation with these ``batches``, ``batch_size`` and ``seed`` (the same batches and LSH rotations
    every call).
    """
    config = TrainConfig(eval_batches=batches, eval_batch_size=batch_size, eval_seed=seed, batch_size=batch_size)
    return {name: table2_row(model, task, config, "cpu") for name, model in models.items()}


def bucket_sweep(model: ReformerLM, task: DuplicationTask, chunk_sizes: Sequence[int], *, n_hashes: int = 1,
                 batches: int = 4, batch_size: int = 32, seed: int = 1234) -> dict[int, float]:
    """Accuracy of ``model``'s weights evaluated with LSH attention of ``n_hashes`` rounds at several
    ``chunk_size`` s, i.e. several bucket counts (n_buckets = 2·L / chunk_size)."""
    from reformer_lab.train import evaluate

    out = {}
    for chunk in chunk_sizes:
        config = dataclasses.replace(model.config, attention="lsh", n_hashes=n_hashes, chunk_size=chunk)
        with torch.random.fork_rng(devices=[]):
            other = ReformerLM(config)
        other.load_state_dict(model.state_dict())
        out[chunk] = evaluate(other.eval(), task, batches=batches, batch_size=batch_size, seed=seed)["accuracy"]
    return out


class _FullAttentionVariant(nn.Module):
    """Shared-QK full attention with the trained projections of a :class:`FullSelfAttention`, but with the
    self mask and the key normalisation switchable (for :func:`full_attention_variants`)."""

    def __init__(self, source: FullSelfAttention, *, self_mask: bool, unit_keys: bool) -> None:
        super().__init__()
        self.d_model, self.n_heads, self.causal = source.d_model, source.n_heads, source.causal
        self.to_qk, self.to_v, self.to_out = source.to_qk, source.to_v, source.to_out
        self.self_mask, self.unit_keys = self_mask, unit_keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.to_qk(x).unflatten(-1, (self.n_heads, -1)).transpose(-2, -3)
        v = self.to_v(x).unflatten(-1, (self.n_heads, -1)).transpose(-2, -3)
        k = q / q.norm(dim=-1, keepdim=True).clamp(min=1e-12) if self.unit_keys else q
        out = full_attention(q, v, k, causal=self.causal, self_mask=self.self_mask, scale=1.0)
        return self.to_out(out.transpose(-2, -3).flatten(-2))


def full_attention_variants(model: ReformerLM, task: DuplicationTask, variants: Mapping[str, Mapping[str, bool]],
                            *, batches: int = 4, batch_size: int = 32, seed: int = 1234) -> dict[str, float]:
    """Accuracy of ``model``'s weights evaluated with *full* shared-QK attention built in several ways.

    ``variants`` maps a name to ``{"self_mask": bool, "unit_keys": bool}``; ``{"self_mask": True,
    "unit_keys": True}`` is the package's own full attention (paper §2: k̂ = q/‖q‖, a token may not
    attend to itself). The other switches show what a full-attention path that differs in one detail does
    with the same weights.
    """
    from reformer_lab.train import evaluate

    full = model.with_attention("full").eval()
    out = {}
    for name, switches in variants.items():
        other = copy.deepcopy(full)
        for module in other.modules():
            if isinstance(module, AttentionBranch) and isinstance(module.attention, FullSelfAttention):
                module.attention = _FullAttentionVariant(module.attention, **switches)
        out[name] = evaluate(other, task, batches=batches, batch_size=batch_size, seed=seed)["accuracy"]
    return out
