"""Lesson 10's numbers: sparse attention beside LSH and the exact attentions, on the same inputs (paper §4).

Pure compute, no plotting. The variants are the attention functions that
:mod:`reformer_lab.measure.attention_steps` times (all shared-QK and causal): ``local`` attention (a
limited span, paper §2.1),
``routing`` (Routing Transformer, Roy et al., TACL 2021: later work), LSH with 1, 2 and 4 rounds (§2), and
the exact ones: ``memory-efficient`` (§2), ``full`` (eq. 1) and PyTorch's fused ``sdpa`` (after the paper;
we call it without the self mask). Two measurements:

* :func:`recovered_weight`: how much of full attention's weight each variant keeps on structured inputs.
  It is 1 − lesson 03's :func:`~reformer_lab.measure.attention_stats.weight_distance` (total variation
  between a variant's weight rows and full attention's): for softmax over a subset S_i of the keys, exactly
  the mass full attention puts on S_i. A variant's weights are read off its output for the values v = I
  (:func:`attention_weights`), so fused and chunked kernels are measured as they run.
* :func:`step_costs`: seconds and peak memory of one forward+backward step at several lengths, with the
  tokens per step fixed (Figure 5's protocol), each in a fresh process as ``python -m reformer_lab.bench``
  measures (:func:`reformer_lab.measure.bench.measure`).

Two structured inputs (:func:`structured_qk`): ``"clusters"``, lesson 03's
:func:`~reformer_lab.measure.attention_stats.clustered_qk` (content clusters at random positions), and
``"copy"``, the duplication task's geometry (the second half repeats the first, so a query's best key is
L/2 back, beyond a local window).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from reformer_lab.measure.attention_stats import clustered_qk, weight_distance
from reformer_lab.measure.attention_steps import AttentionSetting, attention_function, time_step
from reformer_lab.measure.bench import Measurement, measure
from reformer_lab.validation import as_int, one_of, positive_int

__all__ = [
    "INPUT_KINDS",
    "VARIANTS",
    "Recovered",
    "attention_weights",
    "recovered_weight",
    "step_costs",
    "structured_qk",
]

#: The variants of lesson 10, sparse first, exact last.
VARIANTS = ("local", "routing", "lsh-1", "lsh-2", "lsh-4", "memory-efficient", "full", "sdpa")
INPUT_KINDS = ("clusters", "copy")


def structured_qk(kind: str, length: int, dim: int, *, n_clusters: int = 8, scale: float = 8.0,
                  seed: int = 0) -> Tensor:
    """Shared-QK vectors ``[1, 1, length, dim]`` (one sequence, one head) with structure attention can use.

    ``"clusters"``: :func:`~reformer_lab.measure.attention_stats.clustered_qk` with ``n_clusters`` directions.
    ``"copy"``: ``length // 2`` random directions, then the same again with a little noise, each of length
    ``scale`` (the inverse temperature): a query in the second half finds its twin ``length // 2`` back.
    """
    one_of("kind", kind, INPUT_KINDS)
    length, dim = positive_int("length", length), positive_int("dim", dim)
    generator = torch.Generator().manual_seed(as_int("seed", seed))
    if kind == "clusters":
        qk, _ = clustered_qk(length, dim, n_clusters, scale=scale, generator=generator)
    else:
        if length % 2:
            raise ValueError(f"a copy input needs an even length, got {length}")
        first = torch.randn(length // 2, dim, generator=generator)
        second = first + 0.1 * torch.randn(length // 2, dim, generator=generator) / math.sqrt(dim)
        qk = scale * F.normalize(torch.cat([first, second]), dim=-1)
    return qk[None, None]


def attention_weights(attend: Callable[[Tensor, Tensor], Tensor], qk: Tensor) -> Tensor:
    """The ``[..., L, L]`` weights of an attention function ``attend(qk, v)``: its output for v = I.

    Row i of the output Σ_j p_ij v_j is then (p_i1, …, p_iL). Works for any kernel that returns weights
    times values, fused (SDPA) or chunked (memory-efficient, LSH), without asking it for its weights.
    """
    length = qk.shape[-2]
    eye = torch.eye(length, dtype=qk.dtype, device=qk.device).expand(*qk.shape[:-1], length)
    with torch.no_grad():
        return attend(qk, eye.contiguous())


@dataclass(frozen=True)
class Recovered:
    """Full attention's weight a variant keeps, per query: ``per_query`` ``[L]`` in [0, 1] (1 = all of it)."""

    variant: str
    per_query: Tensor

    @property
    def mean(self) -> float:
        return float(self.per_query.mean())

    def mean_over(self, queries: slice) -> float:
        """The mean over some queries, e.g. ``slice(L // 2, None)``: the second copy of a ``"copy"`` input."""
        return float(self.per_query[queries].mean())


