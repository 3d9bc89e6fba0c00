"""Lesson 07, the duplication task (paper §2.1, Table 2): Table 2 as text (one run, or the spread over seeds), the
runs' learning curves with a band over the seeds, and the chunk-size × hash-rounds grid with its explorer widget.

The numbers come from :mod:`reformer_lab.measure.duplication_stats`, which reads and evaluates the committed runs.
:func:`sweep_grid` evaluates every trained model at every (chunk size, n_hashes) once;
:func:`plot_sweep_grid` draws one model's grid as a heatmap, :func:`plot_sweep_grids` all of them, and
:func:`sweep_explorer` (built by :func:`reformer_lab.lessons.common.explorer`) only redraws a precomputed grid.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from reformer_lab.data import DuplicationTask
from reformer_lab.lessons.common import Explorer, choice_slider, explorer, new_axes
from reformer_lab.measure.duplication_stats import EVAL_COLUMNS, Spread, bucket_sweep, curve_band
from reformer_lab.model import ReformerLM
from reformer_lab.validation import one_of, positive_int

__all__ = [
    "SweepGrid",
    "format_spread_table",
    "format_table",
    "plot_learning_curves",
    "plot_live_run",
    "plot_sweep_grid",
    "plot_sweep_grids",
    "sweep_explorer",
    "sweep_grid",
]

_LABELS = {"full": "full", "lsh-8": "LSH-8", "lsh-4": "LSH-4", "lsh-2": "LSH-2", "lsh-1": "LSH-1"}
_COLOURS = {"full": "#4C72B0", "lsh-4": "#C44E52", "lsh-2": "#DD8452", "lsh-1": "#55A868"}


def format_table(measured: Mapping[str, Mapping[str, float]], paper: Mapping[str, Mapping[str, float]] | None = None,
                 digits: int = 1) -> str:
    """A markdown table, rows = training attention, columns = evaluation attention; each cell the measured
    accuracy in % and, when ``paper`` is given, the paper's number after a slash."""
    head = "| train \\ eval | " + " | ".join(_LABELS.get(c, c) for c in EVAL_COLUMNS) + " |"
    lines = [head, "|---" * (len(EVAL_COLUMNS) + 1) + "|"]
    for row in measured:
        cells = []
        for column in EVAL_COLUMNS:
            cell = f"{100 * measured[row][column]:.{digits}f}%"
            if paper is not None and row in paper:
                cell += f" / {paper[row][column]:.1f}%"
            cells.append(cell)
        lines.append(f"| **{_LABELS.get(row, row)}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_spread_table(spread: Mapping[str, Mapping[str, Spread]],
                        paper: Mapping[str, Mapping[str, float]] | None = None, digits: int = 1) -> str:
    """A markdown table of Table 2 over seeds (:func:`~reformer_lab.measure.duplication_stats.table2_spread`):
    each cell the mean accuracy in %, then the range over the seeds in brackets when the seeds differ at
    ``digits`` decimals, and, when ``paper`` is given, the paper's number after a slash."""
    head = "| train \\ eval | " + " | ".join(_LABELS.get(c, c) for c in EVAL_COLUMNS) + " |"
    lines = [head, "|---" * (len(EVAL_COLUMNS) + 1) + "|"]
    for row, cells_in in spread.items():
        cells = []
        for column in EVAL_COLUMNS:
            cell = cells_in[column].percent(digits)
            if paper is not None and row in paper:
                cell += f" / {paper[row][column]:.1f}%"
            cells.append(cell)
        lines.append(f"| **{_LABELS.get(row, row)}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_learning_curves(records: Mapping[str, Mapping[str, Any] | Sequence[Mapping[str, Any]]]) -> Figure:
    """Two panels from the runner's JSON records: training loss per logged step (log scale) and the
    periodic evaluation accuracy with each setting's own training attention.

    ``records`` maps a setting to one record or to a list of records (one per seed, logged at the same steps):
    the line is then the median over the seeds at each step and the shaded band their range (lowest to highest).
    """
    if not records:
        raise ValueError("records must map at least one setting to its JSON record(s)")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    n_runs = set()
    for setting, runs in records.items():
        runs = [runs] if isinstance(runs, Mapping) else list(runs)
        n_runs.add(len(runs))
        colour = _COLOURS.get(setting)
        label = _LABELS.get(setting, setting)
        steps, middle, low, high = curve_band(runs, "train", "loss")
        left.plot(steps, middle, "-", color=colour, label=label)
        steps_e, middle_e, low_e, high_e = curve_band(runs, "eval", "accuracy")
        right.plot(steps_e, [100 * a for a in middle_e], "o-", color=colour, label=label, markersize=4)
        if len(runs) > 1:
            left.fill_between(steps, low, high, color=colour, alpha=0.25, linewidth=0)
            right.fill_between(steps_e, [100 * a for a in low_e], [100 * a for a in high_e], color=colour,
                               alpha=0.25, linewidth=0)
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_ylabel("training loss (nats, masked)")
    right.set_xlabel("step")
    right.set_ylabel("accuracy on the second w (%)")
    right.set_ylim(-3, 103)
    right.set_xlim(left=0)
    left.set_title("training loss, one batch per point", fontsize=10)
    right.set_title("evaluation with the training attention", fontsize=10)
    if n_runs != {1}:
        seeds = f"{min(n_runs)}" if len(n_runs) == 1 else f"{min(n_runs)}–{max(n_runs)}"
        fig.suptitle(f"line: median of {seeds} seeds at each step; band: their range (lowest to highest)",
                     fontsize=10)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, title="trained with", title_fontsize=8)
    fig.tight_layout()
    return fig


