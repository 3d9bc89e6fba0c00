"""Lesson 00, the memory problem (paper §1): the memory calculator, its bar chart, and the power-law plot."""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as w
import matplotlib.ticker
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reformer_lab.lessons.common import detached_axes, figure_png, new_axes
from reformer_lab.measure import complexity
from reformer_lab.measure.complexity import MemoryBreakdown
from reformer_lab.measure.memory import format_bytes

_TERM_COLOURS = {"activations": "#4C72B0", "feedforward": "#DD8452", "attention": "#C44E52"}


def plot_memory_breakdown(
    breakdowns: Sequence[MemoryBreakdown], ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Grouped bars, one group per model type, one bar per memory problem of the paper's §1, log scale."""
    if not breakdowns:
        raise ValueError("plot_memory_breakdown needs at least one MemoryBreakdown")
    fig, ax = new_axes(ax)
    terms = list(breakdowns[0].terms())
    width = 0.8 / len(terms)
    x = np.arange(len(breakdowns))
    for i, term in enumerate(terms):
        values = [b.terms()[term] for b in breakdowns]
        bars = ax.bar(x + (i - (len(terms) - 1) / 2) * width, values, width, label=term, color=_TERM_COLOURS[term])
        ax.bar_label(bars, labels=[format_bytes(v) for v in values], fontsize=7, rotation=90, padding=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(x, [b.model for b in breakdowns])
    ax.set_ylabel("bytes (log scale)")
    top = max(b.largest for b in breakdowns)
    ax.set_ylim(top=top * 2**6)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: format_bytes(v)))
    ax.legend(loc="upper right", fontsize=8, ncols=3)
    ax.set_title(title or "memory held for backprop, whole stack")
    fig.tight_layout()
    return fig


def plot_power_law(
    lengths: Sequence[float],
    sizes: Sequence[float],
    *,
    exponent: float,
    label: str,
    reference: Sequence[float] | None = None,
    reference_label: str = "formula",
    ax: Axes | None = None,
) -> Figure:
    """Measured sizes against length on log–log axes, with the fitted slope in the legend."""
    if len(lengths) != len(sizes) or len(lengths) < 2:
        raise ValueError("lengths and sizes need the same length, at least 2 points")
    fig, ax = new_axes(ax)
    ax.loglog(lengths, sizes, "o-", base=2, label=f"{label} (fitted exponent {exponent:.2f})")
    if reference is not None:
        ax.loglog(lengths, reference, "k--", base=2, alpha=0.6, label=reference_label)
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("bytes")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: format_bytes(v)))
    ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig


_CALCULATOR_MODELS = ("transformer", "reversible", "chunked-reversible", "reformer")


def calculator_rows(
    length: int, batch: int, d_model: int, d_ff: int, n_layers: int, n_heads: int
) -> list[tuple[str, float, str]]:
    """The paper's §1 back-of-envelope quantities for one configuration: (what, bytes, how), fp32."""
    per_layer_params = 4 * d_model * d_model + 2 * d_model * d_ff
    return [
        ("QKᵀ, one layer, one head", complexity.qk_matrix_bytes(length, batch), "b·l² values"),
        (
            "QKᵀ, all heads and layers",
            complexity.qk_matrix_bytes(length, batch, n_heads) * n_layers,
            "b·n_h·l²·n_l values",
        ),
        ("parameters, one layer", complexity.parameter_bytes(per_layer_params), "4·d_model² + 2·d_model·d_ff"),
        ("activations, one layer's input", complexity.activation_bytes(batch, length, d_model), "b·l·d_model"),
        (
            "activations, all layers",
            complexity.activation_bytes(batch, length, d_model, n_layers),
            "b·l·d_model·n_l",
        ),
        (
            "feed-forward activations, all layers",
            complexity.feedforward_activation_bytes(batch, length, d_ff, n_layers),
            "b·l·d_ff·n_l",
        ),
    ]


def calculator_html(length: int, batch: int, d_model: int, d_ff: int, n_layers: int, n_heads: int) -> str:
    """An HTML table of :func:`calculator_rows`, for the calculator widget."""
    rows = calculator_rows(length, batch, d_model, d_ff, n_layers, n_heads)
    body = "".join(
        f"<tr><td>{html.escape(what)}</td><td style='text-align:right'><b>{format_bytes(size)}</b></td>"
        f"<td><code>{html.escape(how)}</code></td></tr>"
        for what, size, how in rows
    )
    return f"<table><tr><th>what</th><th>fp32</th><th>formula</th></tr>{body}</table>"


def _power_of_two_slider(description: str, value: int, low: int, high: int) -> w.SelectionSlider:
    options = [(f"{2**e:,}", 2**e) for e in range(low, high + 1)]
    return w.SelectionSlider(options=options, value=value, description=description, continuous_update=False)


def memory_calculator(
    length: int = 65536, batch: int = 1, d_model: int = 1024, d_ff: int = 4096, n_layers: int = 16, n_heads: int = 8
) -> w.VBox:
    """Lesson 00's calculator: sliders for the model's sizes, the §1 table and Table 3's memory per model type."""
    controls = {
        "length": _power_of_two_slider("length l", length, 8, 20),
        "batch": _power_of_two_slider("batch b", batch, 0, 6),
        "d_model": _power_of_two_slider("d_model", d_model, 6, 13),
        "d_ff": _power_of_two_slider("d_ff", d_ff, 6, 15),
        "n_layers": w.IntSlider(value=n_layers, min=1, max=64, description="layers n_l", continuous_update=False),
        "n_heads": _power_of_two_slider("heads n_h", n_heads, 0, 5),
    }
    table = w.HTML()
    chart = w.Image(format="png", layout=w.Layout(width="640px"))
    output = w.VBox([table, chart])
    output.add_class("rl-widget-output")

    def redraw(_change: object = None) -> None:
        sizes = {name: control.value for name, control in controls.items()}
        table.value = calculator_html(**sizes)
        breakdowns = [complexity.memory_breakdown(**sizes, model=m) for m in _CALCULATOR_MODELS]
        chart.value = figure_png(plot_memory_breakdown(breakdowns, ax=detached_axes()).figure)

    for control in controls.values():
        control.observe(redraw, names="value")
        control.style.description_width = "80px"
    redraw()
    box = w.VBox([w.HBox([w.VBox(list(controls.values())[:3]), w.VBox(list(controls.values())[3:])]), output])
    box.add_class("rl-widget")
    return box
