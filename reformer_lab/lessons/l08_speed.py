"""Lesson 08, speed and memory against length (paper §5, Figure 5 right): its figures and cost-model widget.

Every plot takes :class:`~reformer_lab.measure.speed_stats.SpeedPoint` lists (measured live or read from
``results/bench``) and draws on given axes; :func:`cost_explorer` redraws the fitted cost model's curves for
other tokens per step, hash rounds and chunk sizes, with the measured points on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from reformer_lab.lessons.common import Explorer, bytes_axis, choice_slider, explorer, new_axes
from reformer_lab.measure.memory import format_bytes
from reformer_lab.measure.speed_stats import (
    STAGES,
    CostModel,
    SpeedPoint,
    crossover,
    series,
    table1_bytes,
)

#: One colour and line style per variant, the same in every figure of the lesson.
STYLE = {
    "full": dict(color="black", marker="s", linestyle="-"),
    "memory-efficient": dict(color="0.55", marker="D", linestyle="-"),
    "sdpa": dict(color="tab:purple", marker="^", linestyle="-"),
    "lsh-1": dict(color="#9ecae1", marker="o", linestyle="--"),
    "lsh-2": dict(color="#4292c6", marker="o", linestyle="--"),
    "lsh-4": dict(color="#2171b5", marker="o", linestyle="--"),
    "lsh-8": dict(color="#08306b", marker="o", linestyle="--"),
}
LABELS = {"full": "full (L×L)", "memory-efficient": "memory-efficient", "sdpa": "fused SDPA",
          "lsh-1": "LSH-1", "lsh-2": "LSH-2", "lsh-4": "LSH-4", "lsh-8": "LSH-8"}


def _length_axis(ax: Axes, lengths: Sequence[float], batches: Mapping[float, int] | None = None) -> None:
    """A log₂ length axis with one tick per measured length, labelled ``L/batch`` as in Figure 5 (right)."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(lengths))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    labels = [f"{int(x)}/{batches[x]}" if batches else f"{int(x)}" for x in lengths]
    ax.set_xticks(lengths, labels, rotation=30 if len(lengths) > 5 else 0, fontsize=9)
    ax.set_xlabel("sequence length / batch" if batches else "sequence length")


def plot_speed(points: Sequence[SpeedPoint], ax: Axes | None = None, *, title: str = "",
               mark: Sequence[tuple[str, str]] = (("lsh-4", "full"),)) -> Figure:
    """Seconds per step against length on log–log axes, one line per variant; each ``(fast, slow)`` pair in
    ``mark`` gets a dotted vertical line where :func:`~reformer_lab.measure.speed_stats.crossover` puts it."""
    fig, ax = new_axes(ax, (7.0, 4.2))
    for variant, style in STYLE.items():
        lengths, seconds = series(points, variant)
        if len(lengths):
            ax.plot(lengths, seconds, label=LABELS[variant], markersize=4, **style)
    for i, (fast, slow) in enumerate(mark):
        found = crossover(points, fast, slow)
        if found.kind == "at":
            ax.axvline(found.length, color="tab:red", linestyle=":", linewidth=1)
            ax.annotate(f"{LABELS[fast]} overtakes\n{LABELS[slow]}\nat L ≈ {float(f'{found.length:.2g}'):,.0f}",
                        (found.length, 0.03 + 0.2 * i), xycoords=("data", "axes fraction"), va="bottom",
                        ha="left", fontsize=7.5, color="tab:red", xytext=(3, 0), textcoords="offset points")
    lengths = sorted({p.length for p in points})
    _length_axis(ax, lengths, {p.length: p.batch for p in points})
    ax.set_yscale("log")
    ax.set_ylabel("seconds per step (forward + backward)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    _legend_below(ax)
    return fig


def _legend_below(ax: Axes) -> None:
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)


def plot_memory(points: Sequence[SpeedPoint], ax: Axes | None = None, *, title: str = "",
                table1: Sequence[str] = ("full", "lsh-2")) -> Figure:
    """Measured peak memory per step against length (solid), and Table 1's memory row in float32 bytes for the
    variants in ``table1`` (thin dotted lines of the same colour)."""
    fig, ax = new_axes(ax, (7.0, 4.2))
    for variant, style in STYLE.items():
        lengths, peak = series(points, variant, "peak_bytes")
        if len(lengths):
            ax.plot(lengths, peak, label=LABELS[variant], markersize=4, **style)
    for variant in table1:
        chosen = sorted((p.length, p.batch, p) for p in points if p.variant == variant)
        if chosen:
            first = chosen[0][2]
            predicted = [table1_bytes(variant, length, batch, n_heads=first.n_heads, d_model=first.d_model,
                                      chunk_size=first.chunk_size) for length, batch, _ in chosen]
            ax.plot([c[0] for c in chosen], predicted, color=STYLE[variant]["color"], linestyle=":", linewidth=1.2,
                    label=f"Table 1, {LABELS[variant]}")
    lengths = sorted({p.length for p in points})
    _length_axis(ax, lengths, {p.length: p.batch for p in points})
    ax.set_yscale("log", base=2)
    bytes_axis(ax)
    ax.set_ylabel("peak memory of one step")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    _legend_below(ax)
    return fig