def plot_live_run(history: Sequence[Mapping[str, float]], evals: Sequence[Mapping[str, float]],
                  ax: Axes | None = None, title: str = "live run") -> Figure:
    """One run's training loss (line, left axis) and evaluation accuracy (dots, right axis) against step."""
    if not history:
        raise ValueError("history must hold at least one {'step', 'loss'} record")
    fig, ax = new_axes(ax, figsize=(6.4, 3.4))
    ax.plot([r["step"] for r in history], [r["loss"] for r in history], "-", color="#4C72B0", label="training loss")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats, masked)", color="#4C72B0")
    twin = ax.twinx()
    twin.plot([r["step"] for r in evals], [100 * r["accuracy"] for r in evals], "o--", color="#C44E52",
              label="accuracy on the second w")
    twin.set_ylim(-3, 103)
    twin.set_ylabel("accuracy (%)", color="#C44E52")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------
# Chunk size × hash rounds: the grid, its heatmaps and the explorer
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepGrid:
    """Accuracy of trained models evaluated with LSH attention at every (n_hashes, chunk_size) of a grid.

    ``accuracy[setting]`` is a ``[len(hash_counts), len(chunk_sizes)]`` array of accuracies in [0, 1]
    (rows: n_hashes, columns: chunk sizes), for sequences of ``length`` tokens, so that chunk size m means
    n_buckets = 2·length/m. ``n_sequences`` is how many held-out sequences each cell was evaluated on.
    """

    chunk_sizes: tuple[int, ...]
    hash_counts: tuple[int, ...]
    length: int
    n_sequences: int
    accuracy: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        if not self.accuracy:
            raise ValueError("a SweepGrid needs the accuracy of at least one model")
        shape = (len(self.hash_counts), len(self.chunk_sizes))
        for setting, values in self.accuracy.items():
            if np.shape(values) != shape:
                raise ValueError(f"accuracy[{setting!r}] has shape {np.shape(values)}, expected {shape} "
                                 f"(n_hashes × chunk sizes)")

    def n_buckets(self, chunk_size: int) -> int:
        """The bucket count a chunk size means at this length: 2·length/chunk_size."""
        return 2 * self.length // chunk_size

    def at(self, setting: str, chunk_size: int, n_hashes: int) -> float:
        """One cell: the accuracy of ``setting``'s weights at ``chunk_size`` and ``n_hashes``."""
        setting = one_of("setting", setting, list(self.accuracy))
        row = list(self.hash_counts).index(one_of("n_hashes", n_hashes, self.hash_counts))
        column = list(self.chunk_sizes).index(one_of("chunk_size", chunk_size, self.chunk_sizes))
        return float(self.accuracy[setting][row, column])


