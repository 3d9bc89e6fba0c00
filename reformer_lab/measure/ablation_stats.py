"""What the approximations cost (paper §5, Figures 3, 4 and 5 left), measured on the repeated-text task.

The task (:class:`~reformer_lab.data.RepeatedTextTask`) writes a window of text twice, ``w w``: the first
copy is plain text, the second repeats what lies half a sequence back. Every loss here is in bits per
character, split by where the target sits:

* ``text``: targets in the first copy, where the best a model can do is model the language (an n-gram model
  is the yardstick: :func:`ngram_baselines`);
* ``copy``: targets in the second copy, predictable only by attending half a sequence back;
* ``total``: all targets, the number the training curves show.

:func:`final_evaluation` is what the runner (``python -m reformer_lab.experiments ablation``) records after
the last step: bits per position, the split above, the copy's bits when the first half is replaced by
unrelated text (so nothing can be copied), and for full and LSH models Table 2's cross-evaluation in bits
(trained with one attention, evaluated with full and with LSH-8, 4, 2, 1). The rest reads committed runs
for lesson 09: learning curves by seed, spreads over seeds, and a verdict per comparison.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reformer_lab.data import RepeatedTextTask
from reformer_lab.measure.memory import saved_tensor_bytes
from reformer_lab.model import ReformerConfig, ReformerLM
from reformer_lab.ngram import fit_ngrams
from reformer_lab.validation import positive_int

__all__ = ["CROSS_COLUMNS", "RESULTS_DIR", "curve_bits", "final_evaluation", "largest_depth_within", "load_runs",
           "ngram_baselines", "position_bits", "seed_spread", "split_bits", "step_activation_bytes", "verdict"]

#: Where ``make runs-ablation`` writes the committed runs (the repository's ``results/ablation/``).
RESULTS_DIR = Path(__file__).resolve().parents[2] / "results" / "ablation"
#: Attentions a full or LSH model is evaluated with after training (paper Table 2's columns).
CROSS_COLUMNS = ("full", "lsh-8", "lsh-4", "lsh-2", "lsh-1")
_LN2 = math.log(2)


def _eval_batches(task: RepeatedTextTask, batches: int, batch_size: int, seed: int, unrelated: bool) -> list[Any]:
    generator = torch.Generator().manual_seed(seed)
    return [task.batch(batch_size, generator, split="valid", unrelated=unrelated) for _ in range(batches)]


@torch.no_grad()
def position_bits(model: nn.Module, task: RepeatedTextTask, *, batches: int = 4, batch_size: int = 32,
                  seed: int = 1234, unrelated: bool = False, n_hashes: int | None = None,
                  device: torch.device | str = "cpu") -> np.ndarray:
    """Mean bits per target position ``[length − 1]`` over ``batches`` validation batches drawn with ``seed``.

    The same batches (and LSH rotations) for every model given the same seed; ``unrelated=True`` draws u w
    sequences instead of w w. The caller's RNG and the model's train/eval mode are left as they were.
    """
    batches, batch_size = positive_int("batches", batches), positive_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    total = torch.zeros(task.length - 1, dtype=torch.float64)
    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for batch in _eval_batches(task, batches, batch_size, seed, unrelated):
            batch = batch.to(device)
            logp = torch.log_softmax(model(batch.inputs, n_hashes).float(), dim=-1)
            nats = -logp.gather(-1, batch.targets[..., None])[..., 0]
            total += nats[:, :-1].double().sum(0).cpu()
    model.train(was_training)
    return (total / (batches * batch_size) / _LN2).numpy()


def split_bits(per_position: Sequence[float] | np.ndarray, task: RepeatedTextTask) -> dict[str, float]:
    """``{"total", "text", "copy"}``: mean bits over all targets, the first copy's, the second copy's."""
    bits = np.asarray(per_position, dtype=np.float64)
    if bits.shape != (task.length - 1,):
        raise ValueError(f"per_position must hold {task.length - 1} values (one per target), got {bits.shape}")
    cut = task.half - 1
    return {"total": float(bits.mean()), "text": float(bits[:cut].mean()), "copy": float(bits[cut:].mean())}


def _column_model(model: nn.Module, column: str) -> tuple[nn.Module, int | None]:
    if column == "full":
        return model.with_attention("full"), None
    rounds = int(column.split("-")[1])
    return model.with_attention("lsh", n_hashes=rounds), rounds


def final_evaluation(model: nn.Module, task: RepeatedTextTask, *, batches: int, batch_size: int, seed: int,
                     cross: bool, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The record a run ends with: bits per position, their split, the copy without its source, and
    (``cross``) the split when evaluated with each of :data:`CROSS_COLUMNS` (same weights)."""
    kwargs = dict(batches=batches, batch_size=batch_size, seed=seed, device=device)
    own = position_bits(model, task, **kwargs)
    record: dict[str, Any] = {"position_bits": [round(float(b), 5) for b in own], **split_bits(own, task),
                              "unrelated_copy": split_bits(position_bits(model, task, unrelated=True, **kwargs),
                                                           task)["copy"]}
    if cross:
        record["cross"] = {column: split_bits(position_bits(_column_model(model, column)[0], task, **kwargs), task)
                           for column in CROSS_COLUMNS}
    return record


