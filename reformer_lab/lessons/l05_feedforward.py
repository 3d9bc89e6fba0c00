"""Lesson 05, the chunked feed-forward (paper §3, eq. 10, Table 3): memory against the chunk count, and Table 3's
formula beside the measured peak.

Pure plotting: each function takes the rows measured by :mod:`reformer_lab.measure.feedforward_stats`, draws on a
Matplotlib ``Axes`` (a new pyplot figure when none is given) and returns the figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reformer_lab.lessons.common import bytes_axis, new_axes
from reformer_lab.measure.feedforward_stats import ChunkMemory, Table3Row
from reformer_lab.measure.memory import format_bytes

__all__ = ["CHUNK_SERIES", "plot_chunk_memory", "plot_table3"]

#: The :class:`~reformer_lab.measure.feedforward_stats.ChunkMemory` fields that :func:`plot_chunk_memory` draws:
#: (label, style).
CHUNK_SERIES: dict[str, tuple[str, str]] = {
    "ff_forward_peak": ("FF forward, no graph: peak live bytes", "o-"),
    "ff_recompute_peak": ("FF in the reversible backward: peak saved bytes", "s-"),
    "ff_saved": ("FF under plain autograd: saved bytes", "x:"),
    "loss_forward_peak": ("chunked loss forward: peak live bytes", "^-"),
    "loss_saved": ("chunked loss: saved bytes", "v:"),
}


def plot_chunk_memory(rows: Sequence[ChunkMemory], ax: Axes | None = None, title: str | None = None) -> Figure:
    """Measured bytes against the chunk count c, log–log, one line per :data:`CHUNK_SERIES` field.

    A grey dashed line falls as 1/c from the recomputed feed-forward's one-chunk value: what "the
    d_ff-wide activation exists for L/c positions at a time" predicts.
    """
    if len(rows) < 2:
        raise ValueError("plot_chunk_memory needs at least two chunk counts")
    counts = [r.n_chunks for r in rows]
    if sorted(set(counts)) != counts:
        raise ValueError(f"chunk counts must be distinct and increasing, got {counts}")
    fig, ax = new_axes(ax, figsize=(9.5, 4.0))
    for field, (label, style) in CHUNK_SERIES.items():
        ax.plot(counts, [getattr(r, field) for r in rows], style, label=label)
    first = rows[0].ff_recompute_peak * counts[0]
    ax.plot(counts, [first / c for c in counts], "--", color="black", alpha=0.6, zorder=3, label="÷ c from one chunk")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_xlabel("chunks c (eq. 10)")
    ax.set_ylabel("bytes (log scale)")
    bytes_axis(ax)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title or "memory against chunk count (measured)")
    fig.tight_layout()
    return fig


def plot_table3(rows: Sequence[Table3Row], ax: Axes | None = None, title: str | None = None) -> Figure:
    """Grouped bars per Table 3 row: the formula × 4 bytes (paper's c; c = keys compared) and the measured peak."""
    if not rows:
        raise ValueError("plot_table3 needs at least one Table3Row")
    fig, ax = new_axes(ax, figsize=(8.0, 4.2))
    series = {
        "Table 3 × 4 B, c = (4l/n_c)²": ([r.formula_bytes for r in rows], "#BBBBBB"),
        "Table 3 × 4 B, c = keys compared": ([r.window_bytes for r in rows], "#4C72B0"),
        "measured: peak saved bytes": ([r.saved_peak for r in rows], "#DD8452"),
    }
    x, width = np.arange(len(rows)), 0.8 / len(series)
    for i, (label, (values, colour)) in enumerate(series.items()):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label, color=colour)
        ax.bar_label(bars, labels=[format_bytes(v) for v in values], fontsize=6, rotation=90, padding=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(x, [r.variant for r in rows], fontsize=8)
    ax.set_ylabel("bytes (log scale)")
    bytes_axis(ax)
    top = max(max(r.formula_bytes, r.saved_peak) for r in rows)
    bottom = min(min(r.window_bytes, r.saved_peak) for r in rows)
    ax.set_ylim(bottom / 4, top * 2**3)
    ax.legend(fontsize=7, loc="upper right", ncols=1)
    ax.set_title(title or "Table 3: formula beside measurement")
    fig.tight_layout()
    return fig