def sweep_grid(models: Mapping[str, ReformerLM], task: DuplicationTask, chunk_sizes: Sequence[int],
               hash_counts: Sequence[int] = (1, 2, 4, 8), *, batches: int = 1, batch_size: int = 16,
               seed: int = 1234) -> SweepGrid:
    """Evaluate each model's weights with LSH attention at every chunk size and number of hash rounds, once.

    Each cell is :func:`reformer_lab.measure.duplication_stats.bucket_sweep` (the same ``batches`` ×
    ``batch_size`` held-out sequences and evaluation ``seed`` for every cell). Every chunk size must divide
    the sequence length 2·(|w| + 1) and leave an even bucket count 2·length/chunk_size.
    """
    length = 2 * (task.w_len + 1)
    chunk_sizes = tuple(positive_int("chunk_size", c) for c in chunk_sizes)
    hash_counts = tuple(positive_int("n_hashes", n) for n in hash_counts)
    if not chunk_sizes or not hash_counts or not models:
        raise ValueError("sweep_grid needs at least one model, one chunk size and one hash count")
    for chunk in chunk_sizes:
        if length % chunk or (2 * length // chunk) % 2:
            raise ValueError(f"chunk_size {chunk} must divide the length {length} and leave an even bucket count")
    accuracy = {}
    for setting, model in models.items():
        rows = [bucket_sweep(model, task, chunk_sizes, n_hashes=n, batches=batches, batch_size=batch_size, seed=seed)
                for n in hash_counts]
        accuracy[setting] = np.array([[row[c] for c in chunk_sizes] for row in rows])
    return SweepGrid(chunk_sizes, hash_counts, length, batches * batch_size, accuracy)


def plot_sweep_grid(grid: SweepGrid, setting: str, *, chunk_size: int | None = None, n_hashes: int | None = None,
                    ax: Axes | None = None, colorbar: bool = True) -> Figure:
    """Heatmap of one model's accuracy: rows n_hashes, columns chunk size (and its bucket count), each cell
    printed in %; the cell (``chunk_size``, ``n_hashes``), when given, is outlined in black."""
    setting = one_of("setting", setting, list(grid.accuracy))
    fig, ax = new_axes(ax, figsize=(5.6, 3.4))
    values = 100 * grid.accuracy[setting]
    lowest = min(float(v.min()) for v in grid.accuracy.values())  # one colour scale for every model of the grid
    image = ax.imshow(values, cmap="viridis", vmin=min(50.0, 10 * np.floor(10 * lowest)), vmax=100, aspect="auto",
                      origin="lower")
    for r in range(len(grid.hash_counts)):
        for c in range(len(grid.chunk_sizes)):
            value = values[r, c]
            shown = "100" if value >= 99.95 else f"{value:.1f}"  # 100 fits a narrow cell; 99.95 would print as 100.0
            ax.text(c, r, shown, ha="center", va="center", fontsize=7,
                    color="black" if value > 80 else "white")
    ax.set_xticks(range(len(grid.chunk_sizes)))
    ax.set_xticklabels([f"{c}\n({grid.n_buckets(c)})" for c in grid.chunk_sizes], fontsize=7)
    ax.set_yticks(range(len(grid.hash_counts)))
    ax.set_yticklabels([str(n) for n in grid.hash_counts], fontsize=7)
    ax.set_xlabel("chunk size m (n_buckets)", fontsize=8)
    ax.set_ylabel("n_hashes at evaluation", fontsize=8)
    ax.set_title(f"trained with {_LABELS.get(setting, setting)}", fontsize=9)
    if chunk_size is not None or n_hashes is not None:
        if chunk_size is None or n_hashes is None:
            raise ValueError("mark a cell with both chunk_size and n_hashes, or neither")
        c = list(grid.chunk_sizes).index(one_of("chunk_size", chunk_size, grid.chunk_sizes))
        r = list(grid.hash_counts).index(one_of("n_hashes", n_hashes, grid.hash_counts))
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.5))
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=1.0))
    if colorbar:
        fig.colorbar(image, ax=ax, label="accuracy on the second w (%)", shrink=0.9)
    return fig


