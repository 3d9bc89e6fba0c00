"""Lesson 02, bucketing and chunking (paper §2, Figure 2): Figure 2 (a–d) recreated from a real LSH attention
call, the chunking explorer widget, and the share of buckets and pairs that overflow a chunk.

Paper §2, Figure 2: "Simplified depiction of LSH Attention showing the hash-bucketing, sorting, and
chunking steps and the resulting causal attentions. (a–d) Attention matrices for these varieties of
attention." Here every panel is drawn from what :func:`reformer_lab.attention.lsh_attention` returned
(``return_info=True``) for a small sequence, not from a sketch:

* (a) full causal attention in the original order, same-bucket pairs coloured by their bucket;
* (b) Q and K hashed separately (no shared QK) and each sorted by bucket: the bucket blocks are
  rectangles of uneven sizes off the diagonal, and a bucket can hold queries but no keys;
* (c) shared QK (k_j = q_j/‖q_j‖, so h(k_j) = h(q_j)) sorted by bucket, then position: buckets
  become triangles on the diagonal;
* (d) chunked: each chunk of m sorted queries attends to its own and the previous chunk; coloured
  cells are the pairs with a non-zero weight in ``LSHInfo.weights``, same-bucket pairs outside the
  window are marked as lost.

Self pairs (the diagonal) are drawn hollow: self-attention is masked unless nothing else is visible.
:func:`chunking_explorer` is the widget (built by :func:`reformer_lab.lessons.common.explorer`). Buckets are
coloured with :func:`reformer_lab.lessons.common.bucket_colours`, as in lessons 01 and 03.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from torch import Tensor

from reformer_lab.attention import LSHInfo, lsh_attention
from reformer_lab.hashing import check_n_buckets, hash_vectors, random_rotations
from reformer_lab.lessons.common import Explorer, bucket_colours, choice_slider, explorer
from reformer_lab.measure.chunking_stats import KINDS, WindowStats, chunk_size_for, sample_vectors
from reformer_lab.validation import as_bool, as_int, one_of

__all__ = [
    "EXPLORER_LENGTHS",
    "EXPLORER_N_BUCKETS",
    "RUNNING_EXAMPLE",
    "ChunkingExample",
    "chunking_example",
    "chunking_explorer",
    "plot_chunking",
    "plot_figure2",
    "plot_overflow",
    "plot_pipeline",
    "running_example",
]

EXPLORER_LENGTHS = (16, 32, 64)
EXPLORER_N_BUCKETS = (2, 4, 8, 16)
_MAX_LENGTH = 128  # the pictures draw one cell per pair: beyond this they are unreadable

#: The running example of lessons 01–03: ``chunking_example(**RUNNING_EXAMPLE, generator=Generator().manual_seed(5))``
#: (see :func:`running_example`): 32 random vectors in d = 8, one hash round, 16 buckets, so chunks of m = 4.
RUNNING_EXAMPLE = {"length": 32, "n_buckets": 16, "causal": True}
RUNNING_EXAMPLE_SEED = 5

_OFF = (1.0, 1.0, 1.0, 0.0)  # not computed: transparent on white
_COMPUTED = (0.86, 0.86, 0.86, 1.0)  # computed (in the window), but masked or another bucket
_LOST = "#d62728"


@dataclass(frozen=True)
class ChunkingExample:
    """One small LSH attention call and what the figures need from it (one sequence, one hash round).

    ``info`` is the :class:`LSHInfo` of ``lsh_attention(qk, v, ..., return_info=True)`` for ``qk`` of
    shape ``[L, d]`` (kept, so a lesson can hash it again: ``info.rotations[0]`` is the one round's R);
    ``q_buckets``/``k_buckets`` (``[L]``) hash separate query and key projections with the same
    rotations, for panel (b).
    """

    info: LSHInfo
    q_buckets: Tensor
    k_buckets: Tensor
    causal: bool
    qk: Tensor | None = None

    @property
    def buckets(self) -> Tensor:
        """Shared-QK bucket of every position, ``[L]``."""
        return self.info.buckets[0]

    @property
    def length(self) -> int:
        return int(self.buckets.shape[0])

    @property
    def n_buckets(self) -> int:
        return self.info.n_buckets

    @property
    def chunk_size(self) -> int:
        return self.info.chunk_size

    @property
    def order(self) -> Tensor:
        """``info.sort_indices`` of the one round: the original position at each sorted slot, ``[L]``."""
        return self.info.sort_indices[0]


def chunking_example(
    length: int = 32,
    n_buckets: int = 8,
    *,
    d: int = 8,
    causal: bool = True,
    kind: str = "random",
    generator: torch.Generator,
) -> ChunkingExample:
    """Run :func:`lsh_attention` once (one round, chunk m = 2·L/n_buckets) on a small random sequence.

    ``kind`` is ``"random"`` (Gaussian vectors) or ``"zipf"`` (a repetitive vocabulary, see
    :func:`reformer_lab.measure.chunking_stats.sample_vectors`). The shared-QK vectors double as queries; a
    second, independent linear map of the same inputs gives the separate keys of panel (b).
    """
    length = as_int("length", length, minimum=2)
    if length > _MAX_LENGTH:
        raise ValueError(f"length must be at most {_MAX_LENGTH} for a readable picture, got {length}")
    n_buckets = check_n_buckets(n_buckets)
    chunk_size_for(length, n_buckets)  # a clear error before any drawing
    x = sample_vectors(kind, length, d, generator=generator)[0]
    v = torch.randn(length, d, generator=generator)
    rotations = random_rotations(d, n_buckets, 1, generator=generator)
    keys = x @ torch.randn(d, d, generator=generator)
    _, info = lsh_attention(x, v, n_buckets=n_buckets, causal=causal, rotations=rotations, return_info=True)
    return ChunkingExample(
        info=info,
        q_buckets=info.buckets[0],
        k_buckets=hash_vectors(keys, n_buckets, rotations=rotations)[0],
        causal=causal,
        qk=x,
    )


def running_example() -> ChunkingExample:
    """The one small sequence lessons 01–03 follow: ``chunking_example(length=32, n_buckets=16, causal=True,
    generator=torch.Generator().manual_seed(5))``. Lesson 01 hashes its vectors, lesson 02 sorts and chunks
    them (:func:`plot_pipeline`, :func:`plot_figure2`); the chunking explorer starts on it."""
    return chunking_example(**RUNNING_EXAMPLE, generator=torch.Generator().manual_seed(RUNNING_EXAMPLE_SEED))


# ----------------------------------------------------------------------------------------------------
# Drawing helpers
# ----------------------------------------------------------------------------------------------------


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _pair_image(
    row_bucket: np.ndarray,
    col_bucket: np.ndarray,
    allowed: np.ndarray,
    colours: np.ndarray,
    computed: np.ndarray | None = None,
) -> np.ndarray:
    """RGBA ``[rows, cols, 4]``: bucket colour where the buckets match and ``allowed``, grey where ``computed``."""
    image = np.zeros((len(row_bucket), len(col_bucket), 4))
    image[:] = _OFF
    if computed is not None:
        image[computed] = _COMPUTED
    same = (row_bucket[:, None] == col_bucket[None, :]) & allowed
    image[same] = colours[row_bucket[:, None].repeat(len(col_bucket), 1)[same]]
    return image


def _draw_matrix(ax: Axes, image: np.ndarray, title: str, xlabel: str, ylabel: str) -> None:
    rows, cols = image.shape[:2]
    ax.imshow(image, interpolation="nearest", extent=(-0.5, cols - 0.5, rows - 0.5, -0.5))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    for spine in ax.spines.values():
        spine.set_color("0.6")


def _hollow_diagonal(ax: Axes, diagonal_buckets: np.ndarray, colours: np.ndarray) -> None:
    """Self pairs drawn as open squares in the bucket's colour (masked unless a token is alone)."""
    for i, bucket in enumerate(diagonal_buckets):
        ax.add_patch(Rectangle((i - 0.4, i - 0.4), 0.8, 0.8, fill=False, edgecolor=colours[bucket], linewidth=1.0))


def _chunk_lines(ax: Axes, length: int, chunk: int, *, rows: bool = True) -> None:
    for edge in range(chunk, length, chunk):
        ax.axvline(edge - 0.5, color="k", linewidth=0.8)
        if rows:
            ax.axhline(edge - 0.5, color="k", linewidth=0.8)


def _causal(rows: np.ndarray, cols: np.ndarray, causal: bool) -> np.ndarray:
    return cols[None, :] <= rows[:, None] if causal else np.ones((len(rows), len(cols)), dtype=bool)


def _windowed_panel(ax: Axes, example: ChunkingExample, *, sorted_order: bool, title: str) -> None:
    """Panel (d): what chunked LSH attention scores, in sorted order or mapped back to positions."""
    info, colours = example.info, bucket_colours(example.n_buckets)
    order = _np(example.order) if sorted_order else np.arange(example.length)
    buckets, chunks = _np(example.buckets)[order], _np(info.chunk_ids[0])[order]
    weights = _np(info.weights)[np.ix_(order, order)]
    allowed = _causal(order, order, example.causal)
    window = (chunks[None, :] == chunks[:, None]) | (chunks[None, :] == chunks[:, None] - 1)
    off_diagonal = ~np.eye(example.length, dtype=bool)
    attended = (weights > 0) & off_diagonal
    image = _pair_image(buckets, buckets, attended, colours, computed=window & allowed)
    _draw_matrix(ax, image, title, "key j", "query i")
    lost = (buckets[:, None] == buckets[None, :]) & allowed & ~window & off_diagonal
    rows, cols = np.nonzero(lost)
    ax.scatter(cols, rows, marker="x", s=14, color=_LOST, linewidths=1.0)
    _hollow_diagonal(ax, buckets, colours)
    if sorted_order:
        _chunk_lines(ax, example.length, example.chunk_size)
        m = example.chunk_size
        for c in range(example.length // m):
            left = max(c - 1, 0) * m
            ax.add_patch(
                Rectangle((left - 0.5, c * m - 0.5), (c + 1) * m - left, m, fill=False, edgecolor="k", linewidth=1.6)
            )


def _legend(fig: Figure, colours: np.ndarray, *, ncols: int = 4) -> None:
    handles = [
        Patch(facecolor=colours[0], label="same bucket (colour = bucket)"),
        Patch(facecolor=_COMPUTED, label="computed, but masked or another bucket"),
        Patch(facecolor="none", edgecolor="0.3", label="self: masked unless alone"),
        Line2D([], [], marker="x", linestyle="", color=_LOST, label="same bucket, outside the window: lost"),
    ]
    fig.legend(handles=handles, loc="lower center", ncols=ncols, fontsize=8, frameon=False)


# ----------------------------------------------------------------------------------------------------
# The figures
# ----------------------------------------------------------------------------------------------------


def plot_pipeline(example: ChunkingExample, ax: Axes | None = None) -> Figure:
    """The left half of paper Figure 2 for ``example``: four rows of cells, one per step.

    1. the sequence of queries = keys (numbers: position);
    2. LSH bucketing: the same order, each position coloured by its bucket (numbers: bucket);
    3. sorted by (bucket, position) (numbers: position);
    4. the sorted sequence cut into chunks of m, drawn apart, each with an arrow to the chunk it looks back
       at (the first has none);

    and a line for step 5: a query attends to the keys of its own bucket in these two chunks.
    """
    n, m, colours = example.length, example.chunk_size, bucket_colours(example.n_buckets)
    buckets, order = _np(example.buckets), _np(example.order)
    gap = 0.6
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(0.36 * (n + gap * n / m) + 2.6, 3.9))
    size = 7 if n <= 32 else 5
    rows = [
        ("1. sequence of queries = keys\n(numbers: position)", [None] * n, np.arange(n), 0.0),
        ("2. LSH bucketing\n(colour and number: bucket)", buckets, buckets, 0.0),
        ("3. sort by bucket, then position\n(numbers: position)", buckets[order], order, 0.0),
        (f"4. cut into chunks of m = {m}\n(numbers: position)", buckets[order], order, gap),
    ]
    for r, (label, cell_buckets, numbers, spread) in enumerate(rows):
        y = -1.6 * r
        for slot in range(n):
            x = slot + spread * (slot // m)
            face = "#eeeeee" if cell_buckets[slot] is None else colours[cell_buckets[slot]]
            ax.add_patch(Rectangle((x, y), 0.92, 0.92, facecolor=face, edgecolor="0.5", linewidth=0.5))
            ax.text(x + 0.46, y + 0.46, str(numbers[slot]), ha="center", va="center", fontsize=size)
        ax.text(-0.6, y + 0.46, label, ha="right", va="center", fontsize=8, linespacing=1.1)
    y = -1.6 * (len(rows) - 1)
    for c in range(n // m):
        centre = c * (m + gap) + m / 2
        ax.text(centre - 0.04, y - 0.3, f"chunk {c}", ha="center", va="center", fontsize=7, color="0.3")
        if c > 0:
            ax.annotate("", xy=(centre - m - gap, y - 0.55), xytext=(centre, y - 0.55),
                        arrowprops={"arrowstyle": "->", "color": "0.35", "lw": 0.8,
                                    "connectionstyle": "arc3,rad=-0.3"})
    ax.text(0, y - 2.0, "5. each chunk attends to the keys of its own bucket in itself and in the chunk before it "
            "(arrows); the first chunk looks back at nothing", fontsize=8, va="center")
    ax.set_xlim(-0.2, n + gap * (n // m) + 0.2)
    ax.set_ylim(y - 2.3, 1.2)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(f"Figure 2's pipeline for one sequence: L = {n}, n_buckets = {example.n_buckets}, "
                 f"m = 2L/n_buckets = {m}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_figure2(example: ChunkingExample, fig: Figure | None = None) -> Figure:
    """Paper Figure 2 (a–d) from ``example``; a new pyplot figure unless ``fig`` (e.g. a detached one) is given."""
    fig = fig if fig is not None else plt.figure(figsize=(12.0, 3.9))
    axes = fig.subplots(1, 4)
    n, colours = example.length, bucket_colours(example.n_buckets)
    positions = np.arange(n)
    buckets = _np(example.buckets)
    allowed = _causal(positions, positions, example.causal)
    mask_word = "causal " if example.causal else ""

    image = _pair_image(buckets, buckets, allowed & ~np.eye(n, dtype=bool), colours, computed=allowed)
    _draw_matrix(axes[0], image, f"(a) full {mask_word}attention", "key position j", "query position i")
    _hollow_diagonal(axes[0], buckets, colours)

    q_b, k_b = _np(example.q_buckets), _np(example.k_buckets)
    q_order, k_order = np.argsort(q_b * n + positions), np.argsort(k_b * n + positions)
    image = _pair_image(q_b[q_order], k_b[k_order], _causal(q_order, k_order, example.causal), colours)
    _draw_matrix(axes[1], image, "(b) Q and K sorted by bucket", "keys, sorted by h(k)", "queries, sorted by h(q)")

    order = _np(example.order)
    image = _pair_image(buckets[order], buckets[order], _causal(order, order, example.causal), colours)
    _draw_matrix(axes[2], image, "(c) shared QK, sorted", "sorted slot", "sorted slot")
    _hollow_diagonal(axes[2], buckets[order], colours)

    _windowed_panel(axes[3], example, sorted_order=True, title=f"(d) chunked, m = {example.chunk_size}")
    axes[3].set_xlabel("sorted slot", fontsize=8)
    axes[3].set_ylabel("sorted slot", fontsize=8)
    _legend(fig, colours)
    fig.suptitle(
        f"Figure 2 from lsh_attention's output: L = {n}, n_buckets = {example.n_buckets}, "
        f"chunk m = 2L/n_buckets = {example.chunk_size}",
        fontsize=10,
    )
    fig.subplots_adjust(left=0.04, right=0.99, top=0.84, bottom=0.2, wspace=0.3)
    return fig


def _strip(ax: Axes, values: np.ndarray, colours: np.ndarray, labels: np.ndarray, title: str) -> None:
    extent = (-0.5, len(values) - 0.5, 0.5, -0.5)
    ax.imshow(colours[values][None, :, :], aspect="auto", interpolation="nearest", extent=extent)
    size = 7 if len(values) <= 32 else 5
    for x, label in enumerate(labels):
        ax.text(x, 0, str(label), ha="center", va="center", fontsize=size, color="k")
    ax.set_yticks([])
    ax.set_title(title, fontsize=9, loc="left")
    ax.tick_params(labelsize=7)


def plot_chunking(example: ChunkingExample, fig: Figure | None = None) -> Figure:
    """The explorer's picture: buckets by position, the sorted order cut into chunks, and what attention sees.

    Top strip: each position coloured by its bucket (numbers = bucket ids). Second strip: the same
    positions sorted by (bucket, position), numbers = original positions, black lines = chunk
    boundaries. Below: panel (d) in sorted order, and the same pairs mapped back to positions.
    """
    fig = fig if fig is not None else plt.figure(figsize=(9.0, 7.2))
    grid = fig.add_gridspec(3, 2, height_ratios=[0.5, 0.5, 5.0], hspace=0.55, wspace=0.25)
    n, m, colours = example.length, example.chunk_size, bucket_colours(example.n_buckets)
    buckets, order = _np(example.buckets), _np(example.order)
    top = fig.add_subplot(grid[0, :])
    _strip(top, buckets, colours, buckets, "buckets h(x_i) in sequence order (numbers: bucket)")
    middle = fig.add_subplot(grid[1, :])
    _strip(middle, buckets[order], colours, order, "sorted by (bucket, position), cut into chunks (numbers: position)")
    _chunk_lines(middle, n, m, rows=False)
    for ax in (top, middle):
        ax.set_xticks([])
    sorted_ax, original_ax = fig.add_subplot(grid[2, 0]), fig.add_subplot(grid[2, 1])
    _windowed_panel(sorted_ax, example, sorted_order=True, title="attention in sorted order (eq. 5 windows)")
    _windowed_panel(original_ax, example, sorted_order=False, title="the same pairs at their positions")
    sizes = np.bincount(buckets, minlength=example.n_buckets)
    lost, total = _lost_pairs(example)
    fig.suptitle(
        f"L = {n}, n_buckets = {example.n_buckets}, m = {m}, {'causal' if example.causal else 'not causal'}: "
        f"largest bucket {sizes.max()} (mean {n / example.n_buckets:g}); "
        f"{lost} of {total} same-bucket pairs lost",
        fontsize=10,
    )
    _legend(fig, colours, ncols=2)
    fig.subplots_adjust(left=0.06, right=0.98, top=0.91, bottom=0.12)
    return fig


def _lost_pairs(example: ChunkingExample) -> tuple[int, int]:
    """(same-bucket pairs of distinct positions with zero weight, all such pairs), from ``info.weights``."""
    buckets, weights = _np(example.buckets), _np(example.info.weights)
    positions = np.arange(example.length)
    distinct = positions[None, :] < positions[:, None] if example.causal else positions[None, :] != positions[:, None]
    same = (buckets[:, None] == buckets[None, :]) & distinct
    return int((same & (weights == 0)).sum()), int(same.sum())


def plot_overflow(
    series: Mapping[str, Sequence[WindowStats]], *, paper_chunk: int | None = 128, fig: Figure | None = None
) -> Figure:
    """Two panels against the mean bucket size L/n_buckets (= m/2), one line per labelled series.

    Left: the share of buckets larger than m = 2·L/n_buckets (the paper assumes it is low). Right: the
    share of causal same-bucket pairs that fall outside every window (log scale; zeros are not drawn).
    A dotted line marks the paper's typical chunk of 128 (mean bucket 64).
    """
    if not series or any(len(points) == 0 for points in series.values()):
        raise ValueError("plot_overflow needs at least one series, each with at least one WindowStats")
    fig = fig if fig is not None else plt.figure(figsize=(10.0, 4.2))
    over_ax, lost_ax = fig.subplots(1, 2)
    for label, points in series.items():
        points = sorted(points, key=lambda s: s.mean_size)
        sizes = [s.mean_size for s in points]
        over_ax.plot(sizes, [s.p_bucket_over for s in points], "o-", label=label)
        lost_ax.plot(sizes, [s.dropped_causal for s in points], "o-", label=label)
    lost_ax.set_yscale("log", nonpositive="mask")
    over_ax.set_ylabel("share of buckets larger than m")
    lost_ax.set_ylabel("share of causal same-bucket pairs lost\n(log scale; zeros not drawn)")
    for ax in (over_ax, lost_ax):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("mean bucket size L/n_buckets = m/2")
        ax.grid(True, which="major", alpha=0.3)
        if paper_chunk is not None:
            ax.axvline(paper_chunk / 2, color="k", linestyle=":", linewidth=1)
            ax.text(
                paper_chunk / 2,
                0.97,
                f" paper: m = {paper_chunk}",
                transform=ax.get_xaxis_transform(),
                fontsize=8,
                va="top",
            )
    handles, labels = lost_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


# ----------------------------------------------------------------------------------------------------
# The widget
# ----------------------------------------------------------------------------------------------------


def _explorer_drawing(seed: int, **settings: object) -> Figure:
    """The explorer's picture for one setting of its controls (:func:`plot_chunking`)."""
    example = chunking_example(**settings, generator=torch.Generator().manual_seed(seed))
    return plot_chunking(example, fig=Figure(figsize=(9.0, 7.2)))


def chunking_explorer(
    seed: int = 0, length: int = 32, n_buckets: int = 8, causal: bool = True, kind: str = "random"
) -> Explorer:
    """Lesson 02's explorer: move seed, length, n_buckets, data and the causal mask; see the sort, the chunks
    and the attention pattern of a real :func:`lsh_attention` call (:func:`plot_chunking`).
    """
    seed = as_int("seed", seed, minimum=0)
    controls = {
        "seed": w.IntSlider(value=seed, min=0, max=max(99, seed), description="seed"),
        "n_buckets": choice_slider("n_buckets", n_buckets, EXPLORER_N_BUCKETS),
        "length": choice_slider("length", length, EXPLORER_LENGTHS, "length L"),
        "kind": w.Dropdown(options=list(KINDS), value=one_of("kind", kind, KINDS), description="data"),
        "causal": w.Checkbox(value=as_bool("causal", causal), description="causal", indent=False),
    }
    return explorer(controls, _explorer_drawing, width="810px")
