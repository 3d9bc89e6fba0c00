"""Measured memory curves of ordinary and reversible stacks (paper §3, Table 3), for lesson 04.

Everything here is pure compute over :func:`step_memory`: the saved-for-backward
bytes of one training step, which are exact and the same on every run (no timing, no allocator).

Measuring a deep stack at every slider position would be slow, so :func:`layer_model` measures each
configuration at depth 1 and depth 2 and fits ``bytes = base + per_layer · n_l``. That straight line is
not an approximation: every layer of a stack has the same shapes, so the ordinary stack keeps the same
bytes per layer, and the reversible stack keeps one layer's outputs plus a per-layer seed pair (16 B)
and, with LSH, the layer's buckets. ``tests/test_reversible_stats.py`` checks that the line predicts
directly measured deeper stacks byte for byte. Measurements are cached per configuration.

GPU curves: on a CUDA machine :func:`cuda_peaks` measures the peak allocated bytes of a step; elsewhere
:func:`load_gpu_results` reads what ``python -m reformer_lab.bench memory --device cuda --json ...``
wrote under ``results/bench/`` (files ``memory-*cuda*.json``), if anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import torch

from reformer_lab.measure.feedforward_stats import table3_bytes
from reformer_lab.measure.memory import StepMemory, stack_options, step_memory, torch_threads
from reformer_lab.measure.stacks import MeasuredStack
from reformer_lab.model import ReformerConfig
from reformer_lab.reversible import STACK_VARIANTS, draw_seeds, reversible_stack
from reformer_lab.validation import positive_int

__all__ = [
    "reconstruction_errors",
    "scaled_error",
    "GpuCurves",
    "LayerModel",
    "MemoryCurves",
    "STACK_MODEL",
    "StackConfig",
    "cuda_peaks",
    "default_results_dir",
    "layer_model",
    "load_gpu_results",
    "measure",
    "memory_curves_data",
    "table3_curve",
]

#: Where the lesson looks for GPU measurements written by the benchmark.
RESULTS_GLOB = "bench/memory-*cuda*.json"


#: Lesson 04's stack unless told otherwise: d_model 32, d_ff 128, 2 heads, LSH attention with chunks of 32 and
#: 2 hash rounds, 4 feed-forward chunks for the "reversible+chunked" variant, not causal. Each measurement sets
#: the depth.
STACK_MODEL = ReformerConfig(max_len=256, d_model=32, d_ff=128, n_heads=2, n_layers=1, attention="lsh", n_hashes=2,
                             chunk_size=32, ff_chunks=4, causal=False)


@dataclass(frozen=True, init=False)
class StackConfig(MeasuredStack):
    """One stack setting of the memory curves: everything but the depth n_l and the variant.

    ``model`` describes the blocks (:func:`reformer_lab.model.build_stack`: paper eq. 9, LayerNorm inside the
    blocks, ``attention`` ``"full"`` or ``"lsh"`` with ``chunk_size`` and ``n_hashes``); each measurement
    replaces its ``n_layers`` with the depth asked for, and its ``ff_chunks`` is used by the
    "reversible+chunked" variant only (eq. 10) and must divide ``length``. Keyword sizes work too
    (:class:`~reformer_lab.measure.stacks.MeasuredStack`): ``StackConfig(length=256, d_model=32, d_ff=512,
    attention="full")``.
    """

    model: ReformerConfig = STACK_MODEL
    length: int = 256
    batch: int = 1
    seed: int = 0


def _build(config: StackConfig, n_layers: int, device: str = "cpu") -> tuple[torch.nn.Module, torch.Tensor]:
    (x,) = config.inputs()
    return config.build(n_layers=n_layers).to(device), x.to(device)


def measure(config: StackConfig, n_layers: int, variant: str) -> StepMemory:
    """Saved-for-backward bytes of one training step of an ``n_layers`` stack run as ``variant`` (CPU, float32).

    The global RNG is forked, so the caller's random stream is untouched and the result is reproducible.
    """
    stack, x = _build(config, n_layers)
    with torch_threads(1), torch.random.fork_rng(devices=[]):  # tiny tensors: one thread is faster
        torch.manual_seed(config.seed)
        return step_memory(stack, x, variant)


@dataclass(frozen=True)
class LayerModel:
    """``bytes(n_l) = base + per_layer · n_l`` for the bytes after the forward pass and for the step's peak."""

    after_base: int
    after_per_layer: int
    peak_base: int
    peak_per_layer: int

    def at(self, n_layers: int) -> StepMemory:
        """The saved bytes of an ``n_layers`` stack (exact: see the module docstring)."""
        n = positive_int("n_layers", n_layers)
        return StepMemory(self.after_base + self.after_per_layer * n, self.peak_base + self.peak_per_layer * n)


@lru_cache(maxsize=512)
def layer_model(config: StackConfig, variant: str) -> LayerModel:
    """Measure ``config`` as ``variant`` at depths 1 and 2 and return the straight line through them (cached)."""
    one, two = measure(config, 1, variant), measure(config, 2, variant)
    after = two.saved_after_forward - one.saved_after_forward
    peak = two.saved_peak - one.saved_peak
    return LayerModel(one.saved_after_forward - after, after, one.saved_peak - peak, peak)


