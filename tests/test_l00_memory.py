"""The widgets' pure functions, and that a widget redraws when a control moves (no browser needed)."""

from __future__ import annotations

import pytest

from reformer_lab.lessons import l00_memory
from reformer_lab.measure import complexity

GiB = 2**30


def test_calculator_reproduces_the_papers_back_of_envelope_numbers() -> None:
    rows = {what: size for what, size, _ in l00_memory.calculator_rows(65536, 1, 1024, 4096, 16, 8)}
    assert rows["QKᵀ, one layer, one head"] == 16 * GiB  # §2: 64K × 64K fp32
    assert rows["feed-forward activations, all layers"] == 16 * GiB  # §3: d_ff 4K, 16 layers, 64K
    batch8 = {what: size for what, size, _ in l00_memory.calculator_rows(65536, 8, 1024, 4096, 16, 8)}
    assert batch8["activations, one layer's input"] == 2 * GiB  # §1: 64K × 1024 × batch 8


def test_calculator_html_lists_every_row() -> None:
    page = l00_memory.calculator_html(1024, 2, 256, 1024, 4, 4)
    assert page.count("<tr>") == 1 + len(l00_memory.calculator_rows(1024, 2, 256, 1024, 4, 4))


def _find(box, cls):
    for child in getattr(box, "children", ()):
        if cls is not None and isinstance(child, cls):
            return child
        found = _find(child, cls)
        if found is not None:
            return found
    return None


def test_memory_calculator_follows_the_widget_convention_and_redraws() -> None:
    import ipywidgets as w

    box = l00_memory.memory_calculator()
    assert "rl-widget" in box._dom_classes
    output = next(c for c in box.children if "rl-widget-output" in c._dom_classes)
    table, chart = output.children
    before = (table.value, chart.value)
    assert chart.value[:8] == b"\x89PNG\r\n\x1a\n"
    slider = _find(box, w.SelectionSlider)
    slider.value = slider.options[0][1]
    assert (table.value, chart.value) != before


def test_widget_redraw_leaves_no_pyplot_figures_behind() -> None:
    import matplotlib.pyplot as plt

    plt.close("all")
    box = l00_memory.memory_calculator()
    box.children[0].children[1].children[1].value = 8  # n_layers
    assert plt.get_fignums() == []


def test_plot_memory_breakdown_draws_one_bar_per_term_and_model() -> None:
    bars = [complexity.memory_breakdown(4096, 1, 256, 1024, 4, 4, model=m) for m in ("transformer", "reformer")]
    fig = l00_memory.plot_memory_breakdown(bars, ax=l00_memory.detached_axes())
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * 2
    assert ax.get_yscale() == "log"


def test_plots_reject_empty_or_mismatched_data() -> None:
    with pytest.raises(ValueError, match="at least one"):
        l00_memory.plot_memory_breakdown([])
    with pytest.raises(ValueError, match="same length"):
        l00_memory.plot_power_law([1, 2, 3], [1, 2], exponent=1.0, label="x")


def test_figure_png_is_a_png() -> None:
    fig = l00_memory.plot_power_law([1, 2, 4], [1, 4, 16], exponent=2.0, label="x", ax=l00_memory.detached_axes())
    assert l00_memory.figure_png(fig)[:4] == b"\x89PNG"
