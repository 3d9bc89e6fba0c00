"""Lesson 10, related work and what came after (paper §4): the cards, the side-by-side figures, the duplication
runs' seed spread, and an explorer of recovered weight against chunk size.

The numbers come from :mod:`reformer_lab.measure.alternatives_stats` (recovered weight, step costs) and from the
committed duplication runs that :mod:`reformer_lab.measure.duplication_stats` reads. :data:`CARDS` holds one card
per related approach: what the paper names in §4, local attention (§2.1's "sparse attention with a limited
span", which §4 does not name) and what came after it, each with its idea, its cost in Table 1's notation and the
variant of this lesson that measures it (if any).
"""

from __future__ import annotations

import html
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from reformer_lab.lessons.common import Explorer, choice_slider, explorer, new_axes
from reformer_lab.measure.alternatives_stats import INPUT_KINDS, VARIANTS, recovered_weight, structured_qk
from reformer_lab.measure.duplication_stats import RESULTS_DIR
from reformer_lab.model import ReformerConfig, ReformerLM
from reformer_lab.validation import one_of, positive_int

__all__ = [
    "CARDS",
    "LABELS",
    "Card",
    "RecoveredGrid",
    "cards_markdown",
    "load_seed_model",
    "plot_recovered",
    "plot_seed_accuracy",
    "plot_step_costs",
    "recovered_explorer",
    "recovered_grid",
    "seed_accuracy",
    "seed_config",
]

#: How the figures name the variants of :data:`~reformer_lab.measure.alternatives_stats.VARIANTS`.
LABELS = {"local": "local", "routing": "routing (later)", "lsh-1": "LSH-1", "lsh-2": "LSH-2", "lsh-4": "LSH-4",
          "memory-efficient": "memory-eff.", "full": "full", "sdpa": "fused SDPA"}
_COLOURS = {"local": "#8172B3", "routing": "#937860", "lsh-1": "#55A868", "lsh-2": "#DD8452", "lsh-4": "#C44E52",
            "memory-efficient": "#64B5CD", "full": "#4C72B0", "sdpa": "#222222"}
# Distinct markers and line styles, and a small x-offset per variant (in octaves on the log-2 axes), so that
# variants whose values coincide (local, routing and LSH-1 in memory; memory-efficient and fused SDPA) stay visible.
_MARKERS = {"local": "s", "routing": "D", "lsh-1": "o", "lsh-2": "^", "lsh-4": "v", "memory-efficient": "P",
            "full": "X", "sdpa": "*"}
_STYLES = {"local": "-", "routing": "--", "lsh-1": ":", "lsh-2": "-", "lsh-4": "-", "memory-efficient": "-",
           "full": "-", "sdpa": "--"}
JITTER_OCTAVES = 0.05


def _jitter(variant: str) -> float:
    """The factor by which ``variant``'s x-values are shifted on a log-2 axis (centred on the variant list)."""
    return 2 ** (JITTER_OCTAVES * (VARIANTS.index(variant) - (len(VARIANTS) - 1) / 2))


# ----------------------------------------------------------------------------------------------------
# The cards
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """One related approach: ``name``, its paper (``reference``), whether the Reformer paper names it
    (``when``: "named in §4", "after the paper", or how else it relates), the ``idea`` in two sentences, its
    ``cost`` in Table 1's notation (our characterisation), and the lesson ``variant`` that measures it (None:
    not measured here)."""

    name: str
    reference: str
    when: str
    idea: str
    cost: str
    variant: str | None = None
    note: str = ""


