"""Lesson 07's table text, learning-curve plots, and the chunk size × hash rounds grid with its explorer."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Rectangle

from reformer_lab.data import DuplicationTask
from reformer_lab.lessons import l07_duplication as l07
from reformer_lab.lessons.common import detached_axes
from reformer_lab.measure import duplication_stats as rep
from reformer_lab.measure.experiments import EVAL_COLUMNS, run_experiment


@pytest.fixture(scope="module")
def tiny_record(tmp_path_factory):
    directory = tmp_path_factory.mktemp("duplication")
    return run_experiment("duplication", "lsh-2", "tiny", out=directory / "lsh-2-tiny-seed0.json", progress=False)


def test_format_table() -> None:
    measured = {"full": dict.fromkeys(EVAL_COLUMNS, 1.0), "lsh-4": dict.fromkeys(EVAL_COLUMNS, 0.5)}
    text = l07.format_table(measured, rep.PAPER_TABLE2)
    lines = text.splitlines()
    assert lines[0] == "| train \\ eval | full | LSH-8 | LSH-4 | LSH-2 | LSH-1 |"
    assert "| **full** | 100.0% / 100.0% | 100.0% / 94.8%" in text
    assert "| **LSH-4** | 50.0% / 0.8% |" in text
    assert " / " not in l07.format_table(measured)


def test_format_spread_table_shows_a_range_only_where_the_seeds_differ() -> None:
    spread = {"full": {c: rep.Spread(1.0, 1.0, 1.0) for c in EVAL_COLUMNS},
              "lsh-1": {**{c: rep.Spread(1.0, 0.99999, 1.0) for c in EVAL_COLUMNS},
                        "lsh-1": rep.Spread(0.95, 0.932, 0.954)}}
    text = l07.format_spread_table(spread, rep.PAPER_TABLE2)
    assert "| **full** | 100.0% / 100.0% | 100.0% / 94.8% |" in text
    assert "| 95.0% [93.2–95.4] / 77.9% |" in text
    assert "[" not in text.splitlines()[2]


def test_plots(tiny_record) -> None:
    record = tiny_record
    fig = l07.plot_learning_curves({"lsh-2": record, "full": record})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2 and not fig.axes[0].collections
    plt.close(fig)
    fig = l07.plot_learning_curves({"lsh-2": [record, record, record]})
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[0].collections) == 1  # the median and the band
    assert "median of 3 seeds" in fig._suptitle.get_text()
    plt.close(fig)
    fig = l07.plot_live_run(record["metrics"]["train"], record["metrics"]["eval"])
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError):
        l07.plot_learning_curves({})
    with pytest.raises(ValueError):
        l07.plot_live_run([], [])


# -- the chunk size × hash rounds grid and its explorer ---------------------------------------------------


def _grid() -> l07.SweepGrid:
    chunks, hashes = (8, 16, 32), (1, 2, 4, 8)
    values = np.linspace(0.5, 1.0, len(chunks) * len(hashes)).reshape(len(hashes), len(chunks))
    return l07.SweepGrid(chunks, hashes, 128, 16, {"full": values, "lsh-1": values[::-1]})


def test_sweep_grid_cells_are_bucket_sweep_evaluations() -> None:
    model = rep.load_lesson_model("lsh-1", seed=0)
    task = DuplicationTask(w_len=63, n_symbols=127)
    grid = l07.sweep_grid({"lsh-1": model}, task, (32, 64), (1, 2), batches=1, batch_size=2, seed=5)
    assert grid.accuracy["lsh-1"].shape == (2, 2) and grid.length == 128 and grid.n_sequences == 2
    assert grid.n_buckets(32) == 8 and grid.n_buckets(64) == 4
    for n in (1, 2):
        swept = rep.bucket_sweep(model, task, (32, 64), n_hashes=n, batches=1, batch_size=2, seed=5)
        assert [grid.at("lsh-1", c, n) for c in (32, 64)] == [swept[32], swept[64]]
    with pytest.raises(ValueError, match="must divide the length 128"):
        l07.sweep_grid({"lsh-1": model}, task, (48,), (1,))


def test_sweep_grid_rejects_a_wrong_shape_and_unknown_cells() -> None:
    with pytest.raises(ValueError, match="n_hashes × chunk sizes"):
        l07.SweepGrid((8, 16), (1,), 128, 16, {"full": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="chunk_size"):
        _grid().at("full", 64, 1)


def test_heatmaps_print_every_cell_and_mark_the_chosen_one() -> None:
    grid = _grid()
    fig = l07.plot_sweep_grid(grid, "full", chunk_size=16, n_hashes=4, ax=detached_axes())
    ax = fig.axes[0]
    assert len(ax.texts) == 12 and ax.texts[0].get_text() == "50.0"
    marked = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert marked and marked[0].get_xy() == (0.5, 1.5)  # column of chunk 16, row of n_hashes 4
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8\n(32)", "16\n(16)", "32\n(8)"]
    fig = l07.plot_sweep_grids(grid)
    assert sum(1 for a in fig.axes if a.images) == 2
    plt.close("all")


def test_sweep_explorer_redraws_when_any_control_moves() -> None:
    box = l07.sweep_explorer(_grid(), chunk_size=16, n_hashes=1, setting="full")
    assert "rl-widget" in box._dom_classes and box.initial_png[:8] == b"\x89PNG\r\n\x1a\n"
    first = box.children[0].children[0].children[0]
    assert first is box.controls["chunk_size"]  # the browser test moves the first slider
    for name, value in (("chunk_size", 32), ("n_hashes", 8), ("setting", "lsh-1")):
        before = box.image.value
        box.controls[name].value = value
        assert box.image.value != before
    assert "evaluated with LSH-8 at chunk size 32 (8 buckets)" in box.text.value
    assert f"{100 * _grid().at('lsh-1', 32, 8):.1f}%" in box.text.value
    # the readout shows about ten characters: the chunk size alone, the bucket count is in the line above
    assert list(box.controls["chunk_size"].options) == [8, 16, 32]
