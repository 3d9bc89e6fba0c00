"""Lesson 03, LSH attention (paper §2, Appendix A, Table 1): full against LSH attention as hash rounds are added,
Appendix A's N_ij as a heat map, Table 1's memory and time against length, and the rounds explorer widget.

Pure plotting functions take the results of :mod:`reformer_lab.measure.attention_stats`, draw on the given axes
(a new pyplot figure when none is given) and return the figure. :func:`rounds_explorer` is the widget over
:func:`reformer_lab.measure.attention_stats.one_query_weights` and :func:`plot_query_weights`, built by
:func:`reformer_lab.lessons.common.explorer`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from torch import Tensor

from reformer_lab.hashing import check_n_buckets, random_rotations
from reformer_lab.lessons.common import Explorer, bytes_axis, detached_axes, explorer, new_axes
from reformer_lab.measure.attention_stats import (
    QueryWeights,
    RoundsError,
    Table1Row,
    clustered_qk,
    one_query_weights,
)
from reformer_lab.validation import as_int, positive_int

__all__ = [
    "VARIANT_COLOURS",
    "plot_pair_counts",
    "plot_query_weights",
    "plot_rounds_error",
    "plot_table1_memory",
    "plot_table1_times",
    "rounds_explorer",
]

#: One colour per attention variant, shared by the Table 1 figures.
VARIANT_COLOURS = {
    "dot-product": "#C44E52",
    "full": "#C44E52",
    "memory-efficient": "#DD8452",
    "lsh-1": "#4C72B0",
    "lsh-2": "#55A868",
    "lsh-4": "#8172B3",
    "lsh-8": "#937860",
    "sdpa": "#8C8C8C",
}
_FULL, _LSH, _MISSED = "#9a9a9a", "#1f5aa6", "#c0392b"


def _colour(variant: str, i: int) -> str:
    return VARIANT_COLOURS.get(variant, plt.get_cmap("tab10")(i % 10))


def plot_rounds_error(curves: Mapping[str, RoundsError], axes: Sequence[Axes] | None = None) -> Figure:
    """Two panels against ``n_hashes``: the weight rows' total-variation distance and the output's relative error.

    One line per entry of ``curves`` (label → :class:`RoundsError`), the mean over trials with the
    trials' range shaded. The x axis is log₂ (1, 2, 4, 8 rounds).
    """
    if not curves:
        raise ValueError("plot_rounds_error needs at least one curve")
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8))
    else:
        fig = axes[0].figure
    panels = (("tv", "attention mass missed (TV distance)"), ("rel_error", "‖o_LSH − o_full‖ / ‖o_full‖"))
    for ax, (field, ylabel) in zip(axes, panels, strict=True):
        for i, (label, result) in enumerate(curves.items()):
            data = getattr(result, field).numpy()
            x = np.array(result.n_hashes)
            colour = plt.get_cmap("tab10")(i)
            ax.plot(x, data.mean(0), "o-", color=colour, label=label)
            ax.fill_between(x, data.min(0), data.max(0), color=colour, alpha=0.15, linewidth=0)
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(curves.values())[0].n_hashes)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("hash rounds n_hashes")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=min(len(labels), 3), fontsize=8, frameon=False)
    fig.suptitle("LSH attention against full attention as rounds are added (mean of trials, range shaded)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_query_weights(weights: QueryWeights, *, top: int = 48, ax: Axes | None = None) -> Figure:
    """One query's ``top`` heaviest keys under full attention (grey bars) and their LSH weights (blue dots).

    Keys are ranked by their full-attention weight. Keys that LSH never visited are marked with a red
    cross at zero; the mass they carry is what LSH misses (its weights are renormalised over the rest,
    so the blue dots sit above the bars).
    """
    fig, ax = new_axes(ax)
    order = torch.argsort(weights.full, descending=True)[:top]
    ranks = np.arange(1, len(order) + 1)
    full, lsh, visited = weights.full[order].numpy(), weights.lsh[order].numpy(), weights.visited[order].numpy()
    ax.bar(ranks, full, color=_FULL, width=0.8, label="full attention")
    ax.plot(ranks[visited], lsh[visited], "o", color=_LSH, markersize=4, label=f"LSH, {weights.n_hashes} round(s)")
    if (~visited).any():
        ax.plot(ranks[~visited], np.zeros((~visited).sum()), "x", color=_MISSED, markersize=6, label="never visited")
    ax.set_xlabel(f"key, ranked by full-attention weight (top {len(order)})")
    ax.set_ylabel("weight")
    ax.set_title(f"query {weights.query}, n_hashes = {weights.n_hashes}: mass missed {weights.tv:.2f}", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_pair_counts(counts: Tensor, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Heat map of Appendix A's N_ij: how many rounds visit key j (columns) for query i (rows); white = never."""
    if counts.dim() != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"counts must be a square [L, L] tensor, got {tuple(counts.shape)}")
    fig, ax = new_axes(ax, figsize=(4.2, 3.6))
    top = max(int(counts.max()), 1)
    colours = ["#ffffff"] + [plt.get_cmap("Blues")(0.3 + 0.7 * k / top) for k in range(1, top + 1)]
    norm = BoundaryNorm(np.arange(-0.5, top + 1.5), len(colours))
    image = ax.imshow(counts.numpy(), cmap=ListedColormap(colours), norm=norm)
    colourbar = fig.colorbar(image, ax=ax, ticks=range(top + 1), fraction=0.046, pad=0.04)
    colourbar.set_label("N_ij (rounds)")
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
    ax.set_title(title or "N_ij: rounds in which j is in i's window", fontsize=9)
    fig.tight_layout()
    return fig


