"""Lesson 00, the memory problem (paper §1, Table 3): the memory calculator widget, its bar chart of Table 3's
memory per model type, the attention terms against length (where Table 3's fixed c makes LSH the larger), and the
power-law plot of measured memory against length.

The README's figure, ``docs/lesson00_memory.png``, is the lesson's bar chart at 64K tokens (:func:`readme_figure`).
The notebook does not write it; after changing the chart, refresh it from the repository root with::

    python -m reformer_lab.lessons.l00_memory

which rewrites the file only when its bytes would change (:func:`write_readme_figure`).
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Sequence
from pathlib import Path

import ipywidgets as w
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reformer_lab.lessons.common import Explorer, bytes_axis, choice_slider, detached_axes, explorer, new_axes
from reformer_lab.measure import complexity
from reformer_lab.measure.complexity import MemoryBreakdown
from reformer_lab.measure.memory import format_bytes
from reformer_lab.validation import as_int

__all__ = [
    "attention_crossover_note",
    "calculator_html",
    "calculator_rows",
    "memory_calculator",
    "plot_attention_crossover",
    "plot_memory_breakdown",
    "plot_power_law",
    "readme_figure",
    "save_png_if_changed",
    "write_readme_figure",
]

_TERM_COLOURS = {"activations": "#4C72B0", "feedforward": "#DD8452", "attention": "#C44E52"}

#: The font size (points) of the sizes printed over :func:`plot_memory_breakdown`'s bars.
BAR_LABEL_SIZE = 9.0

#: The README figure's configuration: the lesson's big model at 64K tokens (d_model, d_ff and heads of §5, 16
#: layers as in §3, batch 1).
README_SIZES = dict(length=65536, batch=1, d_model=1024, d_ff=4096, n_layers=16, n_heads=8)

#: Where :func:`write_readme_figure` writes by default: ``docs/lesson00_memory.png`` in the repository.
README_FIGURE = Path(__file__).resolve().parents[2] / "docs" / "lesson00_memory.png"


def _bar_label(size: float) -> str:
    """A bar's size on two short lines, number over unit (``128`` / ``GiB``), so it fits over its bar unrotated."""
    number, _, unit = format_bytes(size).partition(" ")
    return f"{number}\n{unit}" if unit else number


