"""Lesson 06, the whole Reformer (paper §3–5, Table 2): the model as a diagram, a training loss curve, and one
model evaluated with more hash rounds than it was trained with (as in Table 2).

Pure plotting: every function takes plain data (a :class:`~reformer_lab.model.ReformerConfig`, lists of
records, a dict of losses) and returns a figure (a new pyplot figure unless an ``ax`` is given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from reformer_lab.lessons.common import new_axes
from reformer_lab.model import ReformerConfig

__all__ = ["diagram_labels", "plot_hash_eval", "plot_loss_curve", "plot_model_diagram"]

_EMBED, _F, _G, _OUT = "#DDDDDD", "#C7D7EE", "#CDE5CD", "#F3D9B1"


def diagram_labels(config: ReformerConfig) -> dict[str, str]:
    """The text of each box of :func:`plot_model_diagram`, written with the config's argument names."""
    attention = (f'LSH attention\nattention="lsh", n_heads={config.n_heads}\nn_hashes={config.n_hashes}, '
                 f"chunk_size={config.chunk_size}" if config.attention == "lsh" else
                 f'full attention\nattention="full", n_heads={config.n_heads}\nshared_qk={config.shared_qk}')
    positions = "axial (not in the paper)" if config.positional == "axial" else "learned"
    return {
        "tokens": f"tokens [batch, length ≤ max_len={config.max_len}]",
        "embedding": (f"token embedding (vocab_size={config.vocab_size}, d_model={config.d_model})\n"
                      f"+ {positions} positions (max_len={config.max_len})"),
        "x1": "X₁ = embedding",
        "x2": "X₂ = embedding",
        "f": f"F = LayerNorm → {attention}",
        "g": f"G = LayerNorm → feed-forward\nd_ff={config.d_ff}\nff_chunks={config.ff_chunks}",
        "stack": (f"n_layers={config.n_layers} × reversible block (eq. 9)   "
                  f"reversible={config.reversible}"),
        "norm": f"LayerNorm over [Y₁; Y₂]  (2·d_model = {2 * config.d_model})",
        "head": (f"Linear 2·d_model → vocab_size={config.vocab_size}\n"
                 f"logits / loss in loss_chunks={config.loss_chunks} chunks"),
    }


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, colour: str, size: float = 8.5) -> None:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=colour,
                                edgecolor="#444444", linewidth=1.0))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], label: str | None = None) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=11, color="#333333", linewidth=1.0))
    if label:
        ax.text((start[0] + end[0]) / 2 + 0.08, (start[1] + end[1]) / 2, label, fontsize=8, va="center")


