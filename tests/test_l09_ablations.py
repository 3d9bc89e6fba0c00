"""Lesson 09 draws what the committed ablation runs hold: curves, positions, Table 2 in bits, depth, the claims
table and the widget, all checked on hand-made run records with chosen numbers."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import pytest

from reformer_lab.lessons import l09_ablations as l09
from reformer_lab.measure.ablation_stats import CROSS_COLUMNS

LN2 = math.log(2)
STEPS = (100, 200, 300, 400)
LENGTH = 8  # so 7 targets, half 4, the second copy's targets start at index 3
SEEDS = (1, 2, 3)


def _record(setting: str, seed: int, *, total: float, copy: float = 1.0, curve: tuple[float, ...] | None = None,
            positions: list[float] | None = None, cross: dict[str, float] | None = None) -> dict:
    """A run record shaped like the runner's: ``curve`` in bits/char (stored as nats), ``cross`` column → copy."""
    curve = curve or (4.0 + seed, 3.0 + seed, 2.5 + seed, 2.0 + seed)
    evaluation = {"total": total, "text": total + 0.5, "copy": copy, "unrelated_copy": 4.0,
                  "position_bits": positions or [float(i) for i in range(LENGTH - 1)]}
    if cross is not None:
        evaluation["cross"] = {c: {"total": 2.0 + v, "text": 2.5, "copy": v} for c, v in cross.items()}
    layers = int(setting.split("-")[1]) if setting.startswith("layers-") else 2
    return {"experiment": "ablation", "setting": setting, "seed": seed, "config": {"model": {"n_layers": layers}},
            "metrics": {"eval": [{"step": s, "loss": b * LN2, "accuracy": 0.5} for s, b in zip(STEPS, curve,
                                                                                                strict=True)]},
            "evaluation": evaluation}


def _setting(setting: str, totals: tuple[float, ...], copies: tuple[float, ...] = (1.0, 1.0, 1.0),
             **kwargs) -> list[dict]:
    return [_record(setting, seed, total=t, copy=c, **kwargs) for seed, t, c in zip(SEEDS, totals, copies,
                                                                                    strict=True)]


def _cross(shift: float) -> dict[str, float]:
    return {c: shift + i for i, c in enumerate(CROSS_COLUMNS)}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def runs() -> dict[str, list[dict]]:
    """Every setting with three seeds; curves differ per seed so the median is the middle seed's."""
    return {
        "full": _setting("full", (2.00, 2.02, 2.04)),
        "separate-qk": _setting("separate-qk", (2.01, 2.03, 2.05)),
        "transformer": _setting("transformer", (1.4, 1.5, 1.6)),
        "lsh-1": _setting("lsh-1", (2.6, 2.7, 2.8), (3.0, 3.0, 3.0)),
        "lsh-2": _setting("lsh-2", (2.4, 2.5, 2.6), (2.0, 2.1, 1.9)),
        "lsh-4": _setting("lsh-4", (2.2, 2.3, 2.4), (1.5, 1.5, 1.5)),
        "lsh-8": _setting("lsh-8", (2.03, 2.05, 2.07), (1.2, 1.2, 1.2)),
        "layers-1": _setting("layers-1", (3.0, 3.1, 3.2)),
        "layers-4": _setting("layers-4", (1.5, 1.55, 1.6)),
        "layers-8": _setting("layers-8", (1.0, 1.1, 1.2)),
    }


def _bits(records: list[dict]) -> np.ndarray:
    return np.array([[e["loss"] / LN2 for e in r["metrics"]["eval"]] for r in records])


def _line(ax, label_start: str):
    (line,) = [line for line in ax.lines if line.get_label().startswith(label_start)]
    return line


# ----------------------------------------------------------------------------------------------------
# plot_curves
# ----------------------------------------------------------------------------------------------------


def test_curves_draw_the_median_over_seeds_with_a_band_and_skip_absent_settings(runs) -> None:
    some = {**runs, "layers-8": []}
    some["lsh-2"] = [_record("lsh-2", 1, total=2.4, curve=(9.0, 8.0, 7.0, 6.0)),
                     _record("lsh-2", 2, total=2.5, curve=(1.0, 9.0, 2.0, 8.0)),
                     _record("lsh-2", 3, total=2.6, curve=(5.0, 5.0, 5.0, 5.0))]
    fig = l09.plot_curves({k: v for k, v in some.items() if k != "lsh-1"}, ["full", "lsh-2", "lsh-1", "layers-8"])
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == [f"{l09.LABELS['full']} (3 seeds)",
                                                       f"{l09.LABELS['lsh-2']} (3 seeds)"]
    for setting in ("full", "lsh-2"):
        line = _line(ax, l09.LABELS[setting])
        np.testing.assert_array_equal(line.get_xdata(), STEPS)
        np.testing.assert_allclose(line.get_ydata(), np.median(_bits(some[setting]), axis=0))
    np.testing.assert_allclose(_line(ax, l09.LABELS["lsh-2"]).get_ydata(), [5.0, 8.0, 5.0, 6.0])
    assert len(ax.collections) == 2  # one band per setting with more than one seed
    band = ax.collections[1].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(1.0) and band.max() == pytest.approx(9.0)


