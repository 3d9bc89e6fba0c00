"""Lesson 01's pictures (Figure 1, curves, balance) and the bucket explorer widget, without a browser."""

from __future__ import annotations

import math

import ipywidgets as w
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.patches import Wedge
from traitlets import TraitError

from reformer_lab.hashing import hash_vectors, random_rotations
from reformer_lab.lessons import l01_hashing as ph
from reformer_lab.lessons.common import bucket_colours, detached_axes
from reformer_lab.measure import hashing_stats as lsh_stats

PNG = b"\x89PNG\r\n\x1a\n"
ANGLES = torch.linspace(0, math.pi, 7, dtype=torch.float64)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unit(degrees: float, length: float = 1.0) -> list[float]:
    return [length * math.cos(math.radians(degrees)), length * math.sin(math.radians(degrees))]


# -- bucket arcs and one panel ----------------------------------------------------------------------


def test_identity_rotation_gives_four_quarter_arcs_centred_on_the_signed_axes() -> None:
    arcs = ph.bucket_arcs(torch.eye(2, dtype=torch.float64), 4)
    centres = {bucket: ((start + end) / 2) % 360 for bucket, start, end in arcs}
    spans = {bucket: end - start for bucket, start, end in arcs}
    # Bucket 0 = +e1 (0°), 1 = +e2 (90°), 2 = −e1 (180°), 3 = −e2 (270°); a quarter degree of slack.
    for bucket, centre in {0: 0.0, 1: 90.0, 2: 180.0, 3: 270.0}.items():
        assert min(abs(centres[bucket] - centre), 360 - abs(centres[bucket] - centre)) <= 0.25
        assert spans[bucket] == pytest.approx(90.0, abs=0.25)


def test_arcs_cover_the_circle_and_agree_with_hash_vectors() -> None:
    rotation = random_rotations(2, 8, generator=_gen(3), dtype=torch.float64)[0]
    arcs = ph.bucket_arcs(rotation, 8)
    assert sum(end - start for _, start, end in arcs) == pytest.approx(360.0)
    alpha = torch.rand(200, generator=_gen(4), dtype=torch.float64) * 360
    points = torch.stack([torch.deg2rad(alpha).cos(), torch.deg2rad(alpha).sin()], -1)
    buckets = hash_vectors(points, 8, rotations=rotation.unsqueeze(0))[0]
    agree = 0
    for a, bucket in zip(alpha.tolist(), buckets.tolist(), strict=True):
        owner = next(b for b, start, end in arcs if start <= a < end or start <= a + 360 < end)
        agree += owner == bucket
    assert agree >= 198  # arcs are sampled a quarter degree apart: a point right on a border may disagree


def test_hash_circle_reports_same_and_different_buckets() -> None:
    rotation = torch.eye(2, dtype=torch.float64)
    same = ph.plot_hash_circle(_unit(10, 0.5), _unit(20), rotation, 4, ax=detached_axes())
    assert "h(x) = 0, h(y) = 0: same bucket" in same.axes[0].get_title()
    apart = ph.plot_hash_circle(_unit(10), _unit(190, 0.3), rotation, 4, ax=detached_axes(), title="rotation 1")
    title = apart.axes[0].get_title()
    assert title.startswith("rotation 1\n") and "h(x) = 0, h(y) = 2: different buckets" in title


def test_hash_circle_colours_each_bucket_with_the_shared_palette() -> None:
    fig = ph.plot_hash_circle(_unit(10), _unit(100), torch.eye(2, dtype=torch.float64), 4, ax=detached_axes())
    ax = fig.axes[0]
    palette = bucket_colours(4)
    labels = {int(t.get_text()): t.get_color() for t in ax.texts if t.get_text().isdigit()}
    assert sorted(labels) == [0, 1, 2, 3]
    for bucket, colour in labels.items():
        assert matplotlib.colors.to_rgba(colour) == pytest.approx(tuple(palette[bucket]))
    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    assert {tuple(np.round(p.get_facecolor()[:3], 6)) for p in wedges} == {tuple(np.round(c[:3], 6)) for c in palette}


