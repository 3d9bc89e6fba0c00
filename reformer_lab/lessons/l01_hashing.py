"""Lesson 01, angular LSH (paper §2, Figure 1): Figure 1 recreated, the hash's scores, collision and recall
curves against the angle, bucket balance, and the bucket explorer widget.

Pure plotting functions take plain data and draw on the given axes or figure (a new pyplot figure
when none is given) and return the figure. :func:`bucket_explorer` is the widget over
:func:`explore_pair` and :func:`plot_bucket_explorer`, built by :func:`reformer_lab.lessons.common.explorer`.
Buckets are coloured with :func:`reformer_lab.lessons.common.bucket_colours`, as in lessons 02 and 03.

Angles: the compute functions of :mod:`reformer_lab.measure.hashing_stats` take radians; the axes here are
labelled in degrees, and the widget's slider is in degrees.
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Wedge
from torch import Tensor

from reformer_lab.hashing import check_n_buckets, hash_vectors, random_rotations
from reformer_lab.lessons.common import Explorer, bucket_colours, choice_slider, explorer, new_axes
from reformer_lab.measure.hashing_stats import BucketBalance, check_angles
from reformer_lab.validation import as_float, as_int, positive_int

__all__ = [
    "ExplorerState",
    "bucket_arcs",
    "bucket_explorer",
    "empty_buckets",
    "explore_pair",
    "plot_bucket_balance",
    "plot_bucket_explorer",
    "plot_collision_curves",
    "plot_figure1",
    "plot_hash_circle",
    "plot_projections",
    "plot_recall_curves",
]

_POINT_COLOURS = {"x": "#1f3d7a", "y": "#b5401a"}
_SAME, _DIFFERENT = "#2e7d32", "#8a8a8a"
_ARC_SAMPLES = 1440  # directions sampled around the circle to find each bucket's arc (a quarter degree apart)


def _as_2d(name: str, v: Tensor | Sequence[float]) -> Tensor:
    t = torch.as_tensor(v, dtype=torch.float64)
    if t.shape != (2,) or not bool(torch.isfinite(t).all()) or float(t.norm()) == 0:
        raise ValueError(f"{name} must be a non-zero 2-D vector (this picture is drawn in the plane), got {v!r}")
    return t


def _check_rotation_2d(rotation: Tensor, n_buckets: int) -> Tensor:
    rotation = torch.as_tensor(rotation, dtype=torch.float64)
    if rotation.shape != (2, n_buckets // 2):
        raise ValueError(
            f"rotation must have shape [2, n_buckets // 2] = [2, {n_buckets // 2}] for a 2-D picture, "
            f"got {tuple(rotation.shape)}"
        )
    return rotation


def _hash_one(v: Tensor, rotation: Tensor, n_buckets: int) -> int:
    return int(hash_vectors(v.reshape(1, 2), n_buckets, rotations=rotation.unsqueeze(0))[0, 0])


def bucket_arcs(rotation: Tensor, n_buckets: int) -> list[tuple[int, float, float]]:
    """The arcs of the unit circle that each bucket owns: ``(bucket, start°, end°)``, counter-clockwise.

    In 2-D every bucket of h(x) = argmax([xR; −xR]) is a cone, i.e. one arc of the circle (possibly
    empty: with Gaussian R some signed axis may never win). Found by hashing directions a quarter
    degree apart, so the ends are accurate to that.
    """
    n_buckets = check_n_buckets(n_buckets)
    rotation = _check_rotation_2d(rotation, n_buckets)
    alpha = torch.arange(_ARC_SAMPLES, dtype=torch.float64) * (2 * math.pi / _ARC_SAMPLES)
    directions = torch.stack([alpha.cos(), alpha.sin()], dim=-1)
    buckets = hash_vectors(directions, n_buckets, rotations=rotation.unsqueeze(0))[0].tolist()
    step = 360 / _ARC_SAMPLES
    changes = [i for i in range(_ARC_SAMPLES) if buckets[i] != buckets[i - 1]]
    if not changes:
        return [(buckets[0], 0.0, 360.0)]
    arcs = []
    for k, start in enumerate(changes):
        end = changes[(k + 1) % len(changes)]
        span = (end - start) % _ARC_SAMPLES
        arcs.append((buckets[start], (start - 0.5) * step, (start - 0.5 + span) * step))
    return arcs


def empty_buckets(rotation: Tensor, n_buckets: int) -> list[int]:
    """The buckets that own no arc of the circle (:func:`bucket_arcs`): no direction in the plane hashes to them.

    Bucket j (j < n_buckets/2: +r_j, else −r_{j − n_buckets/2}) wins for some direction exactly when its signed
    column is a corner of the convex hull of all n_buckets signed columns; a column too short to reach the hull
    never gives the largest projection. The hull is symmetric about the origin, so empty buckets come in
    pairs j, j + n_buckets/2. In 2-D that needs n_buckets ≥ 6 (two columns always make a parallelogram);
    in d dimensions with n_buckets/2 ≤ d linearly independent columns it cannot happen.
    """
    n_buckets = check_n_buckets(n_buckets)
    owned = {bucket for bucket, _, _ in bucket_arcs(rotation, n_buckets)}
    return sorted(set(range(n_buckets)) - owned)


def _label_position(unit: Tensor, other: Tensor, default_side: float) -> list[float]:
    """Inside the circle, beside the line to ``unit``, on the side away from the other point."""
    normal = torch.stack([-unit[1], unit[0]])
    towards = float(normal @ (other - unit))
    side = -1.0 if towards > 0 else 1.0 if towards < 0 else default_side
    return (0.78 * unit + 0.17 * side * normal).tolist()


def plot_hash_circle(
    x: Tensor | Sequence[float],
    y: Tensor | Sequence[float],
    rotation: Tensor,
    n_buckets: int,
    ax: Axes | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """One panel of Figure 1: the circle cut into bucket arcs by R, the signed axes ±r_j, and x and y.

    ``rotation`` is one round's R, shape ``[2, n_buckets // 2]``. x and y are drawn where they are
    (hollow) and projected onto the circle (filled), since only their direction matters. The title
    reports h(x), h(y) and whether they collide.
    """
    n_buckets = check_n_buckets(n_buckets)
    x, y = _as_2d("x", x), _as_2d("y", y)
    rotation = _check_rotation_2d(rotation, n_buckets)
    fig, ax = new_axes(ax, figsize=(3.2, 3.4))
    colours = bucket_colours(n_buckets)
    for bucket, start, end in bucket_arcs(rotation, n_buckets):
        ax.add_patch(Wedge((0, 0), 1.0, start, end, facecolor=colours[bucket], alpha=0.35, edgecolor="white", lw=1))
        mid = math.radians((start + end) / 2)
        if end - start > 8:
            ax.text(1.17 * math.cos(mid), 1.17 * math.sin(mid), str(bucket), ha="center", va="center",
                    fontsize=9, color=colours[bucket], fontweight="bold")
    ax.add_patch(Circle((0, 0), 1.0, fill=False, color="0.3", lw=1))
    for column in rotation.T:
        u = (column / column.norm()).tolist()
        ax.plot([-u[0], u[0]], [-u[1], u[1]], color="0.45", lw=0.8, ls=(0, (3, 2)))
    buckets = {}
    units = {"x": x / x.norm(), "y": y / y.norm()}
    for name, v in (("x", x), ("y", y)):
        buckets[name] = _hash_one(v, rotation, n_buckets)
        unit, other = units[name], units["y" if name == "x" else "x"]
        colour = _POINT_COLOURS[name]
        ax.plot([0.0, float(unit[0])], [0.0, float(unit[1])], color=colour, lw=1.2)
        ax.plot(*v.tolist(), marker="o", mfc="white", mec=colour, ms=6)
        ax.plot(*unit.tolist(), marker="o", color=colour, ms=7)
        side = 1.0 if name == "x" else -1.0  # x and y in the same direction: labels on opposite sides
        ax.text(*_label_position(unit, other, side), name, color=colour, fontsize=11,
                fontweight="bold", ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    same = buckets["x"] == buckets["y"]
    verdict = "same bucket" if same else "different buckets"
    head = f"{title}\n" if title else ""
    ax.set_title(f"{head}h(x) = {buckets['x']}, h(y) = {buckets['y']}: {verdict}", fontsize=9,
                 color=_SAME if same else "black")
    ax.set_xlim(-1.35, 1.35)
    ax.set_ylim(-1.35, 1.35)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return fig


def plot_figure1(
    pairs: Sequence[tuple[Tensor | Sequence[float], Tensor | Sequence[float]]],
    rotations: Tensor,
    n_buckets: int = 4,
    *,
    row_labels: Sequence[str] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Paper Figure 1 recreated: one row per pair (x, y), one column per random rotation.

    ``rotations`` has shape ``[n_rotations, 2, n_buckets // 2]`` (e.g. three 2×2 rotations for the
    paper's 4 buckets). The paper's top row is a far pair that never shares a bucket, its bottom row
    a near pair that does.
    """
    n_buckets = check_n_buckets(n_buckets)
    rotations = torch.as_tensor(rotations, dtype=torch.float64)
    if rotations.dim() != 3 or rotations.shape[0] < 1:
        raise ValueError(f"rotations must have shape [n_rotations, 2, n_buckets // 2], got {tuple(rotations.shape)}")
    if not pairs:
        raise ValueError("plot_figure1 needs at least one (x, y) pair")
    if row_labels is not None and len(row_labels) != len(pairs):
        raise ValueError(f"row_labels needs one label per pair: {len(pairs)} pairs, {len(row_labels)} labels")
    n_rows, n_cols = len(pairs), rotations.shape[0]
    if fig is None:
        fig = plt.figure(figsize=(2.7 * n_cols + 0.9, 2.9 * n_rows))
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    for i, (x, y) in enumerate(pairs):
        for j in range(n_cols):
            plot_hash_circle(x, y, rotations[j], n_buckets, axes[i, j], title=f"rotation {j + 1}" if i == 0 else None)
        if row_labels is not None:
            axes[i, 0].text(-0.08, 0.5, row_labels[i], transform=axes[i, 0].transAxes, rotation=90,
                            ha="right", va="center", fontsize=10)
    fig.tight_layout()
    return fig


