"""Lesson 06's figures: the model diagram names the config's arguments; loss curve; hashes-at-eval bars."""

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


def test_hash_eval_bars_mark_the_training_count() -> None:
    losses = {8: 2.1, 1: 2.3, 2: 2.2, 4: 2.15}
    fig = pm.plot_hash_eval(losses, train_hashes=1, full_loss=2.05, ax=Figure().add_subplot())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "8"]
    heights = [p.get_height() for p in ax.patches]
    assert heights == [2.3, 2.2, 2.15, 2.1]
    colours = {p.get_facecolor() for p in ax.patches}
    assert len(colours) == 2  # the training count stands out
    assert ax.get_ylim()[0] < 2.05 and len(ax.lines) == 1  # full attention's line is in view
    with pytest.raises(ValueError, match="losses"):
        pm.plot_hash_eval({})


def test_new_figures_when_no_axes_given() -> None:
    figs = [pm.plot_model_diagram(CONFIG), pm.plot_hash_eval({1: 1.0, 2: 0.9})]
    assert all(isinstance(f, Figure) for f in figs)
    for f in figs:
        plt.close(f)
