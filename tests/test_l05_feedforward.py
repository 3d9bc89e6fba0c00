"""Lesson 05's figures: memory against chunk count and Table 3 formula vs measurement (no browser)."""

from __future__ import annotations

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
