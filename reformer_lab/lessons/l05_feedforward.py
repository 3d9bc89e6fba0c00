"""Lesson 05, the chunked feed-forward (paper §3, eq. 10, Table 3): memory against the chunk count, Table 3's
formula beside the counted peak, and the chunk-count widget.

The plotting functions take the rows counted by :mod:`reformer_lab.measure.feedforward_stats`, draw on a
Matplotlib ``Axes`` (a new pyplot figure when none is given) and return the figure. :func:`chunk_explorer` is the
widget, built by :func:`reformer_lab.lessons.common.explorer`: it measures once and only redraws when its slider
moves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from reformer_lab.feedforward import FeedForward, chunk_divisors
from reformer_lab.lessons.common import Explorer, bytes_axis, choice_slider, explorer, new_axes
from reformer_lab.measure.feedforward_stats import ChunkMemory, Table3Row, chunk_memory
from reformer_lab.measure.memory import format_bytes, torch_threads, training_step
from reformer_lab.reversible import ReversibleBlock, ReversibleSequence
from reformer_lab.validation import positive_float, positive_int

__all__ = [
    "CHUNK_SERIES",
    "MIN_FONT_SIZE",
    "chunk_explorer",
    "chunk_step_seconds",
    "enlarge_text",
    "plot_chunk_memory",
    "plot_chunk_time",
    "plot_table3",
]

#: The smallest font size (points) of any text in this lesson's figures.
MIN_FONT_SIZE = 8.0

#: The :class:`~reformer_lab.measure.feedforward_stats.ChunkMemory` fields that :func:`plot_chunk_memory` draws:
#: (label, style).
CHUNK_SERIES: dict[str, tuple[str, str]] = {
    "ff_forward_peak": ("FF forward, no graph: peak live bytes", "o-"),
    "ff_recompute_peak": ("reversible backward's recomputation: peak saved bytes", "s-"),
    "ff_saved": ("FF under plain autograd: saved bytes", "x:"),
    "loss_forward_peak": ("chunked loss forward: peak live bytes", "^-"),
    "loss_saved": ("chunked loss: saved bytes", "v:"),
}

_MARK_COLOUR = "#444444"


def enlarge_text(fig: Figure, minimum: float = MIN_FONT_SIZE) -> Figure:
    """Raise every text of ``fig`` (labels, ticks, legends, bar labels, titles) to at least ``minimum`` points."""
    minimum = positive_float("minimum", minimum)
    for text in fig.findobj(lambda artist: hasattr(artist, "get_fontsize") and hasattr(artist, "set_fontsize")):
        if text.get_fontsize() < minimum:
            text.set_fontsize(minimum)
    return fig


def _counts(rows: Sequence[ChunkMemory]) -> list[int]:
    counts = [r.n_chunks for r in rows]
    if sorted(set(counts)) != counts:
        raise ValueError(f"chunk counts must be distinct and increasing, got {counts}")
    return counts


def _chunk_axis(ax: Axes, counts: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.minorticks_off()
    ax.set_xlabel("feed-forward chunks k (eq. 10)")
    ax.grid(True, which="major", alpha=0.3)


def plot_chunk_memory(rows: Sequence[ChunkMemory], ax: Axes | None = None, title: str | None = None,
                      mark: int | None = None, legend: bool = True) -> Figure:
    """Counted bytes against the feed-forward's chunk count k, log–log, one line per :data:`CHUNK_SERIES` field.

    A black dashed line falls as 1/k from the recomputed feed-forward's one-chunk value: what "the
    d_ff-wide activation exists for L/k positions at a time" predicts. ``mark`` (one of the rows' counts)
    draws a vertical line and rings its points, for the widget; ``legend=False`` leaves the legend to the caller.
    """
    if len(rows) < 2:
        raise ValueError("plot_chunk_memory needs at least two chunk counts")
    counts = _counts(rows)
    own = ax is None
    fig, ax = new_axes(ax, figsize=(9.5, 4.0))
    for field, (label, style) in CHUNK_SERIES.items():
        ax.plot(counts, [getattr(r, field) for r in rows], style, label=label)
    first = rows[0].ff_recompute_peak * counts[0]
    ax.plot(counts, [first / c for c in counts], "--", color="black", alpha=0.6, zorder=3, label="÷ k from one chunk")
    if mark is not None:
        if mark not in counts:
            raise ValueError(f"mark={mark} is not one of the chunk counts {counts}")
        row = rows[counts.index(mark)]
        ax.axvline(mark, color=_MARK_COLOUR, linewidth=1.0, linestyle=":")
        ax.plot([mark] * len(CHUNK_SERIES), [getattr(row, f) for f in CHUNK_SERIES], "o", markersize=11,
                markerfacecolor="none", markeredgecolor=_MARK_COLOUR, zorder=4)
    ax.set_yscale("log", base=2)
    _chunk_axis(ax, counts)
    ax.set_ylabel("bytes (log scale)")
    bytes_axis(ax)
    if legend:
        ax.legend(fontsize=MIN_FONT_SIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title or "memory against chunk count (counted)", fontsize=10)
    if own:
        fig.tight_layout()
    return fig


def plot_chunk_time(counts: Sequence[int], seconds: Sequence[float], ax: Axes | None = None,
                    mark: int | None = None) -> Figure:
    """Wall-clock milliseconds of one reversible training step against the chunk count (this machine's timing)."""
    counts = list(counts)
    if len(counts) != len(seconds) or len(counts) < 2:
        raise ValueError("plot_chunk_time needs one time per chunk count, at least two")
    own = ax is None
    fig, ax = new_axes(ax, figsize=(4.0, 3.4))
    ms = [1e3 * s for s in seconds]
    ax.plot(counts, ms, "s-", color="#8172B3")
    if mark is not None:
        if mark not in counts:
            raise ValueError(f"mark={mark} is not one of the chunk counts {counts}")
        ax.axvline(mark, color=_MARK_COLOUR, linewidth=1.0, linestyle=":")
        ax.plot([mark], [ms[counts.index(mark)]], "o", markersize=11, markerfacecolor="none",
                markeredgecolor=_MARK_COLOUR)
    _chunk_axis(ax, counts)
    ax.set_ylim(0, max(ms) * 1.15)
    ax.set_ylabel("ms per step (wall clock)")
    ax.set_title("time of one reversible step,\nthis machine (best of several)", fontsize=10)
    if own:
        fig.tight_layout()
    return fig


def plot_table3(rows: Sequence[Table3Row], ax: Axes | None = None, title: str | None = None) -> Figure:
    """Grouped bars per Table 3 row: the formula × 4 bytes (paper's c; c = keys compared) and the counted peak."""
    if not rows:
        raise ValueError("plot_table3 needs at least one Table3Row")
    fig, ax = new_axes(ax, figsize=(10.0, 5.0))
    series = {
        "Table 3 × 4 B, paper's c = (4l/n_c)²": ([r.formula_bytes for r in rows], "#BBBBBB"),
        "Table 3 × 4 B, c = keys compared": ([r.window_bytes for r in rows], "#4C72B0"),
        "counted: autograd's peak saved bytes": ([r.saved_peak for r in rows], "#DD8452"),
    }
    x, width = np.arange(len(rows)), 0.8 / len(series)
    for i, (label, (values, colour)) in enumerate(series.items()):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label, color=colour)
        ax.bar_label(bars, labels=[format_bytes(v) for v in values], fontsize=MIN_FONT_SIZE + 1, rotation=90,
                     padding=3)
    ax.set_yscale("log", base=2)
    ax.set_xticks(x, [r.variant for r in rows], fontsize=10)
    ax.set_ylabel("bytes (log scale)")
    bytes_axis(ax)
    top = max(max(r.formula_bytes, r.saved_peak) for r in rows)
    bottom = min(min(r.window_bytes, r.saved_peak) for r in rows)
    ax.set_ylim(bottom / 4, top * 2**6)
    ax.legend(fontsize=9, loc="upper left", ncols=1)
    ax.set_title(title or "Table 3: formula beside the count", fontsize=11)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# The widget


