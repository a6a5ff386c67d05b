"""``intersection-v0`` from highway-env, configured as rl-agents configures it for the ego-attention paper.

Leurent & Mercat (2019), "Social Attention for Autonomous Decision-Making in Dense Traffic" (arXiv 1911.12250),
train a DQN on highway-env's intersection task with the configuration of eleurent/rl-agents
``scripts/configs/IntersectionEnv/env.json``. That file only overrides the observation (``absolute: true``,
``order: "shuffled"``) and the destination (``"o1"``, the left turn); everything else is the highway-env default for
``intersection-v0`` (checked against highway-env 1.12.1, ``highway_env/envs/intersection_env.py``):

* observation ``Kinematics``: ``(15, 7)`` float32, one row per vehicle, row 0 is the ego vehicle, features
  ``[presence, x, y, vx, vy, cos_h, sin_h]``; positions/velocities are absolute (world frame), normalised by
  ``features_range`` (x, y in [-100, 100] m, vx, vy in [-20, 20] m/s) and clipped to [-1, 1]; the 14 other rows
  are shuffled every step (so the network cannot rely on an order) and absent vehicles are all-zero rows
  (presence 0).
* action ``DiscreteMetaAction`` longitudinal only: 0 SLOWER, 1 IDLE, 2 FASTER (target speeds 0, 4.5, 9 m/s).
* reward per step: -5 on collision, else ``clip(lmap(speed, [7, 9], [0, 1]))``; arriving replaces it by 1; times
  ``on_road``. Episodes end on collision or arrival (terminated) or after 13 s = 13 agent steps (truncated).

The environment is headless: ``render_mode=None`` never opens a window and ``render_mode="rgb_array"`` renders
off-screen (SDL's ``offscreen`` video driver; ``dummy`` would give black frames, see :func:`_headless`).
"""
from __future__ import annotations

import copy
import os
from typing import Any, Callable


def _headless() -> None:
    """Headless pygame. highway-env 1.12.1 disables drawing altogether (black frames) when SDL_VIDEODRIVER is
    "dummy", so we use SDL's "offscreen" video driver instead, which needs no display and draws normally."""
    if os.environ.get("SDL_VIDEODRIVER", "dummy") == "dummy":
        os.environ["SDL_VIDEODRIVER"] = "offscreen"
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


_headless()
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym  # noqa: E402
import highway_env  # noqa: E402,F401  (registers the highway-env ids)
import numpy as np  # noqa: E402

ENV_ID = "intersection-v0"
ACTIONS: tuple[str, ...] = ("SLOWER", "IDLE", "FASTER")
FEATURES: tuple[str, ...] = ("presence", "x", "y", "vx", "vy", "cos_h", "sin_h")
N_VEHICLES = 15
OBS_SHAPE = (N_VEHICLES, len(FEATURES))
FEATURES_RANGE = {"x": [-100, 100], "y": [-100, 100], "vx": [-20, 20], "vy": [-20, 20]}

#: rl-agents ``scripts/configs/IntersectionEnv/env.json`` (the keys it sets on top of highway-env's defaults).
RL_AGENTS_CONFIG: dict[str, Any] = {
    "observation": {
        "type": "Kinematics",
        "vehicles_count": N_VEHICLES,
        "features": list(FEATURES),
        "features_range": FEATURES_RANGE,
        "absolute": True,
        "order": "shuffled",
    },
    "destination": "o1",
}


def valid_config_keys() -> list[str]:
    """The top-level configuration keys ``intersection-v0`` understands (highway-env's ``default_config``)."""
    from highway_env.envs.intersection_env import IntersectionEnv

    return sorted(IntersectionEnv.default_config())


def env_config(**overrides: Any) -> dict[str, Any]:
    """The rl-agents configuration with ``overrides`` (top-level highway-env config keys) applied.

    Raises ValueError for an unknown key, naming the valid ones.
    """
    valid = valid_config_keys()
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown intersection-v0 config key(s) {unknown}; valid keys are: {', '.join(valid)}")
    config = copy.deepcopy(RL_AGENTS_CONFIG)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **copy.deepcopy(value)}
        else:
            config[key] = copy.deepcopy(value)
    return config


def gym_make(config: dict[str, Any], render_mode: str | None = None) -> gym.Env:
    """``gym.make("intersection-v0", ...)`` without gymnasium's "v0 is out of date" warning: we keep v0 on purpose,
    it is the version the paper and rl-agents used (v2 changes which lanes count as neighbours)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        return gym.make(ENV_ID, config=config, render_mode=render_mode)


def make_env(seed: int | None = 0, render_mode: str | None = None, **overrides: Any) -> gym.Env:
    """``intersection-v0`` configured as in rl-agents, reset once with ``seed`` so it is ready to step.

    Args:
        seed: seeds the environment's generator (traffic spawning, the shuffling of the observation rows) and the
            action space; later ``reset()`` calls without a seed continue that generator deterministically.
        render_mode: None (no rendering) or "rgb_array" (``env.render()`` returns an (H, W, 3) uint8 frame).
        **overrides: top-level highway-env config keys, e.g. ``duration=5`` (dicts are merged one level deep).
    """
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array' (headless), got {render_mode!r}")
    config = env_config(**overrides)
    if render_mode is not None:
        _headless()
    env = gym_make(config, render_mode)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def ego_speed(env: gym.Env) -> float:
    """The ego vehicle's current speed in m/s."""
    return float(env.unwrapped.vehicle.speed)


def has_arrived(env: gym.Env) -> bool:
    """Whether the ego vehicle reached its destination (exited the intersection on the o1 branch)."""
    u = env.unwrapped
    return bool(u.has_arrived(u.vehicle))