def plot_table1_memory(rows: Sequence[Table1Row], *, ax: Axes | None = None) -> Figure:
    """Measured saved-for-backward bytes against L (solid) beside Table 1's memory × 4 bytes (dashed), log–log."""
    if not rows:
        raise ValueError("plot_table1_memory needs at least one row")
    fig, ax = new_axes(ax, figsize=(7.0, 4.2))
    variants = list(dict.fromkeys(r.variant for r in rows))
    drawn: dict[tuple, str] = {}  # formula series already drawn → its variant (Table 1 repeats a row)
    for i, variant in enumerate(variants):
        mine = [r for r in rows if r.variant == variant]
        lengths = [r.length for r in mine]
        colour = _colour(variant, i)
        ax.loglog(lengths, [r.saved_bytes for r in mine], "o-", base=2, color=colour, label=f"{variant} measured")
        formula = tuple((r.length, 4 * r.formula_memory) for r in mine)
        same = drawn.setdefault(formula, variant)
        repeated = same != variant
        style = ":" if repeated else "--"
        label = f"{variant}: Table 1 (= {same})" if repeated else f"{variant}: Table 1 × 4 B"
        ax.loglog(lengths, [b for _, b in formula], style, base=2, color=colour, alpha=0.8, linewidth=2, label=label)
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("bytes (log scale)")
    bytes_axis(ax)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_title("Table 1 memory: saved for backward (solid) against the formula (dashed)", fontsize=10)
    ax.legend(fontsize=7, ncols=2, loc="upper left")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig


def _seconds(value: float, _position: object = None) -> str:
    """Axis label for a duration: ``"10 ms"``, ``"1 s"``."""
    return f"{value * 1e3:g} ms" if value < 1 else f"{value:g} s"


def plot_table1_times(times: Mapping[str, Mapping[int, float]], *, ax: Axes | None = None) -> Figure:
    """Seconds per forward+backward step against L, one line per variant, log–log."""
    if not any(times.values()):
        raise ValueError("plot_table1_times needs at least one timing")
    fig, ax = new_axes(ax, figsize=(7.0, 3.6))
    for i, (variant, points) in enumerate(times.items()):
        if points:
            lengths = sorted(points)
            ax.loglog(lengths, [points[n] for n in lengths], "o-", base=2, color=_colour(variant, i), label=variant)
    ax.set_yscale("log", base=10)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_seconds))
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("seconds per step (log scale)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_title("Table 1 time: one forward + backward step, batch 1, this machine", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------
# Widget
# ----------------------------------------------------------------------------------------------------


def _summary_html(weights: QueryWeights, label: int, across: bool) -> str:
    keys = int(weights.visited.sum())
    mode = "every key in the window" if across else "same-bucket keys only"
    return (f"<b>query {weights.query}</b> (cluster {label}), <b>{weights.n_hashes}</b> round(s), {html.escape(mode)}:"
            f" visits {keys} of {weights.full.numel()} keys; full-attention mass missed "
            f"<b>{weights.tv:.3f}</b>")  # fmt: skip


def rounds_explorer(
    length: int = 512,
    dim: int = 64,
    n_clusters: int = 8,
    n_buckets: int = 16,
    max_hashes: int = 8,
    query: int = 0,
    seed: int = 0,
) -> Explorer:
    """Lesson 03's widget: one query's attention, full against LSH, as hash rounds are added.

    Clustered shared-QK vectors (:func:`~reformer_lab.measure.attention_stats.clustered_qk`) and ``max_hashes``
    rotations are drawn once from ``seed``; the ``n_hashes`` slider uses the first n of them, so
    moving it right only adds rounds. Sliders: ``n_hashes``, the query; a checkbox switches
    ``attend_across_buckets``.
    """
    length = positive_int("length", length)
    max_hashes = positive_int("max_hashes", max_hashes)
    query = as_int("query", query, minimum=0, maximum=length - 1)
    check_n_buckets(n_buckets)
    generator = torch.Generator().manual_seed(as_int("seed", seed, minimum=0))
    qk, labels = clustered_qk(length, dim, n_clusters, generator=generator)
    v = torch.randn(length, dim, generator=generator)
    rotations = random_rotations(dim, n_buckets, max_hashes, generator=generator)

    def draw(n_hashes: int, query: int, attend_across_buckets: bool) -> tuple[Figure, str]:
        weights = one_query_weights(qk, v, query, n_buckets=n_buckets, rotations=rotations, n_hashes=n_hashes,
                                    attend_across_buckets=attend_across_buckets)  # fmt: skip
        text = _summary_html(weights, int(labels[query]), attend_across_buckets)
        return plot_query_weights(weights, ax=detached_axes()), text

    controls = {
        "n_hashes": w.IntSlider(value=1, min=1, max=max_hashes, description="n_hashes"),
        "query": w.IntSlider(value=query, min=0, max=length - 1, description="query"),
        "attend_across_buckets": w.Checkbox(value=False, description="attend across buckets"),
    }
    return explorer(controls, draw, columns=3)
