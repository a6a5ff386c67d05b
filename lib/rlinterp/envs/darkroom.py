"""Dark Room: the task family of Algorithm Distillation (Laskin et al. 2022) that the AD study uses.

**Dark Room.** A ``size x size`` grid (default 9 x 9), the agent starts at the centre, 5 actions
(left, right, up, down, no-op; moving into a wall leaves the agent in place), episodes last ``max_steps`` = 20 steps
(time-limit truncation). The goal cell is invisible: the observation is only the agent's own cell
(``y * size + x``); the reward is 1 for every step that *ends* on the goal. One task per goal cell; the agent has to
find the goal by exploration and then go straight there in later episodes. The optimal return of a goal at Manhattan
distance ``d`` from the centre is ``max_steps - d + 1`` (``max_steps`` for the centre itself; :func:`oracle_return`).

Contents
- :class:`DarkRoomEnv`: a ``gymnasium.Env`` (id ``rlinterp/DarkRoom-v0``, registered when this module is imported).
- :class:`BatchedDarkRoom`: many tasks at once in numpy (sources, evaluation).
- :func:`darkroom_goal_split`: the deterministic train/held-out goal split (:func:`n_held_out`); :func:`check_size`.
- :func:`oracle_actions`, :func:`oracle_return`: the optimal dark-room policy and its return.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlinterp.validation import check_int

#: action names, in action-index order
ACTIONS = ("left", "right", "up", "down", "noop")
#: (dx, dy) per action; y grows downwards (row index)
DELTAS = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], dtype=np.int64)
NOOP = 4


#: The room of the AD study's shipped models (9 x 9: 81 goals, 16 of them held out).
DEFAULT_SIZE = 9


def check_size(size: Any, name: str = "size") -> int:
    """A room size: an odd integer >= 3 (the agent starts at the centre cell)."""
    size = check_int(name, size, 3)
    if size % 2 == 0:
        raise ValueError(f"{name} must be odd so that the grid has a centre cell, got {size}")
    return size


_check_size = check_size


def n_held_out(size: int = DEFAULT_SIZE) -> int:
    """How many goals :func:`darkroom_goal_split` holds out of a ``size x size`` room by default: 16 of the 9 x 9
    room's 81, and the same fraction (16/81, at least one) of any other room's goals."""
    size = check_size(size)
    return 16 if size == DEFAULT_SIZE else max(1, round(16 * size * size / DEFAULT_SIZE ** 2))


def _check_goals(goals: Any, size: int) -> np.ndarray:
    g = np.asarray(goals)
    if g.ndim == 1:
        g = g[None]
    if g.ndim != 2 or g.shape[1] != 2 or not np.issubdtype(g.dtype, np.integer):
        raise ValueError(f"goal(s) must be integer (x, y) pairs, shape (2,) or (n, 2), got {np.asarray(goals)!r}")
    if (g < 0).any() or (g >= size).any():
        raise ValueError(f"goal coordinates must lie in [0, {size - 1}] for a {size}x{size} room, got {g.tolist()}")
    return g.astype(np.int64)


def oracle_return(goals: Any, size: int = 9, max_steps: int = 20) -> np.ndarray:
    """Optimal return per goal: walk the Manhattan distance ``d`` from the centre, then stay: ``max_steps - d + 1``."""
    size = _check_size(size)
    g = _check_goals(goals, size)
    c = size // 2
    d = np.abs(g - c).sum(-1)
    return np.clip(max_steps - d + 1, 0, max_steps).astype(np.float64)  # d = 0: every one of the steps pays


def oracle_actions(pos: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Optimal action per task: move along x, then y, towards the goal; no-op on the goal. Shapes (B, 2) -> (B,)."""
    dx = goals[:, 0] - pos[:, 0]
    dy = goals[:, 1] - pos[:, 1]
    a = np.full(len(pos), NOOP, dtype=np.int64)
    a = np.where(dy > 0, 3, a)
    a = np.where(dy < 0, 2, a)
    a = np.where(dx > 0, 1, a)
    a = np.where(dx < 0, 0, a)
    return a


def darkroom_goal_split(size: int = 9, n_test: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All ``size**2`` goal cells shuffled with ``seed`` and split into (train goals, held-out goals), each (n, 2);
    ``n_test`` held out (default :func:`n_held_out`: 16 of the 9 x 9 room's 81)."""
    size = _check_size(size)
    n_test = n_held_out(size) if n_test is None else check_int("n_test", n_test, 1)
    if n_test >= size * size:
        raise ValueError(f"n_test must be < {size * size} (the number of goals), got {n_test}")
    cells = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="xy"), -1).reshape(-1, 2)  # (x, y)
    perm = np.random.default_rng(seed).permutation(len(cells))
    cells = cells[perm]
    return cells[n_test:].copy(), cells[:n_test].copy()


