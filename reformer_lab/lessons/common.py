"""What every lesson's figures and widgets share: axes, the bucket palette, byte-size ticks, PNG rendering, and
:func:`explorer`, the one way a lesson builds a widget.

Plotting functions take plain data, draw on a Matplotlib ``Axes`` (a new figure when none is given)
and return the figure, so a lesson can show it, a widget can render it to PNG, and a test can inspect it.

The widget convention, which the browser tests rely on: a widget is a box with the CSS class ``rl-widget``
holding its controls and exactly one part with the class ``rl-widget-output``, which changes when a control
moves. Figures are rendered to PNG into an ``ipywidgets.Image`` (never printed into an ``Output``), so nothing
leaks into the notebook's stored outputs. :func:`explorer` builds such a box from a dict of controls and a
function that draws.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import ipywidgets as w
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from reformer_lab.measure.memory import format_bytes
from reformer_lab.validation import one_of, positive_int

__all__ = [
    "BUCKET_PALETTE",
    "Drawing",
    "Explorer",
    "bucket_colours",
    "bytes_axis",
    "choice_slider",
    "detached_axes",
    "explorer",
    "figure_png",
    "new_axes",
]


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


def bytes_axis(ax: Axes, axis: str = "y") -> None:
    """Label the major ticks of ``ax``'s ``"x"`` or ``"y"`` axis as byte sizes (``512 KiB``, ``16.0 GiB``)."""
    one_of("axis", axis, ("x", "y"))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(FuncFormatter(lambda v, _: format_bytes(v)))


# ----------------------------------------------------------------------------------------------------
# The bucket palette of lessons 01–03
# ----------------------------------------------------------------------------------------------------


def _bucket_palette(size: int) -> np.ndarray:
    """tab10 without its grey, then those nine colours' light twins from tab20, then colours picked greedily.

    Each further colour is, of a grid of mid-light saturated colours, the one farthest (in RGB) from all
    colours before it; the pick is deterministic, so the palette is the same on every run.
    """
    tab10 = matplotlib.colormaps["tab10"]([0, 1, 2, 3, 4, 5, 6, 8, 9])  # index 7 is grey
    light_twins = matplotlib.colormaps["tab20"]([1, 3, 5, 7, 9, 11, 13, 17, 19])
    first = np.concatenate([tab10, light_twins])[:, :3]
    levels = np.linspace(0.1, 0.9, 9)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    luminance = grid @ np.array([0.2126, 0.7152, 0.0722])
    saturated = grid.max(axis=1) - grid.min(axis=1) >= 0.3  # never grey: grey means "computed" in lesson 02
    candidates = grid[saturated & (luminance >= 0.25) & (luminance <= 0.8)]  # black text stays readable on it
    distance = np.linalg.norm(candidates[:, None] - first[None], axis=-1).min(axis=1)
    chosen = list(first)
    while len(chosen) < size:
        pick = candidates[int(np.argmax(distance))]
        chosen.append(pick)
        distance = np.minimum(distance, np.linalg.norm(candidates - pick, axis=1))
    return np.concatenate([np.array(chosen), np.ones((size, 1))], axis=1)


#: One RGBA colour per bucket id, ``[64, 4]``: bucket ``b`` is drawn in ``BUCKET_PALETTE[b % 64]`` in every
#: lesson. None is grey (lesson 02 draws "computed, another bucket" in grey); ids 0–8 are tab10's colours.
BUCKET_PALETTE: np.ndarray = _bucket_palette(64)
BUCKET_PALETTE.setflags(write=False)


def bucket_colours(n_buckets: int) -> np.ndarray:
    """The colours of bucket ids ``0 … n_buckets − 1``, ``[n_buckets, 4]`` RGBA, from :data:`BUCKET_PALETTE`.

    Bucket ``b`` has the same colour whatever ``n_buckets`` is. The 64 colours are distinct; beyond 64
    buckets the palette repeats (bucket 64 looks like bucket 0).
    """
    n_buckets = positive_int("n_buckets", n_buckets)
    return BUCKET_PALETTE[np.arange(n_buckets) % len(BUCKET_PALETTE)]


# ----------------------------------------------------------------------------------------------------
# The widget helper
# ----------------------------------------------------------------------------------------------------

