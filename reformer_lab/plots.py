"""Pure plotting functions behind the lessons' figures and widgets.

Each takes plain data, draws on a Matplotlib ``Axes`` (a new figure when none is given) and returns the
figure, so a lesson can show it, a widget can render it to PNG, and a test can inspect it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reformer_lab.complexity import MemoryBreakdown
from reformer_lab.memory import format_bytes

_TERM_COLOURS = {"activations": "#4C72B0", "feedforward": "#DD8452", "attention": "#C44E52"}


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7.0, 3.6)) -> tuple[Figure, Axes]:
    """The given axes, or a new pyplot figure (a lesson ends it with ``plt.show()``)."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def detached_axes(figsize: tuple[float, float] = (7.0, 3.6)) -> Axes:
    """Axes on a figure that pyplot does not track: widgets draw here so nothing pops up in the notebook."""
    return Figure(figsize=figsize).add_subplot()


def plot_memory_breakdown(
    breakdowns: Sequence[MemoryBreakdown], ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Grouped bars, one group per model type, one bar per memory problem of the paper's §1, log scale."""
    if not breakdowns:
        raise ValueError("plot_memory_breakdown needs at least one MemoryBreakdown")
    fig, ax = _axes(ax)
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
    fig, ax = _axes(ax)
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


def figure_png(fig: Figure, *, close: bool = True) -> bytes:
    """PNG bytes of a figure (for ``ipywidgets.Image``), closing it so widgets don't leak figures."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    if close and plt.fignum_exists(fig.number if hasattr(fig, "number") else -1):
        plt.close(fig)
    return buffer.getvalue()
