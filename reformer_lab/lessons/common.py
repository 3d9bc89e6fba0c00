"""What every lesson's figures and widgets share: axes, PNG rendering for widgets.

Plotting functions take plain data, draw on a Matplotlib ``Axes`` (a new figure when none is given)
and return the figure, so a lesson can show it, a widget can render it to PNG, and a test can inspect it.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["detached_axes", "figure_png", "new_axes"]


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (7.0, 3.6)) -> tuple[Figure, Axes]:
    """The given axes, or a new pyplot figure (a lesson ends it with ``plt.show()``)."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def detached_axes(figsize: tuple[float, float] = (7.0, 3.6)) -> Axes:
    """Axes on a figure that pyplot does not track: widgets draw here so nothing pops up in the notebook."""
    return Figure(figsize=figsize).add_subplot()


def figure_png(fig: Figure, *, close: bool = True) -> bytes:
    """PNG bytes of a figure (for ``ipywidgets.Image``), closing it so widgets don't leak figures."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    if close and plt.fignum_exists(fig.number if hasattr(fig, "number") else -1):
        plt.close(fig)
    return buffer.getvalue()
