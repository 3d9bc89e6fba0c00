"""Lesson 05's figures: memory against chunk count and Table 3 formula vs measurement (no browser)."""

from __future__ import annotations

import ipywidgets as w
import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from reformer_lab.lessons import l05_feedforward as pc
from reformer_lab.lessons.common import detached_axes, figure_png
from reformer_lab.measure.complexity import Complexity
from reformer_lab.measure.feedforward_stats import ChunkMemory, Table3Row

matplotlib.use("Agg")


def _chunk_rows() -> list[ChunkMemory]:
    return [ChunkMemory(c, 2048 // c + 100, 1000, 1024 // c, 4096 // c + 50, 60) for c in (1, 2, 4, 8)]


def _table_rows() -> list[Table3Row]:
    return [Table3Row(v, Complexity(1000.0 * (i + 1), 1.0), Complexity(500.0 * (i + 1), 1.0), 100, 3000 * (i + 1),
                      10**6)
            for i, v in enumerate(("transformer", "reversible"))]


def test_chunk_figure_draws_every_series_and_the_one_over_c_reference() -> None:
    fig = pc.plot_chunk_memory(_chunk_rows())
    ax = fig.axes[0]
    assert len(ax.lines) == len(pc.CHUNK_SERIES) + 1
    reference = ax.lines[-1]
    assert list(reference.get_ydata()) == [1024 / c for c in (1, 2, 4, 8)]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "8"]
    assert ax.yaxis.get_major_formatter()(2048, 0) == "2.00 KiB"  # common.bytes_axis
    plt.close(fig)


def test_table3_figure_has_three_bars_per_row_with_measured_values() -> None:
    fig = pc.plot_table3(_table_rows())
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * 2
    heights = [p.get_height() for p in ax.patches]
    assert heights == [4000.0, 8000.0, 2000.0, 4000.0, 3000.0, 6000.0]  # paper c, window c, measured
    assert [t.get_text() for t in ax.get_xticklabels()] == ["transformer", "reversible"]
    assert ax.yaxis.get_major_formatter()(4096, 0) == "4.00 KiB"
    plt.close(fig)


def test_figures_draw_on_given_axes_and_render_to_png() -> None:
    ax = detached_axes()
    assert pc.plot_table3(_table_rows(), ax=ax) is ax.figure
    assert figure_png(ax.figure).startswith(b"\x89PNG")
    assert isinstance(pc.plot_chunk_memory(_chunk_rows(), ax=detached_axes()), Figure)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="at least two chunk counts"):
        pc.plot_chunk_memory(_chunk_rows()[:1])
    with pytest.raises(ValueError, match="distinct and increasing"):
        pc.plot_chunk_memory(list(reversed(_chunk_rows())))
    with pytest.raises(ValueError, match="at least one Table3Row"):
        pc.plot_table3([])


def _texts(fig: Figure) -> list:
    return [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
            if t.get_text().strip()]


def test_every_text_of_the_figures_is_at_least_8_points() -> None:
    for fig in (pc.plot_table3(_table_rows()), pc.plot_chunk_memory(_chunk_rows(), mark=2),
                pc.plot_chunk_time([1, 2, 4, 8], [0.01, 0.012, 0.02, 0.03], mark=4)):
        fig.canvas.draw()
        sizes = {t.get_text(): t.get_fontsize() for t in _texts(fig)}
        assert sizes and min(sizes.values()) >= pc.MIN_FONT_SIZE, sizes
        plt.close(fig)
    bar_labels = [t for t in pc.plot_table3(_table_rows()).axes[0].texts]
    assert len(bar_labels) == 6 and all(t.get_fontsize() >= pc.MIN_FONT_SIZE for t in bar_labels)
    plt.close("all")