def plot_breakdown(stages: Mapping[str, float], ax: Axes | None = None, *, title: str = "") -> Figure:
    """One horizontal stacked bar: the seconds of each stage of :data:`~reformer_lab.measure.speed_stats.STAGES`,
    labelled with its share of the step where the segment is wide enough."""
    fig, ax = new_axes(ax, (7.5, 2.4))
    colours = dict(zip(STAGES, matplotlib.colormaps["tab10"](range(len(STAGES))), strict=True))
    total, left = sum(stages[s] for s in STAGES), 0.0
    for stage in STAGES:
        width = stages[stage]
        ax.barh(0, width, left=left, color=colours[stage], label=f"{stage} ({width / total:.0%})", height=0.5)
        if width / total > 0.06:
            ax.text(left + width / 2, 0, f"{width / total:.0%}", ha="center", va="center", fontsize=9,
                    color="white")
        left += width
    ax.set_yticks([])
    ax.set_xlabel("seconds of ATen ops in one step (profiler)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.45), frameon=False)
    return fig


def plot_peers(rows: Sequence[tuple[str, int, float | None, int | None]], ax: Axes | None = None) -> Figure:
    """Seconds per step of whole LSH self-attention modules against length: ``(name, length, seconds, peak)``."""
    fig, ax = new_axes(ax, (6.0, 3.6))
    colours = {"ours-module": "#2171b5", "reformer-pytorch": "tab:orange", "hf-transformers": "tab:green"}
    for name, colour in colours.items():
        chosen = sorted((length, s) for n, length, s, _ in rows if n == name and s is not None)
        if chosen:
            ax.plot(*zip(*chosen, strict=True), marker="o", color=colour, label=name.replace("ours-module",
                                                                                           "reformer_lab"))
    lengths = sorted({length for _, length, _, _ in rows})
    _length_axis(ax, lengths)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("seconds per step")
    ax.set_title("LSH self-attention modules, 2 rounds, chunk 64 (committed run)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------------
# The widget


def _cost_drawing(model: CostModel, points: Sequence[SpeedPoint], tokens: int, n_hashes: int,
                  chunk_size: int) -> tuple[Figure, str]:
    fig = Figure(figsize=(9.0, 3.6))
    time_ax, memory_ax = fig.subplots(1, 2)
    lengths = np.array([2**k for k in range(8, 16) if 2**k <= tokens and 2**k % chunk_size == 0], dtype=float)
    shown = ("full", "memory-efficient", "sdpa", f"lsh-{n_hashes}")
    for variant in shown:
        if variant not in model.coefficients:
            continue
        style = dict(STYLE[variant], marker=None)
        time_ax.plot(lengths, [model.seconds(variant, x, tokens, chunk_size) for x in lengths],
                     label=LABELS[variant], **style)
        memory_ax.plot(lengths, [model.peak_bytes(variant, x, tokens, chunk_size) for x in lengths], **style)
        measured = [p for p in points if p.variant == variant and p.tokens == tokens and p.seconds is not None
                    and (not variant.startswith("lsh-") or p.chunk_size == chunk_size)]
        for ax, field in ((time_ax, "seconds"), (memory_ax, "peak_bytes")):
            xs = [p.length for p in measured if getattr(p, field)]
            ax.scatter(xs, [getattr(p, field) for p in measured if getattr(p, field)],
                       color=STYLE[variant]["color"], marker=STYLE[variant]["marker"], s=22, zorder=3)
    for ax in (time_ax, memory_ax):
        _length_axis(ax, list(lengths))
        ax.set_yscale("log", base=2 if ax is memory_ax else 10)
        ax.grid(True, alpha=0.3)
    bytes_axis(memory_ax)
    time_ax.set_ylabel("seconds per step")
    memory_ax.set_ylabel("peak memory per step")
    time_ax.legend(fontsize=8)
    fig.suptitle(f"cost model at {tokens:,} tokens per step (lines); committed measurements (points)", fontsize=10)
    fig.tight_layout()
    lsh = f"lsh-{n_hashes}"
    text = (f"At L = {int(lengths[-1]):,}: LSH-{n_hashes} with chunk {chunk_size} is predicted at "
            f"{model.seconds(lsh, lengths[-1], tokens, chunk_size):.2f} s and "
            f"{format_bytes(model.peak_bytes(lsh, lengths[-1], tokens, chunk_size))}; full attention at "
            f"{model.seconds('full', lengths[-1], tokens):.2f} s and "
            f"{format_bytes(model.peak_bytes('full', lengths[-1], tokens))}.")
    return fig, text


def cost_explorer(model: CostModel, points: Sequence[SpeedPoint], tokens: int = 16384, n_hashes: int = 2,
                  chunk_size: int = 64) -> Explorer:
    """Lesson 08's widget: tokens per step, hash rounds and chunk size; redraws the fitted model's time and memory
    curves, with the committed measurements of that setting as points."""
    controls = {
        "tokens": choice_slider("tokens", tokens, [4096, 8192, 16384, 32768, 65536], "tokens/step",
                                label=lambda t: f"{t // 1024}K"),
        "n_hashes": choice_slider("n_hashes", n_hashes, [1, 2, 4, 8], "hash rounds"),
        "chunk_size": choice_slider("chunk_size", chunk_size, [32, 64, 128, 256], "chunk size"),
    }
    return explorer(controls, lambda **kw: _cost_drawing(model, points, **kw), width="760px", label_width="90px")


__all__ = ["LABELS", "STYLE", "cost_explorer", "plot_breakdown", "plot_memory", "plot_peers", "plot_speed"]