CARDS: tuple[Card, ...] = (
    Card("Local attention", "Parmar et al., Image Transformer, ICML 2018",
         "before the paper; not in §4 (Parmar et al. is cited there only for Transformers on images; §2.1 speaks "
         "of 'sparse attention with a limited span')",
         "Each query attends only to a window of nearby positions. Cheap and exact inside the window, blind "
         "beyond it.", "max(b·n_h·l·d_k, b·n_h·l·2m), window 2m", "local",
         "ours: chunks of m, own and previous chunk"),
    Card("Sparse Transformer", "Child et al., Generating Long Sequences with Sparse Transformers, 2019",
         "named in §4",
         "Fixed factorised patterns, split across heads or layers so that two steps connect any pair. Strided: "
         "a query sees the previous k positions and every k-th position. Fixed: it sees its own block and the "
         "last cells of each earlier block. In both k ≈ √l, and the pattern is set by position, not by content.",
         "max(b·n_h·l·d_k, b·n_h·l·√l), k ≈ √l", None,
         "its local half is our 'local'; the strided half is not built here"),
    Card("Adaptive attention span", "Sukhbaatar et al., Adaptive Attention Span in Transformers, ACL 2019",
         "named in §4 (more efficient attention)",
         "Each head learns how far back it looks, through a soft mask on the distance. Heads that need little "
         "context become cheap; a few keep long spans.", "max(b·n_h·l·d_k, b·n_h·l·s), s = learned span",
         None, "a local window whose width is learned per head"),
    Card("Product-key memory", "Lample et al., Large Memory Layers with Product Keys, NeurIPS 2019",
         "named in §4",
         "A huge learned key-value memory replaces a feed-forward layer; each query is split in two halves, "
         "each searched among √K sub-keys, so the top-k of K keys comes from a small product set. It "
         "attends to parameters, not to the sequence.", "time b·l·(√K·d_k + k²) per memory head; no l² term: "
         "not sequence attention", None),
    Card("Routing Transformer", "Roy et al., Efficient Content-Based Sparse Attention with Routing Transformers, "
         "TACL 2021", "after the paper",
         "Queries and keys are routed to their nearest of n_c k-means centroids and attend within their "
         "cluster. Like LSH it is content-based, but the partition is learned from the data instead of drawn "
         "at random.", "max(b·n_h·l·d_k, b·n_h·l·(l/n_c)), l^1.5 with n_c = √l", "routing",
         "ours: centroids fitted per input, sorted chunks as LSH"),
    Card("Linformer", "Wang et al., Linformer: Self-Attention with Linear Complexity, 2020", "after the paper",
         "Keys and values are projected along the length to k rows by learned matrices, so each query attends "
         "to k mixtures of positions. The projection fixes the length and does not fit causal attention "
         "directly.", "max(b·n_h·l·d_k, b·n_h·l·k)", None),
    Card("Performer", "Choromanski et al., Rethinking Attention with Performers, ICLR 2021", "after the paper",
         "The softmax kernel exp(q·k) is approximated by a dot product of m random features, so attention is "
         "computed as φ(Q)(φ(K)ᵀV) without the l×l matrix. The features give an unbiased estimate of each "
         "exp(q·k); the normalised attention is only approximately unbiased, and approximate everywhere, not "
         "sparse.", "memory max(b·n_h·l·d_k, b·n_h·l·m); time b·n_h·l·m·d_k", None),
    Card("FlashAttention", "Dao et al., FlashAttention: Fast and Memory-Efficient Exact Attention with "
         "IO-Awareness, NeurIPS 2022", "after the paper",
         "Exact attention computed tile by tile in fast on-chip memory, with the softmax rescaled on the fly and "
         "recomputed in the backward pass. Memory-efficient attention made fast: the same l² work, far fewer "
         "memory reads and writes.",
         "time max(b·n_h·l·d_k, b·n_h·l²), as full attention; memory max(b·n_h·l·d_k, b·n_h·l)", "sdpa",
         "a stand-in only: PyTorch's fused SDPA on this CPU (not the FlashAttention CUDA kernel), run without "
         "the self mask; the number measures that missing mask, not an approximation"),
)