T = TypeVar("T")


def choice_slider(
    name: str,
    value: T,
    options: Sequence[T],
    description: str | None = None,
    *,
    label: Callable[[T], str] | None = None,
) -> w.SelectionSlider:
    """A slider over ``options`` (shown as ``label(option)``, else as they print) starting at ``value``.

    ``value`` must be one of ``options``: a ``ValueError`` naming ``name`` says so before any widget is built.
    ``description`` (the slider's label) defaults to ``name``.
    """
    options = list(options)
    value = one_of(name, value, options)
    shown = options if label is None else [(label(o), o) for o in options]
    return w.SelectionSlider(options=shown, value=value, description=description or name)


#: What an explorer's ``draw`` returns: a figure, or a figure and an HTML line shown above it.
Drawing = Figure | tuple[Figure, str]


class Explorer(w.VBox):
    """The box that :func:`explorer` returns: an ``ipywidgets.VBox`` that also keeps its parts.

    ``controls`` are the controls by the name ``draw`` receives them under; ``output`` is the one
    ``rl-widget-output`` part, holding ``text`` (``None`` when ``draw`` returns a bare figure) and ``image``;
    ``initial_png`` is the PNG of the first drawing, a static picture of the widget's starting state for
    readers whose viewer shows images but not live widgets (GitHub, nbviewer).
    """

    controls: dict[str, w.ValueWidget]
    output: w.VBox
    text: w.HTML | None
    image: w.Image
    initial_png: bytes

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The live widget, plus its first picture as ``image/png`` in the same output: JupyterLab shows the
        widget; a viewer without a widget manager (GitHub, nbviewer, the static site) falls back to the PNG."""
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        return {**bundle, "image/png": base64.b64encode(self.initial_png).decode("ascii")}


def _render(drawn: Drawing) -> tuple[bytes, str | None]:
    if isinstance(drawn, Figure):
        return figure_png(drawn), None
    fig, text = drawn
    return figure_png(fig), text


def explorer(
    controls: Mapping[str, w.ValueWidget],
    draw: Callable[..., Drawing],
    *,
    columns: int = 2,
    width: str | None = "640px",
    label_width: str = "90px",
) -> Explorer:
    """A widget that calls ``draw(**{name: control.value})`` now and whenever a control moves, showing the result.

    ``draw`` returns a figure (draw it on one that pyplot does not track: ``Figure(...)`` or
    :func:`detached_axes`), or ``(figure, html)`` for a line of text above the picture; the figure is rendered
    to PNG and closed. The controls are laid out in ``columns`` columns, in the dict's order (the browser test
    moves the first slider, so put a slider that changes the picture first); sliders stop updating while
    dragged (``continuous_update=False``) and every label but a checkbox's is ``label_width`` wide. ``width``
    is the picture's CSS width (``None``: the PNG's own size, shrunk to fit).
    """
    columns = positive_int("columns", columns)
    if not controls:
        raise ValueError("explorer needs at least one control")
    controls = dict(controls)
    png, first_text = _render(draw(**{name: control.value for name, control in controls.items()}))
    image = w.Image(value=png, format="png", layout=w.Layout(width=width, max_width="100%"))
    text = None if first_text is None else w.HTML(first_text)
    output = w.VBox([image] if text is None else [text, image])
    output.add_class("rl-widget-output")

    def redraw(_change: object = None) -> None:
        png, new_text = _render(draw(**{name: control.value for name, control in controls.items()}))
        if (new_text is None) != (text is None):
            raise TypeError("draw must return the same kind of result every time: a figure, or (figure, html)")
        image.value = png
        if text is not None:
            text.value = new_text

    for control in controls.values():
        if control.has_trait("continuous_update"):
            control.continuous_update = False
        if not isinstance(control, w.Checkbox):
            control.style.description_width = label_width
        control.observe(redraw, names="value")
    items = list(controls.values())
    per_column = math.ceil(len(items) / columns)
    panel = w.HBox([w.VBox(items[i : i + per_column]) for i in range(0, len(items), per_column)])
    box = Explorer([panel, output])
    box.add_class("rl-widget")
    box.controls, box.output, box.text, box.image, box.initial_png = controls, output, text, image, png
    return box
