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


def draw_attention(ax, frame: np.ndarray, pixels: np.ndarray, present: np.ndarray, pattern: np.ndarray | None,
                   max_width: float = 8.0, title: str | None = None) -> None:
    """Scene ``frame`` with a line from the ego vehicle (row 0) to every present vehicle per head.

    pixels [15, 2] (from :func:`world_to_pixel`), present [15] bool, pattern [H, 15] attention of the ego query
    (line width proportional to the weight; the weight on the ego itself is drawn as a circle around it).
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
                if pattern[hd, j] > 0.01:
                    ax.plot([ego[0] + off, pixels[j, 0] + off], [ego[1] + off, pixels[j, 1] + off], color=color,
                            lw=max_width * pattern[hd, j], alpha=0.8, solid_capstyle="round")
            ax.scatter([ego[0]], [ego[1]], s=400 * pattern[hd, 0], facecolors="none", edgecolors=color,
                       linewidths=2, label=f"head {hd}")
    if title:
        ax.set_title(title, fontsize=9)


def draw_action_bars(ax, q_values: np.ndarray, action: int | None = None) -> None:
    """Softmax(Q) of the three actions as bars, with the Q-values written on them; the chosen action is darker."""
    probs = np.exp(q_values - q_values.max())
    probs /= probs.sum()
    colors = ["0.3" if i == action else "0.7" for i in range(len(ACTIONS))]
    ax.bar(range(len(ACTIONS)), probs, color=colors)
    for i, (p, q) in enumerate(zip(probs, q_values)):
        ax.text(i, min(p + 0.03, 0.9), f"Q={q:.2f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(ACTIONS)), ACTIONS, fontsize=7)
    ax.set_ylim(0, 1)
    ax.tick_params(axis="y", labelsize=7)


def episode_gif(episode: dict[str, Any], fps: float = 2.0, dpi: int = 60) -> bytes:
    """An animated GIF (bytes) of a rendered episode from :func:`run_episode` whose callback returned
    ``{"q": [3], "pattern": [H, 15]}``: the scene with attention lines and the action bars, one frame per step."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    images = []
    for t in range(episode["length"]):
        ex = episode["extras"][t]
        fig, (a0, a1) = plt.subplots(1, 2, figsize=(6.4, 4), dpi=dpi, gridspec_kw={"width_ratios": [3, 1.4]})
        draw_attention(a0, episode["frames"][t], episode["pixels"][t], episode["obs"][t][:, 0] > 0.5, ex["pattern"],
                       title=f"t = {t}  action: {ACTIONS[episode['actions'][t]]}")
        draw_action_bars(a1, ex["q"], episode["actions"][t])
        fig.tight_layout()
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]))
        plt.close(fig)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return buf.getvalue()
