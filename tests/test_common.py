"""The lessons' shared helpers: axes, PNG rendering, byte-size ticks, the bucket palette and the explorer widget."""

from __future__ import annotations

import ast
from pathlib import Path

import ipywidgets as w
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from reformer_lab.lessons import common, l01_hashing, l02_chunking
from reformer_lab.lessons.common import (
    BUCKET_PALETTE,
    Explorer,
    bucket_colours,
    bytes_axis,
    choice_slider,
    detached_axes,
    explorer,
    figure_png,
    new_axes,
)
from reformer_lab.measure.memory import format_bytes

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"
LESSONS = Path(common.__file__).parent


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")
    yield
    plt.close("all")


# -- axes and PNG ----------------------------------------------------------------------------------------


def test_new_axes_uses_the_given_axes_or_makes_a_pyplot_figure() -> None:
    ax = detached_axes()
    assert new_axes(ax) == (ax.figure, ax)
    assert plt.get_fignums() == []  # detached: pyplot does not know it
    fig, made = new_axes(None, figsize=(2.0, 1.0))
    assert plt.get_fignums() == [fig.number] and tuple(fig.get_size_inches()) == (2.0, 1.0)


def test_figure_png_renders_and_closes_pyplot_figures() -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert figure_png(fig)[:8] == PNG
    assert plt.get_fignums() == []
    assert figure_png(Figure())[:8] == PNG  # a detached figure needs no closing


def test_bytes_axis_labels_ticks_as_byte_sizes() -> None:
    ax = detached_axes()
    bytes_axis(ax)
    assert ax.yaxis.get_major_formatter()(16 * 2**30, 0) == format_bytes(16 * 2**30) == "16.0 GiB"
    bytes_axis(ax, axis="x")
    assert ax.xaxis.get_major_formatter()(1536, 0) == "1.50 KiB"
    with pytest.raises(ValueError, match="axis must be one of"):
        bytes_axis(ax, axis="z")


# -- the bucket palette ----------------------------------------------------------------------------------


def test_bucket_colours_are_stable_whatever_the_bucket_count() -> None:
    assert BUCKET_PALETTE.shape == (64, 4) and not BUCKET_PALETTE.flags.writeable
    for n in (1, 2, 4, 8, 16, 18, 24, 64):
        colours = bucket_colours(n)
        assert colours.shape == (n, 4)
        assert np.array_equal(colours, BUCKET_PALETTE[:n])  # bucket b keeps its colour when n grows
    # the first nine are tab10 without its grey, so small pictures look like any Matplotlib plot
    tab10 = matplotlib.colormaps["tab10"]([0, 1, 2, 3, 4, 5, 6, 8, 9])
    assert np.allclose(BUCKET_PALETTE[:9], tab10)


def test_64_bucket_colours_are_distinct_opaque_and_never_grey() -> None:
    rgb = BUCKET_PALETTE[:, :3]
    distance = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    assert distance.min() > 0.09  # tab10 against its light twins is the closest pair
    assert (rgb.max(axis=1) - rgb.min(axis=1) > 0.1).all()  # grey means "computed" in lesson 02
    assert (BUCKET_PALETTE[:, 3] == 1).all()


def test_bucket_colours_cycle_beyond_64_and_reject_bad_counts() -> None:
    colours = bucket_colours(130)
    assert np.array_equal(colours[64:128], BUCKET_PALETTE) and np.array_equal(colours[128:], BUCKET_PALETTE[:2])
    for bad in (0, -2):
        with pytest.raises(ValueError, match="n_buckets must be an int >= 1"):
            bucket_colours(bad)
    with pytest.raises(TypeError, match="n_buckets"):
        bucket_colours(2.0)


def test_lessons_01_and_02_colour_a_bucket_id_alike() -> None:
    """The bucket labels of lesson 01's circle and the cells of lesson 02's strip, for the same ids."""
    assert l01_hashing.bucket_colours is l02_chunking.bucket_colours is common.bucket_colours
    circle = l01_hashing.plot_hash_circle([1.0, 0.1], [0.2, 1.0], torch.eye(2, dtype=torch.float64), 4,
                                          ax=detached_axes())
    lesson01 = {int(t.get_text()): matplotlib.colors.to_rgba(t.get_color())
                for t in circle.axes[0].texts if t.get_text().isdigit()}  # fmt: skip
    example = l02_chunking.chunking_example(32, 4, generator=torch.Generator().manual_seed(0))
    chunks = l02_chunking.plot_chunking(example, fig=Figure(figsize=(9, 7.2)))
    strip = np.asarray(chunks.axes[0].images[0].get_array())[0]
    lesson02 = {int(b): tuple(strip[i]) for i, b in enumerate(example.buckets.tolist())}
    shared = sorted(set(lesson01) & set(lesson02))
    assert shared == [0, 1, 2, 3]
    for bucket in shared:
        assert lesson01[bucket] == pytest.approx(lesson02[bucket]), bucket


# -- the explorer widget ---------------------------------------------------------------------------------


