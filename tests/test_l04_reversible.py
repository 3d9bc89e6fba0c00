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
    fig = pr.plot_memory_curves(curves, weights=False, fig=Figure())
    axes = fig.axes
    assert len(axes) == 2
    assert len(axes[0].lines) == 7  # three variants, counted and Table 3, and the right panel's depth marker
    assert [p for p in axes[0].lines[0].get_xdata()] == [1, 2, 3]
    assert all(ax.yaxis.get_major_formatter()(2**20, 0) == "1.00 MiB" for ax in axes)  # common.bytes_axis
    gpu = pr.plot_memory_curves(curves, gpu={"ordinary": [1, 2, 3]}, formula=False, weights=False, fig=Figure())
    assert len(gpu.axes) == 3 and len(gpu.axes[0].lines) == 4  # three counted variants and the depth marker
    with pytest.raises(ValueError, match="quantity"):
        pr.plot_memory_curves(curves, quantity="rss")


def test_the_legend_names_autograds_saved_bytes() -> None:
    curves = rs.memory_curves_data(SMALL, (1, 2), (32, 64), 2)
    labels = [t.get_text() for t in pr.plot_memory_curves(curves, fig=Figure()).legends[0].get_texts()]
    assert "ordinary, autograd saved, peak" in labels and "reversible, Table 3 × 4 B" in labels
    after = pr.plot_memory_curves(curves, quantity="saved_after_forward", fig=Figure())
    assert "reversible, autograd saved, after forward" in [t.get_text() for t in after.legends[0].get_texts()]


def test_weight_bytes_counts_the_models_parameters_at_every_depth() -> None:
    for n in (1, 3, 5):
        count = sum(p.numel() for p in SMALL.build(n_layers=n).parameters())
        assert pr.weight_bytes(SMALL, [n]) == [4 * count]
    one, two, three = pr.weight_bytes(SMALL, [1, 2, 3])
    assert two - one == three - two > 0  # the same parameters in every layer: a straight line through 0
    with pytest.raises(ValueError, match="depth"):
        pr.weight_bytes(SMALL, [0])


def test_the_memory_figure_draws_parameters_and_gradients_on_both_panels() -> None:
    curves = rs.memory_curves_data(SMALL, (1, 2, 3), (32, 64), 2)
    fig = pr.plot_memory_curves(curves, fig=Figure())
    depth, length = fig.axes
    by_label = {line.get_label(): line for line in depth.lines}
    weights = pr.weight_bytes(SMALL, [1, 2, 3])
    assert list(by_label["parameters, count × 4 B"].get_ydata()) == weights
    assert list(by_label["parameters + gradients"].get_ydata()) == [2 * v for v in weights]
    flat = {line.get_label(): line for line in length.lines}["parameters + gradients"]
    assert list(flat.get_ydata()) == [2 * pr.weight_bytes(SMALL, [2])[0]] * 2  # no parameter depends on L
    assert len(depth.lines) == 9  # six variant lines, two weight lines, the depth marker


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
    assert "autograd's saved bytes (peak" in note and "Parameters + gradients" in note
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