@pytest.mark.parametrize(
    "x, rotation, match",
    [
        ([0.0, 0.0], torch.eye(2), "non-zero 2-D vector"),
        ([1.0, 0.0, 0.0], torch.eye(2), "non-zero 2-D vector"),
        ([1.0, 0.0], torch.eye(3)[:, :2], r"\[2, 2\]"),
        ([1.0, 0.0], torch.eye(2)[:, :1], r"\[2, 2\]"),
    ],
)
def test_hash_circle_rejects_bad_input(x, rotation, match) -> None:
    with pytest.raises(ValueError, match=match):
        ph.plot_hash_circle(x, [0.0, 1.0], rotation, 4, ax=detached_axes())
    with pytest.raises(ValueError, match="must be even"):
        ph.plot_hash_circle([1.0, 0.0], [0.0, 1.0], torch.eye(2), 5, ax=detached_axes())


# -- Figure 1 -------------------------------------------------------------------------------------------


def test_figure1_draws_one_panel_per_pair_and_rotation() -> None:
    rotations = random_rotations(2, 4, 3, generator=_gen(1), orthogonal=True, dtype=torch.float64)
    pairs = [(_unit(30), _unit(150)), (_unit(30), _unit(45))]
    fig = ph.plot_figure1(pairs, rotations, 4, row_labels=["far", "near"])
    assert len(fig.axes) == 6
    assert [ax.get_title().split("\n")[0] for ax in fig.axes[:3]] == ["rotation 1", "rotation 2", "rotation 3"]
    # With an exact rotation and 4 quarter arcs, vectors 120° apart can never share a bucket.
    assert all("different buckets" in ax.get_title() for ax in fig.axes[:3])


