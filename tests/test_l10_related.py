"""Lesson 10's cards, figures, recovered-weight grid and its explorer, and the seed records it reads."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from reformer_lab.lessons import l10_related as l10
from reformer_lab.measure.alternatives_stats import VARIANTS


def test_cards_name_their_variant_only_when_it_is_measured() -> None:
    variants = {c.variant for c in l10.CARDS if c.variant}
    assert variants <= set(VARIANTS)
    names = {c.name for c in l10.CARDS}
    assert {"Sparse Transformer", "Product-key memory", "Adaptive attention span", "Routing Transformer",
            "Linformer", "Performer", "FlashAttention"} <= names
    text = l10.cards_markdown(measured={"local": 0.25})
    assert "yes, as `local`: 0.25" in text and text.count("\n") == len(l10.CARDS) + 1


def test_recovered_grid_and_explorer_redraw() -> None:
    grid = l10.recovered_grid(length=64, dim=16, chunk_sizes=(8, 16), kinds=("copy",))
    assert set(grid.values["copy"][8]) == set(VARIANTS)
    assert grid.at("copy", 16, "full") == pytest.approx(1.0)
    assert grid.at("copy", 8, "local") < grid.at("copy", 16, "local") + 1e-9
    with pytest.raises(ValueError):
        grid.at("copy", 32, "full")
    box = l10.recovered_explorer(grid, chunk_size=8)
    before = box.image.value
    box.controls["chunk_size"].value = 16
    assert box.image.value != before and "chunk 16" in box.text.value
    with pytest.raises(ValueError, match="divide"):
        l10.recovered_grid(length=64, chunk_sizes=(24,))


def test_second_half_queries_of_a_copy_input_escape_a_local_window() -> None:
    grid = l10.recovered_grid(length=128, dim=16, chunk_sizes=(16,), kinds=("copy",), second_half=True)
    assert grid.at("copy", 16, "local") < 0.2 < grid.at("copy", 16, "lsh-4")


def test_plots() -> None:
    fig = l10.plot_recovered({"clusters": dict.fromkeys(VARIANTS, 0.5), "copy": dict.fromkeys(VARIANTS, 0.7)})
    assert len(fig.axes[0].patches) == 2 * len(VARIANTS)
    plt.close(fig)
    fig = l10.plot_step_costs({"full": {256: 0.1, 512: 0.2}}, {"full": {256: 1e6, 512: 4e6}})
    assert len(fig.axes) == 2
    plt.close(fig)
    fig = l10.plot_seed_accuracy({"full": [1.0, 1.0, 0.99], "local": [0.008, 0.007, 0.008]}, chance=1 / 127)
    assert len(fig.axes[0].lines) == 3
    plt.close(fig)
    for bad in (lambda: l10.plot_recovered({}), lambda: l10.plot_step_costs({}, {}),
                lambda: l10.plot_seed_accuracy({}, 0.1)):
        with pytest.raises(ValueError):
            bad()


def test_seed_accuracy_reads_the_committed_runs() -> None:
    accuracy = l10.seed_accuracy(("full", "local"))
    assert len(accuracy["full"]) == 3 and min(accuracy["full"]) > 0.9
    assert max(accuracy["local"]) < 0.05


def test_a_seed_model_loads_its_weights() -> None:
    model = l10.load_seed_model("local", 1)
    assert model.config.attention == "local" and not model.training
    with pytest.raises(FileNotFoundError):
        l10.load_seed_model("local", 7)


def test_seed_config_reads_the_committed_run() -> None:
    config = l10.seed_config("local", 0)
    assert config["model"]["attention"] == "local" and config["model"]["chunk_size"] > 0