def ngram_baselines(task: RepeatedTextTask, orders: Iterable[int] = (1, 2, 3, 4, 5, 6), *, batches: int = 4,
                    batch_size: int = 32, seed: int = 1234, unrelated: bool = False) -> dict[int, dict[str, Any]]:
    """Interpolated Kneser–Ney n-gram models fitted on the task's training text, scored on the very batches
    :func:`position_bits` uses with the same arguments: per order, the split of :func:`split_bits` and
    ``"position_bits"``, the mean bits at each target position."""
    models = fit_ngrams(task.corpus.train, list(orders), task.vocab_size)
    rows = torch.cat([b.inputs for b in _eval_batches(task, batches, batch_size, seed, unrelated)]).numpy()
    result = {}
    for order, model in models.items():
        per_position = -model.log2_probs(rows).mean(axis=0)
        result[order] = {**split_bits(per_position, task), "position_bits": per_position.tolist()}
    return result


def load_runs(directory: str | Path = RESULTS_DIR, experiment: str = "ablation") -> dict[str, list[dict[str, Any]]]:
    """Every committed run record ``<setting>-<scale>-seed<N>.json`` in ``directory``, by setting, sorted by seed.

    Files that are not run records (``*.run.json``) are skipped; a directory with none is a ``FileNotFoundError``.
    """
    runs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(directory).glob("*.json")):
        if path.name.endswith(".run.json"):
            continue
        record = json.loads(path.read_text())
        if record.get("experiment") == experiment:
            runs.setdefault(record["setting"], []).append(record)
    if not runs:
        raise FileNotFoundError(f"no {experiment} run records in {directory}: run `make runs-ablation` to make them")
    return {setting: sorted(records, key=lambda r: r["seed"]) for setting, records in runs.items()}


def curve_bits(record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, bits/char)`` of a run's held-out evaluations during training (all targets)."""
    evals = record["metrics"]["eval"]
    return (np.array([e["step"] for e in evals]), np.array([e["loss"] / _LN2 for e in evals]))


def seed_spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, min, max and sample standard deviation over seeds (std 0 for one seed)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("seed_spread needs at least one value")
    return {"mean": float(x.mean()), "min": float(x.min()), "max": float(x.max()), "n": int(x.size),
            "std": float(x.std(ddof=1)) if x.size > 1 else 0.0}


def verdict(baseline: Sequence[float], variant: Sequence[float], *, decimals: int = 2) -> str:
    """How ``variant`` compares with ``baseline`` (bits/char, lower is better, one value per seed).

    "same within noise" when the seed ranges overlap; otherwise "worse by d ± s" or "better by d ± s", with d
    the difference of the means and s its standard error (√(s₁²/n₁ + s₂²/n₂)). Our rule, stated in lesson 09.
    """
    a, b = seed_spread(baseline), seed_spread(variant)
    if a["max"] >= b["min"] and b["max"] >= a["min"]:
        return "same within noise"
    diff = b["mean"] - a["mean"]
    error = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    return f"{'worse' if diff > 0 else 'better'} by {abs(diff):.{decimals}f} ± {error:.{decimals}f}"


def step_activation_bytes(config: ReformerConfig, batch_size: int) -> int:
    """Bytes autograd keeps from the forward to the backward pass of one training step (the loss on
    ``batch_size`` sequences of ``config.max_len``) of ``ReformerLM(config)``: activations only, parameters not
    counted (:func:`~reformer_lab.measure.memory.saved_tensor_bytes`, exact and device-independent). A reversible
    stack keeps its last layer's outputs (paper §3); a single-stream Transformer keeps every layer's."""
    batch_size = positive_int("batch_size", batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ReformerLM(config)
        tokens = torch.randint(0, config.vocab_size, (batch_size, config.max_len))
        return saved_tensor_bytes(lambda: model.loss(tokens, tokens), ignore=model).total_bytes


def largest_depth_within(budget: float, config: ReformerConfig, batch_size: int, max_depth: int = 64) -> int:
    """The most layers ``config`` (its ``n_layers`` replaced) can have while one training step keeps at most
    ``budget`` bytes of activations (:func:`step_activation_bytes`); 0 when even one layer does not fit."""
    best = 0
    for depth in range(1, positive_int("max_depth", max_depth) + 1):
        if step_activation_bytes(replace(config, n_layers=depth), batch_size) > budget:
            break
        best = depth
    return best