def test_curves_keep_the_chosen_seeds_and_draw_no_band_for_one(runs) -> None:
    fig = l09.plot_curves(runs, ["full", "separate-qk"], seeds=[1])
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == [f"{l09.LABELS['full']} (1 seed)",
                                                       f"{l09.LABELS['separate-qk']} (1 seed)"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), _bits(runs["full"][:1])[0])
    assert not ax.collections


@pytest.mark.filterwarnings("error:No artists with labels found")  # nothing drawn: no empty legend
def test_curves_draw_nothing_for_a_seed_no_run_has(runs) -> None:
    fig = l09.plot_curves(runs, ["full"], seeds=[7])
    assert not fig.axes[0].lines and not fig.axes[0].collections


def test_curves_smoothing_is_a_trailing_mean(runs) -> None:
    raw = _bits(runs["full"][:1])[0]
    fig = l09.plot_curves(runs, ["full"], seeds=[1], smoothing=2)
    smoothed = fig.axes[0].lines[0].get_ydata()
    assert smoothed[0] == pytest.approx(raw[0])
    np.testing.assert_allclose(smoothed[1:], (raw[1:] + raw[:-1]) / 2)


def test_curves_draw_ngram_lines_and_live_dots(runs) -> None:
    fig = l09.plot_curves(runs, ["full"], ngram={3: 3.0, 2: 3.5}, live={"lsh-4": ([50, 150], [4.25, 3.75])})
    ax = fig.axes[0]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert sorted(line.get_ydata()[0] for line in dashed) == [3.0, 3.5]
    assert all(line.get_ydata()[0] == line.get_ydata()[1] for line in dashed)
    assert sorted(t.get_text() for t in ax.texts) == ["2-gram", "3-gram"]
    dots = _line(ax, f"{l09.LABELS['lsh-4']}: this run")
    assert dots.get_marker() == "o" and dots.get_linestyle() == "None"
    np.testing.assert_array_equal(dots.get_xdata(), [50, 150])
    np.testing.assert_array_equal(dots.get_ydata(), [4.25, 3.75])


# ----------------------------------------------------------------------------------------------------
# plot_positions, plot_cross, plot_depth
# ----------------------------------------------------------------------------------------------------