def test_enlarge_text_raises_small_text_and_leaves_larger_text_alone() -> None:
    ax = detached_axes()
    small = ax.text(0, 0, "small", fontsize=5)
    large = ax.set_title("large", fontsize=12)
    assert pc.enlarge_text(ax.figure) is ax.figure
    assert small.get_fontsize() == pc.MIN_FONT_SIZE and large.get_fontsize() == 12
    pc.enlarge_text(ax.figure, minimum=10)
    assert small.get_fontsize() == 10
    with pytest.raises(ValueError):
        pc.enlarge_text(ax.figure, minimum=0)


def test_the_chunk_figures_mark_the_chosen_count() -> None:
    fig = pc.plot_chunk_memory(_chunk_rows(), mark=4)
    ax = fig.axes[0]
    rings = ax.lines[-1]
    assert list(rings.get_xdata()) == [4] * len(pc.CHUNK_SERIES)
    assert list(rings.get_ydata()) == [getattr(_chunk_rows()[2], f) for f in pc.CHUNK_SERIES]
    assert any(list(line.get_xdata()) == [4, 4] for line in ax.lines)  # the vertical marker
    with pytest.raises(ValueError, match="not one of the chunk counts"):
        pc.plot_chunk_memory(_chunk_rows(), mark=3)
    time_fig = pc.plot_chunk_time([1, 2, 4], [0.010, 0.011, 0.015], mark=2)
    line = time_fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [1, 2, 4] and list(line.get_ydata()) == pytest.approx([10.0, 11.0, 15.0])
    with pytest.raises(ValueError, match="one time per chunk count"):
        pc.plot_chunk_time([1, 2], [0.1])
    plt.close("all")


def test_chunk_step_seconds_times_every_count() -> None:
    seconds = pc.chunk_step_seconds([1, 4], length=32, d_model=8, d_ff=16, repeats=1)
    assert len(seconds) == 2 and all(0 < s < 5 for s in seconds)
    with pytest.raises(ValueError, match="must divide"):
        pc.chunk_step_seconds([3], length=32, d_model=8, d_ff=16)


def _parts(widget: w.Widget) -> list[w.Widget]:
    found = [widget]
    for child in getattr(widget, "children", ()):
        found += _parts(child)
    return found


def test_the_chunk_widget_redraws_from_its_measurements_when_the_slider_moves(monkeypatch) -> None:
    counts = [1, 2, 4, 8]
    rows = [ChunkMemory(c, 2048 // c + 100, 1000, 1024 // c, 4096 // c + 50, 60) for c in counts]
    box = pc.chunk_explorer(n_chunks=2, length=8, d_ff=16, max_chunks=8, rows=rows, seconds=[0.01, 0.02, 0.03, 0.05])
    assert "rl-widget" in box._dom_classes
    assert len([p for p in _parts(box) if "rl-widget-output" in p._dom_classes]) == 1
    slider = box.controls["n_chunks"]
    assert isinstance(slider, w.SelectionSlider) and [str(o) for o in slider.options] == ["1", "2", "4", "8"]
    before, text = box.image.value, box.text.value
    assert before[:4] == b"\x89PNG" and "k = 2: 4 positions per chunk" in text and "20.0 ms" in text

    def no_measuring(*args, **kwargs):
        raise AssertionError("the slider must only redraw")

    monkeypatch.setattr(pc, "chunk_memory", no_measuring)
    monkeypatch.setattr(pc, "chunk_step_seconds", no_measuring)
    slider.value = 8
    assert box.image.value != before
    assert "k = 8: 1 positions per chunk" in box.text.value and "8.0× less than k = 1" in box.text.value


def test_the_chunk_widget_measures_divisors_of_the_length_and_checks_what_it_is_given() -> None:
    box = pc.chunk_explorer(n_chunks=2, length=16, d_model=8, d_ff=32, vocab=16, max_chunks=4)
    assert box.controls["n_chunks"].value == 2
    with pytest.raises(ValueError, match="n_chunks must be one of"):
        pc.chunk_explorer(n_chunks=3, length=16, max_chunks=4, rows=[], seconds=[])
    with pytest.raises(ValueError, match="for the chunk counts"):
        pc.chunk_explorer(n_chunks=2, length=16, max_chunks=4, rows=_chunk_rows(), seconds=[0.1] * 4)