def test_figure1_rejects_bad_input() -> None:
    rotations = random_rotations(2, 4, 3, generator=_gen(1), dtype=torch.float64)
    pair = (_unit(0), _unit(90))
    with pytest.raises(ValueError, match="one label per pair"):
        ph.plot_figure1([pair], rotations, 4, row_labels=["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        ph.plot_figure1([], rotations, 4)
    with pytest.raises(ValueError, match=r"\[n_rotations, 2, n_buckets // 2\]"):
        ph.plot_figure1([pair], rotations[0], 4)


def test_projections_draw_one_bar_per_bucket_and_vector() -> None:
    rotation = random_rotations(2, 6, generator=_gen(2), dtype=torch.float64)[0]
    fig = ph.plot_projections(_unit(0), _unit(40), rotation, 6, ax=detached_axes())
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 6
    heights = [p.get_height() for p in ax.patches[:6]]
    scores = torch.tensor(_unit(0), dtype=torch.float64) @ rotation
    assert heights == pytest.approx(torch.cat([scores, -scores]).tolist())
    with pytest.raises(ValueError, match=r"rotation of shape \[d, n_buckets // 2\]"):
        ph.plot_projections(_unit(0), _unit(40), rotation, 8, ax=detached_axes())


# -- the explorer's pure part ---------------------------------------------------------------------------


def test_explore_pair_is_deterministic_and_consistent() -> None:
    a, b = ph.explore_pair(45, 8, 3, seed=4), ph.explore_pair(45, 8, 3, seed=4)
    assert torch.equal(a.rotations, b.rotations) and a.buckets_x == b.buckets_x and a.buckets_y == b.buckets_y
    assert a.rotations.shape == (3, 2, 4)
    cos = float(a.x @ a.y / (a.x.norm() * a.y.norm()))
    assert cos == pytest.approx(math.cos(math.radians(45)))
    assert a.collide == [p == q for p, q in zip(a.buckets_x, a.buckets_y, strict=True)]
    assert not torch.equal(ph.explore_pair(45, 8, 3, seed=5).rotations, a.rotations)


def test_explore_pair_extremes_and_summary() -> None:
    same = ph.explore_pair(0, 6, 4, seed=0)
    assert same.collide == [True] * 4 and "share a bucket in round(s) 1, 2, 3, 4 of 4" in same.summary()
    opposite = ph.explore_pair(180, 6, 4, seed=0)
    assert opposite.collide == [False] * 4 and "never share a bucket" in opposite.summary()
    assert opposite.buckets_y == [(b + 3) % 6 for b in opposite.buckets_x]  # h(−x) = h(x) + n_buckets/2


@pytest.mark.parametrize(
    "args, match",
    [((30, 5, 2, 0), "must be even"), ((200, 4, 2, 0), r"\[0, π\]"), ((30, 4, 0, 0), "n_hashes"),
     ((30, 4, 2, -1), "seed"), ((-5, 4, 2, 0), r"\[0, π\]"), (("30", 4, 2, 0), "angle_degrees")],
)
def test_explore_pair_rejects_bad_input(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        ph.explore_pair(*args)


def test_explorer_figure_has_a_circle_and_scores_per_round() -> None:
    fig = ph.plot_bucket_explorer(ph.explore_pair(30, 4, 3, seed=0), fig=detached_axes().figure)
    # detached_axes' own (empty) axes plus 2 × 3 panels
    assert sum(1 for ax in fig.axes if ax.has_data()) == 6
    assert fig._suptitle is not None and "θ = 30°" in fig._suptitle.get_text()
    bare = ph.plot_bucket_explorer(ph.explore_pair(30, 4, 1, seed=0), fig=detached_axes().figure, title=False)
    assert bare._suptitle is None  # the widget prints the summary as text instead


# -- curves and balance ---------------------------------------------------------------------------------


def test_collision_curves_one_line_per_bucket_count_plus_exact() -> None:
    measured = {b: lsh_stats.collision_probability(ANGLES, b, n_trials=100, generator=_gen(b)) for b in (2, 8)}
    fig = ph.plot_collision_curves(ANGLES, measured, exact=lsh_stats.two_bucket_collision(ANGLES),
                                   ax=detached_axes())
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "exact for 2 buckets: 1 − θ/π"
    assert ax.lines[0].get_xdata()[-1] == pytest.approx(180.0)  # radians in, degrees on the axis


def test_recall_curves_with_predictions() -> None:
    c = lsh_stats.measure_collisions(ANGLES, 8, 4, n_trials=100, generator=_gen())
    fig = ph.plot_recall_curves(ANGLES, {4: c.any_round}, predicted={4: lsh_stats.multi_round_recall(c.per_round, 4)},
                                n_buckets=8, ax=detached_axes())
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and "n_buckets = 8" in ax.get_title()
    assert "1 − (1 − p)^n_hashes" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_bucket_balance_histogram() -> None:
    balance = lsh_stats.BucketBalance(lsh_stats.uniform_bucket_counts(16, length=256, n_trials=10, generator=_gen()))
    fig = ph.plot_bucket_balance({"uniform": balance}, ax=detached_axes())
    ax = fig.axes[0]
    assert len(ax.patches) == 1 and "n_buckets = 16" in ax.get_title()
    assert any(line.get_xdata()[0] == 2.0 for line in ax.lines)  # the chunk line at 2 × average


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ph.plot_collision_curves(ANGLES, {}), "at least one"),
        (lambda: ph.plot_collision_curves(ANGLES, {2: [0.5, 0.5]}), "2 values for 7 angles"),
        (lambda: ph.plot_collision_curves([0.0, 4.0], {2: [1.0, 0.0]}), r"\[0, π\]"),
        (lambda: ph.plot_recall_curves(ANGLES, {}), "at least one"),
        (lambda: ph.plot_recall_curves(ANGLES, {1: [1.0] * 7}, predicted={1: [1.0]}), "1 values for 7 angles"),
        (lambda: ph.plot_bucket_balance({}), "at least one"),
    ],
)
def test_curve_plots_reject_bad_input(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# -- the widget ---------------------------------------------------------------------------------------


def _parts(box: w.VBox) -> tuple[dict[str, w.DOMWidget], w.HTML, w.Image]:
    output = next(c for c in box.children if "rl-widget-output" in c._dom_classes)
    summary, chart = output.children
    sliders = [s for column in box.children[0].children for s in column.children]
    return {s.description: s for s in sliders}, summary, chart


def test_bucket_explorer_follows_the_widget_convention() -> None:
    box = ph.bucket_explorer()
    assert "rl-widget" in box._dom_classes
    outputs = [c for c in box.children if "rl-widget-output" in c._dom_classes]
    assert len(outputs) == 1
    sliders, summary, chart = _parts(box)
    assert isinstance(chart, w.Image) and chart.value[:8] == PNG
    assert box.initial_png == chart.value
    assert "θ = 30°" in summary.value
    # The browser test moves the first slider it finds: it must be the angle, and not at its maximum.
    first = box.children[0].children[0].children[0]
    assert first.description == "angle θ (°)" and first.value < first.max
    assert not any(isinstance(c, w.Output) for c in box.children)


@pytest.mark.parametrize("name, value", [("angle θ (°)", 90), ("n_buckets", 8), ("n_hashes", 2), ("seed", 7)])
def test_bucket_explorer_redraws_when_any_control_moves(name, value) -> None:
    box = ph.bucket_explorer()
    sliders, summary, chart = _parts(box)
    before = chart.value
    sliders[name].value = value
    assert chart.value != before and chart.value[:8] == PNG
    state = ph.explore_pair(*(sliders[n].value for n in ("angle θ (°)", "n_buckets", "n_hashes", "seed")))
    assert state.summary() in summary.value.replace("&#x27;", "'")


def test_bucket_explorer_offers_only_even_bucket_counts() -> None:
    sliders, _, _ = _parts(ph.bucket_explorer())
    n_buckets = sliders["n_buckets"]
    assert isinstance(n_buckets, w.SelectionSlider) and list(n_buckets.options) == list(range(2, 17, 2))
    with pytest.raises(TraitError):
        n_buckets.value = 7


def test_bucket_explorer_leaves_no_pyplot_figures_behind() -> None:
    plt.close("all")
    box = ph.bucket_explorer()
    sliders, _, _ = _parts(box)
    sliders["seed"].value = 3
    assert plt.get_fignums() == []
    assert matplotlib.get_backend()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n_buckets": 3}, "must be even"), ({"angle_degrees": 270}, r"\[0, π\]"),
     ({"n_hashes": 9}, r"n_hashes must be an int in \[1, 4\]"), ({"seed": 1.5}, "seed must be an int")],
)
def test_bucket_explorer_rejects_bad_starting_values(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        ph.bucket_explorer(**kwargs)


# -- buckets that never win ------------------------------------------------------------------------------


def test_empty_buckets_come_in_opposite_pairs_when_a_column_is_inside_the_hull() -> None:
    # Columns e0, e1 and a short one between them: ±r_2 lies inside the square of ±e0, ±e1 and never wins.
    short = 0.1 * torch.tensor([1.0, 1.0], dtype=torch.float64) / math.sqrt(2)
    rotation = torch.stack([torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), short], dim=1).double()
    assert ph.empty_buckets(rotation, 6) == [2, 5]
    # Lengthen it past the square's edge (|r_2| > 1/√2): it becomes a corner and owns an arc.
    assert ph.empty_buckets(rotation * torch.tensor([1.0, 1.0, 10.0], dtype=torch.float64), 6) == []


