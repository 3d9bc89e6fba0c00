"""Figure 2 (a–d) drawn from real lsh_attention output, and the chunking explorer widget (no browser)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Annotation

from reformer_lab.lessons import l02_chunking as pc
from reformer_lab.lessons.common import bucket_colours
from reformer_lab.measure import chunking_stats as bs

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"


def _example(seed: int = 5, length: int = 32, n_buckets: int = 16, **kwargs) -> pc.ChunkingExample:
    return pc.chunking_example(length, n_buckets, generator=torch.Generator().manual_seed(seed), **kwargs)


def _cell_colours(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array())


def test_example_is_a_real_lsh_attention_call() -> None:
    example = _example()
    info = example.info
    assert (example.length, example.n_buckets, example.chunk_size) == (32, 16, 4)
    assert info.buckets.shape == info.sort_indices.shape == info.chunk_ids.shape == (1, 32)
    assert info.weights.shape == (32, 32)
    torch.testing.assert_close(info.weights.sum(-1), torch.ones(32))
    assert torch.equal(example.order, info.sort_indices[0])
    assert info.rotations.shape == (1, 8, 8)  # one round, d = 8, n_buckets/2 columns
    assert torch.equal(info.chunk_ids[0], info.undo_indices[0] // 4)
    again = _example()  # seeded: the same example again
    assert torch.equal(again.buckets, example.buckets) and torch.equal(again.k_buckets, example.k_buckets)


def test_separate_keys_hash_differently_from_queries() -> None:
    example = _example()
    assert not torch.equal(example.q_buckets, example.k_buckets)
    assert torch.equal(example.q_buckets, example.buckets)
    assert 0 <= int(example.k_buckets.min()) and int(example.k_buckets.max()) < 16


def test_strips_colour_each_bucket_with_the_shared_palette() -> None:
    example = _example(n_buckets=8)
    fig = pc.plot_chunking(example, fig=Figure(figsize=(9, 7.2)))
    strip = np.asarray(fig.axes[0].images[0].get_array())[0]  # [L, 4]: one cell per position
    assert np.allclose(strip, bucket_colours(8)[example.buckets.numpy()])


def test_figure2_has_four_panels_drawn_from_the_info() -> None:
    plt.close("all")
    example = _example()
    fig = pc.plot_figure2(example)
    a, b, c, d = fig.axes
    assert [ax.get_title()[:3] for ax in (a, b, c, d)] == ["(a)", "(b)", "(c)", "(d)"]
    n, order = example.length, example.order.numpy()
    buckets = example.buckets.numpy()
    colours = bucket_colours(example.n_buckets)

    # (c): sorted by (bucket, position), same-bucket causal pairs form blocks on the diagonal
    coloured_c = _cell_colours(c)[..., 3] > 0
    sorted_buckets = buckets[order]
    same = sorted_buckets[:, None] == sorted_buckets[None, :]
    causal = order[None, :] <= order[:, None]
    assert np.array_equal(coloured_c, same & causal)
    rows, cols = np.nonzero(coloured_c)
    assert (np.abs(rows - cols) < np.bincount(buckets).max()).all()  # never farther than a bucket's length

    # (d): coloured = pairs with a non-zero weight; crosses = same-bucket pairs outside the window
    image_d = _cell_colours(d)
    weights = example.info.weights.numpy()[np.ix_(order, order)]
    off_diagonal = ~np.eye(n, dtype=bool)
    attended = (weights > 0) & off_diagonal
    assert np.allclose(image_d[attended], colours[sorted_buckets[np.nonzero(attended)[0]]])
    lost, total = pc._lost_pairs(example)
    same_pairs, visible = bs.pair_counts(example.info.buckets, example.n_buckets, causal=True)
    assert (lost, total) == (int(same_pairs - visible), int(same_pairs)) and lost > 0
    assert len(d.collections[0].get_offsets()) == lost
    plt.close(fig)


def test_figure2_panel_b_shows_buckets_with_queries_but_no_keys() -> None:
    example = _example()
    fig = pc.plot_figure2(example, fig=Figure(figsize=(12, 4)))
    coloured_b = _cell_colours(fig.axes[1])[..., 3] > 0
    q_only = set(example.q_buckets.tolist()) - set(example.k_buckets.tolist())
    assert q_only  # this seed has such a bucket
    q_sorted = np.sort(example.q_buckets.numpy())
    rows_without_keys = np.isin(q_sorted, list(q_only))
    assert not coloured_b[rows_without_keys].any()


def test_explorer_picture_shows_strips_and_both_orders() -> None:
    example = _example(causal=False)
    fig = pc.plot_chunking(example, fig=Figure(figsize=(9, 7.2)))
    top, middle, sorted_ax, original_ax = fig.axes
    assert [t.get_text() for t in top.texts] == [str(b) for b in example.buckets.tolist()]
    assert [t.get_text() for t in middle.texts] == [str(p) for p in example.order.tolist()]
    assert len(middle.lines) == example.length // example.chunk_size - 1  # chunk boundaries
    lost, total = pc._lost_pairs(example)
    assert f"{lost} of {total} same-bucket pairs lost" in fig._suptitle.get_text()
    assert lost == round(bs.dropped_fraction(example.info.buckets, 16, causal=False) * total)
    assert len(sorted_ax.collections[0].get_offsets()) == len(original_ax.collections[0].get_offsets()) == lost


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_buckets": 5}, "must be even"),
        ({"length": 256}, "at most 128"),
        ({"length": 24, "n_buckets": 10}, "divides L"),
        ({"kind": "text"}, "kind must be one of"),
    ],
)
def test_bad_example_settings_are_value_errors(kwargs, message) -> None:
    settings = {"length": 32, "n_buckets": 8} | kwargs
    with pytest.raises(ValueError, match=message):
        pc.chunking_example(**settings, generator=torch.Generator().manual_seed(0))


# ----------------------------------------------------------------------------------------------------
# The widget
# ----------------------------------------------------------------------------------------------------


def _controls(box):
    import ipywidgets as w

    found = []

    def walk(node):
        if isinstance(node, (w.IntSlider, w.SelectionSlider, w.Dropdown, w.Checkbox)):
            found.append(node)
        for child in getattr(node, "children", ()):
            walk(child)

    walk(box)
    return found


def test_explorer_follows_the_widget_convention_and_redraws_on_every_control() -> None:
    plt.close("all")
    box = pc.chunking_explorer()
    assert "rl-widget" in box._dom_classes
    outputs = [c for c in box.children if "rl-widget-output" in c._dom_classes]
    assert len(outputs) == 1
    (image,) = outputs[0].children  # the picture alone: no text line
    assert image.value[:8] == PNG and box.initial_png == image.value
    controls = _controls(box)
    assert [c.description for c in controls] == ["seed", "n_buckets", "length L", "data", "causal"]
    new_values = [1, 4, 16, "zipf", False]
    for control, value in zip(controls, new_values, strict=True):
        before = image.value
        control.value = value
        assert image.value != before and image.value[:8] == PNG, control.description
    assert plt.get_fignums() == []  # widgets draw on detached figures


def test_the_first_slider_is_the_seed_and_it_changes_the_picture() -> None:
    box = pc.chunking_explorer(seed=3, length=16, n_buckets=4, causal=False, kind="zipf")
    seed = _controls(box)[0]
    image = box.children[-1].children[0]
    before = image.value
    seed.value = 4
    assert image.value != before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"length": 48}, "length must be one of"),
        ({"n_buckets": 6}, "n_buckets must be one of"),
        ({"kind": "text"}, "kind must be one of"),
        ({"seed": -1}, ">= 0"),
        ({"causal": "no"}, "causal must be True or False"),
    ],
)
def test_explorer_rejects_bad_settings(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        pc.chunking_explorer(**kwargs)


# -- the running example and the pipeline figure -----------------------------------------------------------


def test_running_example_is_the_seed_5_example_and_keeps_its_vectors() -> None:
    example = pc.running_example()
    again = _example(seed=5, length=32, n_buckets=16)
    assert torch.equal(example.buckets, again.buckets) and torch.equal(example.qk, again.qk)
    assert example.qk.shape == (32, 8) and example.causal
    # The kept vectors and rotations give the buckets back: lesson 01 hashes them by hand.
    rotation = example.info.rotations[0]
    projected = example.qk @ rotation
    assert torch.equal(torch.cat([projected, -projected], -1).argmax(-1), example.buckets)
    assert pc.RUNNING_EXAMPLE == {"length": 32, "n_buckets": 16, "causal": True}


def test_pipeline_draws_four_rows_of_cells_in_bucket_colours() -> None:
    example = pc.running_example()
    fig = pc.plot_pipeline(example)
    ax = fig.axes[0]
    cells = [p for p in ax.patches if p.get_width() < 1]
    assert len(cells) == 4 * example.length
    colours = bucket_colours(example.n_buckets)
    order = example.order.numpy()
    bucket_row = cells[example.length : 2 * example.length]
    assert np.allclose([c.get_facecolor() for c in bucket_row], colours[example.buckets.numpy()])
    sorted_row = cells[2 * example.length : 3 * example.length]
    assert np.allclose([c.get_facecolor() for c in sorted_row], colours[example.buckets.numpy()[order]])
    numbers = [t.get_text() for t in ax.texts]
    assert numbers[2 * (example.length + 1) : 2 * (example.length + 1) + example.length] == [str(p) for p in order]
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    assert len(arrows) == example.length // example.chunk_size - 1  # every chunk but the first looks back
    plt.close(fig)
