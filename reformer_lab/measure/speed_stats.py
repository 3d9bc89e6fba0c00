"""Figure 5 (right) read closely: time and memory of attention against length with the tokens per step fixed.

The paper (§5, Figure 5 right) times attention "vs. the sequence length, while holding the total number of tokens
fixed" and reports that "while regular attention becomes slower at longer sequence length, LSH attention speed
remains flat". This module turns one step of each variant (:mod:`reformer_lab.measure.attention_steps`) into
what a reader of that figure wants to know:

* :func:`measure_grid` times a grid in this process (the live version of the figure) and :func:`load_bench`
  reads the committed larger runs of ``python -m reformer_lab.bench attention --json``;
* :func:`crossover` finds, from the measurements, the length at which one variant overtakes another;
* :func:`table1_bytes` is Table 1's memory row in bytes for the same setting, to set beside a measured peak;
* :func:`time_breakdown` splits one LSH step into its stages with PyTorch's profiler, and
  :func:`lsh_step_flops` with :func:`matmul_rate` say how far that step is from the machine's matmul speed;
* :func:`fit_cost_model` fits a small cost model (seconds and bytes per token) to measurements, which the
  lesson's widget extrapolates to other tokens per step, hash rounds and chunk sizes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reformer_lab.measure.attention_steps import ATTENTION_VARIANTS, AttentionSetting, forward_step, time_step
from reformer_lab.measure.complexity import attention_complexity
from reformer_lab.validation import one_of, positive_int

#: The live grid of lesson 08: the paper's protocol (tokens fixed, length growing) at 4K tokens per step.
LESSON_TOKENS = 4096
LESSON_LENGTHS = (256, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class SpeedPoint:
    """One measured step: ``seconds`` per forward+backward step and peak memory growth (None: not measured)."""

    variant: str
    length: int
    batch: int
    seconds: float | None
    peak_bytes: int | None = None
    chunk_size: int = 64
    n_heads: int = 4
    d_model: int = 256
    note: str = ""

    @property
    def tokens(self) -> int:
        return self.length * self.batch

    @property
    def n_hashes(self) -> int:
        return int(self.variant.split("-")[1]) if self.variant.startswith("lsh-") else 0


def _progress(items: Sequence[Any], progress: bool):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="timing", unit="step")


def measure_grid(tokens: int = LESSON_TOKENS, lengths: Iterable[int] = LESSON_LENGTHS,
                 variants: Iterable[str] = ATTENTION_VARIANTS, *, layer: bool = True, repeats: int = 2,
                 d_model: int = 256, n_heads: int = 4, chunk_size: int = 64,
                 progress: bool = True) -> list[SpeedPoint]:
    """Time every (variant, length) with ``tokens`` per step in this process (fastest of ``repeats`` steps after a
    warm-up; no memory figure: peaks need a fresh process, see ``python -m reformer_lab.bench attention``)."""
    tokens = positive_int("tokens", tokens)
    settings = []
    for length in lengths:
        if tokens % positive_int("length", length):
            raise ValueError(f"tokens {tokens} must be a multiple of every length (got {length})")
        settings += [AttentionSetting(one_of("variant", v, ATTENTION_VARIANTS), length, tokens // length, d_model,
                                      n_heads, chunk_size, repeats, layer=layer) for v in variants]
    points = []
    for s in _progress(settings, progress):
        points.append(SpeedPoint(s.variant, s.length, s.batch, time_step(s), None, s.chunk_size, s.n_heads,
                                 s.d_model))
    return points


def load_bench(path: str | Path) -> tuple[dict[str, Any], list[SpeedPoint]]:
    """The provenance and points of a ``python -m reformer_lab.bench attention --json`` file (peers left out)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: `python -m reformer_lab.bench attention --json {path}` "
                                "writes it")
    data = json.loads(path.read_text())
    points = [SpeedPoint(r["variant"], r["length"], r["batch"], r["seconds"], r["peak_bytes"], r["chunk_size"],
                         r["n_heads"], r["d_model"], r.get("note", ""))
              for r in data["results"] if r["variant"] in ATTENTION_VARIANTS]
    return data["provenance"], points