def table3_curve(config: StackConfig, variant: str, n_layers: int) -> float:
    """Table 3's memory for this stack in bytes (× 4 B per value), as the benchmark maps variants to rows.

    ordinary → "transformer" / "lsh-transformer"; reversible → "reversible" (full attention) or, for LSH,
    which Table 3 has no row for, "lsh-transformer" with n_l = 1; reversible+chunked → "chunked-reversible"
    / "reformer". ``c = (4·chunk_size)²`` (:func:`reformer_lab.measure.feedforward_stats.table3_bytes`).
    """
    return table3_bytes(variant, replace(config.model, n_layers=n_layers), config.length, config.batch)


@dataclass(frozen=True)
class MemoryCurves:
    """Saved bytes against depth (at ``config.length``) and against length (at ``n_layers``), per variant.

    ``by_depth[variant]`` and ``by_length[variant]`` hold :class:`~reformer_lab.measure.memory.StepMemory`
    values aligned with ``depths`` and ``lengths``; ``table3_*`` the formula in bytes, aligned the same way.
    """

    config: StackConfig
    n_layers: int
    depths: tuple[int, ...]
    lengths: tuple[int, ...]
    by_depth: dict[str, list[StepMemory]] = field(default_factory=dict)
    by_length: dict[str, list[StepMemory]] = field(default_factory=dict)
    table3_depth: dict[str, list[float]] = field(default_factory=dict)
    table3_length: dict[str, list[float]] = field(default_factory=dict)


def memory_curves_data(
    config: StackConfig,
    depths: Sequence[int],
    lengths: Sequence[int],
    n_layers: int,
    *,
    variants: Sequence[str] = STACK_VARIANTS,
    direct: bool = False,
) -> MemoryCurves:
    """Both curves of lesson 04's memory figure, measured on this machine.

    ``direct=True`` measures every point with its own stack (slower; the lesson's static figure);
    otherwise each length is measured at depths 1 and 2 and extended along the exact straight line of
    :func:`layer_model` (fast and cached; the widget).
    """
    if not depths or not lengths:
        raise ValueError("depths and lengths must not be empty")
    n_layers = positive_int("n_layers", n_layers)
    depths = tuple(positive_int("depths entries", n) for n in depths)
    lengths = tuple(positive_int("lengths entries", n) for n in lengths)
    configs = {n: replace(config, length=n) for n in lengths}
    curves = MemoryCurves(config, n_layers, depths, lengths)
    for variant in variants:
        stack_options(variant)

        def get(c: StackConfig, n: int, variant: str = variant) -> StepMemory:
            return measure(c, n, variant) if direct else layer_model(c, variant).at(n)

        curves.by_depth[variant] = [get(config, n) for n in depths]
        curves.by_length[variant] = [get(configs[n], n_layers) for n in lengths]
        curves.table3_depth[variant] = [table3_curve(config, variant, n) for n in depths]
        curves.table3_length[variant] = [table3_curve(configs[n], variant, n_layers) for n in lengths]
    return curves


# --------------------------------------------------------------------------------------------------
# GPU: measured here when CUDA is present, otherwise loaded from results/


def cuda_peaks(config: StackConfig, depths: Sequence[int], variants: Sequence[str] = STACK_VARIANTS
               ) -> dict[str, list[int]]:
    """Peak CUDA bytes allocated by one training step, per variant, at each depth (needs CUDA)."""
    if not torch.cuda.is_available():
        raise ValueError("cuda_peaks needs a CUDA device; use load_gpu_results() to read stored GPU curves")
    peaks: dict[str, list[int]] = {}
    for variant in variants:
        stack_options(variant)
        peaks[variant] = []
        for n in depths:
            stack, x = _build(config, n, "cuda")
            with torch.random.fork_rng(devices=[x.device.index or 0]):
                torch.manual_seed(config.seed)
                peaks[variant].append(int(step_memory(stack, x, variant).cuda_peak or 0))
    return peaks


@dataclass(frozen=True)
class GpuCurves:
    """GPU peak bytes against depth per variant, from one benchmark JSON file, and where they came from."""

    source: str
    device: str
    setting: str
    depths: dict[str, list[int]]
    peaks: dict[str, list[int]]


def default_results_dir() -> Path:
    """The repository's ``results/``, whether the kernel runs in the repository root or in ``notebooks/``."""
    here = Path.cwd()
    candidates = [here / "results", here.parent / "results", Path(__file__).resolve().parents[2] / "results"]
    return next((p for p in candidates if p.is_dir()), candidates[-1])