def plot_projections(
    x: Tensor | Sequence[float],
    y: Tensor | Sequence[float],
    rotation: Tensor,
    n_buckets: int,
    ax: Axes | None = None,
    *,
    legend: bool = True,
) -> Figure:
    """The hash's inputs for one round: the n_buckets entries of [xR; −xR] and [yR; −yR] side by side.

    Entry j is the score of bucket j; the tallest bar of each vector (ringed) is its bucket.
    """
    n_buckets = check_n_buckets(n_buckets)
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    rotation = torch.as_tensor(rotation, dtype=torch.float64)
    if x.dim() != 1 or x.shape != y.shape or rotation.shape != (x.shape[0], n_buckets // 2):
        raise ValueError(
            f"need x and y of shape [d] and rotation of shape [d, n_buckets // 2], got {tuple(x.shape)}, "
            f"{tuple(y.shape)} and {tuple(rotation.shape)}"
        )
    fig, ax = new_axes(ax, figsize=(4.0, 2.4))
    index = np.arange(n_buckets)
    width = 0.4
    for offset, (name, v) in zip((-width / 2, width / 2), (("x", x), ("y", y)), strict=True):
        scores = torch.cat([v @ rotation, -(v @ rotation)]).numpy()
        colour = _POINT_COLOURS[name]
        bars = ax.bar(index + offset, scores, width, color=colour, alpha=0.75, label=f"[{name}R; −{name}R]")
        best = int(np.argmax(scores))
        bars[best].set_edgecolor("black")
        bars[best].set_linewidth(1.8)
        bars[best].set_alpha(1.0)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.axvline(n_buckets / 2 - 0.5, color="0.6", lw=0.8, ls=":")
    ax.set_xticks(index if n_buckets <= 16 else index[::2])
    ax.set_xlabel("bucket j (left of the dotted line: +xR, right: −xR)", fontsize=8)
    ax.set_ylabel("score", fontsize=8)
    ax.tick_params(labelsize=7)
    if legend:
        ax.legend(fontsize=7, loc="best", handlelength=1)
    return fig


@dataclass(frozen=True, eq=False)
class ExplorerState:
    """Two 2-D vectors at ``angle_degrees`` and their buckets under ``n_hashes`` Gaussian rounds."""

    angle_degrees: float
    n_buckets: int
    x: Tensor  # [2]
    y: Tensor  # [2]
    rotations: Tensor  # [n_hashes, 2, n_buckets // 2]
    buckets_x: list[int]
    buckets_y: list[int]

    @property
    def collide(self) -> list[bool]:
        """Per round: do x and y share a bucket?"""
        return [a == b for a, b in zip(self.buckets_x, self.buckets_y, strict=True)]

    def summary(self) -> str:
        """One line: the rounds in which x and y collide, and whether LSH attention would pair them."""
        hits = [str(r + 1) for r, c in enumerate(self.collide) if c]
        n = len(self.collide)
        if not hits:
            return f"θ = {self.angle_degrees:g}°: x and y never share a bucket in {n} round(s); attention would miss y"
        return (
            f"θ = {self.angle_degrees:g}°: x and y share a bucket in round(s) {', '.join(hits)} of {n}; "
            "one is enough for attention to pair them (eq. 6)"
        )


def explore_pair(angle_degrees: float, n_buckets: int, n_hashes: int, seed: int) -> ExplorerState:
    """The bucket explorer's data: x and y at ``angle_degrees`` apart, hashed with Gaussian R drawn from ``seed``.

    x has length 0.6 and direction 20°; y has length 0.85 (lengths do not matter to the hash).
    The rotations come from ``torch.Generator().manual_seed(seed)``, as in the authors' code (Gaussian, not
    orthogonalised; in 2-D that makes the buckets' arcs unequal).
    """
    theta = math.radians(as_float("angle_degrees", angle_degrees))
    check_angles(theta)
    n_buckets = check_n_buckets(n_buckets)
    n_hashes = positive_int("n_hashes", n_hashes)
    seed = as_int("seed", seed, minimum=0)
    base = math.radians(20.0)
    x = 0.6 * torch.tensor([math.cos(base), math.sin(base)], dtype=torch.float64)
    y = 0.85 * torch.tensor([math.cos(base + theta), math.sin(base + theta)], dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    rotations = random_rotations(2, n_buckets, n_hashes, generator=generator, dtype=torch.float64)
    buckets = hash_vectors(torch.stack([x, y]), n_buckets, rotations=rotations)  # [n_hashes, 2]
    return ExplorerState(float(angle_degrees), n_buckets, x, y, rotations, buckets[:, 0].tolist(),
                         buckets[:, 1].tolist())


def _explorer_figsize(n_hashes: int) -> tuple[float, float]:
    return (max(3.0 * n_hashes + 0.4, 5.0), 5.6)


def plot_bucket_explorer(state: ExplorerState, fig: Figure | None = None, *, title: bool = True) -> Figure:
    """Per round, the circle with x, y and the bucket arcs (top) and the scores [xR; −xR], [yR; −yR] (bottom).

    A round's title names the buckets that own no arc (:func:`empty_buckets`), if any.

    ``title`` puts :meth:`ExplorerState.summary` on top (the widget shows it as text instead).
    """
    n = state.rotations.shape[0]
    if fig is None:
        fig = plt.figure(figsize=_explorer_figsize(n))
    axes = fig.subplots(2, n, squeeze=False, gridspec_kw={"height_ratios": [3, 2]})
    for r in range(n):
        empty = empty_buckets(state.rotations[r], state.n_buckets)
        head = f"round {r + 1}" + (f" (buckets {', '.join(map(str, empty))}: no arc)" if empty else "")
        plot_hash_circle(state.x, state.y, state.rotations[r], state.n_buckets, axes[0, r], title=head)
        plot_projections(state.x, state.y, state.rotations[r], state.n_buckets, axes[1, r], legend=False)
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles, [f"{label}, its bucket ringed" for label in labels], loc="lower center", ncols=2,
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(textwrap.fill(state.summary(), width=int(11 * fig.get_figwidth())), fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def _explorer_drawing(**settings: int) -> tuple[Figure, str]:
    """The bucket explorer's picture and the line above it saying in which rounds x and y collide."""
    state = explore_pair(**settings)
    fig = plot_bucket_explorer(state, fig=Figure(figsize=_explorer_figsize(len(state.buckets_x))), title=False)
    return fig, f"<b>{html.escape(state.summary())}</b>"


def bucket_explorer(
    angle_degrees: int = 30, n_buckets: int = 4, n_hashes: int = 3, seed: int = 0, *, max_hashes: int = 4
) -> Explorer:
    """Lesson 01's widget: move the angle between x and y, the bucket count, the rounds and the seed.

    The output shows each round's buckets and scores (:func:`plot_bucket_explorer`) and a line saying in
    which rounds x and y collide. ``n_buckets`` only takes even values (its slider offers 2, 4, …, 16).
    """
    max_hashes = positive_int("max_hashes", max_hashes)
    n_hashes = as_int("n_hashes", n_hashes, minimum=1, maximum=max_hashes)
    explore_pair(angle_degrees, n_buckets, n_hashes, seed)  # validate the starting values
    controls = {
        "angle_degrees": w.IntSlider(value=angle_degrees, min=0, max=180, step=5, description="angle θ (°)"),
        "n_buckets": choice_slider("n_buckets", n_buckets, range(2, max(16, n_buckets) + 1, 2)),
        "n_hashes": w.IntSlider(value=n_hashes, min=1, max=max_hashes, description="n_hashes"),
        "seed": w.IntSlider(value=seed, min=0, max=max(50, seed), description="seed"),
    }
    return explorer(controls, _explorer_drawing, width=None)


def _degrees(angles: Tensor | Sequence[float]) -> np.ndarray:
    return np.degrees(check_angles(angles).numpy())


def _check_curve(name: str, angles: np.ndarray, curve: Tensor | Sequence[float]) -> np.ndarray:
    values = np.asarray(torch.as_tensor(curve, dtype=torch.float64))
    if values.shape != angles.shape:
        raise ValueError(f"{name} has {values.size} values for {angles.size} angles")
    return values


def _measured_curves(ax: Axes, deg: np.ndarray, measured: Mapping[int, Tensor | Sequence[float]], name: str,
                     cmap: str, stop: float) -> None:
    """One line with dots per entry of ``measured`` (``name`` value → curve), in increasing order, coloured
    along ``cmap`` from 0 to ``stop``."""
    colours = plt.get_cmap(cmap)(np.linspace(0, stop, len(measured)))
    for colour, (key, curve) in zip(colours, sorted(measured.items()), strict=True):
        ax.plot(deg, _check_curve(f"curve for {name}={key}", deg, curve), "o-", ms=2.5, lw=1.4, color=colour,
                label=f"{name} = {key}")


def _angle_axis(ax: Axes) -> None:
    ax.set_xlim(0, 180)
    ax.set_xticks(range(0, 181, 30))
    ax.set_xlabel("angle θ between x and y (degrees)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)


def plot_collision_curves(
    angles: Tensor | Sequence[float],
    measured: Mapping[int, Tensor | Sequence[float]],
    *,
    exact: Tensor | Sequence[float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Measured P[h(x) = h(y)] against θ (radians in, degrees on the axis), one line per bucket count.

    ``measured`` maps n_buckets to the curve; ``exact`` is the 2-bucket formula 1 − θ/π, drawn dashed.
    """
    if not measured:
        raise ValueError("plot_collision_curves needs at least one measured curve")
    deg = _degrees(angles)
    fig, ax = new_axes(ax)
    _measured_curves(ax, deg, measured, "n_buckets", "viridis", 0.9)
    if exact is not None:
        ax.plot(deg, _check_curve("exact", deg, exact), ls="--", color="#d62728", lw=1.4, zorder=3,
                label="exact for 2 buckets: 1 − θ/π")
    _angle_axis(ax)
    ax.set_ylabel("P[h(x) = h(y)], one round")
    ax.legend(fontsize=8)
    ax.set_title("collision probability against angle (measured)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_recall_curves(
    angles: Tensor | Sequence[float],
    measured: Mapping[int, Tensor | Sequence[float]],
    *,
    predicted: Mapping[int, Tensor | Sequence[float]] | None = None,
    n_buckets: int | None = None,
    ax: Axes | None = None,
) -> Figure:
    """P[share a bucket in at least one of n rounds] against θ: measured (solid), 1 − (1 − p)^n (dashed).

    ``measured`` and ``predicted`` map n_hashes to curves over ``angles`` (radians).
    """
    if not measured:
        raise ValueError("plot_recall_curves needs at least one measured curve")
    deg = _degrees(angles)
    fig, ax = new_axes(ax)
    _measured_curves(ax, deg, measured, "n_hashes", "plasma", 0.8)
    for n_hashes in sorted(measured):
        if predicted is not None and n_hashes in predicted:
            ax.plot(deg, _check_curve(f"prediction for n_hashes={n_hashes}", deg, predicted[n_hashes]), "--",
                    lw=1.2, color="black", alpha=0.7)
    handles, labels = ax.get_legend_handles_labels()
    if predicted:
        handles.append(Line2D([], [], ls="--", color="black", alpha=0.7))
        labels.append("1 − (1 − p)^n_hashes")
    ax.legend(handles, labels, fontsize=8)
    _angle_axis(ax)
    ax.set_ylabel("P[same bucket in ≥ 1 round]")
    where = f", n_buckets = {n_buckets}" if n_buckets is not None else ""
    ax.set_title(f"more rounds find more neighbours{where}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_bucket_balance(balances: Mapping[str, BucketBalance], ax: Axes | None = None) -> Figure:
    """Histogram of bucket size / average size for each labelled :class:`BucketBalance`, with the 2× line.

    The paper chunks sorted buckets into chunks of m = 2l/n_buckets, twice the average bucket; buckets
    right of the line would overflow a chunk.
    """
    if not balances:
        raise ValueError("plot_bucket_balance needs at least one BucketBalance")
    fig, ax = new_axes(ax)
    for label, balance in balances.items():
        width = max(1, round(balance.mean_size / 16))  # counts per bin: about 1/16 of the average bucket
        bins = (np.arange(0, int(balance.counts.max()) + width + 1, width) - 0.5) / balance.mean_size
        ax.hist(balance.relative_sizes.numpy(), bins=bins, density=True, histtype="step", lw=1.5,
                label=f"{label} (over 2×: {balance.p_over_twice:.1%})")
    ax.axvline(2.0, color="black", ls="--", lw=1)
    ax.text(2.05, 0.55, "a chunk holds 2 × the average\n(m = 2l / n_buckets)", transform=ax.get_xaxis_transform(),
            fontsize=8, va="center")
    ax.set_xlabel("bucket size / average bucket size (l / n_buckets)")
    ax.set_ylabel("density")
    first = next(iter(balances.values()))
    ax.set_title(f"bucket sizes of random data: l = {first.length}, n_buckets = {first.n_buckets}", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_xlim(left=0)
    fig.tight_layout()
    return fig