def chunk_step_seconds(counts: Sequence[int], *, length: int = 256, d_model: int = 32, d_ff: int = 1024,
                       repeats: int = 5, seed: int = 0) -> list[float]:
    """Wall-clock seconds (best of ``repeats``) of one training step of a one-block reversible stack whose
    feed-forward runs in ``k`` chunks, for each ``k`` in ``counts``; one CPU thread, after a warm-up step.

    The block is the one :func:`~reformer_lab.measure.feedforward_stats.chunk_memory` counts (a cheap F branch and
    a :class:`~reformer_lab.feedforward.FeedForward`), so the time is mostly the feed-forward's. A timing, not a
    count: it varies from machine to machine and run to run.
    """
    counts = [positive_int("n_chunks", c) for c in counts]
    repeats = positive_int("repeats", repeats)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = ReversibleBlock(nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model)),
                                FeedForward(d_model, d_ff))
        x = torch.randn(1, length, d_model)
    grad = torch.ones_like(x)
    seconds = []
    with torch_threads(1):
        for c in counts:
            if length % c:
                raise ValueError(f"n_chunks={c} must divide length={length}")
            stack = ReversibleSequence([block], ff_chunks=c)
            training_step(stack, x, grad, True)  # warm-up
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                training_step(stack, x, grad, True)
                best = min(best, time.perf_counter() - start)
            stack.zero_grad(set_to_none=True)
            seconds.append(best)
    return seconds


