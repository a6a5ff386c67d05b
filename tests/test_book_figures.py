"""The book's figures are readable: the highway episode animation (frame size, text size, legend, lines kept inside
the scene) and circuit graphs that fit a page with their caption."""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from rlinterp.interp import circuit_plots  # noqa: E402
from rlinterp.studies import highway_plots as hwp  # noqa: E402


def _episode(length=3, size=300, seed=0):
    """A rendered-episode dict as run_episode returns it, with vehicles inside and outside the view."""
    rng = np.random.default_rng(seed)
    pixels = [np.r_[[[150.0, 200.0]], rng.uniform(-300, 600, size=(14, 2))] for _ in range(length)]
    present = np.r_[np.ones(6), np.zeros(9)]
    obs = [np.c_[present, np.zeros((15, 6))] for _ in range(length)]
    extras = [{"q": np.array([0.1, 0.5, 0.3]), "pattern": rng.dirichlet(np.ones(6) * 0.5, size=2) @ np.eye(6, 15)}
              for _ in range(length)]
    return {"length": length, "frames": [np.full((size, size, 3), 100, np.uint8)] * length, "pixels": pixels,
            "obs": obs, "extras": extras, "actions": [t % 3 for t in range(length)]}


@pytest.mark.parametrize("p0, p1, expect", [
    ((10, 10), (50, 60), ((10, 10), (50, 60), False)),      # inside: unchanged
    ((50, 50), (150, 50), ((50, 50), (100, 50), True)),     # leaves on the right
    ((50, 50), (50, -100), ((50, 50), (50, 0), True)),      # leaves at the top
    ((-50, 50), (150, 50), ((0, 50), (100, 50), True)),     # starts outside too
])
def test_clip_to_frame(p0, p1, expect):
    a, b, clipped = hwp.clip_to_frame(np.array(p0, float), np.array(p1, float), 100, 100)
    np.testing.assert_allclose(a, expect[0])
    np.testing.assert_allclose(b, expect[1])
    assert clipped == expect[2]
    assert hwp.clip_to_frame(np.array([-10.0, -10.0]), np.array([-5.0, 200.0]), 100, 100) is None  # misses


def test_attention_lines_stay_inside_the_scene_and_heads_have_legend_entries():
    ep = _episode()
    fig, ax = plt.subplots()
    hwp.draw_attention(ax, ep["frames"][0], ep["pixels"][0], ep["obs"][0][:, 0] > 0.5, ep["extras"][0]["pattern"])
    h, w = ep["frames"][0].shape[:2]
    lines = [ln for ln in ax.lines if len(ln.get_xdata()) == 2]
    assert lines, "no attention line drawn"
    for ln in lines:
        xs, ys = np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata())
        assert (xs >= -1e-6).all() and (xs <= w).all() and (ys >= -1e-6).all() and (ys <= h).all()
    arrowheads = [ln for ln in ax.lines if len(ln.get_xdata()) == 1]
    assert arrowheads, "vehicles outside the view are marked at the frame's edge"
    assert {t.get_text() for t in ax.legend().get_texts()} == {"head 0", "head 1"}
    plt.close(fig)


def test_episode_gif_has_one_large_frame_per_step_with_legible_text_and_a_legend():
    ep = _episode(length=3)
    gif = Image.open(io.BytesIO(hwp.episode_gif(ep, fps=2.0)))
    assert gif.format == "GIF" and gif.n_frames == 3
    assert gif.size[0] >= 700 and gif.size[1] >= 420  # was 384 x 240
    fig = hwp.episode_figure(ep, 1)
    texts = [t for ax in fig.axes for t in ax.texts]  # the Q-values written on the bars
    assert [t.get_text() for t in texts] == ["Q=0.10", "Q=0.50", "Q=0.30"]
    px_per_pt = fig.dpi / 72
    assert min(t.get_fontsize() for t in texts) * px_per_pt >= 12  # >= 12 px in the GIF (was ~6)
    assert min(lbl.get_fontsize() for ax in fig.axes for lbl in ax.get_xticklabels()) * px_per_pt >= 12
    [legend] = fig.legends
    assert {"head 0", "head 1"} <= {t.get_text() for t in legend.get_texts()}
    plt.close(fig)
    still = Image.open(io.BytesIO(hwp.episode_frame_png(ep, 2)))
    assert still.format == "PNG" and still.size[0] >= 1200
    with pytest.raises(ValueError, match="step t"):
        hwp.episode_figure(ep, 3)
    with pytest.raises(ValueError, match="fps"):
        hwp.episode_gif(ep, fps=0)


@pytest.mark.parametrize("cols, rows", [(1, 1), (3, 4), (4, 40), (6, 200)])
def test_circuit_figures_fit_a_page_with_their_caption(cols, rows):
    w, h = circuit_plots.figure_size(cols, rows)
    assert h <= circuit_plots.MAX_ASPECT * w + 1e-9 and h <= 1.2 + 0.45 * rows + 1e-9
    assert circuit_plots.MAX_ASPECT * 6.5 <= 7.5 + 1e-9  # at the 6.5 in text width: at most 7.5 in tall


def test_a_tall_circuit_is_squeezed_with_smaller_nodes_not_cut():
    from rlinterp.models.planted import PlantedMLP

    g = PlantedMLP(d_in=30, width=(30, 30), n_relevant=4, seed=0).graph()
    ax = circuit_plots.draw_circuit(g, show_all_nodes=True, max_edges=20)
    w, h = ax.figure.get_size_inches()
    assert h / w <= circuit_plots.MAX_ASPECT + 1e-9
    labels = [t for t in ax.texts if t.get_bbox_patch() is not None]  # nodes as labels of the row's height
    assert len(labels) >= 30 and not ax.collections
    assert min(t.get_fontsize() for t in labels) >= 4.5
    fig = ax.figure
    fig.canvas.draw()
    boxes = sorted((t.get_bbox_patch().get_window_extent() for t in labels if t.get_position()[0] == 1),
                   key=lambda b: b.y0)
    assert all(lo.y1 <= hi.y0 + 0.5 for lo, hi in zip(boxes, boxes[1:]))  # neighbours in a column do not overlap
    plt.close(ax.figure)
    with pytest.raises(ValueError):
        circuit_plots.figure_size(0, 3)