def test_positions_plot_the_mean_over_seeds_and_mark_the_copy() -> None:
    values = [[float(seed * i) for i in range(LENGTH - 1)] for seed in SEEDS]
    runs = {"full": [_record("full", s, total=2.0, positions=v) for s, v in zip(SEEDS, values, strict=True)],
            "lsh-1": [_record("lsh-1", 1, total=2.0, positions=[1.0] * (LENGTH - 1))]}
    ngram = [3.0, 2.0, 1.0, 3.0, 2.0, 1.0, 0.5]
    fig = l09.plot_positions(runs, ["full", "lsh-1", "transformer"], ngram=ngram, window=1)
    ax = fig.axes[0]
    np.testing.assert_allclose(_line(ax, l09.LABELS["full"]).get_ydata(), np.mean(values, axis=0))
    np.testing.assert_allclose(_line(ax, l09.LABELS["lsh-1"]).get_ydata(), [1.0] * (LENGTH - 1))
    np.testing.assert_allclose(_line(ax, "n-gram").get_ydata(), ngram)
    (marker,) = [line for line in ax.lines if line.get_label().startswith("_")]  # the unlabelled axvline
    assert list(marker.get_xdata()) == [LENGTH // 2] * 2  # the first character of the second copy
    assert list(_line(ax, l09.LABELS["full"]).get_xdata()) == list(range(1, LENGTH))  # positions of the targets
    assert len(ax.lines) == 4


def test_cross_image_is_the_mean_over_seeds_of_the_part() -> None:
    runs = {"full": [_record("full", s, total=2.0, cross=_cross(0.1 * s)) for s in SEEDS],
            "lsh-4": [_record("lsh-4", s, total=2.0, cross=_cross(1.0 + s)) for s in SEEDS],
            "separate-qk": _setting("separate-qk", (2.0, 2.0, 2.0))}  # no cross evaluation: no row
    fig = l09.plot_cross(runs, ["full", "separate-qk", "lsh-4", "lsh-8"])
    ax = fig.axes[0]
    expected = np.array([[0.2 + i for i in range(len(CROSS_COLUMNS))],
                         [3.0 + i for i in range(len(CROSS_COLUMNS))]])
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["full", "LSH-4"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["full", "LSH-8", "LSH-4", "LSH-2", "LSH-1"]
    assert sorted(t.get_text() for t in ax.texts)[:2] == ["0.20", "1.20"]
    fig = l09.plot_cross(runs, ["full"], part="text")
    np.testing.assert_allclose(np.asarray(fig.axes[0].images[0].get_array()), 2.5)


def test_cross_without_a_cross_evaluation_is_an_error(runs) -> None:
    with pytest.raises(ValueError, match="cross-evaluation"):
        l09.plot_cross(runs, ["full", "transformer"])
    with pytest.raises(ValueError):
        l09.plot_cross(runs, ["layers-16"])


def test_depth_plots_a_dot_per_seed_and_memory_in_mib(runs) -> None:
    depth_settings = {1: "layers-1", 2: "full", 4: "layers-4", 8: "layers-8", 16: "layers-16"}
    memory = {"reversible": {4: 3 * 2**20, 1: 2**20, 8: 4 * 2**20},
              "transformer": {1: 2**21, 4: 2**23}}
    fig = l09.plot_depth(runs, depth_settings, memory, budget=5 * 2**20)
    left, right = fig.axes
    dots = [line for line in left.lines if line.get_linestyle() == "None"]
    assert [line.get_xdata()[0] for line in dots] == [1, 2, 4, 8]  # layers-16 has no runs
    for line, setting in zip(dots, ("layers-1", "full", "layers-4", "layers-8"), strict=True):
        assert list(line.get_xdata()) == [line.get_xdata()[0]] * 3
        np.testing.assert_allclose(line.get_ydata(), [r["evaluation"]["total"] for r in runs[setting]])
    mean = _line(left, "mean over seeds")
    np.testing.assert_array_equal(mean.get_xdata(), [1, 2, 4, 8])
    np.testing.assert_allclose(mean.get_ydata(), [3.1, 2.02, 1.55, 1.1])
    reversible, transformer = _line(right, "reversible"), _line(right, "transformer")
    np.testing.assert_array_equal(reversible.get_xdata(), [1, 4, 8])
    np.testing.assert_allclose(reversible.get_ydata(), [1.0, 3.0, 4.0])
    np.testing.assert_allclose(transformer.get_ydata(), [2.0, 8.0])
    (budget,) = [line for line in right.lines if line.get_linestyle() == "--"]
    np.testing.assert_allclose(budget.get_ydata(), [5.0, 5.0])


# ----------------------------------------------------------------------------------------------------
# claims_rows
# ----------------------------------------------------------------------------------------------------


def _rows(runs) -> dict[str, tuple[str, str]]:
    return {claim: (measured, agree) for claim, measured, agree in l09.claims_rows(runs)}


def test_claims_on_chosen_numbers(runs) -> None:
    rows = _rows(runs)
    shared = rows["Figure 3 left: shared-QK attention does not perform worse than regular attention"]
    assert shared == (f"{l09.LABELS['full']} 2.02 [2.00–2.04] vs separate Q and K 2.03 [2.01–2.05]",
                      "yes (same within noise)")
    # full is worse than the Transformer beyond the ranges: d = 2.02 − 1.5, s = √(0.02²/3 + 0.1²/3) = 0.0589
    d, s = 2.02 - 1.5, math.sqrt(0.02**2 / 3 + 0.1**2 / 3)
    reversible = rows["Figure 3 right: reversible and regular Transformers learn alike"]
    assert reversible[1] == f"NO (worse by {d:.2f} ± {s:.2f})" == "NO (worse by 0.52 ± 0.06)"
    assert reversible[0].endswith("vs single-stream Transformer 1.50 [1.40–1.60]")
    rounds = rows["Figure 4: more hash rounds, lower loss"]
    assert rounds == ("second copy, bits/char: LSH-1 3.00, LSH-2 2.00, LSH-4 1.50, LSH-8 1.20", "yes")
    assert rows["Figure 4: at 8 rounds LSH almost matches full attention"] == (
        "LSH-8 2.05 [2.03–2.07] vs full 2.02 [2.00–2.04]", "yes (same within noise)")
    depth = [(m, a) for c, m, a in l09.claims_rows(runs) if c.startswith("Figure 5 left")]
    assert [a for _, a in depth] == ["yes (better by 1.08 ± 0.06)", "yes (better by 0.47 ± 0.03)",
                                     "yes (better by 0.45 ± 0.06)"]
    assert depth[0][0].startswith("2 layers (base) 2.02") and depth[2][0].startswith("8 layers 1.10")


def test_claims_say_no_when_the_rounds_do_not_help_or_lsh8_is_worse(runs) -> None:
    worse = {**runs, "lsh-4": _setting("lsh-4", (2.2, 2.3, 2.4), (2.5, 2.5, 2.5)),
             "lsh-8": _setting("lsh-8", (2.5, 2.6, 2.7)), "separate-qk": _setting("separate-qk", (2.5, 2.6, 2.7))}
    rows = _rows(worse)
    assert rows["Figure 4: more hash rounds, lower loss"][1] == "NO"
    d, s = 2.6 - 2.02, math.sqrt(0.1**2 / 3 + 0.02**2 / 3)
    assert rows["Figure 4: at 8 rounds LSH almost matches full attention"][1] == (
        f"NO (worse by {d:.2f} ± {s:.2f}; the fewest rounds: worse by {2.7 - 2.02:.2f})")
    # shared-QK better than separate Q and K beyond the ranges is not "worse": the claim holds
    assert rows["Figure 3 left: shared-QK attention does not perform worse than regular attention"][1] == (
        f"yes (better by {d:.2f} ± {s:.2f})")


def test_claims_on_depth_that_overlaps_or_gets_worse(runs) -> None:
    flat = {**runs, "layers-4": _setting("layers-4", (2.01, 2.03, 2.05)),
            "layers-8": _setting("layers-8", (2.5, 2.6, 2.7))}
    depth = [a for c, _, a in l09.claims_rows(flat) if c.startswith("Figure 5 left")]
    assert depth[1] == "not shown at this scale (same within noise)"
    assert depth[2].startswith("NO (worse by")
    skipping = {k: v for k, v in runs.items() if k != "layers-4"}  # full is compared with 8 layers directly
    measured = [m for c, m, _ in l09.claims_rows(skipping) if c.startswith("Figure 5 left")]
    assert len(measured) == 2 and measured[1].startswith("8 layers") and "vs 2 layers (base)" in measured[1]


def test_claims_without_the_runs_are_not_shown(runs) -> None:
    rows = l09.claims_rows({"full": runs["full"]})
    assert rows and all(agree == "not run" for _, _, agree in rows)
    assert {c.split(":")[0] for c, _, _ in rows} >= {"Figure 3 left", "Figure 3 right", "Figure 4", "Figure 5 left"}


def test_claims_keep_a_depth_row_without_the_runs(runs) -> None:
    rows = l09.claims_rows({"full": runs["full"]})
    assert any(c.startswith("Figure 5 left") for c, _, _ in rows)


def test_claims_need_two_hash_round_settings_to_say_the_loss_falls(runs) -> None:
    rows = _rows({"full": runs["full"], "lsh-8": runs["lsh-8"]})
    assert rows["Figure 4: more hash rounds, lower loss"][1] != "yes"


# ----------------------------------------------------------------------------------------------------
# comparison_explorer
# ----------------------------------------------------------------------------------------------------


def test_explorer_controls_and_redraws(runs) -> None:
    box = l09.comparison_explorer(runs, {2: 3.5, 3: 3.0})
    assert list(box.controls) == ["smoothing", "comparison", "seeds"]
    assert isinstance(box.controls["smoothing"], w.SelectionSlider)
    assert box.controls["smoothing"].value == 1
    assert list(box.controls["comparison"].options) == list(l09.COMPARISONS)
    assert box.controls["comparison"].value == "hash rounds"
    assert [v for _, v in box.controls["seeds"].options] == ["all", "1", "2", "3"]
    assert "<b>Figure 4</b>" in box.text.value and f"{l09.LABELS['lsh-8']}: same within noise" in box.text.value
    png = box.image.value
    box.controls["comparison"].value = "shared-QK"
    assert box.image.value != png
    assert "Figure 3 left" in box.text.value and f"{l09.LABELS['full']}: same within noise" in box.text.value
    png = box.image.value
    box.controls["smoothing"].value = 3
    assert box.image.value != png
    png = box.image.value
    box.controls["seeds"].value = "2"
    assert box.image.value != png
    assert not plt.get_fignums()  # the widget draws on figures pyplot does not track


def test_explorer_rejects_an_unknown_comparison(runs) -> None:
    with pytest.raises(ValueError, match="comparison"):
        l09.comparison_explorer(runs, {}, comparison="Figure 9")
    box = l09.comparison_explorer(runs, {}, comparison="depth")
    assert "Figure 5 left" in box.text.value
