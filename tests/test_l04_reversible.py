"""Lesson 04's figures and memory-curve widget (the widget convention of reformer_lab.lessons.common)."""

from __future__ import annotations

import time

import ipywidgets as w
import pytest
from matplotlib.figure import Figure

from reformer_lab.lessons import l04_reversible as pr
from reformer_lab.measure import reversible_stats as rs

SMALL = rs.StackConfig(length=64, d_model=16, d_ff=64, ff_chunks=2)


def test_memory_curves_figure_has_both_panels_and_the_formula() -> None:
    curves = rs.memory_curves_data(SMALL, (1, 2, 3), (32, 64), 2)
    fig = pr.plot_memory_curves(curves, fig=Figure())
    axes = fig.axes
    assert len(axes) == 2
    assert len(axes[0].lines) == 7  # three variants, measured and Table 3, and the right panel's depth marker
    assert [p for p in axes[0].lines[0].get_xdata()] == [1, 2, 3]
    assert all(ax.yaxis.get_major_formatter()(2**20, 0) == "1.00 MiB" for ax in axes)  # common.bytes_axis
    gpu = pr.plot_memory_curves(curves, gpu={"ordinary": [1, 2, 3]}, formula=False, fig=Figure())
    assert len(gpu.axes) == 3 and len(gpu.axes[0].lines) == 4  # three measured variants and the depth marker
    with pytest.raises(ValueError, match="quantity"):
        pr.plot_memory_curves(curves, quantity="rss")


def test_reconstruction_figure() -> None:
    fig = pr.plot_reconstruction_errors({"float32": {1: 1e-7, 4: 3e-7}, "float64": {1: 1e-16, 4: 0.0}},
                                        ax=Figure().add_subplot())
    assert len(fig.axes[0].lines) == 2
    with pytest.raises(ValueError, match="non-empty"):
        pr.plot_reconstruction_errors({})


def _parts(widget: w.Widget) -> list[w.Widget]:
    found = [widget]
    for child in getattr(widget, "children", ()):
        found += _parts(child)
    return found


def test_widget_follows_the_convention_and_redraws(tmp_path) -> None:
    box = pr.memory_curves(depth=4, length=64, d_model=16, d_ff=64, ff_chunks=2, results_dir=str(tmp_path))
    assert "rl-widget" in box._dom_classes
    outputs = [p for p in _parts(box) if "rl-widget-output" in p._dom_classes]
    assert len(outputs) == 1
    assert not any(isinstance(p, w.Output) for p in _parts(box))
    image = next(p for p in _parts(outputs[0]) if isinstance(p, w.Image))
    before = image.value
    assert before[:4] == b"\x89PNG" and box.initial_png == before
    note = " ".join(p.value for p in _parts(outputs[0]) if isinstance(p, w.HTML))
    assert "no stored GPU curves" in note or "measured now" in note
    depth = next(p for p in _parts(box) if isinstance(p, w.IntSlider))
    start = time.perf_counter()
    depth.value = 6
    assert time.perf_counter() - start < 5  # budget 2 s on a quiet machine; generous for shared CI
    assert image.value != before


def test_widget_rejects_values_off_its_sliders() -> None:
    with pytest.raises(ValueError, match="length must be one of"):
        pr.memory_curves(length=100)
    with pytest.raises(ValueError, match="attention must be one of"):
        pr.memory_curves(attention="sparse")
    with pytest.raises(ValueError, match=r"depth must be an int in \[1, 24\]"):
        pr.memory_curves(depth=30)