def load_benches(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[SpeedPoint]]:
    """:func:`load_bench` over several files (one run per length, say): their provenances and all their points."""
    provenances, points = [], []
    for path in sorted(Path(p) for p in paths):
        provenance, found = load_bench(path)
        provenances.append(provenance)
        points += found
    if not provenances:
        raise FileNotFoundError("no benchmark files given (a glob that matched nothing?)")
    return provenances, points


def series(points: Iterable[SpeedPoint], variant: str, field: str = "seconds") -> tuple[np.ndarray, np.ndarray]:
    """Lengths and ``field`` (``"seconds"`` or ``"peak_bytes"``) of ``variant``'s measured points, by length."""
    chosen = sorted((p.length, getattr(p, field)) for p in points
                    if p.variant == variant and getattr(p, field) is not None)
    return np.array([c[0] for c in chosen], dtype=float), np.array([c[1] for c in chosen], dtype=float)


# --------------------------------------------------------------------------------------------------
# Crossovers


@dataclass(frozen=True)
class Crossover:
    """Where ``fast`` becomes faster than ``slow``: ``"from the start"``, ``"at"`` a length, or ``"never"``."""

    fast: str
    slow: str
    kind: str
    length: float | None = None

    def describe(self) -> str:
        if self.kind == "at":
            return f"{self.fast} overtakes {self.slow} at L ≈ {float(f'{self.length:.2g}'):,.0f}"
        if self.kind == "from the start":
            return f"{self.fast} is faster than {self.slow} at every measured length"
        return f"{self.fast} never overtakes {self.slow} in the measured range"


def crossover(points: Sequence[SpeedPoint], fast: str, slow: str) -> Crossover:
    """The length at which ``fast`` becomes and stays faster than ``slow``, from the measured points only.

    Between the last length where ``fast`` is slower and the next one, the time ratio is interpolated linearly
    in log(ratio) against log(length), the axes of Figure 5 (right)."""
    lf, tf = series(points, fast)
    ls, ts = series(points, slow)
    common = sorted(set(lf) & set(ls))
    if not common:
        raise ValueError(f"no length where both {fast} and {slow} were measured")
    ratio = np.array([tf[lf == length][0] / ts[ls == length][0] for length in common])
    if (ratio < 1).all():
        return Crossover(fast, slow, "from the start")
    if ratio[-1] >= 1:
        return Crossover(fast, slow, "never")
    last_slow = int(np.nonzero(ratio >= 1)[0][-1])
    x0, x1 = math.log(common[last_slow]), math.log(common[last_slow + 1])
    y0, y1 = math.log(ratio[last_slow]), math.log(ratio[last_slow + 1])
    return Crossover(fast, slow, "at", math.exp(x0 + (x1 - x0) * y0 / (y0 - y1)))


def flatness(points: Sequence[SpeedPoint], variant: str) -> float:
    """Slowest over fastest step of ``variant`` across lengths: 1.0 is perfectly flat, Figure 5's LSH claim."""
    _, seconds = series(points, variant)
    if len(seconds) < 2:
        raise ValueError(f"{variant} needs at least two measured lengths")
    return float(seconds.max() / seconds.min())


# --------------------------------------------------------------------------------------------------
# Table 1 beside a measured peak


