"""Drawing for the highway study: world -> pixel coordinates of a rendered frame, attention arrows on a frame,
Q-value bars, and an episode as a GIF."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rlinterp.envs.highway import ACTIONS


def world_to_pixel(env: gym.Env, xy: np.ndarray) -> np.ndarray:
    """World coordinates (n, 2) in metres -> pixel (column, row) in the last ``env.render()`` frame."""
    viewer = getattr(env.unwrapped, "viewer", None)
    if viewer is None:
        raise ValueError("world_to_pixel needs a rendered frame: make the env with render_mode='rgb_array' and call "
                         "env.render() first")
    surface = viewer.sim_surface
    return np.array([surface.pos2pix(float(x), float(y)) for x, y in xy], float)


HEAD_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:purple")


def clip_to_frame(p0: np.ndarray, p1: np.ndarray, width: float, height: float) \
        -> tuple[np.ndarray, np.ndarray, bool] | None:
    """The part of the segment p0 -> p1 (pixel column, row) inside the frame [0, width] x [0, height]
    (Liang-Barsky): ``(start, end, end_clipped)``, or None when the segment misses the frame."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    t0, t1 = 0.0, 1.0
    for p, q in ((-d[0], p0[0]), (d[0], width - p0[0]), (-d[1], p0[1]), (d[1], height - p0[1])):
        if p == 0:
            if q < 0:
                return None
            continue
        r = q / p
        if p < 0:
            t0 = max(t0, r)
        else:
            t1 = min(t1, r)
        if t0 > t1:
            return None
    return p0 + t0 * d, p0 + t1 * d, t1 < 1.0


def draw_attention(ax, frame: np.ndarray, pixels: np.ndarray, present: np.ndarray, pattern: np.ndarray | None,
                   max_width: float = 8.0, title: str | None = None, fontsize: float = 9) -> None:
    """Scene ``frame`` with a line from the ego vehicle (row 0) to every present vehicle per head.

    pixels [15, 2] (from :func:`world_to_pixel`), present [15] bool, pattern [H, 15] attention of the ego query
    (line width proportional to the weight; the weight on the ego itself is drawn as a circle around it). Lines stay
    inside the frame: a line to a vehicle outside the rendered view ends at the frame's edge with an arrowhead.
    Each head is labelled ("head 0", ...) for ``ax.legend()``.
    """
    ax.imshow(frame)
    h, w = frame.shape[:2]
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ego = pixels[0]
    if pattern is not None:
        n_heads = pattern.shape[0]
        for hd in range(n_heads):
            off = (hd - (n_heads - 1) / 2) * 3.0  # small offset so the heads' lines do not overlap
            color = HEAD_COLORS[hd % len(HEAD_COLORS)]
            for j in np.flatnonzero(present)[1:]:
                if pattern[hd, j] <= 0.01:
                    continue
                seg = clip_to_frame(ego + off, pixels[j] + off, w - 1, h - 1)
                if seg is None:
                    continue
                a, b, clipped = seg
                lw = max_width * pattern[hd, j]
                ax.plot([a[0], b[0]], [a[1], b[1]], color=color, lw=lw, alpha=0.8, solid_capstyle="round")
                if clipped:  # the vehicle is outside the view: an arrowhead at the edge points towards it
                    angle = np.degrees(np.arctan2(-(b[1] - a[1]), b[0] - a[0]))  # rows grow downwards
                    ax.plot([b[0]], [b[1]], marker=(3, 0, angle - 90), color=color, ms=7 + lw, clip_on=False)
            ax.scatter([ego[0]], [ego[1]], s=400 * pattern[hd, 0], facecolors="none", edgecolors=color, linewidths=2)
            ax.plot([], [], color=color, lw=3, label=f"head {hd}")  # legend entry
    if title:
        ax.set_title(title, fontsize=fontsize, pad=8)  # clear of the arrowheads on the top edge


def draw_action_bars(ax, q_values: np.ndarray, action: int | None = None, fontsize: float = 7) -> None:
    """Softmax(Q) of the three actions as bars, with the Q-values written on them; the chosen action is darker."""
    probs = np.exp(q_values - q_values.max())
    probs /= probs.sum()
    colors = ["0.3" if i == action else "0.7" for i in range(len(ACTIONS))]
    ax.bar(range(len(ACTIONS)), probs, color=colors)
    for i, (p, q) in enumerate(zip(probs, q_values)):
        ax.text(i, min(p + 0.03, 0.88), f"Q={q:.2f}", ha="center", fontsize=fontsize)
    ax.set_xticks(range(len(ACTIONS)), ACTIONS, fontsize=fontsize)
    ax.set_ylim(0, 1)
    ax.tick_params(axis="y", labelsize=fontsize)


#: size of one frame of :func:`episode_gif` / :func:`episode_frame_png` in inches, and its text size in points
FRAME_SIZE = (8.4, 5.2)
FRAME_FONTSIZE = 12


def episode_figure(episode: dict[str, Any], t: int, dpi: int = 90):
    """One step ``t`` of a rendered episode (see :func:`episode_gif`) as a matplotlib figure: the scene with the
    attention lines, the softmax(Q) bars with their values, and a legend for the heads."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not 0 <= t < episode["length"]:
        raise ValueError(f"step t must lie in [0, {episode['length']}), got {t}")
    ex = episode["extras"][t]
    fs = FRAME_FONTSIZE
    fig, (a0, a1) = plt.subplots(1, 2, figsize=FRAME_SIZE, dpi=dpi, gridspec_kw={"width_ratios": [3, 1.5]})
    draw_attention(a0, episode["frames"][t], episode["pixels"][t], episode["obs"][t][:, 0] > 0.5, ex["pattern"],
                   title=f"t = {t}   action: {ACTIONS[episode['actions'][t]]}", fontsize=fs + 1)
    draw_action_bars(a1, ex["q"], episode["actions"][t], fontsize=fs - 1)
    a1.set_ylabel("softmax(Q)", fontsize=fs - 1)
    a1.set_title("Q-values", fontsize=fs + 1)
    handles = [Line2D([], [], color=HEAD_COLORS[hd % len(HEAD_COLORS)], lw=3, label=f"head {hd}")
               for hd in range(np.asarray(ex["pattern"]).shape[0])]
    handles += [Line2D([], [], ls="none", marker="o", mfc="none", mec="0.2", ms=11, label="ring: weight on itself"),
                Line2D([], [], ls="none", marker=">", color="0.2", ms=9, label="vehicle outside the view")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=fs - 2, frameon=False,
               handlelength=1.6, columnspacing=1.2)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _figure_image(fig):
    from PIL import Image

    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])


def episode_gif(episode: dict[str, Any], fps: float = 2.0, dpi: int = 90) -> bytes:
    """An animated GIF (bytes) of a rendered episode from :func:`run_episode` whose callback returned
    ``{"q": [3], "pattern": [H, 15]}``: one :func:`episode_figure` per step (756 x 468 pixels at the default dpi)."""
    import io

    import matplotlib.pyplot as plt

    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    images = []
    for t in range(episode["length"]):
        fig = episode_figure(episode, t, dpi)
        images.append(_figure_image(fig))
        plt.close(fig)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return buf.getvalue()


def episode_frame_png(episode: dict[str, Any], t: int, dpi: int = 150) -> bytes:
    """Step ``t`` of the episode as a PNG (bytes), drawn as one frame of :func:`episode_gif`: the still that a
    static output (the PDF) shows in place of the animation."""
    import io

    import matplotlib.pyplot as plt

    fig = episode_figure(episode, t, dpi)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