def obs_positions(obs: np.ndarray) -> np.ndarray:
    """World (x, y) positions in metres of the observed vehicles, ``(15, 2)`` (meaningful where presence is 1)."""
    lo, hi = np.array([FEATURES_RANGE["x"][0], FEATURES_RANGE["y"][0]]), np.array([FEATURES_RANGE["x"][1],
                                                                                 FEATURES_RANGE["y"][1]])
    return lo + (obs[:, 1:3] + 1) / 2 * (hi - lo)


# --------------------------------------------------------------------------------------------------------------------
# Policies, evaluation and rendering
# --------------------------------------------------------------------------------------------------------------------
Policy = Callable[[np.ndarray], int]

#: Evaluation seeds start here; training seeds its environments with ``seed * 1000 + worker`` (< 10**6 for the seeds
#: we use), so evaluation episodes are fresh traffic scenes the agents never trained on.
EVAL_SEED = 1_000_000


def constant_policy(action: int) -> Policy:
    """Always the same action (0 SLOWER, 1 IDLE, 2 FASTER)."""
    if action not in range(len(ACTIONS)):
        raise ValueError(f"action must be 0 (SLOWER), 1 (IDLE) or 2 (FASTER), got {action!r}")
    return lambda obs: action


def random_policy(seed: int = 0) -> Policy:
    """Uniformly random actions from its own seeded generator."""
    rng = np.random.default_rng(seed)
    return lambda obs: int(rng.integers(len(ACTIONS)))


def run_episode(env: gym.Env, policy: Policy, seed: int, render: bool = False, max_steps: int | None = None,
                callback: Callable[[np.ndarray], Any] | None = None) -> dict[str, Any]:
    """One episode from ``env.reset(seed=seed)``; returns its return, length, outcome and (optionally) frames.

    ``callback(obs)`` is called before every action and its results are collected in ``"extras"`` (e.g. Q-values
    and attention for the figures). ``frames`` holds ``len + 1`` frames (the initial scene and one per step) and
    ``pixels`` the pixel coordinates of the observed vehicles in each frame.
    """
    obs, _ = env.reset(seed=seed)
    ret, steps, speeds, crashed = 0.0, 0, [], False
    out: dict[str, list] = {"obs": [], "actions": [], "rewards": [], "frames": [], "pixels": [], "extras": []}

    def snap(o):
        if render:
            out["frames"].append(env.render())
            out["pixels"].append(world_to_pixel(env, obs_positions(o)))

    snap(obs)
    while True:
        if callback is not None:
            out["extras"].append(callback(obs))
        action = int(policy(obs))
        if action not in range(len(ACTIONS)):
            raise ValueError(f"the policy returned {action!r}; actions are 0 (SLOWER), 1 (IDLE), 2 (FASTER)")
        out["obs"].append(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        out["actions"].append(action)
        out["rewards"].append(float(reward))
        ret += float(reward)
        steps += 1
        speeds.append(float(info["speed"]))
        crashed = crashed or bool(info["crashed"])
        snap(obs)
        if terminated or truncated or (max_steps is not None and steps >= max_steps):
            break
    arrived = has_arrived(env) and not crashed
    return dict(out, seed=seed, ret=ret, length=steps, arrived=arrived, crashed=crashed,
                mean_speed=float(np.mean(speeds)), truncated=bool(truncated))


def mean_ci(x: np.ndarray | list[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval."""
    from scipy import stats

    x = np.asarray(x, float)
    if len(x) < 2:
        return float(x.mean()), float("nan")
    half = stats.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(half)


def evaluate(policy: Policy, n_episodes: int = 100, seed: int = EVAL_SEED, progress: bool = True,
             desc: str = "evaluate", **overrides: Any) -> dict[str, Any]:
    """Run ``policy`` on ``n_episodes`` fresh scenes (env seeds ``seed, seed+1, ...``) and summarise.

    Returns mean return with its 95% CI (Student t), success (arrival) and collision rates, mean episode length,
    mean ego speed (m/s, averaged over steps then episodes) and the per-episode returns.
    """
    from tqdm import tqdm

    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    env = make_env(seed, **overrides)
    eps = [run_episode(env, policy, seed + i) for i in tqdm(range(n_episodes), desc=desc, disable=not progress)]
    env.close()
    returns = [e["ret"] for e in eps]
    mean, half = mean_ci(returns)
    return dict(n_episodes=n_episodes, seed=seed, mean_return=mean, ci95=half,
                success_rate=float(np.mean([e["arrived"] for e in eps])),
                collision_rate=float(np.mean([e["crashed"] for e in eps])),
                mean_length=float(np.mean([e["length"] for e in eps])),
                mean_speed=float(np.mean([e["mean_speed"] for e in eps])),
                returns=[round(r, 4) for r in returns])


def world_to_pixel(env: gym.Env, xy: np.ndarray) -> np.ndarray:
    """World coordinates (n, 2) in metres -> pixel (column, row) in the last ``env.render()`` frame."""
    viewer = getattr(env.unwrapped, "viewer", None)
    if viewer is None:
        raise ValueError("world_to_pixel needs a rendered frame: make the env with render_mode='rgb_array' and call "
                         "env.render() first")
    surface = viewer.sim_surface
    return np.array([surface.pos2pix(float(x), float(y)) for x, y in xy], float)


# --------------------------------------------------------------------------------------------------------------------
# Figures: a rendered scene with the ego vehicle's attention drawn on it, and the action bars
# --------------------------------------------------------------------------------------------------------------------
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