def _chunk_drawing(rows: Sequence[ChunkMemory], seconds: Sequence[float], length: int, d_ff: int,
                   n_chunks: int) -> tuple[Figure, str]:
    """The widget's figure (memory and time against k, ``n_chunks`` marked) and its line of numbers."""
    counts = [r.n_chunks for r in rows]
    fig = Figure(figsize=(10.0, 5.0))
    grid = fig.add_gridspec(1, 2, width_ratios=(1.7, 1.0))
    memory = fig.add_subplot(grid[0])
    plot_chunk_memory(rows, ax=memory, mark=n_chunks, legend=False,
                      title=f"memory against chunk count: l = {length}, d_ff {d_ff}")
    plot_chunk_time(counts, seconds, ax=fig.add_subplot(grid[1]), mark=n_chunks)
    fig.legend(*memory.get_legend_handles_labels(), loc="lower center", ncols=2, fontsize=MIN_FONT_SIZE + 1,
               frameon=False)
    fig.tight_layout(rect=(0, 0.15, 1, 1))
    row, first = rows[counts.index(n_chunks)], rows[0]
    t, t1 = seconds[counts.index(n_chunks)], seconds[0]
    text = (f"k = {n_chunks}: {length // n_chunks} positions per chunk. Counted (the same on every machine): the "
            f"reversible backward's recomputation <b>{format_bytes(row.ff_recompute_peak)}</b> "
            f"({first.ff_recompute_peak / row.ff_recompute_peak:.1f}× less than k = {first.n_chunks}), FF forward "
            f"<b>{format_bytes(row.ff_forward_peak)}</b>, loss forward <b>{format_bytes(row.loss_forward_peak)}</b>, "
            f"FF under plain autograd <b>{format_bytes(row.ff_saved)}</b>. Timed on this machine when the widget was "
            f"built: <b>{1e3 * t:.1f} ms</b> per step ({t / t1:.2f}× the time at k = {first.n_chunks}).")
    return fig, text


def chunk_explorer(
    n_chunks: int = 4,
    *,
    length: int = 256,
    d_model: int = 32,
    d_ff: int = 1024,
    vocab: int = 2048,
    max_chunks: int = 64,
    rows: Sequence[ChunkMemory] | None = None,
    seconds: Sequence[float] | None = None,
) -> Explorer:
    """Lesson 05's widget: a slider over the chunk counts (the divisors of ``length`` up to ``max_chunks``) that
    marks the chosen count on the memory-against-chunks figure and on the time of one step, with its numbers in
    the line above.

    Everything is measured once, here (``rows`` from :func:`~reformer_lab.measure.feedforward_stats.chunk_memory`
    and ``seconds`` from :func:`chunk_step_seconds`, unless given); moving the slider only redraws.
    """
    length = positive_int("length", length)
    counts = [c for c in chunk_divisors(length) if c <= positive_int("max_chunks", max_chunks)]
    slider = choice_slider("n_chunks", n_chunks, counts, "chunks k")
    if rows is None:
        rows = chunk_memory(counts, length=length, d_model=d_model, d_ff=d_ff, vocab=vocab)
    if seconds is None:
        seconds = chunk_step_seconds(counts, length=length, d_model=d_model, d_ff=d_ff)
    rows, seconds = list(rows), list(seconds)
    if [r.n_chunks for r in rows] != counts or len(seconds) != len(counts):
        raise ValueError(f"rows and seconds must be given for the chunk counts {counts}")

    def draw(n_chunks: int) -> tuple[Figure, str]:
        return _chunk_drawing(rows, seconds, length, d_ff, n_chunks)

    return explorer({"n_chunks": slider}, draw, width="900px")