def _setting(variant: str, qk: Tensor, chunk_size: int, seed: int) -> AttentionSetting:
    return AttentionSetting(variant, qk.shape[-2], 1, d_model=qk.shape[-1], n_heads=1, chunk_size=chunk_size,
                            device=str(qk.device), seed=seed)


def recovered_weight(qk: Tensor, *, variants: Sequence[str] = VARIANTS, chunk_size: int = 32,
                     seed: int = 0) -> dict[str, Recovered]:
    """1 − total-variation distance from causal full attention's weights, per query, for each variant.

    ``qk``: ``[..., L, d]`` (e.g. :func:`structured_qk`), ``chunk_size`` dividing L; LSH and routing draw
    their rotations and k-means start from ``seed``. Rows are averaged over leading dims. The exact variants
    give 1 (``sdpa`` a little less: without the self mask it also weighs each query's own key).
    """
    reference = attention_weights(attention_function(_setting("full", qk, chunk_size, seed)), qk)
    result = {}
    for variant in variants:
        weights = attention_weights(attention_function(_setting(variant, qk, chunk_size, seed)), qk)
        kept = 1 - weight_distance(weights.double(), reference.double())
        result[variant] = Recovered(variant, kept.reshape(-1, qk.shape[-2]).mean(0))
    return result


def _in_process(s: AttentionSetting) -> Measurement:
    """Time (and, on CUDA, peak allocated memory) in this process: quick, but the peak on a CPU is unknown."""
    if s.device.startswith("cuda"):
        from reformer_lab.measure.memory import peak_cuda_bytes

        peak = peak_cuda_bytes(time_step, s)
        return Measurement(s, peak.output, peak.delta_bytes)
    return Measurement(s, time_step(s), None)


def step_costs(lengths: Sequence[int], *, tokens: int, variants: Sequence[str] = VARIANTS, d_model: int = 256,
               n_heads: int = 4, chunk_size: int = 64, repeats: int = 3, device: str = "cpu",
               full_cap: int = 8192, fresh_process: bool = True) -> list[Measurement]:
    """Seconds and peak memory of one forward+backward step for each variant and length, tokens per step fixed.

    Each point is an :class:`~reformer_lab.measure.attention_steps.AttentionSetting` with batch
    ``tokens // length`` (every length must divide ``tokens`` and be a multiple of ``chunk_size``), timed by
    :func:`~reformer_lab.measure.attention_steps.time_step` in a fresh process (peak resident memory on a
    CPU, peak allocated on CUDA); ``fresh_process=False`` measures in this process (no CPU peak). ``full``
    beyond ``full_cap`` is skipped (its L×L weights), noted in the measurement.
    """
    tokens, full_cap = positive_int("tokens", tokens), as_int("full_cap", full_cap, minimum=0)
    settings = []
    for length in lengths:
        if tokens % positive_int("lengths entries", length):
            raise ValueError(f"tokens={tokens} must be a multiple of every length (got {length})")
        settings += [AttentionSetting(variant, length, tokens // length, d_model, n_heads, chunk_size, repeats,
                                      device) for variant in variants]
    results = []
    for s in settings:
        if s.variant == "full" and s.length > full_cap:
            results.append(Measurement(s, None, None, f"skipped: L={s.length} > full_cap={full_cap}"))
        else:
            results.append(measure(s) if fresh_process else _in_process(s))
    return results
