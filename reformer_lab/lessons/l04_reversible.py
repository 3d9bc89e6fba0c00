"""Lesson 04, reversible layers (paper §3, eqs. 7–9, Table 3): autograd's saved bytes against depth and length
beside Table 3's formula and the parameter memory, the reconstruction error of eq. 8 against depth, and the
memory-curves widget.

The plotting functions take plain data and return a figure (a new pyplot figure unless one is given).
:func:`weight_bytes` counts a stack's parameters (the grey lines of the memory figure).
:func:`memory_curves` is the widget, built by :func:`reformer_lab.lessons.common.explorer`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache

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

__all__ = ["VARIANT_COLOURS", "memory_curves", "plot_memory_curves", "plot_reconstruction_errors", "weight_bytes"]

VARIANT_COLOURS = {"ordinary": "#C44E52", "reversible": "#4C72B0", "reversible+chunked": "#55A868"}
# marker and line width: the two reversible curves often coincide, so the first is drawn wide under the second
_VARIANT_STYLE = {"ordinary": ("o", 1.5), "reversible": ("s", 4.0), "reversible+chunked": ("^", 1.3)}

#: The widget's slider ranges (small enough that a new setting is measured in about a second).
WIDGET_DEPTHS = tuple(range(1, 25))
WIDGET_LENGTHS = (64, 128, 256, 512)
WIDGET_D_MODEL = (16, 32, 64)
WIDGET_D_FF = (64, 128, 256, 512, 1024)
WIDGET_CHUNKS = (1, 2, 4, 8)

#: Bytes per parameter (float32); a gradient takes as many again.
BYTES_PER_PARAMETER = 4
_WEIGHT_COLOUR = "#555555"


@lru_cache(maxsize=256)
def _parameter_line(config: StackConfig) -> tuple[int, int]:
    """(base, per layer) parameter count of ``config``'s stack, from the stacks built at depths 1 and 2."""
    one, two = (sum(p.numel() for p in config.build(n_layers=n).parameters()) for n in (1, 2))
    return one - (two - one), two - one


def weight_bytes(config: StackConfig, depths: Sequence[int]) -> list[int]:
    """Bytes of the parameters of ``config``'s stack at each depth: parameter count × 4 B (float32).

    The count is taken on the model itself (:meth:`StackConfig.build`) at depths 1 and 2 and extended along
    the straight line through them, which is exact because every block has the same parameters. The same
    for all three variants (a reversible block has the parameters of an ordinary one, paper §3), and not
    counted in autograd's saved bytes. A training step holds the gradients too: as many bytes again.
    """
    base, per_layer = _parameter_line(config)
    return [BYTES_PER_PARAMETER * (base + per_layer * as_int("depth", n, minimum=1)) for n in depths]


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
           formula: Mapping[str, Sequence[float]], xlabel: str, title: str, saved: str,
           weights: Sequence[int] | None = None) -> None:
    """One panel on log–log axes: a power law is a straight line (slope 1 for ordinary against depth, 0 when flat).

    ``saved`` names the counted quantity in the legend; ``weights`` (parameter bytes at each x) adds two grey
    lines, the parameters and the parameters with their gradients.
    """
    for variant, values in measured.items():
        colour = VARIANT_COLOURS.get(variant, "black")
        marker, width = _VARIANT_STYLE.get(variant, ("o", 1.5))
        ax.plot(xs, values, marker=marker, linestyle="-", linewidth=width, color=colour, markersize=4,
                label=f"{variant}, {saved}")
        if variant in formula:
            ax.plot(xs, formula[variant], "--", color=colour, alpha=0.6, label=f"{variant}, Table 3 × 4 B")
    if weights is not None:
        ax.plot(xs, weights, ":", color=_WEIGHT_COLOUR, linewidth=1.6, label="parameters, count × 4 B")
        ax.plot(xs, [2 * v for v in weights], "-.", color=_WEIGHT_COLOUR, linewidth=1.6,
                label="parameters + gradients")
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


_SAVED_LABEL = {"saved_peak": "autograd saved, peak", "saved_after_forward": "autograd saved, after forward"}


