"""Lesson 07, the duplication task (paper §2.1, Table 2): Table 2 as text and the runs' learning curves.

The numbers come from :mod:`reformer_lab.measure.duplication_stats`, which reads and evaluates the committed runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reformer_lab.lessons.common import new_axes
from reformer_lab.measure.duplication_stats import EVAL_COLUMNS

__all__ = ["format_table", "plot_learning_curves", "plot_live_run"]

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


def plot_learning_curves(records: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Two panels from the runner's JSON records: training loss per logged step (log scale) and the
    periodic evaluation accuracy with each setting's own training attention."""
    if not records:
        raise ValueError("records must map at least one setting to its JSON record")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    for setting, record in records.items():
        colour = _COLOURS.get(setting)
        train = record["metrics"]["train"]
        evals = record["metrics"]["eval"]
        label = _LABELS.get(setting, setting)
        left.plot([r["step"] for r in train], [r["loss"] for r in train], "-", color=colour, label=label)
        right.plot([r["step"] for r in evals], [100 * r["accuracy"] for r in evals], "o-", color=colour,
                   label=label)
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_ylabel("training loss (nats, masked)")
    left.set_title("training loss, one batch per point", fontsize=10)
    right.set_xlabel("step")
    right.set_ylabel("accuracy on the second w (%)")
    right.set_ylim(-3, 103)
    right.set_xlim(left=0)
    right.set_title("evaluation with the training attention", fontsize=10)
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
