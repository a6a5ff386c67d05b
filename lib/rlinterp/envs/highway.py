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

This module holds the environment only (configuration, :func:`make_env`, observation helpers); policies, episodes
and evaluation are in :mod:`rlinterp.studies.highway`, drawing in :mod:`rlinterp.studies.highway_plots`.
"""
from __future__ import annotations

import copy
import os
from typing import Any


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
# Figures: a rendered scene with the ego vehicle's attention drawn on it, and the action bars
# --------------------------------------------------------------------------------------------------------------------
