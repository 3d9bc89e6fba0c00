"""Lesson 09, what the approximations cost (paper §5, Figures 3, 4 and 5 left), drawn from committed runs.

The runs (``results/ablation/``, :mod:`reformer_lab.measure.ablation_stats`) train on the repeated-text task
with three seeds per setting. Everything here is pure plotting over their records and the n-gram baselines:
learning curves with seed bands (:func:`plot_curves`), bits per position (:func:`plot_positions`), Table 2's
cross-evaluation in bits (:func:`plot_cross`), depth and the memory it costs (:func:`plot_depth`), the widget
over all of it (:func:`comparison_explorer`) and the claims table (:func:`claims_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reformer_lab.lessons.common import Explorer, choice_slider, explorer, new_axes
from reformer_lab.measure.ablation_stats import CROSS_COLUMNS, curve_bits, seed_spread, verdict
from reformer_lab.validation import one_of

__all__ = ["COMPARISONS", "LABELS", "Comparison", "claims_rows", "comparison_explorer", "plot_cross", "plot_curves",
           "plot_depth", "plot_positions"]

Runs = Mapping[str, Sequence[Mapping[str, Any]]]

#: How each setting is named in legends.
LABELS = {"full": "reversible, shared-QK, full (base)", "separate-qk": "separate Q and K",
          "transformer": "single-stream Transformer", "lsh-1": "LSH-1", "lsh-2": "LSH-2", "lsh-4": "LSH-4",
          "lsh-8": "LSH-8", "layers-1": "1 layer", "layers-4": "4 layers", "layers-8": "8 layers"}
_COLOURS = {"full": "#222222", "separate-qk": "#D55E00", "transformer": "#0072B2", "lsh-1": "#E69F00",
            "lsh-2": "#56B4E9", "lsh-4": "#009E73", "lsh-8": "#CC79A7", "layers-1": "#E69F00",
            "layers-4": "#0072B2", "layers-8": "#CC79A7"}


@dataclass(frozen=True)
class Comparison:
    """One of the paper's §5 comparisons: its figure, the paper's claim, the baseline and the variants."""

    figure: str
    claim: str
    baseline: str
    variants: tuple[str, ...]

    @property
    def settings(self) -> tuple[str, ...]:
        return (self.baseline, *self.variants)


COMPARISONS = {
    "shared-QK": Comparison("Figure 3 left", "shared-QK attention does not perform worse than regular attention",
                            "separate-qk", ("full",)),
    "reversible": Comparison("Figure 3 right", "reversible and regular Transformers learn alike",
                             "transformer", ("full",)),
    "hash rounds": Comparison("Figure 4", "LSH approaches full attention as hash rounds grow",
                              "full", ("lsh-1", "lsh-2", "lsh-4", "lsh-8")),
    "depth": Comparison("Figure 5 left", "deeper Reformers improve with the number of layers", "layers-1",
                        ("full", "layers-4", "layers-8")),
}


def _present(runs: Runs, settings: Sequence[str]) -> list[str]:
    return [s for s in settings if runs.get(s)]


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1:
        return values
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def plot_curves(runs: Runs, settings: Sequence[str], *, ngram: Mapping[int, float] | None = None,
                seeds: Sequence[int] | None = None, smoothing: int = 1,
                live: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None,
                ax: Axes | None = None) -> Figure:
    """Held-out bits/char against step: each setting's median over ``seeds`` (all when None) as a line, their
    range as a band; ``ngram`` (order → bits/char) as dashed lines; ``live`` curves as dots on top.
    ``smoothing`` averages each curve over that many evaluations (trailing window)."""
    fig, ax = new_axes(ax, (7.0, 3.8))
    for setting in _present(runs, settings):
        chosen = [r for r in runs[setting] if seeds is None or r["seed"] in seeds]
        if not chosen:
            continue
        steps = curve_bits(chosen[0])[0]
        bits = np.array([_smooth(curve_bits(r)[1], smoothing) for r in chosen])
        colour = _COLOURS.get(setting)
        ax.plot(steps, np.median(bits, axis=0), "-", color=colour, label=f"{LABELS.get(setting, setting)} "
                f"({len(chosen)} seed{'s' if len(chosen) > 1 else ''})")
        if len(chosen) > 1:
            ax.fill_between(steps, bits.min(axis=0), bits.max(axis=0), color=colour, alpha=0.2, linewidth=0)
    for setting, (steps, bits) in (live or {}).items():
        ax.plot(steps, bits, "o", color=_COLOURS.get(setting), markersize=5, markeredgecolor="white",
                label=f"{LABELS.get(setting, setting)}: this run")
    for order, value in sorted((ngram or {}).items()):
        ax.axhline(value, color="#888888", linestyle="--", linewidth=0.8)
        ax.annotate(f"{order}-gram", (1.0, value), xycoords=("axes fraction", "data"), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8, color="#555555")
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out bits per character")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_positions(runs: Runs, settings: Sequence[str], *, ngram: Sequence[float] | None = None,
                   ngram_label: str = "n-gram", window: int = 4, ax: Axes | None = None) -> Figure:
    """Bits per predicted character after training (mean over seeds, averaged over ``window`` positions) against the
    character's position in the sequence (1 … length − 1), the second copy's start (position ``length // 2``)
    marked; ``ngram`` is an n-gram model's bits per target on the same batches."""
    fig, ax = new_axes(ax, (7.0, 3.4))
    length = None
    for setting in _present(runs, settings):
        bits = np.mean([r["evaluation"]["position_bits"] for r in runs[setting]], axis=0)
        length = len(bits) + 1
        ax.plot(np.arange(1, length), _smooth(bits, window), color=_COLOURS.get(setting),
                label=LABELS.get(setting, setting))
    if ngram is not None:
        ax.plot(np.arange(1, len(ngram) + 1), _smooth(np.asarray(ngram), window), "--", color="#888888",
                label=ngram_label)
    if length:
        ax.axvline(length // 2, color="#555555", linewidth=0.8)
        ax.annotate("second copy starts", (length // 2, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(4, -12), textcoords="offset points", fontsize=8, color="#555555")
    ax.set_xlabel("position of the predicted character")
    ax.set_ylabel(f"bits per character (mean of {window} positions)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    return fig


def plot_cross(runs: Runs, trained: Sequence[str], part: str = "copy", ax: Axes | None = None) -> Figure:
    """Table 2 in bits: each model trained with one attention (rows), evaluated with each of
    :data:`CROSS_COLUMNS` (columns), the mean over seeds of the ``part`` ("copy", "text" or "total") bits."""
    rows = [s for s in _present(runs, trained) if "cross" in runs[s][0]["evaluation"]]
    if not rows:
        raise ValueError("no run among the trained settings holds a cross-evaluation")
    table = np.array([[np.mean([r["evaluation"]["cross"][c][part] for r in runs[s]]) for c in CROSS_COLUMNS]
                      for s in rows])
    fig, ax = new_axes(ax, (6.4, 0.6 + 0.55 * len(rows)))
    image = ax.imshow(table, cmap="viridis_r", aspect="auto")
    for i, j in np.ndindex(table.shape):
        dark = table[i, j] > table.min() + 0.6 * (table.max() - table.min() + 1e-12)
        ax.text(j, i, f"{table[i, j]:.2f}", ha="center", va="center", fontsize=9,
                color="white" if dark else "black")
    ax.set_xticks(range(len(CROSS_COLUMNS)), [c.replace("lsh", "LSH") for c in CROSS_COLUMNS])
    ax.set_yticks(range(len(rows)), [LABELS.get(s, s).split(",")[0] if s != "full" else "full" for s in rows])
    ax.set_xlabel("evaluated with")
    ax.set_ylabel("trained with")
    fig.colorbar(image, ax=ax, label=f"{part} bits/char")
    fig.tight_layout()
    return fig


def plot_depth(runs: Runs, depth_settings: Mapping[int, str], memory: Mapping[str, Mapping[int, float]],
               budget: float) -> Figure:
    """Left: final held-out bits/char against depth (one dot per seed, mean joined). Right: activation bytes of
    one training step against depth for each stack in ``memory`` (name → depth → bytes), the ``budget`` drawn."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    depths = [d for d, s in sorted(depth_settings.items()) if runs.get(s)]
    means = []
    for depth in depths:
        values = [r["evaluation"]["total"] for r in runs[depth_settings[depth]]]
        left.plot([depth] * len(values), values, "o", color="#0072B2", alpha=0.6, markersize=5)
        means.append(np.mean(values))
    left.plot(depths, means, "-", color="#0072B2", label="mean over seeds (dots: one seed each)")
    left.set_xscale("log", base=2)
    left.set_xticks(depths, [str(d) for d in depths])
    left.set_xlabel("layers (reversible, full shared-QK attention)")
    left.set_ylabel("held-out bits/char after training")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    for name, by_depth in memory.items():
        ds = sorted(by_depth)
        right.plot(ds, [by_depth[d] / 2**20 for d in ds], "o-", label=name, markersize=4)
    right.axhline(budget / 2**20, color="#555555", linestyle="--", linewidth=0.8)
    right.annotate("budget: 8-layer reversible + one layer rebuilt", (0.02, budget / 2**20),
                   xycoords=("axes fraction", "data"), xytext=(0, 3),
                   textcoords="offset points", fontsize=8)
    right.set_xlabel("layers")
    right.set_ylabel("activations kept for backward (MiB)")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _final(runs: Runs, setting: str, part: str = "total") -> list[float]:
    return [r["evaluation"][part] for r in runs.get(setting, [])]


def _spread_text(values: Sequence[float]) -> str:
    s = seed_spread(values)
    return f"{s['mean']:.2f} [{s['min']:.2f}–{s['max']:.2f}]"


def _agree_if_not_worse(base: Sequence[float], values: Sequence[float]) -> str:
    said = verdict(base, values)
    return f"NO ({said})" if said.startswith("worse") else f"yes ({said})"


def _agree_if_alike(base: Sequence[float], values: Sequence[float]) -> str:
    said = verdict(base, values)
    return "yes (same within noise)" if not said.startswith(("worse", "better")) else \
        f"NO ({said})" if said.startswith("worse") else f"differs ({said})"


def _depth_label(runs: Runs, setting: str) -> str:
    layers = runs[setting][0]["config"]["model"]["n_layers"]
    return f"{layers} layer{'s' if layers > 1 else ''}" + (" (base)" if setting == "full" else "")


def _depth_rows(runs: Runs, comparison: Comparison) -> list[tuple[str, str, str]]:
    rows, settings = [], [s for s in comparison.settings if runs.get(s)]
    if len(settings) < 2:
        return [(f"{comparison.figure}: {comparison.claim}", "fewer than two depths", "not run")]
    for shallow, deep in zip(settings, settings[1:], strict=False):
        said = verdict(_final(runs, shallow), _final(runs, deep))
        agree = ("yes" if said.startswith("better") else "NO" if said.startswith("worse")
                 else "not shown at this scale")
        rows.append((f"{comparison.figure}: {comparison.claim}",
                     f"{_depth_label(runs, deep)} {_spread_text(_final(runs, deep))} vs {_depth_label(runs, shallow)} "
                     f"{_spread_text(_final(runs, shallow))}", f"{agree} ({said})"))
    return rows


def _round_rows(runs: Runs, comparison: Comparison) -> list[tuple[str, str, str]]:
    present = [s for s in comparison.variants if runs.get(s)]
    falling_claim = f"{comparison.figure}: more hash rounds, lower loss"
    matches_claim = f"{comparison.figure}: at 8 rounds LSH almost matches full attention"
    if len(present) < 2 or not runs.get(comparison.baseline):
        return [(claim, "fewer than two round counts, or no full attention", "not run")
                for claim in (falling_claim, matches_claim)]
    means = [seed_spread(_final(runs, s, "copy"))["mean"] for s in present]
    falling = all(a > b for a, b in zip(means, means[1:], strict=False))
    rows = [(falling_claim, "second copy, bits/char: " + ", ".join(
        f"{LABELS[s]} {m:.2f}" for s, m in zip(present, means, strict=True)), "yes" if falling else "NO")]
    if "lsh-8" not in present:
        return [*rows, (matches_claim, "no LSH-8 runs", "not run")]
    full, lsh8 = _final(runs, "full"), _final(runs, "lsh-8")
    return [*rows, (matches_claim, f"{LABELS['lsh-8']} {_spread_text(lsh8)} vs full {_spread_text(full)}",
                    _almost(full, lsh8, _final(runs, present[0])))]


def _almost(full: Sequence[float], lsh8: Sequence[float], fewest: Sequence[float]) -> str:
    """"almost matches" (the paper's word) as our rule: the same within noise, or worse by less than a quarter of
    the gap of the fewest rounds trained."""
    said = verdict(full, lsh8)
    if not said.startswith("worse"):
        return f"yes ({said})"
    gap, fewest_gap = (seed_spread(lsh8)["mean"] - seed_spread(full)["mean"],
                       seed_spread(fewest)["mean"] - seed_spread(full)["mean"])
    return f"{'almost' if gap < 0.25 * fewest_gap else 'NO'} ({said}; the fewest rounds: worse by {fewest_gap:.2f})"


def claims_rows(runs: Runs) -> list[tuple[str, str, str]]:
    """``(paper claim, what the committed runs measured, agree?)`` for the comparisons of :data:`COMPARISONS`.

    Measured: held-out bits/char after training, mean [min–max] over seeds. Agree (rules of
    :func:`~reformer_lab.measure.ablation_stats.verdict`): shared-QK, yes unless worse beyond the seeds' ranges;
    reversible, yes when the same within noise, else "differs"; hash rounds, whether the second copy's mean cost
    falls with every doubling, and whether LSH-8 is the same as full within noise ("almost" when worse by less than
    a quarter of the fewest rounds' gap); depth, yes when each doubling is better, "not shown at this scale" when the
    seeds overlap. Settings without runs read "not run".
    """
    rows = []
    for name, comparison in COMPARISONS.items():
        if name == "hash rounds":
            rows += _round_rows(runs, comparison)
        elif name == "depth":
            rows += _depth_rows(runs, comparison)
        else:
            base, (variant,) = _final(runs, comparison.baseline), comparison.variants
            if not base or not _final(runs, variant):
                rows.append((f"{comparison.figure}: {comparison.claim}", "no runs", "not run"))
                continue
            agree = _agree_if_alike if name == "reversible" else _agree_if_not_worse
            rows.append((f"{comparison.figure}: {comparison.claim}",
                         f"{LABELS[variant]} {_spread_text(_final(runs, variant))} vs {LABELS[comparison.baseline]} "
                         f"{_spread_text(base)}", agree(base, _final(runs, variant))))
    return rows


def _explorer_drawing(runs: Runs, ngram: Mapping[int, float], comparison: str, seeds: str,
                      smoothing: int) -> tuple[Figure, str]:
    chosen = COMPARISONS[comparison]
    picked = None if seeds == "all" else [int(seeds)]
    fig = Figure(figsize=(7.0, 3.8))
    plot_curves(runs, chosen.settings, ngram=ngram, seeds=picked, smoothing=smoothing, ax=fig.add_subplot())
    base = _final(runs, chosen.baseline)
    lines = [f"{LABELS.get(v, v)}: {verdict(base, _final(runs, v))}" for v in chosen.variants
             if base and _final(runs, v)]
    return fig, (f"<b>{chosen.figure}</b>: {chosen.claim} (our summary of the paper). Against "
                 f"{LABELS.get(chosen.baseline, chosen.baseline)}, over all seeds: " + "; ".join(lines))


def comparison_explorer(runs: Runs, ngram: Mapping[int, float], comparison: str = "hash rounds") -> Explorer:
    """Lesson 09's widget: choose the comparison, the seeds shown and the smoothing; the curves redraw from the
    committed runs (nothing is trained)."""
    seeds = sorted({r["seed"] for records in runs.values() for r in records})
    controls = {  # the slider first: the browser test moves the first slider
        "smoothing": choice_slider("smoothing", 1, [1, 2, 3, 4], "smoothing",
                                   label=lambda n: "none" if n == 1 else f"{n} evals"),
        "comparison": w.Dropdown(options=list(COMPARISONS), value=one_of("comparison", comparison, COMPARISONS),
                                 description="comparison"),
        "seeds": w.Dropdown(options=[("all", "all")] + [(f"seed {s}", str(s)) for s in seeds], value="all",
                            description="seeds"),
    }
    return explorer(controls, lambda **kw: _explorer_drawing(runs, ngram, **kw), width="640px")
