"""Lesson 04, reversible layers (paper §3, eqs. 7–9, Table 3): saved bytes against depth and length beside
Table 3's formula, the reconstruction error of eq. 8 against depth, and the memory-curves widget.

The plotting functions take plain data and return a figure (a new pyplot figure unless one is given).
:func:`memory_curves` is the widget, built by :func:`reformer_lab.lessons.common.explorer`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import matplotlib.ticker
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reformer_lab.lessons.common import Explorer, bytes_axis, choice_slider, explorer, new_axes
from reformer_lab.measure import reversible_stats
from reformer_lab.measure.memory import format_bytes
from reformer_lab.measure.reversible_stats import GpuCurves, MemoryCurves, StackConfig
from reformer_lab.validation import as_int, one_of

__all__ = ["VARIANT_COLOURS", "memory_curves", "plot_memory_curves", "plot_reconstruction_errors"]

VARIANT_COLOURS = {"ordinary": "#C44E52", "reversible": "#4C72B0", "reversible+chunked": "#55A868"}
# marker and line width: the two reversible curves often coincide, so the first is drawn wide under the second
_VARIANT_STYLE = {"ordinary": ("o", 1.5), "reversible": ("s", 4.0), "reversible+chunked": ("^", 1.3)}

#: The widget's slider ranges (small enough that a new setting is measured in about a second).
WIDGET_DEPTHS = tuple(range(1, 25))
WIDGET_LENGTHS = (64, 128, 256, 512)
WIDGET_D_MODEL = (16, 32, 64)
WIDGET_D_FF = (64, 128, 256, 512, 1024)
WIDGET_CHUNKS = (1, 2, 4, 8)


def plot_reconstruction_errors(errors: Mapping[str, Mapping[int, float]], ax: Axes | None = None) -> Figure:
    """Max |X − X̂| after n blocks forward (eq. 9) and back (eq. 8), one line per dtype, log scale."""
    if not errors or not all(errors.values()):
        raise ValueError("errors must map a label to a non-empty {depth: error} dict")
    fig, ax = new_axes(ax, figsize=(6.0, 3.4))
    for label, by_depth in errors.items():
        depths = sorted(by_depth)
        ax.semilogy(depths, [max(by_depth[n], 1e-300) for n in depths], "o-", label=label)
    ax.set_xlabel("blocks inverted, n")
    ax.set_ylabel("max |X − X̂|")
    ax.set_title("reconstruction error against depth (eq. 8 applied n times)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _panel(ax: Axes, xs: Sequence[int], measured: Mapping[str, Sequence[float]],
           formula: Mapping[str, Sequence[float]], xlabel: str, title: str) -> None:
    """One panel on log–log axes: a power law is a straight line (slope 1 for ordinary against depth, 0 when flat)."""
    for variant, values in measured.items():
        colour = VARIANT_COLOURS.get(variant, "black")
        marker, width = _VARIANT_STYLE.get(variant, ("o", 1.5))
        ax.plot(xs, values, marker=marker, linestyle="-", linewidth=width, color=colour, markersize=4,
                label=f"{variant}, measured")
        if variant in formula:
            ax.plot(xs, formula[variant], "--", color=colour, alpha=0.6, label=f"{variant}, Table 3 × 4 B")
    ax.set_xscale("log", base=2)
    ticks = list(xs) if len(xs) <= 8 else sorted({x for x in xs if x & (x - 1) == 0} | {xs[-1]})
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    bytes_axis(ax)
    ax.grid(True, which="major", alpha=0.3)


def plot_memory_curves(
    curves: MemoryCurves,
    *,
    quantity: str = "saved_peak",
    formula: bool = True,
    gpu: GpuCurves | Mapping[str, Sequence[int]] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Saved bytes against depth and against length, ordinary vs reversible, beside Table 3 (paper §3).

    ``quantity`` is ``"saved_peak"`` (the most saved bytes alive at any moment of the step) or
    ``"saved_after_forward"`` (what is held between forward and backward). ``gpu`` adds a third panel:
    either stored :class:`~reformer_lab.measure.reversible_stats.GpuCurves` or ``{variant: peaks}`` measured at
    ``curves.depths`` on this machine's GPU.
    """
    one_of("quantity", quantity, ("saved_peak", "saved_after_forward"))
    panels = 3 if gpu is not None else 2
    fig = fig if fig is not None else plt.figure(figsize=(4.4 * panels, 3.8))
    axes = fig.subplots(1, panels)
    c = curves.config
    by_depth = {v: [getattr(m, quantity) for m in ms] for v, ms in curves.by_depth.items()}
    by_length = {v: [getattr(m, quantity) for m in ms] for v, ms in curves.by_length.items()}
    _panel(axes[0], curves.depths, by_depth, curves.table3_depth if formula else {}, "layers n_l",
           f"against depth, L = {c.length}")
    _panel(axes[1], curves.lengths, by_length, curves.table3_length if formula else {}, "sequence length L",
           f"against length, n_l = {curves.n_layers}")
    axes[0].set_ylabel("saved peak" if quantity == "saved_peak" else "saved after forward")
    axes[0].axvline(curves.n_layers, color="grey", linewidth=0.8, linestyle=":")  # the depth of the right panel
    if gpu is not None:
        _gpu_panel(axes[2], gpu, curves)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=3, fontsize=8, frameon=False)
    fig.suptitle(f"{c.attention} attention, d_model {c.d_model}, d_ff {c.d_ff}, {c.n_heads} heads, "
                 f"ff_chunks {c.ff_chunks}, batch {c.batch}, float32", fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def _gpu_panel(ax: Axes, gpu: GpuCurves | Mapping[str, Sequence[int]], curves: MemoryCurves) -> None:
    if isinstance(gpu, GpuCurves):
        measured = gpu.peaks
        for variant, peaks in measured.items():
            ax.plot(gpu.depths[variant], peaks, "o-", color=VARIANT_COLOURS.get(variant, "black"), markersize=3.5)
        ax.set_title(f"GPU peak (stored), {gpu.setting}", fontsize=8)
    else:
        for variant, peaks in gpu.items():
            ax.plot(curves.depths, peaks, "o-", color=VARIANT_COLOURS.get(variant, "black"), markersize=3.5)
        ax.set_title(f"GPU peak allocated, this machine, L = {curves.config.length}", fontsize=9)
    ax.set_xlabel("layers n_l")
    ax.set_yscale("log", base=2)
    bytes_axis(ax)
    ax.grid(True, which="major", alpha=0.3)


# --------------------------------------------------------------------------------------------------
# The widget


def _gpu_note(gpu: GpuCurves | None, has_cuda: bool) -> str:
    if has_cuda:
        return "GPU: the third panel is peak CUDA memory allocated by one step, measured now on this machine."
    if gpu is None:
        return ("GPU: no CUDA device here, and no stored GPU curves: results/bench/memory-*cuda*.json does not "
                "exist. On a CUDA machine run <code>python -m reformer_lab.bench memory --device cuda --json "
                "results/bench/memory-cuda.json</code> to make them.")
    return (f"GPU: no CUDA device here; the third panel is loaded from <code>{html.escape(gpu.source)}</code> "
            f"({html.escape(gpu.device)}, {html.escape(gpu.setting)}); it does not follow the sliders.")


def _widget_figure(config: StackConfig, depth: int, gpu: GpuCurves | None, has_cuda: bool) -> tuple[Figure, str]:
    """The widget's figure (on a detached Figure) and the line of numbers under it."""
    depths = tuple(n for n in (1, 2, 4, 8, 12, 16, 24) if n <= max(depth, 2)) if has_cuda else WIDGET_DEPTHS
    curves = reversible_stats.memory_curves_data(config, depths, WIDGET_LENGTHS, depth)
    gpu_data: GpuCurves | dict[str, list[int]] | None = gpu
    if has_cuda:
        gpu_data = reversible_stats.cuda_peaks(config, depths)
    panels = 3 if gpu_data is not None else 2
    fig = plot_memory_curves(curves, gpu=gpu_data, fig=Figure(figsize=(4.4 * panels, 3.8)))
    ordinary = reversible_stats.layer_model(config, "ordinary").at(depth).saved_peak
    reversible = reversible_stats.layer_model(config, "reversible").at(depth).saved_peak
    chunked = reversible_stats.layer_model(config, "reversible+chunked").at(depth).saved_peak
    numbers = (f"At n_l = {depth}, L = {config.length}: saved peak ordinary <b>{format_bytes(ordinary)}</b>, "
               f"reversible <b>{format_bytes(reversible)}</b> ({ordinary / reversible:.1f}× less), "
               f"reversible + {config.ff_chunks} FF chunks <b>{format_bytes(chunked)}</b>.")
    return fig, numbers


def memory_curves(
    depth: int = 12, length: int = 256, d_model: int = 32, d_ff: int = 512, ff_chunks: int = 4,
    attention: str = "full", results_dir: str | None = None,
) -> Explorer:
    """Lesson 04's widget: saved bytes against depth and length, ordinary vs reversible (+ chunked FF), measured
    on this machine for the sliders' setting, with Table 3's formula dashed beside each curve (paper §3).

    Sliders: depth n_l, length L, d_model, d_ff, FF chunks, attention type. A new setting is measured at
    depths 1 and 2 per length (:func:`reformer_lab.measure.reversible_stats.layer_model`, exact and cached), so a
    redraw takes about a second the first time and a fraction of that after. With CUDA the figure adds the
    measured peak GPU memory; without it, the stored GPU curves from ``results/bench/`` (``results_dir``, default
    the repository's ``results/``) if there are any, and the output says plainly when there are none.
    """
    depth = as_int("depth", depth, minimum=1, maximum=WIDGET_DEPTHS[-1])
    has_cuda = torch.cuda.is_available()
    gpu = None if has_cuda else reversible_stats.load_gpu_results(results_dir)
    note = _gpu_note(gpu, has_cuda)

    def draw(depth: int, attention: str, **sizes: int) -> tuple[Figure, str]:
        fig, numbers = _widget_figure(StackConfig(**sizes, attention=attention), depth, gpu, has_cuda)
        return fig, f"{numbers}<br>{note}"

    controls = {
        "depth": w.IntSlider(value=depth, min=1, max=WIDGET_DEPTHS[-1], description="layers n_l"),
        "length": choice_slider("length", length, WIDGET_LENGTHS, "length L"),
        "d_model": choice_slider("d_model", d_model, WIDGET_D_MODEL),
        "d_ff": choice_slider("d_ff", d_ff, WIDGET_D_FF),
        "ff_chunks": choice_slider("ff_chunks", ff_chunks, WIDGET_CHUNKS, "FF chunks"),
        "attention": w.ToggleButtons(options=["lsh", "full"], value=one_of("attention", attention, ("lsh", "full")),
                                     description="attention", style={"button_width": "60px"}),
    }
    return explorer(controls, draw, width="900px")