def plot_memory_curves(
    curves: MemoryCurves,
    *,
    quantity: str = "saved_peak",
    formula: bool = True,
    weights: bool = True,
    gpu: GpuCurves | Mapping[str, Sequence[int]] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Autograd's saved bytes against depth and against length, ordinary vs reversible, beside Table 3 (paper §3).

    ``quantity`` is ``"saved_peak"`` (the most saved bytes alive at any moment of the step) or
    ``"saved_after_forward"`` (what is held between forward and backward); both are counted from the saved
    tensors' shapes, so they are the same on every machine. ``weights`` adds the parameter memory in grey
    (:func:`weight_bytes`, and twice that with the gradients), which grows with depth in every variant.
    ``gpu`` adds a third panel: either stored :class:`~reformer_lab.measure.reversible_stats.GpuCurves` or
    ``{variant: peaks}`` measured at ``curves.depths`` on this machine's GPU.
    """
    one_of("quantity", quantity, ("saved_peak", "saved_after_forward"))
    panels = 3 if gpu is not None else 2
    fig = fig if fig is not None else plt.figure(figsize=(4.4 * panels, 4.4))
    axes = fig.subplots(1, panels)
    c = curves.config
    by_depth = {v: [getattr(m, quantity) for m in ms] for v, ms in curves.by_depth.items()}
    by_length = {v: [getattr(m, quantity) for m in ms] for v, ms in curves.by_length.items()}
    saved = _SAVED_LABEL[quantity]
    depth_weights = weight_bytes(c, curves.depths) if weights else None
    length_weights = ([weight_bytes(replace(c, length=n), [curves.n_layers])[0] for n in curves.lengths]
                      if weights else None)
    _panel(axes[0], curves.depths, by_depth, curves.table3_depth if formula else {}, "layers n_l",
           f"against depth, L = {c.length}", saved, depth_weights)
    _panel(axes[1], curves.lengths, by_length, curves.table3_length if formula else {}, "sequence length L",
           f"against length, n_l = {curves.n_layers}", saved, length_weights)
    axes[0].set_ylabel("bytes (log scale)")
    axes[0].axvline(curves.n_layers, color="grey", linewidth=0.8, linestyle=":")  # the depth of the right panel
    if gpu is not None:
        _gpu_panel(axes[2], gpu, curves)
    handles, labels = _legend_order(*axes[0].get_legend_handles_labels(), len(by_depth))
    fig.legend(handles, labels, loc="lower center", ncols=len(by_depth), fontsize=8, frameon=False)
    fig.suptitle(f"{c.attention} attention, d_model {c.d_model}, d_ff {c.d_ff}, {c.n_heads} heads, "
                 f"ff_chunks {c.ff_chunks}, batch {c.batch}, float32", fontsize=10)
    rows = -(-len(labels) // len(by_depth))
    fig.tight_layout(rect=(0, 0.02 + 0.055 * rows, 1, 1))
    return fig


def _legend_order(handles: list, labels: list[str], columns: int) -> tuple[list, list[str]]:
    """Reorder legend entries so that, filled column by column, each column is one variant (counted, then
    Table 3) and the grey parameter lines make the last row."""
    per_variant = [i for i, label in enumerate(labels) if not label.startswith("parameters")]
    weights = [i for i, label in enumerate(labels) if label.startswith("parameters")]
    size = len(per_variant) // columns if columns else 0
    order: list[int] = []
    for k in range(columns):
        order += per_variant[k * size:(k + 1) * size]
        if k < len(weights):
            order.append(weights[k])
    order += [i for i in range(len(labels)) if i not in order]
    return [handles[i] for i in order], [labels[i] for i in order]


def _gpu_panel(ax: Axes, gpu: GpuCurves | Mapping[str, Sequence[int]], curves: MemoryCurves) -> None:
    if isinstance(gpu, GpuCurves):
        measured = gpu.peaks
        for variant, peaks in measured.items():
            ax.plot(gpu.depths[variant], peaks, "o-", color=VARIANT_COLOURS.get(variant, "black"), markersize=3.5)
        ax.set_title(f"GPU peak allocated (stored file)\n{gpu.setting}", fontsize=8)
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
    fig = plot_memory_curves(curves, gpu=gpu_data, fig=Figure(figsize=(4.4 * panels, 4.4)))
    ordinary = reversible_stats.layer_model(config, "ordinary").at(depth).saved_peak
    reversible = reversible_stats.layer_model(config, "reversible").at(depth).saved_peak
    chunked = reversible_stats.layer_model(config, "reversible+chunked").at(depth).saved_peak
    (weights,) = weight_bytes(config, [depth])
    numbers = (f"At n_l = {depth}, L = {config.length}, autograd's saved bytes (peak; counted, the same on every "
               f"machine): ordinary <b>{format_bytes(ordinary)}</b>, reversible <b>{format_bytes(reversible)}</b> "
               f"({ordinary / reversible:.1f}× less), reversible + {config.ff_chunks} FF chunks "
               f"<b>{format_bytes(chunked)}</b>. Parameters + gradients, the same in all three and growing with "
               f"n_l: <b>{format_bytes(2 * weights)}</b>.")
    return fig, numbers


def memory_curves(
    depth: int = 12, length: int = 256, d_model: int = 32, d_ff: int = 512, ff_chunks: int = 4,
    attention: str = "full", results_dir: str | None = None,
) -> Explorer:
    """Lesson 04's widget: autograd's saved bytes against depth and length, ordinary vs reversible (+ chunked FF),
    counted for the sliders' setting, with Table 3's formula dashed beside each curve (paper §3) and the
    parameter memory in grey.

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