def plot_memory_breakdown(
    breakdowns: Sequence[MemoryBreakdown], ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Grouped bars, one group per model type, one bar per memory problem of the paper's §1, log scale.

    Each bar carries its size (9 pt, horizontal); the axis starts 4× below the smallest bar so that every bar
    shows.
    """
    if not breakdowns:
        raise ValueError("plot_memory_breakdown needs at least one MemoryBreakdown")
    fig, ax = new_axes(ax)
    terms = list(breakdowns[0].terms())
    width = 0.8 / len(terms)
    x = np.arange(len(breakdowns))
    for i, term in enumerate(terms):
        values = [b.terms()[term] for b in breakdowns]
        bars = ax.bar(x + (i - (len(terms) - 1) / 2) * width, values, width, label=term, color=_TERM_COLOURS[term])
        ax.bar_label(bars, labels=[_bar_label(v) for v in values], fontsize=BAR_LABEL_SIZE, padding=2,
                     linespacing=1.0)
    ax.set_yscale("log", base=2)
    ax.set_xticks(x, [b.model for b in breakdowns])
    ax.set_ylabel("bytes (log scale)")
    top = max(b.largest for b in breakdowns)
    bottom = min(min(b.terms().values()) for b in breakdowns)
    ax.set_ylim(bottom / 4, top * 2**6)
    bytes_axis(ax)
    ax.legend(loc="upper right", fontsize=9, ncols=3)
    ax.set_title(title or "memory held for backprop, whole stack")
    fig.tight_layout()
    return fig


def _at_length(length: float) -> str:
    """``l = 16,384`` for a whole length, ``l ≈ 5,461`` for a crossover that falls between two."""
    return f"l = {length:,.0f}" if float(length).is_integer() else f"l ≈ {length:,.0f}"


def plot_attention_crossover(
    lengths: Sequence[int],
    *,
    batch: int = 1,
    n_heads: int = 8,
    n_layers: int = 16,
    n_hashes: int = 1,
    c: int = complexity.PAPER_C,
    mark: int | None = 65536,
    ax: Axes | None = None,
) -> Figure:
    """Table 3's attention term against length: full attention (one layer, and all ``n_layers`` stored) and LSH
    with a fixed ``c`` (one layer, as in the Reformer), log–log, with a dot where the LSH line crosses each.

    The attention terms come from :func:`~reformer_lab.measure.complexity.memory_breakdown` (the bar chart's)
    and the crossings from :func:`~reformer_lab.measure.complexity.attention_crossover_length`. ``mark`` draws a
    dashed vertical line at that length (default the paper's 64K; None for none).
    """
    lengths = [int(n) for n in lengths]
    if len(lengths) < 2:
        raise ValueError("plot_attention_crossover needs at least 2 lengths")
    fig, ax = new_axes(ax)
    sizes = dict(batch=batch, d_model=1, d_ff=1, n_layers=n_layers, n_heads=n_heads, n_hashes=n_hashes, c=c)

    def attention(model: str) -> list[float]:
        return [complexity.memory_breakdown(length=n, **sizes, model=model).attention for n in lengths]

    lsh = attention("reformer")
    lines = [("chunked-reversible", "full attention, one layer: b·n_h·l²", "#C44E52", "-"),
             ("transformer", f"full attention, {n_layers} layers stored: b·n_h·l²·n_l", "#C44E52", ":")]
    for model, label, colour, style in lines:
        ax.loglog(lengths, attention(model), style, color=colour, base=2, label=label)
        if model == "transformer" and n_layers == 1:
            break  # the same line twice
    ax.loglog(lengths, lsh, "-", color="#4C72B0", base=2, label=f"LSH, one layer: b·n_h·l·n_r·c (c = {c:,})")
    for model in ("chunked-reversible", "transformer")[: 1 if n_layers == 1 else 2]:
        at = complexity.attention_crossover_length(model, "reformer", n_layers=n_layers, n_hashes=n_hashes, c=c)
        if lengths[0] <= at <= lengths[-1]:
            y = complexity.memory_breakdown(length=1, **sizes, model="reformer").attention * at
            ax.plot([at], [y], "ko", markersize=5)
            ax.annotate(_at_length(at), (at, y), textcoords="offset points", xytext=(6, -12), fontsize=8)
    if mark is not None and lengths[0] <= mark <= lengths[-1]:
        ax.axvline(mark, color="grey", linestyle="--", linewidth=0.8)
        ax.annotate(f"l = {mark:,}", (mark, 0.02), xycoords=("data", "axes fraction"), xytext=(4, 0),
                    textcoords="offset points", fontsize=8, color="grey")
    ax.set_xlabel("sequence length l")
    ax.set_ylabel("bytes (fp32)")
    ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1024:g}K" if v >= 1024 else f"{v:g}")
    bytes_axis(ax)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Table 3's attention terms, c fixed at {c:,}")
    fig.tight_layout()
    return fig


def save_png_if_changed(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 90) -> bool:
    """Write ``fig`` as a PNG at ``path`` only when the file is missing or holds other bytes; True when written.

    The PNG is rendered in memory first and compared byte for byte, so a run that draws the same figure leaves
    the file and its timestamp alone (:func:`write_readme_figure` keeps the README's figure current this way).
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    png = buffer.getvalue()
    path = Path(path)
    if path.is_file() and path.read_bytes() == png:
        return False
    path.write_bytes(png)
    return True


def readme_figure() -> Figure:
    """The README's figure: :func:`plot_memory_breakdown` of the four model types at :data:`README_SIZES`, on a
    figure pyplot does not track."""
    breakdowns = [complexity.memory_breakdown(**README_SIZES, model=m) for m in _CALCULATOR_MODELS]
    return plot_memory_breakdown(breakdowns, ax=detached_axes(),
                                 title="Table 3's memory terms at 64K tokens, 16 layers")


def write_readme_figure(path: str | os.PathLike[str] = README_FIGURE) -> bool:
    """Write :func:`readme_figure` to ``path`` (default ``docs/lesson00_memory.png``) when it is missing or differs;
    True when written. ``python -m reformer_lab.lessons.l00_memory`` runs it."""
    return save_png_if_changed(readme_figure(), path)


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


def attention_crossover_note(length: int, n_layers: int, n_hashes: int = 1, c: int = complexity.PAPER_C) -> str:
    """Two sentences for the calculator: below which lengths Table 3's LSH attention term (fixed ``c``) is the larger.

    Compares the Reformer's one layer of LSH with one layer of full attention (crossing at l = n_r·c) and, when
    ``n_layers`` > 1, with the Transformer's ``n_layers`` stored layers (l = n_r·c/n_l); then gives the ratio of
    the LSH term to one layer of full attention at ``length``, n_r·c/l.
    """
    one_layer = complexity.attention_crossover_length(n_hashes=n_hashes, c=c)
    text = (f"Table 3's c = {c:,} is a constant: the Reformer's attention bar (LSH, one layer, n_r = {n_hashes}) is "
            f"taller than one layer of full attention (both reversible models' bars) below {_at_length(one_layer)}")
    if n_layers > 1:
        stack = complexity.attention_crossover_length("transformer", n_layers=n_layers, n_hashes=n_hashes, c=c)
        text += f", and taller than the Transformer's {n_layers} stored layers below {_at_length(stack)}"
    return f"{text}. At l = {length:,} it is {one_layer / length:.3g}× one layer of full attention."


def calculator_html(length: int, batch: int, d_model: int, d_ff: int, n_layers: int, n_heads: int) -> str:
    """An HTML table of :func:`calculator_rows`, and :func:`attention_crossover_note` under it, for the calculator."""
    rows = calculator_rows(length, batch, d_model, d_ff, n_layers, n_heads)
    body = "".join(
        f"<tr><td>{html.escape(what)}</td><td style='text-align:right'><b>{format_bytes(size)}</b></td>"
        f"<td><code>{html.escape(how)}</code></td></tr>"
        for what, size, how in rows
    )
    note = html.escape(attention_crossover_note(length, n_layers))
    return (f"<table><tr><th>what</th><th>fp32</th><th>formula</th></tr>{body}</table>"
            f"<p style='font-size:90%'>{note}</p>")


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


if __name__ == "__main__":
    print(f"{README_FIGURE}: {'written' if write_readme_figure() else 'unchanged'}")
