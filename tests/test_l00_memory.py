"""The widgets' pure functions, and that a widget redraws when a control moves (no browser needed)."""

from __future__ import annotations

import pytest

from reformer_lab.lessons import l00_memory
from reformer_lab.lessons.common import detached_axes
from reformer_lab.measure import complexity
from reformer_lab.measure.memory import format_bytes

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
    assert box.initial_png == chart.value  # the static picture is the first drawing
    assert table.value == l00_memory.calculator_html(65536, 1, 1024, 4096, 16, 8)
    slider = _find(box, w.SelectionSlider)
    assert slider.description == "length l"  # the browser test moves the first slider
    slider.value = slider.options[0][1]
    assert (table.value, chart.value) != before
    assert table.value == l00_memory.calculator_html(256, 1, 1024, 4096, 16, 8)
    assert box.initial_png == before[1]  # still the first drawing after a redraw


@pytest.mark.parametrize(
    "kwargs, match",
    [({"length": 1000}, "length must be one of"), ({"n_heads": 64}, "n_heads must be one of"),
     ({"n_layers": 0}, r"n_layers must be an int in \[1, 64\]")],
)
def test_memory_calculator_rejects_values_off_its_sliders(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        l00_memory.memory_calculator(**kwargs)


def test_widget_redraw_leaves_no_pyplot_figures_behind() -> None:
    import matplotlib.pyplot as plt

    plt.close("all")
    box = l00_memory.memory_calculator()
    box.children[0].children[1].children[1].value = 8  # n_layers
    assert plt.get_fignums() == []


def test_plot_memory_breakdown_draws_one_bar_per_term_and_model() -> None:
    bars = [complexity.memory_breakdown(4096, 1, 256, 1024, 4, 4, model=m) for m in ("transformer", "reformer")]
    fig = l00_memory.plot_memory_breakdown(bars, ax=detached_axes())
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * 2
    assert ax.get_yscale() == "log"


def test_bar_labels_are_readable_and_every_bar_shows_on_the_log_axis() -> None:
    bars = [complexity.memory_breakdown(**l00_memory.README_SIZES, model=m)
            for m in ("transformer", "reversible", "chunked-reversible", "reformer")]
    ax = l00_memory.plot_memory_breakdown(bars, ax=detached_axes()).axes[0]
    labels = [t for t in ax.texts if t.get_text()]
    assert len(labels) == len(ax.patches) == 12
    assert all(t.get_fontsize() >= 9 and t.get_rotation() == 0 for t in labels)
    assert labels[0].get_text() == "4.00\nGiB"  # number over unit, so it fits over its bar
    smallest = min(p.get_height() for p in ax.patches)
    assert smallest == 256 * 2**20 and ax.get_ylim()[0] < smallest / 2


def test_the_readme_figure_is_the_lessons_chart_and_a_module_run_refreshes_it(tmp_path) -> None:
    ax = l00_memory.readme_figure().axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["transformer", "reversible", "chunked-reversible",
                                                           "reformer"]
    assert ax.get_title() == "Table 3's memory terms at 64K tokens, 16 layers"
    assert l00_memory.README_FIGURE.parts[-2:] == ("docs", "lesson00_memory.png")
    path = tmp_path / "readme.png"
    assert l00_memory.write_readme_figure(path) is True and l00_memory.write_readme_figure(path) is False


def test_the_lesson_does_not_write_the_readme_figure() -> None:
    import json

    notebook = l00_memory.README_FIGURE.parents[1] / "notebooks" / "00_the_memory_problem.ipynb"
    sources = "".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"])
    assert "save_png_if_changed" not in sources and "lesson00_memory.png" not in sources


def test_plots_reject_empty_or_mismatched_data() -> None:
    with pytest.raises(ValueError, match="at least one"):
        l00_memory.plot_memory_breakdown([])
    with pytest.raises(ValueError, match="same length"):
        l00_memory.plot_power_law([1, 2, 3], [1, 2], exponent=1.0, label="x")


def test_power_law_labels_bytes_and_the_fitted_exponent() -> None:
    fig = l00_memory.plot_power_law([1, 2, 4], [1024, 4096, 16384], exponent=2.0, label="x", ax=detached_axes(),
                                    reference=[1024, 4096, 16384])
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and "fitted exponent 2.00" in ax.lines[0].get_label()
    assert ax.yaxis.get_major_formatter()(4096, 0) == format_bytes(4096)


def test_calculator_says_below_which_lengths_table3s_lsh_term_is_the_larger() -> None:
    note = l00_memory.attention_crossover_note(65536, 16)
    assert "below l = 16,384" in note and "16 stored layers below l = 1,024" in note
    assert note.endswith("At l = 65,536 it is 0.25× one layer of full attention.")
    assert "stored layers" not in l00_memory.attention_crossover_note(4096, 1)
    assert "below l ≈ 5,461" in l00_memory.attention_crossover_note(4096, 3)  # 16,384 / 3
    assert "below l = 32,768" in l00_memory.attention_crossover_note(4096, 1, n_hashes=2)
    page = l00_memory.calculator_html(65536, 1, 1024, 4096, 16, 8)
    assert page.endswith("At l = 65,536 it is 0.25× one layer of full attention.</p>")


def test_attention_crossover_plot_marks_both_crossings_and_the_papers_length() -> None:
    lengths = [2**e for e in range(8, 19)]
    fig = l00_memory.plot_attention_crossover(lengths, n_layers=16, ax=detached_axes())
    ax = fig.axes[0]
    curves = [line for line in ax.lines if len(line.get_xdata()) == len(lengths)]
    assert len(curves) == 3  # full one layer, full n_l layers, LSH
    dots = sorted(float(line.get_xdata()[0]) for line in ax.lines if line.get_marker() == "o")
    assert dots == [1024.0, 16384.0]
    assert any(float(line.get_xdata()[0]) == 65536 for line in ax.lines if line.get_linestyle() == "--")
    one_layer = l00_memory.plot_attention_crossover(lengths, n_layers=1, mark=None, ax=detached_axes()).axes[0]
    assert len([line for line in one_layer.lines if line.get_marker() == "o"]) == 1
    with pytest.raises(ValueError, match="at least 2 lengths"):
        l00_memory.plot_attention_crossover([1024])


def test_the_readme_figure_is_written_only_when_missing_or_changed(tmp_path) -> None:
    import os

    path = tmp_path / "figure.png"
    bars = [complexity.memory_breakdown(4096, 1, 256, 1024, 4, 4, model=m) for m in ("transformer", "reformer")]
    fig = l00_memory.plot_memory_breakdown(bars, ax=detached_axes())
    assert l00_memory.save_png_if_changed(fig, path) is True  # missing: written
    first = path.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    os.utime(path, ns=(1, 1))
    assert l00_memory.save_png_if_changed(fig, path) is False  # same bytes: not touched
    assert path.stat().st_mtime_ns == 1 and path.read_bytes() == first
    fig.axes[0].set_title("another title")
    assert l00_memory.save_png_if_changed(fig, path) is True  # different bytes: rewritten
    assert path.read_bytes() != first
