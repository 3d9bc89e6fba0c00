"""Lesson 00, the memory problem (paper §1, Table 3): the memory calculator widget, its bar chart of Table 3's
memory per model type, and the power-law plot of measured memory against length."""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as w
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reformer_lab.lessons.common import Explorer, bytes_axis, choice_slider, detached_axes, explorer, new_axes
from reformer_lab.measure import complexity
from reformer_lab.measure.complexity import MemoryBreakdown
from reformer_lab.measure.memory import format_bytes
from reformer_lab.validation import as_int

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
    bytes_axis(ax)
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
    bytes_axis(ax)
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


def _power_of_two_slider(name: str, value: int, low: int, high: int, description: str) -> w.SelectionSlider:
    return choice_slider(name, value, [2**e for e in range(low, high + 1)], description, label="{:,}".format)


def _calculator_drawing(**sizes: int) -> tuple[Figure, str]:
    """The calculator's picture (Table 3's memory per model type) and the §1 table above it."""
    breakdowns = [complexity.memory_breakdown(**sizes, model=m) for m in _CALCULATOR_MODELS]
    return plot_memory_breakdown(breakdowns, ax=detached_axes()), calculator_html(**sizes)


def memory_calculator(
    length: int = 65536, batch: int = 1, d_model: int = 1024, d_ff: int = 4096, n_layers: int = 16, n_heads: int = 8
) -> Explorer:
    """Lesson 00's calculator: sliders for the model's sizes, the §1 table and Table 3's memory per model type."""
    controls = {
        "length": _power_of_two_slider("length", length, 8, 20, "length l"),
        "batch": _power_of_two_slider("batch", batch, 0, 6, "batch b"),
        "d_model": _power_of_two_slider("d_model", d_model, 6, 13, "d_model"),
        "d_ff": _power_of_two_slider("d_ff", d_ff, 6, 15, "d_ff"),
        "n_layers": w.IntSlider(value=as_int("n_layers", n_layers, minimum=1, maximum=64), min=1, max=64,
                                description="layers n_l"),
        "n_heads": _power_of_two_slider("n_heads", n_heads, 0, 5, "heads n_h"),
    }
    return explorer(controls, _calculator_drawing, width="640px")