def cards_markdown(cards: Sequence[Card] = CARDS, measured: Mapping[str, float] | None = None) -> str:
    """The cards as a Markdown table; ``measured`` (variant → a number this lesson measured, e.g. recovered
    weight) fills the last column for cards whose variant was measured."""
    lines = ["| approach | when | idea | memory (time the same unless stated), Table 1 notation, our "
             "characterisation | measured here |",
             "|---|---|---|---|---|"]
    for c in cards:
        if c.variant is None:
            here = "no" + (f" ({c.note})" if c.note else "")
        else:
            value = "" if measured is None or c.variant not in measured else f": {measured[c.variant]:.2f}"
            here = f"yes, as `{c.variant}`{value}" + (f" ({c.note})" if c.note else "")
        lines.append(f"| **{c.name}** ({c.reference}) | {c.when} | {c.idea} | {c.cost} | {here} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Recovered weight: the figure, the grid over chunk sizes and its explorer
# ----------------------------------------------------------------------------------------------------


def plot_recovered(recovered: Mapping[str, Mapping[str, float]], ax=None, title: str = "") -> Figure:
    """Grouped bars: for each input kind (``recovered[kind][variant]``, in [0, 1]), the share of full attention's
    weight each variant keeps."""
    if not recovered:
        raise ValueError("recovered must map at least one input kind to {variant: share}")
    fig, ax = new_axes(ax, figsize=(8.0, 3.4))
    kinds = list(recovered)
    variants = [v for v in VARIANTS if all(v in recovered[k] for k in kinds)]
    width = 0.8 / len(kinds)
    x = np.arange(len(variants))
    for i, kind in enumerate(kinds):
        values = [recovered[kind][v] for v in variants]
        bars = ax.bar(x + (i - (len(kinds) - 1) / 2) * width, values, width, label=kind,
                      color=plt.cm.Greys(0.35 + 0.4 * i), edgecolor=[_COLOURS[v] for v in variants], linewidth=2)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(x, [LABELS[v] for v in variants], fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("full attention's weight kept")
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.legend(title="input", fontsize=8, title_fontsize=8, loc="upper left", ncols=len(kinds))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class RecoveredGrid:
    """Recovered weight for every input kind × chunk size × variant: ``values[kind][chunk][variant]``."""

    length: int
    chunk_sizes: tuple[int, ...]
    kinds: tuple[str, ...]
    values: Mapping[str, Mapping[int, Mapping[str, float]]]
    queries: str = "all"

    def at(self, kind: str, chunk_size: int, variant: str) -> float:
        one_of("kind", kind, self.kinds)
        one_of("chunk_size", chunk_size, self.chunk_sizes)
        return self.values[kind][chunk_size][variant]


def recovered_grid(length: int = 256, dim: int = 32, chunk_sizes: Sequence[int] = (8, 16, 32, 64),
                   kinds: Sequence[str] = INPUT_KINDS, *, second_half: bool = False, seed: int = 0) -> RecoveredGrid:
    """Compute :func:`~reformer_lab.measure.alternatives_stats.recovered_weight` on each structured input at
    each chunk size (one seed); ``second_half`` averages over the queries of the second half only (on a
    ``"copy"`` input, those whose twin lies half a sequence back)."""
    length, dim = positive_int("length", length), positive_int("dim", dim)
    for c in chunk_sizes:
        if length % positive_int("chunk_sizes entries", c):
            raise ValueError(f"chunk size {c} must divide the length {length}")
    queries = slice(length // 2, None) if second_half else slice(None)
    values = {}
    for kind in kinds:
        qk = structured_qk(kind, length, dim, seed=seed)
        values[kind] = {c: {v: r.mean_over(queries) for v, r in recovered_weight(qk, chunk_size=c, seed=seed).items()}
                        for c in chunk_sizes}
    return RecoveredGrid(length, tuple(chunk_sizes), tuple(kinds), values,
                         "second half" if second_half else "all")


def plot_recovered_grid(grid: RecoveredGrid, kind: str, chunk_size: int, ax=None) -> Figure:
    """Recovered weight against chunk size for every variant on one input kind, the chosen chunk size marked."""
    fig, ax = new_axes(ax, figsize=(6.4, 3.6))
    for v in VARIANTS:
        ys = [grid.at(kind, c, v) for c in grid.chunk_sizes]
        ax.plot([c * _jitter(v) for c in grid.chunk_sizes], ys, marker=_MARKERS[v], ls=_STYLES[v],
                color=_COLOURS[v], label=LABELS[v], lw=1.5, ms=4)
    ax.axvline(chunk_size, color="0.5", lw=1, ls="--")
    ax.set_xscale("log", base=2)
    ax.set_xticks(grid.chunk_sizes, [str(c) for c in grid.chunk_sizes])
    ax.set_xlabel(f"chunk size m (L = {grid.length}; n_buckets = 2L/m; points offset in x)")
    ax.set_ylabel("full attention's weight kept")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncols=2, loc="lower right")
    ax.set_title(f"'{kind}' input, {grid.queries} queries", fontsize=10)
    fig.tight_layout()
    return fig


def recovered_explorer(grid: RecoveredGrid, *, chunk_size: int | None = None, kind: str | None = None) -> Explorer:
    """A widget over a precomputed :class:`RecoveredGrid`: the chunk-size slider (first) and the input kind pick
    the curves' marker and the line that ranks the variants there; moving them only redraws."""
    chunk_size = grid.chunk_sizes[len(grid.chunk_sizes) // 2] if chunk_size is None else chunk_size
    kind = grid.kinds[0] if kind is None else kind

    def draw(chunk_size: int, kind: str):
        fig = Figure(figsize=(6.4, 3.6))
        plot_recovered_grid(grid, kind, chunk_size, ax=fig.add_subplot())
        ranked = sorted(VARIANTS, key=lambda v: -grid.at(kind, chunk_size, v))
        text = ", ".join(f"{html.escape(LABELS[v])} {grid.at(kind, chunk_size, v):.2f}" for v in ranked)
        return fig, f"<b>chunk {chunk_size}, '{html.escape(kind)}':</b> {text}"

    controls = {
        "chunk_size": choice_slider("chunk_size", chunk_size, grid.chunk_sizes, "chunk size"),
        "kind": w.Dropdown(options=list(grid.kinds), value=one_of("kind", kind, grid.kinds), description="input"),
    }
    return explorer(controls, draw)


# ----------------------------------------------------------------------------------------------------
# Step costs
# ----------------------------------------------------------------------------------------------------


def plot_step_costs(seconds: Mapping[str, Mapping[int, float]], saved: Mapping[str, Mapping[int, float]],
                    title: str = "") -> Figure:
    """Two panels against length (tokens per step fixed): seconds per step (``seconds[variant][length]``) and
    the bytes autograd keeps for the backward pass (``saved[variant][length]``)."""
    if not seconds or not saved:
        raise ValueError("seconds and saved must each map at least one variant to {length: value}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    mib = {v: {n: b / 2**20 for n, b in by_length.items()} for v, by_length in saved.items()}
    for panel, data in ((left, seconds), (right, mib)):
        for v in VARIANTS:
            if v in data:
                lengths = sorted(data[v])
                panel.plot([n * _jitter(v) for n in lengths], [data[v][n] for n in lengths], marker=_MARKERS[v],
                           ls=_STYLES[v], color=_COLOURS[v], label=LABELS[v], lw=1.5, ms=4)
        panel.set_xscale("log", base=2)
        panel.set_yscale("log")
        panel.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        panel.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        panel.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        panel.yaxis.set_minor_formatter(NullFormatter())
        panel.set_xlabel("length (tokens per step fixed; points offset in x)")
        panel.grid(True, alpha=0.3)
    left.set_ylabel("seconds per step (this machine)")
    right.set_ylabel("kept for the backward pass (MiB)")
    right.legend(fontsize=7, ncols=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------
# The duplication runs, seed by seed
# ----------------------------------------------------------------------------------------------------


def _record(setting: str, seed: int) -> dict:
    path = RESULTS_DIR / f"{setting}-lesson-seed{seed}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; `make runs-duplication` makes every lesson run")
    record = json.loads(path.read_text())
    if record.get("setting") != setting or record.get("seed") != seed:
        raise ValueError(f"{path} holds setting {record.get('setting')!r}, seed {record.get('seed')!r}")
    return record


def load_seed_model(setting: str, seed: int = 0) -> ReformerLM:
    """The trained model of one committed run (``<setting>-lesson-seed<seed>``: its JSON config and its
    ``.weights.pt``), in eval mode; the caller's random state is left alone."""
    record = _record(setting, seed)
    with torch.random.fork_rng(devices=[]):
        model = ReformerLM(ReformerConfig.from_dict(record["config"]["model"]))
    weights = RESULTS_DIR / f"{setting}-lesson-seed{seed}.weights.pt"
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def seed_config(setting: str, seed: int = 0) -> dict:
    """The config a committed run was trained with (``model``, ``task`` and ``train`` sections), from
    ``results/duplication/<setting>-lesson-seed<seed>.json``."""
    return _record(setting, seed)["config"]


def seed_accuracy(settings: Sequence[str], seeds: Sequence[int] = (0, 1, 2)) -> dict[str, list[float]]:
    """Each setting's final accuracy on the second copy of w, with its own training attention, per seed, from
    the committed records ``results/duplication/<setting>-lesson-seed<N>.json``."""
    return {s: [float(_record(s, n)["final"]["accuracy"]) for n in seeds] for s in settings}


def plot_seed_accuracy(accuracy: Mapping[str, Sequence[float]], chance: float, ax=None) -> Figure:
    """One column per setting: each seed's accuracy as a dot, the mean as a bar, chance as a dashed line."""
    if not accuracy:
        raise ValueError("accuracy must map at least one setting to its seeds' accuracies")
    fig, ax = new_axes(ax, figsize=(6.4, 3.2))
    names = list(accuracy)
    for i, s in enumerate(names):
        values = [100 * a for a in accuracy[s]]
        colour = _COLOURS.get(s, "#4C72B0")
        ax.bar(i, statistics.fmean(values), 0.6, color=colour, alpha=0.35)
        offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        ax.plot(i + offsets, values, "o", color=colour, ms=5, mec="white", mew=0.5)
    ax.axhline(100 * chance, color="0.4", lw=1, ls="--", label=f"chance, {100 * chance:.1f}%")
    ax.set_xticks(range(len(names)), [LABELS.get(s, s) for s in names])
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy on the second w (%)")
    ax.set_title("duplication task, |w| = 63: one dot per seed (side by side), bar = mean", fontsize=10)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    return fig
