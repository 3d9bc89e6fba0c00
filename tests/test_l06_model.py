"""Lesson 06's figures: the model diagram names the config's arguments; loss curve with baselines; paired
differences of the hash-round evaluations."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from reformer_lab.lessons import l06_model as pm
from reformer_lab.model import ReformerConfig

CONFIG = ReformerConfig(vocab_size=103, max_len=128, d_model=64, d_ff=128, n_heads=2, n_layers=2, n_hashes=1,
                        chunk_size=32, ff_chunks=2, loss_chunks=4)


def _texts(fig: Figure) -> str:
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_diagram_draws_the_parts_labelled_with_the_config() -> None:
    fig = pm.plot_model_diagram(CONFIG, ax=Figure().add_subplot())
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(boxes) == 9 and len(arrows) >= 12  # tokens, embedding, X1, X2, stack, F, G, norm, head
    text = _texts(fig)
    for fragment in ("vocab_size=103", "d_model=64", "max_len=128", "n_layers=2", "reversible=True",
                     'attention="lsh"', "n_heads=2", "n_hashes=1", "chunk_size=32", "d_ff=128", "ff_chunks=2",
                     "loss_chunks=4", "LayerNorm over [Y₁; Y₂]", "Y₁ = X₁ + F(X₂)", "Y₂ = X₂ + G(Y₁)",
                     "X₁ = embedding", "X₂ = embedding", "F = LayerNorm →", "G = LayerNorm →"):
        assert fragment in text, fragment


def test_diagram_follows_the_switches() -> None:
    full = pm.diagram_labels(ReformerConfig(attention="full", shared_qk=False, reversible=False))
    assert 'attention="full"' in full["f"] and "shared_qk=False" in full["f"] and "n_hashes" not in full["f"]
    assert "reversible=False" in full["stack"]
    axial = pm.diagram_labels(ReformerConfig(positional="axial"))
    assert "not in the paper" in axial["embedding"]


def test_loss_curve() -> None:
    history = [{"step": s, "loss": 4.0 - s / 100} for s in (10, 20, 30)]
    evals = [{"step": 30, "loss": 3.8, "accuracy": 0.2}]
    fig = pm.plot_loss_curve(history, evals, ax=Figure().add_subplot())
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    assert list(ax.lines[0].get_xdata()) == [10, 20, 30] and list(ax.lines[1].get_ydata()) == [3.8]
    assert len(pm.plot_loss_curve(history, ax=Figure().add_subplot()).axes[0].lines) == 1
    with pytest.raises(ValueError, match="history"):
        pm.plot_loss_curve([])


def test_loss_curve_draws_labelled_baselines() -> None:
    history = [{"step": s, "loss": 6.0 - s / 10} for s in (10, 20, 30)]
    evals = [{"step": 30, "loss": 3.1, "accuracy": 0.4}]
    baselines = {"uniform": 6.69, "order 1": 4.62, "order 4": 1.93, "order 5": 1.74}
    fig = pm.plot_loss_curve(history, evals, ax=Figure().add_subplot(), baselines=baselines)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 + len(baselines)
    assert [line.get_ydata()[0] for line in ax.lines[2:]] == list(baselines.values())  # horizontal, at the value
    labels = {t.get_text(): t.get_position()[1] for t in ax.texts}
    assert set(labels) == {"uniform: 6.69", "order 1: 4.62", "order 4: 1.93", "order 5: 1.74"}
    low, high = ax.get_ylim()
    assert low < 1.74 and high > 6.69  # every baseline in view
    assert labels["order 4: 1.93"] - labels["order 5: 1.74"] >= 0.045 * (high - low) - 1e-12  # close lines apart
    assert labels["order 5: 1.74"] == 1.74 and labels["uniform: 6.69"] == 6.69  # the others at their lines
    assert "bits / char" in ax.get_ylabel()


def test_label_positions_keep_order_and_gap() -> None:
    assert pm._label_positions([3.0, 1.0, 1.05, 5.0], 0.2) == [3.0, 1.0, 1.2, 5.0]
    assert pm._label_positions([], 0.1) == []


def test_paired_differences_show_dots_means_and_zero() -> None:
    differences = {"2": [-0.02, 0.01, -0.03], "8": [0.05, 0.02, 0.03], "full": [-0.01, -0.01, 0.0]}
    fig = pm.plot_paired_differences(differences, ax=Figure().add_subplot())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "8", "full"]
    zero, *dots = ax.lines
    assert list(zero.get_ydata()) == [0.0, 0.0]
    assert [list(d.get_ydata()) for d in dots] == list(differences.values())
    means = [c.get_segments()[0][0][1] for c in ax.collections]
    assert means == pytest.approx([-0.04 / 3, 0.1 / 3, -0.02 / 3])
    low, high = ax.get_ylim()
    assert low < -0.03 and high > 0.05 and low < 0 < high  # zero and every dot in view
    single = pm.plot_paired_differences({"x": [0.1]}, ax=Figure().add_subplot()).axes[0]
    assert single.get_ylim()[0] < 0 < single.get_ylim()[1]
    for bad in ({}, {"2": []}):
        with pytest.raises(ValueError, match="differences"):
            pm.plot_paired_differences(bad)


def test_new_figures_when_no_axes_given() -> None:
    figs = [pm.plot_model_diagram(CONFIG), pm.plot_paired_differences({"2": [0.1, -0.1]}),
            pm.plot_loss_curve([{"step": 1, "loss": 1.0}], baselines={"a": 0.5})]
    assert all(isinstance(f, Figure) for f in figs)
    for f in figs:
        plt.close(f)
