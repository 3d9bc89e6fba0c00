"""Lesson 03's figures and the rounds explorer widget (pure functions; the browser test moves the slider)."""

from __future__ import annotations

import ipywidgets as w
import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from reformer_lab.hashing import hash_vectors, random_rotations
from reformer_lab.lessons import l03_attention as pa
from reformer_lab.measure import attention_stats as st

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_rounds_error_has_two_panels_and_a_line_per_curve() -> None:
    qk, _ = st.clustered_qk(64, 8, 4, generator=_gen(0))
    v = torch.randn(64, 4, generator=_gen(1))
    curves = {name: st.rounds_error(qk, v, n_buckets=8, n_hashes=(1, 2, 4), n_trials=2, generator=_gen(2),
                                    attend_across_buckets=across)
              for name, across in (("masked", False), ("across", True))}  # fmt: skip
    fig = pa.plot_rounds_error(curves)
    tv_ax, rel_ax = fig.axes
    assert len(tv_ax.lines) == len(rel_ax.lines) == 2
    assert list(tv_ax.lines[0].get_xdata()) == [1, 2, 4]
    assert tv_ax.get_xscale() == "log"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["masked", "across"]
    with pytest.raises(ValueError, match="at least one curve"):
        pa.plot_rounds_error({})


def _weights(n_hashes: int) -> st.QueryWeights:
    qk, _ = st.clustered_qk(64, 8, 2, noise=1.5, generator=_gen(0))
    v = torch.randn(64, 4, generator=_gen(1))
    return st.one_query_weights(qk, v, 3, n_buckets=16, rotations=random_rotations(8, 16, 4, generator=_gen(2)),
                                n_hashes=n_hashes)  # fmt: skip


def test_query_weights_marks_unvisited_keys() -> None:
    weights = _weights(1)
    fig = pa.plot_query_weights(weights, top=20)
    ax = fig.axes[0]
    assert len(ax.patches) == 20  # one bar per ranked key
    top = torch.argsort(weights.full, descending=True)[:20]
    missed = int((~weights.visited[top]).sum())
    assert missed > 0  # this case has keys LSH never visits
    crosses = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(crosses) == 1 and len(crosses[0].get_xdata()) == missed
    assert "n_hashes = 1" in ax.get_title()


def test_pair_counts_heat_map() -> None:
    buckets = hash_vectors(torch.randn(12, 4, generator=_gen(0)), 4, 3, generator=_gen(1))
    counts = st.visit_counts(buckets, 6)
    fig = pa.plot_pair_counts(counts, title="N")
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (12, 12)
    assert ax.get_title() == "N"
    with pytest.raises(ValueError, match="square"):
        pa.plot_pair_counts(torch.zeros(3, 4))


def test_table1_figures_are_log_log_with_measured_and_formula_lines() -> None:
    rows = st.measure_table1([64, 128], n_heads=1, d_k=8, chunk_size=16)
    ax = pa.plot_table1_memory(rows).axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert len(ax.lines) == 2 * 4  # measured + formula for each of the four variants
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "memory-efficient: Table 1 (= dot-product)" in labels  # Table 1 prints the same row twice
    assert ax.yaxis.get_major_formatter()(2**20, 0) == "1.00 MiB"  # common.bytes_axis
    times = {"full": {64: 0.01, 128: 0.04}, "lsh-1": {64: 0.02, 128: 0.04}, "lsh-4": {}}
    ax = pa.plot_table1_times(times).axes[0]
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"
    assert pa._seconds(0.05) == "50 ms" and pa._seconds(2.0) == "2 s"
    with pytest.raises(ValueError):
        pa.plot_table1_memory([])
    with pytest.raises(ValueError):
        pa.plot_table1_times({"full": {}})


def _find(box, cls):
    for child in getattr(box, "children", ()):
        if isinstance(child, cls):
            return child
        found = _find(child, cls)
        if found is not None:
            return found
    return None


def test_rounds_explorer_follows_the_widget_convention_and_redraws() -> None:
    plt.close("all")
    box = pa.rounds_explorer(length=128, dim=16, n_clusters=4, n_buckets=8, max_hashes=4)
    assert "rl-widget" in box._dom_classes
    outputs = [c for c in box.children if "rl-widget-output" in c._dom_classes]
    assert len(outputs) == 1
    summary, chart = outputs[0].children
    assert chart.value[:8] == b"\x89PNG\r\n\x1a\n" and box.initial_png == chart.value
    before = (summary.value, chart.value)
    slider = _find(box, w.IntSlider)  # the first slider: n_hashes
    assert slider.description == "n_hashes"
    slider.value = 4
    assert (summary.value, chart.value) != before and "<b>4</b> round(s)" in summary.value
    _find(box, w.Checkbox).value = True
    assert "every key in the window" in summary.value
    assert plt.get_fignums() == []  # drawn on detached figures only


@pytest.mark.parametrize(
    "kwargs, match",
    [({"query": 128}, r"query must be an int in \[0, 127\]"), ({"max_hashes": 0}, "max_hashes must be an int >= 1"),
     ({"n_buckets": 5}, "must be even"), ({"seed": -1}, "seed must be an int >= 0")],
)
def test_rounds_explorer_rejects_bad_settings(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        pa.rounds_explorer(**({"length": 128, "dim": 16, "n_clusters": 4, "n_buckets": 8} | kwargs))