def plot_sweep_grids(grid: SweepGrid, fig: Figure | None = None) -> Figure:
    """One heatmap per model of ``grid`` side by side (:func:`plot_sweep_grid`), one shared colour bar."""
    fig = fig if fig is not None else plt.figure(figsize=(3.2 * len(grid.accuracy) + 1.2, 3.5))
    axes = fig.subplots(1, len(grid.accuracy), squeeze=False)[0]
    for ax, setting in zip(axes, grid.accuracy, strict=True):
        plot_sweep_grid(grid, setting, ax=ax, colorbar=False)
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.subplots_adjust(left=0.06, right=0.9, top=0.8, bottom=0.2, wspace=0.25)
    fig.colorbar(axes[0].images[0], ax=list(axes), label="accuracy (%)", shrink=0.9, pad=0.02)
    fig.suptitle(f"LSH evaluation of each trained model: length {grid.length}, {grid.n_sequences} held-out "
                 f"sequences per cell", fontsize=10, x=0.48)
    return fig


def _sweep_drawing(grid: SweepGrid, chunk_size: int, n_hashes: int, setting: str) -> tuple[Figure, str]:
    fig = Figure(figsize=(5.6, 3.4))
    plot_sweep_grid(grid, setting, chunk_size=chunk_size, n_hashes=n_hashes, ax=fig.add_subplot())
    fig.tight_layout()
    value = grid.at(setting, chunk_size, n_hashes)
    text = (f"trained with {_LABELS.get(setting, setting)}, evaluated with LSH-{n_hashes} at chunk size "
            f"{chunk_size} ({grid.n_buckets(chunk_size)} buckets): <b>{100 * value:.1f}%</b> "
            f"of {grid.n_sequences} sequences' second w")
    return fig, html.escape(text).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")


def sweep_explorer(grid: SweepGrid, chunk_size: int | None = None, n_hashes: int | None = None,
                   setting: str | None = None) -> Explorer:
    """Lesson 07's widget over a precomputed :class:`SweepGrid`: sliders for the chunk size and n_hashes, a
    dropdown for the trained model; moving one only redraws (:func:`plot_sweep_grid`, chosen cell outlined)."""
    chunk_size = grid.chunk_sizes[len(grid.chunk_sizes) // 2] if chunk_size is None else chunk_size
    n_hashes = grid.hash_counts[0] if n_hashes is None else n_hashes
    setting = next(iter(grid.accuracy)) if setting is None else one_of("setting", setting, list(grid.accuracy))
    controls = {
        # The slider's readout is narrow (about ten characters): it shows the chunk size alone; the line above the
        # picture and the heatmap's axis give the bucket count.
        "chunk_size": choice_slider("chunk_size", chunk_size, grid.chunk_sizes, "chunk size"),
        "n_hashes": choice_slider("n_hashes", n_hashes, grid.hash_counts),
        "setting": w.Dropdown(options=[(_LABELS.get(s, s), s) for s in grid.accuracy], value=setting,
                              description="trained with"),
    }
    return explorer(controls, lambda **kw: _sweep_drawing(grid, **kw), width="560px", label_width="100px")