def table1_bytes(variant: str, length: int, batch: int, *, n_heads: int = 4, d_model: int = 256,
                 chunk_size: int = 64, bytes_per_value: int = 4) -> float:
    """Table 1's memory row for one benchmark setting, in bytes (float32 by default).

    ``full`` and ``sdpa`` take the dot-product row, ``memory-efficient`` its own row (which Table 1 prints as
    l², although §2 says linear), and ``lsh-k`` the LSH row with n_r = k and the chunk count n_c = L/chunk,
    so that its 4l/n_c is 4·chunk."""
    one_of("variant", variant, ATTENTION_VARIANTS)
    sizes = dict(batch=batch, length=length, n_heads=n_heads, d_k=d_model // n_heads)
    if variant.startswith("lsh-"):
        row = attention_complexity("lsh", **sizes, n_hashes=int(variant.split("-")[1]),
                                   n_chunks=length // chunk_size)
    else:
        row = attention_complexity("memory-efficient" if variant == "memory-efficient" else "dot-product", **sizes)
    return row.memory * bytes_per_value


# --------------------------------------------------------------------------------------------------
# Where the time goes


#: The stages of one LSH attention layer's step, in the order they run.
STAGES = ("projections", "hashing", "sort", "gather, unsort, combine rounds", "masks and N_ij", "chunk products",
          "softmax", "backward: chunks", "backward: the rest")


#: The functions of :mod:`reformer_lab.lsh_chunks` that build the masks and Appendix A's N_ij counts.
_MASK_FUNCTIONS = ("mask_", "_window_codes", "_window_hits", "_visit_counts")


def _stage(event: Any) -> str:
    """The stage of a profiled ATen op, from the Python functions and autograd nodes it ran under."""
    chain, parent = [], event.cpu_parent
    while parent is not None:
        chain.append(parent.name)
        parent = parent.cpu_parent
    text = " < ".join(chain)
    if "autograd::engine::evaluate_function" in text:
        return "backward: chunks" if "_ChunkAttentionBackward" in text else "backward: the rest"
    if "hashing.py" in text:
        return "hashing"
    if "sort_by_bucket" in text:
        return "sort"
    if any(name in text for name in _MASK_FUNCTIONS):
        return "masks and N_ij"
    if "lsh_chunks.py" in text:
        return "softmax" if any(k in event.name for k in ("softmax", "amax", "log", "exp")) else "chunk products"
    if "lsh_attention" in text:
        return "gather, unsort, combine rounds"
    return "projections"


@contextlib.contextmanager
def _quiet_profiler():
    """Silence file descriptors 1 and 2 for the block: the profiler's C++ side prints its start and stop there.
    Python exceptions still propagate."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in saved:
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def time_breakdown(setting: AttentionSetting) -> dict[str, float]:
    """Seconds of one forward+backward step of an LSH ``setting`` spent in each of :data:`STAGES`, plus
    ``"step"`` (the whole step's wall time under the profiler) and ``"unprofiled"`` (the fastest of two steps
    without it, after a warm-up).

    Each ATen op's own time (its children excluded) is assigned to the stage of the code that called it;
    Python's interpreter time between ops is in ``"step"`` but in no stage. The profiler adds a cost per op, so
    stages made of many small ops (the masks) look larger than they are: compare ``"step"`` with
    ``"unprofiled"``."""
    from torch.profiler import ProfilerActivity, profile

    if not setting.variant.startswith("lsh-"):
        raise ValueError(f"time_breakdown splits an LSH step; got variant {setting.variant!r}")
    step = forward_step(setting)
    unprofiled = math.inf
    for _ in range(3):  # the first is the warm-up
        start = time.perf_counter()
        step().square().mean().backward()
        unprofiled = min(unprofiled, time.perf_counter() - start)
    with _quiet_profiler(), profile(activities=[ProfilerActivity.CPU], with_stack=True) as prof:
        start = time.perf_counter()
        step().square().mean().backward()
        wall = time.perf_counter() - start
    stages = dict.fromkeys(STAGES, 0.0)
    for event in prof.events():
        if event.name.startswith("aten::"):
            stages[_stage(event)] += event.self_cpu_time_total / 1e6
    return {**stages, "step": wall, "unprofiled": unprofiled}


def lsh_step_flops(setting: AttentionSetting) -> float:
    """Multiply-adds ×2 of one LSH step's matrix products: the forward pass, and twice that for the backward pass,
    except the hashing, which has none (buckets are piecewise constant).

    Per round and query: 2m logits (its chunk and the one before) over d_head, and 2m values applied; the
    hashing projects every position onto n_buckets/2 = L/m directions per round, so it grows with L; a layer
    adds its three d_model × d_model projections."""
    if not setting.variant.startswith("lsh-"):
        raise ValueError(f"lsh_step_flops counts an LSH step; got variant {setting.variant!r}")
    n_hashes, d_head = int(setting.variant.split("-")[1]), setting.d_model // setting.n_heads
    queries = setting.tokens * setting.n_heads
    window = 2 * setting.chunk_size
    n_buckets = 2 * setting.length // setting.chunk_size
    products = n_hashes * queries * 2 * window * d_head * 2
    if setting.layer:
        products += 2 * setting.tokens * setting.d_model * 3 * setting.d_model
    hashing = n_hashes * queries * 2 * d_head * (n_buckets // 2)
    return 3.0 * products + hashing


def matmul_rate(shape: tuple[int, int, int, int] = (2048, 64, 64, 128), repeats: int = 5) -> float:
    """FLOP per second of this machine's fp32 batched matrix product ``[B, M, K] @ [B, K, N]`` at
    ``shape = (B, M, K, N)`` (the default is the size of one LSH chunk product), fastest of ``repeats``."""
    batch, m, k, n = (positive_int("shape entries", s) for s in shape)
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(batch, m, k, generator=generator), torch.randn(batch, k, n, generator=generator)
    out = torch.empty(batch, m, n)
    torch.bmm(a, b, out=out)
    best = math.inf
    for _ in range(positive_int("repeats", repeats)):
        start = time.perf_counter()
        torch.bmm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * batch * m * k * n / best


# --------------------------------------------------------------------------------------------------
# A cost model fitted to measurements


def _work(variant: str, length: float, chunk: float) -> float:
    """Keys each query compares per step, the quantity a variant's time and memory grow with (our model):
    L/2 for causal exact attention, n_r · 2·chunk for LSH."""
    if variant.startswith("lsh-"):
        return int(variant.split("-")[1]) * 2 * chunk
    return length / 2


@dataclass(frozen=True)
class CostModel:
    """Per token, for each variant: ``seconds = a + b · work`` and ``bytes = c + e · work``, with work = keys
    compared per query (:func:`_work`); a step of T tokens costs T times that. A variant measured at one chunk
    size and one length has no slope (b = e = 0); an LSH variant gets its slope from a sweep over chunk sizes."""

    coefficients: dict[str, tuple[float, float, float, float]]

    def seconds(self, variant: str, length: float, tokens: float, chunk: float = 64) -> float:
        a, b, _, _ = self.coefficients[variant]
        return tokens * (a + b * _work(variant, length, chunk))

    def peak_bytes(self, variant: str, length: float, tokens: float, chunk: float = 64) -> float:
        _, _, c, e = self.coefficients[variant]
        return tokens * (c + e * _work(variant, length, chunk))


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares intercept and slope with both kept ≥ 0 (a cost is never negative)."""
    if len(x) < 2 or np.ptp(x) == 0:
        return float(max(y.mean(), 0.0)), 0.0
    slope, intercept = np.polyfit(x, y, 1)
    if intercept < 0:
        return 0.0, float((x * y).sum() / (x * x).sum())
    if slope < 0:
        return float(y.mean()), 0.0
    return float(intercept), float(slope)


def fit_cost_model(points: Iterable[SpeedPoint]) -> CostModel:
    """Fit :class:`CostModel` to measured points: per variant, time per token and peak bytes per token as straight
    lines in the work per query (least squares, intercept and slope kept ≥ 0: a fit that would need a negative
    intercept is refitted through zero)."""
    by_variant: dict[str, list[SpeedPoint]] = {}
    for p in points:
        if p.seconds is not None:
            by_variant.setdefault(p.variant, []).append(p)
    coefficients = {}
    for variant, chosen in by_variant.items():
        work = np.array([_work(p.variant, p.length, p.chunk_size) for p in chosen])
        per_token = np.array([p.seconds / p.tokens for p in chosen])
        a, b = _fit_line(work, per_token)
        with_peak = [(w, p.peak_bytes / p.tokens) for w, p in zip(work, chosen, strict=True) if p.peak_bytes]
        c, e = _fit_line(*map(np.array, zip(*with_peak, strict=True))) if with_peak else (math.nan, math.nan)
        coefficients[variant] = (a, b, c, e)
    return CostModel(coefficients)


# --------------------------------------------------------------------------------------------------
# The speed targets, judged on measurements

Target = tuple[str, bool, str]


def _at(points: Sequence[SpeedPoint], variant: str, length: int) -> SpeedPoint | None:
    return next((p for p in points if p.variant == variant and p.length == length and p.seconds), None)


def speed_targets(points: Sequence[SpeedPoint], at: int = 8192, sdpa_from: int = 2048) -> list[Target]:
    """Our targets for LSH attention on Figure 5 (right)'s protocol, each ``(claim, met, evidence)``; a claim whose
    measurements are missing is left out. At ``at``: LSH-8 costs ≤ 4× LSH-2 (the work is 4×) and LSH-2's peak is
    ≥ 5× below full attention's; LSH-2 is faster than fused SDPA at every measured length ≥ ``sdpa_from``; LSH-2's
    step is flat within 1.2× across all measured lengths."""
    targets = []
    lsh2, lsh8, full = _at(points, "lsh-2", at), _at(points, "lsh-8", at), _at(points, "full", at)
    if lsh2 and lsh8:
        ratio = lsh8.seconds / lsh2.seconds
        targets.append((f"L={at}: LSH-8 ≤ 4× LSH-2's time", ratio <= 4, f"LSH-8/LSH-2 = {ratio:.2f}×"))
    if lsh2 and full and lsh2.peak_bytes and full.peak_bytes:
        ratio = full.peak_bytes / lsh2.peak_bytes
        targets.append((f"L={at}: LSH-2 peak ≥ 5× below full", ratio >= 5, f"full/LSH-2 peak = {ratio:.1f}×"))
    pairs = [(p.length, p.seconds, _at(points, "sdpa", p.length)) for p in points
             if p.variant == "lsh-2" and p.seconds and p.length >= sdpa_from]
    ratios = {length: s.seconds / lsh for length, lsh, s in pairs if s}
    if ratios:
        worst = min(ratios, key=ratios.get)
        targets.append((f"LSH-2 faster than fused SDPA at every L ≥ {sdpa_from}", ratios[worst] > 1,
                        f"smallest SDPA/LSH-2 = {ratios[worst]:.2f}× at L={worst}"))
    if len([p for p in points if p.variant == "lsh-2" and p.seconds]) >= 2:
        spread = flatness(points, "lsh-2")
        targets.append(("LSH-2 flat within 1.2× across L", spread <= 1.2, f"slowest/fastest = {spread:.2f}×"))
    return targets


def peer_targets(rows: Sequence[tuple[str, int, float | None, int | None]], at: int = 8192) -> list[Target]:
    """Our LSH self-attention module against each peer at length ``at`` (rows ``(name, length, seconds, peak)`` as
    the peers' benchmark records them): ≤ 0.4× the peer's time and ≤ 0.5× its peak memory growth."""
    found = {name: (s, m) for name, length, s, m in rows if length == at and s}
    if "ours-module" not in found:
        return []
    ours_s, ours_m = found["ours-module"]
    targets = []
    for peer in ("reformer-pytorch", "hf-transformers"):
        if peer in found:
            s, m = found[peer]
            targets.append((f"L={at}: ≤ 0.4× {peer}'s time", ours_s / s <= 0.4, f"ours/{peer} = {ours_s / s:.2f}×"))
            if m and ours_m:
                targets.append((f"L={at}: ≤ 0.5× {peer}'s peak memory", ours_m / m <= 0.5,
                                f"ours/{peer} = {ours_m / m:.2f}×"))
    return targets
