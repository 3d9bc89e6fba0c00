"""Lesson 07's table text and learning-curve plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from reformer_lab.lessons import l07_duplication as l07
from reformer_lab.measure import duplication_stats as rep
from reformer_lab.measure.experiments import EVAL_COLUMNS, run_experiment


@pytest.fixture(scope="module")
def tiny_record(tmp_path_factory):
    directory = tmp_path_factory.mktemp("duplication")
    return run_experiment("duplication", "lsh-2", "tiny", out=directory / "lsh-2-tiny.json", progress=False)


def test_format_table() -> None:
    measured = {"full": dict.fromkeys(EVAL_COLUMNS, 1.0), "lsh-4": dict.fromkeys(EVAL_COLUMNS, 0.5)}
    text = l07.format_table(measured, rep.PAPER_TABLE2)
    lines = text.splitlines()
    assert lines[0] == "| train \\ eval | full | LSH-8 | LSH-4 | LSH-2 | LSH-1 |"
    assert "| **full** | 100.0% / 100.0% | 100.0% / 94.8%" in text
    assert "| **LSH-4** | 50.0% / 0.8% |" in text
    assert " / " not in l07.format_table(measured)


def test_plots(tiny_record) -> None:
    record = tiny_record
    fig = l07.plot_learning_curves({"lsh-2": record, "full": record})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    plt.close(fig)
    fig = l07.plot_live_run(record["metrics"]["train"], record["metrics"]["eval"])
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError):
        l07.plot_learning_curves({})
    with pytest.raises(ValueError):
        l07.plot_live_run([], [])