@pytest.mark.parametrize("n_buckets", [2, 4])
def test_two_columns_or_fewer_leave_no_bucket_empty(n_buckets) -> None:
    for seed in range(20):
        rotation = random_rotations(2, n_buckets, generator=_gen(seed), dtype=torch.float64)[0]
        assert ph.empty_buckets(rotation, n_buckets) == []


def test_empty_buckets_are_those_no_direction_hashes_to() -> None:
    rotation = random_rotations(2, 12, generator=_gen(3), dtype=torch.float64)[0]
    alpha = torch.linspace(0, 2 * math.pi, 7201, dtype=torch.float64)
    hit = set(hash_vectors(torch.stack([alpha.cos(), alpha.sin()], -1), 12, rotations=rotation[None])[0].tolist())
    empty = ph.empty_buckets(rotation, 12)
    assert empty and sorted(set(range(12)) - hit) == empty
    assert all((b + 6) % 12 in empty for b in empty)


def test_explorer_titles_name_the_empty_buckets() -> None:
    state = ph.explore_pair(30, 8, 3, seed=0)
    fig = ph.plot_bucket_explorer(state, fig=detached_axes().figure)
    circle_titles = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("round")]
    assert len(circle_titles) == 3
    for r, title in enumerate(circle_titles):
        empty = ph.empty_buckets(state.rotations[r], 8)
        assert (f"buckets {', '.join(map(str, empty))}: no arc" in title) == bool(empty)