def _controls() -> dict[str, w.ValueWidget]:
    return {
        "n": w.IntSlider(value=2, min=1, max=5, description="n"),
        "colour": w.Dropdown(options=["red", "blue"], value="red", description="colour"),
        "grid": w.Checkbox(value=False, description="grid"),
    }


def _line(n: int, colour: str, grid: bool) -> Figure:
    ax = detached_axes(figsize=(2.0, 1.5))
    ax.plot(range(n + 1), color=colour)
    ax.grid(grid)
    return ax.figure


def test_explorer_follows_the_widget_convention() -> None:
    box = explorer(_controls(), _line)
    assert isinstance(box, Explorer) and isinstance(box, w.VBox)
    assert "rl-widget" in box._dom_classes
    outputs = [c for c in box.children if "rl-widget-output" in c._dom_classes]
    assert outputs == [box.output]
    assert box.output.children == (box.image,) and box.text is None  # a bare figure: no text line
    assert box.image.value[:8] == PNG and box.initial_png == box.image.value
    panel = box.children[0]
    assert [[c.description for c in column.children] for column in panel.children] == [["n", "colour"], ["grid"]]
    assert not any(isinstance(c, w.Output) for c in box.output.children)
    assert box.controls["n"].continuous_update is False
    assert box.controls["n"].style.description_width == "90px"
    assert plt.get_fignums() == []


def test_explorer_redraws_on_every_control_and_keeps_the_first_picture() -> None:
    calls = []

    def draw(n: int, colour: str, grid: bool) -> tuple[Figure, str]:
        calls.append((n, colour, grid))
        return _line(n, colour, grid), f"<b>n = {n}</b>, {colour}"

    box = explorer(_controls(), draw, columns=3, width=None)
    assert calls == [(2, "red", False)]
    assert box.output.children == (box.text, box.image) and box.text.value == "<b>n = 2</b>, red"
    first = box.initial_png
    for name, value in (("n", 4), ("colour", "blue"), ("grid", True)):
        before = box.image.value
        box.controls[name].value = value
        assert box.image.value != before, name
    assert calls[-1] == (4, "blue", True) and box.text.value == "<b>n = 4</b>, blue"
    assert box.initial_png == first
    assert len(box.children[0].children) == 3  # one column per control


def test_explorer_rejects_a_draw_that_changes_its_kind_and_empty_controls() -> None:
    def draw(n: int, colour: str, grid: bool) -> Figure | tuple[Figure, str]:
        fig = _line(n, colour, grid)
        return fig if n == 2 else (fig, "text")

    box = explorer(_controls(), draw)
    with pytest.raises(TypeError, match="same kind"):
        box.controls["n"].value = 3
    with pytest.raises(ValueError, match="at least one control"):
        explorer({}, _line)


def test_choice_slider_offers_only_its_options() -> None:
    slider = choice_slider("n_buckets", 8, range(2, 17, 2))
    assert slider.description == "n_buckets" and slider.value == 8 and list(slider.options) == list(range(2, 17, 2))
    labelled = choice_slider("length", 4096, [1024, 4096], "length l", label="{:,}".format)
    assert labelled.description == "length l" and labelled._options_labels == ("1,024", "4,096")
    with pytest.raises(ValueError, match="n_buckets must be one of 2, 4"):
        choice_slider("n_buckets", 7, range(2, 17, 2))


# -- conventions across the lesson modules ---------------------------------------------------------------


def _lesson_sources() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(LESSONS.glob("l[0-9][0-9]_*.py"))}


def test_lesson_modules_share_one_widget_palette_and_bytes_axis() -> None:
    sources = _lesson_sources()
    assert len(sources) == 11  # l00 … l10
    for name, text in sources.items():
        assert 'add_class("rl-widget' not in text, f"{name} builds its own widget box: use common.explorer"
        assert ".observe(" not in text, f"{name} wires its own observers: use common.explorer"
        assert "format_bytes(v))" not in text, f"{name} builds its own bytes axis: use common.bytes_axis"
        assert "tab20" not in text, f"{name} has its own bucket palette: use common.bucket_colours"


def test_lesson_modules_start_with_their_lesson_and_paper_section() -> None:
    for name, text in _lesson_sources().items():
        doc = ast.get_docstring(ast.parse(text))
        assert doc is not None and doc.startswith(f"Lesson {name[1:3]}, "), name
        assert "(paper §" in doc.splitlines()[0], name


def test_no_lesson_module_imports_private_names() -> None:
    for path in sorted(LESSONS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{path.name} imports {private} from {node.module}"


def test_an_explorer_shows_its_first_picture_where_widgets_cannot_render() -> None:
    import base64

    import ipywidgets as w
    from matplotlib.figure import Figure

    from reformer_lab.lessons.common import explorer

    def draw(n: int) -> Figure:
        fig = Figure(figsize=(2, 2))
        fig.add_subplot().plot(range(n))
        return fig

    box = explorer({"n": w.IntSlider(value=3, min=2, max=9)}, draw)
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == box.initial_png
    box.controls["n"].value = 7  # the static picture stays the first one
    assert base64.b64decode(box._repr_mimebundle_()["image/png"]) == box.initial_png != box.image.value