# ----------------------------------------------------------------------------------------------------------------
# Dark Room


class DarkRoomEnv(gym.Env):
    """Dark Room (registered as ``rlinterp/DarkRoom-v0``).

    Observation: ``Discrete(size**2)``, the agent's cell ``y * size + x``. Actions: ``Discrete(5)`` = :data:`ACTIONS`.
    Reward 1 for each step ending on the goal. Truncated after ``max_steps`` steps, never terminated.
    ``goal=None`` draws a goal uniformly at each ``reset`` from the env's ``np_random``; ``reset(options={"goal":
    (x, y)})`` sets it explicitly.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, goal: Any = None, size: int = 9, max_steps: int = 20, render_mode: str | None = None):
        self.size = _check_size(size)
        self.max_steps = check_int("max_steps", max_steps, 1)
        self.fixed_goal = None if goal is None else _check_goals(goal, self.size)[0]
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = spaces.Discrete(self.size * self.size)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.centre = np.array([self.size // 2, self.size // 2], dtype=np.int64)
        self.pos = self.centre.copy()
        self.goal = self.fixed_goal if self.fixed_goal is not None else self.centre.copy()
        self.t = 0

    def _obs(self) -> int:
        return int(self.pos[1] * self.size + self.pos[0])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and "goal" in options:
            self.goal = _check_goals(options["goal"], self.size)[0]
        elif self.fixed_goal is not None:
            self.goal = self.fixed_goal
        else:
            self.goal = self.np_random.integers(0, self.size, size=2).astype(np.int64)
        self.pos = self.centre.copy()
        self.t = 0
        return self._obs(), {"pos": self.pos.copy()}

    def step(self, action: Any):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer in [0, {len(ACTIONS) - 1}] ({', '.join(ACTIONS)}), "
                             f"got {action!r}")
        if self.t >= self.max_steps:
            raise ValueError("the episode is over (max_steps reached); call reset() before step()")
        self.pos = np.clip(self.pos + DELTAS[int(action)], 0, self.size - 1)
        self.t += 1
        reward = float((self.pos == self.goal).all())
        return self._obs(), reward, False, self.t >= self.max_steps, {"pos": self.pos.copy()}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        rows = []
        for y in range(self.size):
            rows.append("".join("A" if (x, y) == tuple(self.pos) else "G" if (x, y) == tuple(self.goal) else "."
                                for x in range(self.size)))
        return "\n".join(rows) + "\n"


class BatchedDarkRoom:
    """``B`` Dark Rooms with goals ``goals`` (B, 2) stepped together in numpy; all episodes are synchronous."""

    def __init__(self, goals: Any, size: int = 9, max_steps: int = 20):
        self.size = _check_size(size)
        self.max_steps = check_int("max_steps", max_steps, 1)
        self.goals = _check_goals(goals, self.size)  # (B, 2)
        self.B = len(self.goals)
        self.centre = np.array([self.size // 2, self.size // 2], dtype=np.int64)
        self.reset()

    @property
    def obs(self) -> np.ndarray:
        return self.pos[:, 1] * self.size + self.pos[:, 0]  # (B,)

    def reset(self) -> np.ndarray:
        self.pos = np.tile(self.centre, (self.B, 1))  # (B, 2)
        self.t = 0
        return self.obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Returns (obs (B,), reward (B,), episode_over)."""
        actions = np.asarray(actions)
        if actions.shape != (self.B,) or (actions < 0).any() or (actions >= len(ACTIONS)).any():
            raise ValueError(f"actions must be {self.B} integers in [0, {len(ACTIONS) - 1}], got shape {actions.shape}")
        if self.t >= self.max_steps:
            raise ValueError("the episodes are over; call reset() before step()")
        self.pos = np.clip(self.pos + DELTAS[actions], 0, self.size - 1)
        self.t += 1
        reward = (self.pos == self.goals).all(-1).astype(np.float64)
        return self.obs, reward, self.t >= self.max_steps


# ----------------------------------------------------------------------------------------------------------------
# gymnasium registration (guarded: importing twice, or from envs/__init__, is fine)

def register_envs() -> None:
    from gymnasium.envs.registration import register, registry

    if "rlinterp/DarkRoom-v0" not in registry:
        register(id="rlinterp/DarkRoom-v0", entry_point="rlinterp.envs.darkroom:DarkRoomEnv")


register_envs()
