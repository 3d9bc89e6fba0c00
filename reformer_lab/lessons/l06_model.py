"""Lesson 06, the whole Reformer (paper §3–5, Table 2): the model as a diagram, a training loss curve beside
n-gram baselines, and one model evaluated batch by batch with more hash rounds than it was trained with (as in
Table 2), drawn as paired differences.

Pure plotting: every function takes plain data (a :class:`~reformer_lab.model.ReformerConfig`, lists of
records, dicts of losses) and returns a figure (a new pyplot figure unless an ``ax`` is given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from reformer_lab.lessons.common import new_axes
from reformer_lab.model import ReformerConfig

__all__ = ["diagram_labels", "plot_loss_curve", "plot_model_diagram", "plot_paired_differences"]

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


def _label_positions(values: Sequence[float], gap: float) -> list[float]:
    """Heights for the labels of lines at ``values``: each at its line, or pushed up to ``gap`` above the label
    below it, so the labels of close lines do not overlap (the order of the values is kept)."""
    placed = list(values)
    previous = None
    for i in sorted(range(len(values)), key=lambda i: values[i]):
        if previous is not None:
            placed[i] = max(values[i], previous + gap)
        previous = placed[i]
    return placed


def plot_loss_curve(history: Sequence[Mapping[str, float]], evals: Sequence[Mapping[str, float]] = (),
                    ax: Axes | None = None, title: str = "training a tiny Reformer on Python's docs", *,
                    baselines: Mapping[str, float] | None = None, unit: str = "bits / char") -> Figure:
    """Training loss per logged step (line), validation loss (dots) and ``baselines`` (labelled horizontal lines).

    The losses are drawn as given, in ``unit`` (the lesson passes bits per character). Each baseline is a
    dotted line across the axes, its name and value written beside it to the right of the axes.
    """
    if not history:
        raise ValueError("history must hold at least one {'step', 'loss'} record")
    baselines = dict(baselines or {})
    fig, ax = new_axes(ax, figsize=(7.4, 4.2) if baselines else (6.4, 3.4))
    ax.plot([r["step"] for r in history], [r["loss"] for r in history], "-", color="#4C72B0",
            label="training loss (one batch)")
    if evals:
        ax.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o", color="#C44E52",
                label="validation loss")
    if baselines:
        for value in baselines.values():
            ax.axhline(value, color="#777777", linestyle=":", linewidth=1.1)
        values = [*baselines.values(), *(r["loss"] for r in history), *(r["loss"] for r in evals)]
        pad = 0.04 * (max(values) - min(values) or 1.0)
        ax.set_ylim(min(values) - pad, max(values) + pad)
        low, high = ax.get_ylim()
        heights = _label_positions(list(baselines.values()), 0.045 * (high - low))
        for (name, value), y in zip(baselines.items(), heights, strict=True):
            ax.text(1.01, y, f"{name}: {value:.2f}", transform=ax.get_yaxis_transform(), fontsize=8,
                    va="center", ha="left", color="#444444")
    ax.set_xlabel("step")
    ax.set_ylabel(f"cross-entropy ({unit})")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    # with baselines the top line runs along the upper edge: the legend sits just below it
    ax.legend(fontsize=8, loc="upper right", bbox_to_anchor=(1.0, 0.92) if baselines else None)
    fig.tight_layout()
    return fig


def plot_paired_differences(differences: Mapping[str, Sequence[float]], ax: Axes | None = None, *,
                            reference: str = "n_hashes = 1", unit: str = "bits / char",
                            title: str = "one model, evaluated batch by batch: change from the reference") -> Figure:
    """Paired differences as dots: for each setting (x), each batch's loss minus the ``reference`` setting's loss
    on the same batch, their mean as a red bar, and the zero line (no change).

    The y axis is the difference itself, so zero is always in view and a mean is seen against the spread of its
    batches.
    """
    if not differences or any(len(d) == 0 for d in differences.values()):
        raise ValueError("differences must map each setting to at least one per-batch difference")
    fig, ax = new_axes(ax, figsize=(7.6, 3.6))
    ax.axhline(0.0, color="black", linewidth=1.0, label=f"no change from {reference}")
    for x, diffs in enumerate(differences.values()):
        n = len(diffs)
        offsets = [0.0] if n == 1 else [-0.15 + 0.3 * i / (n - 1) for i in range(n)]
        ax.plot([x + o for o in offsets], list(diffs), "o", color="#4C72B0", alpha=0.75, markersize=5,
                label="one batch" if x == 0 else None)
        mean = sum(diffs) / n
        ax.hlines(mean, x - 0.28, x + 0.28, color="#C44E52", linewidth=2.5, label="mean over batches" if x == 0
                  else None)
    ax.set_xticks(range(len(differences)), list(differences))
    ax.set_xlim(-0.6, len(differences) - 0.4)
    values = [v for d in differences.values() for v in d] + [0.0]
    pad = 0.12 * (max(values) - min(values) or 1.0)
    ax.set_ylim(min(values) - pad, max(values) + pad)
    ax.set_xlabel("evaluated with")
    ax.set_ylabel(f"loss − loss at {reference}\n({unit})")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the dots may fall anywhere
    fig.tight_layout()
    return fig
