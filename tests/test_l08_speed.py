"""Lesson 08's figures draw what they are given, mark the measured crossover, and its widget redraws."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from reformer_lab.lessons import l08_speed as l08
from reformer_lab.measure import speed_stats as ss


def _grid(tokens: int = 16384) -> list[ss.SpeedPoint]:
    lengths = (1024, 2048, 4096, 8192)
    seconds = {"full": lambda n: n / 2000, "memory-efficient": lambda n: n / 3000, "sdpa": lambda n: n / 8000,
               "lsh-1": lambda n: 0.4, "lsh-2": lambda n: 0.8, "lsh-4": lambda n: 1.6, "lsh-8": lambda n: 3.2}
    return [ss.SpeedPoint(v, n, tokens // n, f(n) * tokens / 16384, int(1e8 + 1e4 * n) if v == "full" else int(1e8))
            for v, f in seconds.items() for n in lengths]


def test_speed_plot_has_a_line_per_variant_and_marks_the_crossover() -> None:
    fig = l08.plot_speed(_grid(), mark=[("lsh-4", "full"), ("lsh-8", "sdpa")])
    ax = fig.axes[0]
    assert len([line for line in ax.lines if line.get_label() in l08.LABELS.values()]) == 7
    crossovers = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert len(crossovers) == 1  # LSH-4 overtakes full at 3,200; LSH-8 never overtakes SDPA below 8192
    assert crossovers[0].get_xdata()[0] == pytest.approx(3200, rel=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1024/16", "2048/8", "4096/4", "8192/2"]
    plt.close(fig)


def test_memory_plot_puts_table1_beside_the_measurement() -> None:
    fig = l08.plot_memory(_grid(), table1=("full",))
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert "Table 1, full (L×L)" in labels and len(labels) == 8
    table = next(line for line in fig.axes[0].lines if line.get_label() == "Table 1, full (L×L)")
    assert table.get_ydata()[0] == ss.table1_bytes("full", 1024, 16)
    plt.close(fig)


def test_breakdown_bar_stacks_every_stage() -> None:
    stages = dict.fromkeys(ss.STAGES, 0.1)
    fig = l08.plot_breakdown(stages)
    assert len(fig.axes[0].patches) == len(ss.STAGES)
    assert fig.axes[0].patches[-1].get_x() == pytest.approx(0.1 * (len(ss.STAGES) - 1))
    plt.close(fig)


def test_peer_plot_draws_each_module() -> None:
    rows = [(name, n, 1.0, 10) for name in ("ours-module", "reformer-pytorch", "hf-transformers")
            for n in (4096, 8192)]
    fig = l08.plot_peers(rows)
    assert [line.get_label() for line in fig.axes[0].lines] == ["reformer_lab", "reformer-pytorch",
                                                                "hf-transformers"]
    plt.close(fig)


def test_cost_explorer_redraws_and_reports_the_prediction() -> None:
    points = _grid() + _grid(32768)
    model = ss.fit_cost_model(points)
    box = l08.cost_explorer(model, points)
    first_png, first_text = box.image.value, box.text.value
    assert "LSH-2 with chunk 64" in first_text
    box.controls["tokens"].value = 32768
    assert box.image.value != first_png and box.text.value != first_text
    box.controls["n_hashes"].value = 8
    assert "LSH-8" in box.text.value