def plot_model_diagram(config: ReformerConfig, ax: Axes | None = None) -> Figure:
    """ReformerLM drawn bottom to top: embedding twice → n_layers reversible blocks → LayerNorm → logits.

    Inside the block the two lanes are X₁ (left) and X₂ (right): Y₁ = X₁ + F(X₂), Y₂ = X₂ + G(Y₁).
    """
    fig, ax = new_axes(ax, figsize=(8.0, 7.4))
    labels = diagram_labels(config)
    left, right = 2.5, 8.2  # the X₁ and X₂ lanes
    _box(ax, 2.0, 0.0, 6.0, 0.55, labels["tokens"], "white")
    _arrow(ax, (5.0, 0.55), (5.0, 0.95))
    _box(ax, 1.5, 0.95, 7.0, 0.85, labels["embedding"], _EMBED)
    _arrow(ax, (3.5, 1.8), (left, 2.35), "copy")
    _arrow(ax, (6.5, 1.8), (right, 2.35), "copy")
    _box(ax, left - 1.5, 2.35, 3.0, 0.5, labels["x1"], _EMBED)
    _box(ax, right - 1.5, 2.35, 3.0, 0.5, labels["x2"], _EMBED)
    # the reversible stack: a frame holding the two residual lanes and the F and G branches between them
    ax.add_patch(FancyBboxPatch((0.3, 3.1), 9.4, 3.6, boxstyle="round,pad=0.02,rounding_size=0.1",
                                facecolor="#FAFAFA", edgecolor="#444444", linestyle="--", linewidth=1.0))
    ax.text(5.0, 6.45, labels["stack"], ha="center", va="center", fontsize=9, fontweight="bold")
    _arrow(ax, (left, 2.85), (left, 4.1))  # X₁ lane up to its sum
    _arrow(ax, (right, 2.85), (right, 5.45))  # X₂ lane up to its sum
    _box(ax, 3.6, 3.3, 3.7, 0.8, labels["f"], _F, size=7.5)
    _arrow(ax, (right, 3.7), (7.3, 3.7))  # X₂ into F
    _arrow(ax, (3.6, 3.95), (left + 0.2, 4.2))  # F(X₂) into the X₁ sum
    ax.text(left, 4.3, "⊕", ha="center", va="center", fontsize=16)
    _arrow(ax, (left, 4.5), (left, 6.0))
    _box(ax, 3.6, 4.75, 3.7, 0.8, labels["g"], _G, size=7.5)
    _arrow(ax, (left + 0.15, 4.45), (3.6, 5.0))  # Y₁ into G
    _arrow(ax, (7.3, 5.3), (right - 0.2, 5.6))  # G(Y₁) into the X₂ sum
    ax.text(right, 5.65, "⊕", ha="center", va="center", fontsize=16)
    _arrow(ax, (right, 5.85), (right, 6.0))
    ax.text(left, 6.12, "Y₁ = X₁ + F(X₂)", ha="center", fontsize=8.5)
    ax.text(right, 6.12, "Y₂ = X₂ + G(Y₁)", ha="center", fontsize=8.5)
    _arrow(ax, (left, 6.7), (3.6, 7.15))
    _arrow(ax, (right, 6.7), (6.4, 7.15))
    _box(ax, 2.0, 7.15, 6.0, 0.5, labels["norm"], _OUT)
    _arrow(ax, (5.0, 7.65), (5.0, 7.95))
    _box(ax, 1.8, 7.95, 6.4, 0.8, labels["head"], _OUT)
    ax.set_xlim(0.0, 10.0)
    ax.set_ylim(-0.1, 8.85)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("ReformerLM, bottom to top (model.py; trax: Dup → ReversibleSerial → Concatenate → LayerNorm → Dense)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_loss_curve(history: Sequence[Mapping[str, float]], evals: Sequence[Mapping[str, float]] = (),
                    ax: Axes | None = None, title: str = "training a tiny Reformer on Python's docs") -> Figure:
    """Training loss per logged step (line) and validation loss (dots), in nats per character."""
    if not history:
        raise ValueError("history must hold at least one {'step', 'loss'} record")
    fig, ax = new_axes(ax, figsize=(6.4, 3.4))
    ax.plot([r["step"] for r in history], [r["loss"] for r in history], "-", color="#4C72B0",
            label="training loss (one batch)")
    if evals:
        ax.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o", color="#C44E52",
                label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / char)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_hash_eval(losses: Mapping[int, float], train_hashes: int | None = None, ax: Axes | None = None,
                   full_loss: float | None = None) -> Figure:
    """Validation loss of one trained model evaluated with each number of hash rounds (paper Table 2's rows).

    ``train_hashes`` marks the count the model was trained with; ``full_loss`` draws full attention as a line.
    """
    if not losses:
        raise ValueError("losses must map a number of hashes to a loss")
    fig, ax = new_axes(ax, figsize=(5.6, 3.4))
    counts = sorted(losses)
    colours = ["#C44E52" if n == train_hashes else "#4C72B0" for n in counts]
    bars = ax.bar([str(n) for n in counts], [losses[n] for n in counts], color=colours)
    low = min([*losses.values(), *([full_loss] if full_loss is not None else [])])
    high = max([*losses.values(), *([full_loss] if full_loss is not None else [])])
    pad = max(0.05 * (high - low), 0.01)
    ax.set_ylim(low - 4 * pad, high + 3 * pad)  # zoomed: the differences are small against the loss itself
    for bar, n in zip(bars, counts, strict=True):  # the value inside the visible part of each bar
        ax.text(bar.get_x() + bar.get_width() / 2, 0.5 * (low - 4 * pad + bar.get_height()), f"{losses[n]:.3f}",
                ha="center", va="center", fontsize=8, color="white")
    if full_loss is not None:
        ax.axhline(full_loss, color="black", linestyle="--", linewidth=1.0, label=f"full attention {full_loss:.3f}")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel("n_hashes at evaluation" + (f" (red: trained with {train_hashes})" if train_hashes else ""))
    ax.set_ylabel("validation loss (nats / char)")
    ax.set_title("one model, evaluated with more hash rounds (y axis zoomed)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