def load_gpu_results(results_dir: str | Path | None = None) -> GpuCurves | None:
    """The newest ``results/bench/memory-*cuda*.json`` as curves, or None when there is none.

    ``results_dir=None`` looks in :func:`default_results_dir`.

    The file is what ``python -m reformer_lab.bench memory --device cuda --json PATH`` writes: a
    ``provenance`` dict and ``results`` records with ``variant``, ``peak_bytes`` and the stack's sizes
    (``n_layers``, ``length``, ...), either in a ``model`` dict (:meth:`MemorySetting.to_dict
    <reformer_lab.measure.stacks.MeasuredStack.to_dict>`) or, in files written before settings held a
    :class:`~reformer_lab.model.ReformerConfig`, beside the other fields. A file that cannot be read as
    such raises ``ValueError`` naming it.
    """
    results_dir = default_results_dir() if results_dir is None else Path(results_dir)
    files = sorted(results_dir.glob(RESULTS_GLOB), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    path = files[-1]
    try:
        payload = json.loads(path.read_text())
        records = [_flat(r) for r in payload["results"] if r.get("peak_bytes") is not None]
        device = str(payload.get("provenance", {}).get("device", "cuda"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not a memory benchmark JSON ({type(error).__name__}: {error})") from error
    depths: dict[str, list[int]] = {}
    peaks: dict[str, list[int]] = {}
    for record in sorted(records, key=lambda r: (r["variant"], r["n_layers"])):
        depths.setdefault(record["variant"], []).append(int(record["n_layers"]))
        peaks.setdefault(record["variant"], []).append(int(record["peak_bytes"]))
    first = records[0] if records else {}
    setting = (f"L={first.get('length')}, d_model={first.get('d_model')}, d_ff={first.get('d_ff')}, "
               f"{first.get('attention')} attention") if first else "no measurements"
    return GpuCurves(str(path), device, setting, depths, peaks)


def _flat(record: dict) -> dict:
    """A benchmark record with its ``model`` dict's fields beside the others, as older files have them."""
    return {**record.get("model", {}), **{key: value for key, value in record.items() if key != "model"}}


# --------------------------------------------------------------------------------------------------
# Comparing two runs


def scaled_error(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor]) -> float:
    """The largest ``max |a − b| / max(1, max |b|)`` over paired tensors ``a`` (got) and ``b`` (want).

    Each difference is divided by the reference tensor's largest magnitude, but never by less than 1. So for a
    reference whose largest entry is at least 1 in magnitude this is the relative error (relative to that entry),
    and for a reference whose entries are all below 1 it is the *absolute* error: it is not a relative error in
    general. ``scaled_error(got, want) <= tol`` means ``max |a − b| <= tol · max(1, max |b|)`` for every pair,
    the bound ``tests/test_reversible.py`` puts on reversible against ordinary backprop (outputs, input gradient,
    every parameter's gradient). The floor of 1 keeps a reference that is zero or tiny from turning rounding
    noise into a huge ratio.
    """
    got, want = list(got), list(want)
    if not want or len(got) != len(want):
        raise ValueError(f"scaled_error compares two equally long, non-empty lists of tensors; got {len(got)} "
                         f"and {len(want)}")
    return max(float((a - b).abs().max()) / max(1.0, float(b.abs().max())) for a, b in zip(got, want, strict=True))


# --------------------------------------------------------------------------------------------------
# Reconstruction error against depth


@torch.no_grad()
def reconstruction_errors(
    depths: Sequence[int],
    *,
    d_model: int = 32,
    n_heads: int = 2,
    d_ff: int = 64,
    length: int = 64,
    batch: int = 1,
    attention: str = "full",
    chunk_size: int = 16,
    n_hashes: int = 2,
    dropout: float = 0.0,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> dict[int, float]:
    """Max |X − X̂| after running ``n`` blocks forward (eq. 9) and back (eq. 8), for each ``n`` in ``depths``.

    One stack of ``max(depths)`` blocks is built (``seed`` fixes weights, inputs and randomness); the
    input ``(x, x)`` with ``x ~ N(0, 1)`` runs forward, and for each depth ``n`` the state after ``n``
    blocks is inverted back to the input with the forward pass's seeds and buckets. The error grows
    with depth as rounding accumulates (RevNet §3: negligible in practice); in float64 it stays near
    1e-15. Returns ``{n: error}``.
    """
    depths = sorted({positive_int("depth", n) for n in depths})
    stack = reversible_stack(depths[-1], d_model, n_heads, d_ff, attention=attention, chunk_size=chunk_size,
                             n_hashes=n_hashes, dropout=dropout, seed=seed).to(dtype)
    stack.train(dropout > 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x = torch.randn(batch, length, d_model, dtype=dtype)
        seeds = [tuple(pair) for pair in draw_seeds(depths[-1]).tolist()]
        states, buckets = [(x, x)], []
        for block, pair in zip(stack.blocks, seeds, strict=True):
            states.append(block(*states[-1], seeds=pair))
            buckets.append(block.last_buckets)
    errors = {}
    for n in depths:
        x1, x2 = states[n]
        for i in reversed(range(n)):
            x1, x2 = stack.blocks[i].inverse(x1, x2, seeds=seeds[i], buckets=buckets[i])
        errors[n] = max(float((x1 - x).abs().max()), float((x2 - x).abs().max()))
    return errors
