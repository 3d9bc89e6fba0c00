"""Interactive widgets for the lessons, each a thin layer over a pure function of the package.

Convention (the browser tests rely on it): a widget is a container with the CSS class ``rl-widget``
holding its controls and one part with the class ``rl-widget-output`` that changes when a control
moves. Widgets render figures to PNG into an ``ipywidgets.Image`` rather than printing into an
``Output``, so nothing they draw leaks into the notebook's stored outputs.
"""

from __future__ import annotations

import html

import ipywidgets as w

from reformer_lab import complexity
from reformer_lab.memory import format_bytes
from reformer_lab.plots import detached_axes, figure_png, plot_memory_breakdown
from reformer_lab.plots_attention import rounds_explorer
from reformer_lab.plots_chunking import chunking_explorer
from reformer_lab.plots_hashing import bucket_explorer
from reformer_lab.plots_reversible import memory_curves

__all__ = [
    "bucket_explorer",
    "calculator_html",
    "calculator_rows",
    "chunking_explorer",
    "memory_calculator",
    "memory_curves",
    "rounds_explorer",
]

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
