"""Heist: procgen's heist rules on a grid, as a native gymnasium environment (``rlinterp/Heist-v0``).

**procgen heist** (openai/procgen ``src/games/heist.cpp`` and ``mazegen.cpp``; rules read, code not copied). A maze
made by Kruskal's algorithm (a tree: exactly one path between two free cells) placed at a random offset in a
wall-filled square world; up to 3 coloured lock/key pairs (blue, green, red = key index 0, 1, 2); a lock blocks its
cell until the key of its colour is held (keys are never used up); the agent, keys and gem are placed in stages so
that the locks force the order key 0 -> lock 0 -> key 1 -> lock 1 -> ... -> gem; reaching the gem gives reward 10
and ends the episode (nothing else is rewarded); keys held are drawn as small icons at the top right of the image,
key 0 rightmost. procgen's *easy* distribution: world 9 cells, difficulty ``d`` uniform in {0, 1, 2}, maze side
``5 + 2 d`` (5, 7 or 9), ``min(3, d + U{0, 1})`` keys, 64x64x3 observation of the whole world, continuous movement
(max speed 0.75 cell per step), 15 actions (0..8 move, 9..14 stand still), time-out 1000 steps.

**This environment** keeps the rules and makes the world a grid (one move = one cell):

* *Maze.* ``m x m`` cells (``m`` odd); cells with two even coordinates are the tree's nodes, Kruskal's algorithm
  (random edge order, union-find) opens the cell between two nodes when they are not yet connected. Locks go on
  *forks* (free cells with more than two free orthogonal neighbours; ``min(num_keys, #forks)`` of them, so a level
  can have fewer keys than drawn), the agent on a free cell not orthogonally next to a lock. Staged placement: with
  locks ``0..s-1`` open, ``R_s`` is the set of cells reachable from the agent (orthogonal moves, other locks
  closed); entity ``s`` (key ``s``, or the gem when ``s`` = number of keys) is drawn uniformly among the cells that
  ``R_s`` adds to ``R_{s-1}`` (locks and the agent's cell excluded), and lock ``s`` is the not-yet-numbered lock
  closest (BFS from the agent through ``R_s``) to ``R_s``; ties go to the smaller (row, col). On a tree this forces
  the order: key ``s+1`` lies behind lock ``s``, the gem behind the last lock.
* *Family.* :class:`HeistConfig`: difficulty ``d`` uniform in ``[min_difficulty, max_difficulty]``, maze side
  ``5 + 2 d``, keys ``min(max_keys, d + U{0, 1})`` (procgen's rule) unless ``num_keys`` fixes them. **Default (the
  2-CPU family):** ``d`` in {0, 1} (mazes 5 and 7 with 0-1 and 1-2 keys: procgen easy without its largest mazes),
  world 8 cells of 4 px = a **32x32x3** image, 200 steps. ``HeistConfig.procgen_easy()`` is the full easy family
  (``d`` in {0, 1, 2}, world 10 = 9 + the key row, 40x40 image, 1000 steps).
* *Image.* ``world_dim * cell_px`` pixels square, uint8 RGB (HWC). Row 0 of the world is always wall: the maze is
  placed at a random offset in rows ``1..world_dim-1`` so that the held-key icons (top right, key ``i`` in column
  ``world_dim-1-i``, drawn only while held, as procgen's "keys on the ring") never cover the maze. Why 32x32: the seed
  network halves the image four times (LPPool(2, stride 2)); 32 = 2 * 16 halves exactly (32, 16, 8, 4, 2), and
  with 4 px per cell the 8x8 map after the second pool has exactly one position per maze cell (after pools 1..4 one
  position covers 1/2, 1, 2, 4 cells), which suits per-cell probes. 64x64 would cost ~6x the compute (measured on
  this project's 2 cores: ~77 vs ~460 PPO samples/s).
  Sprites: floor light grey, wall brown, agent white disc, key coloured disc, lock coloured square with a dark
  keyhole, gem yellow diamond.
* *Actions.* procgen's 15 collapse to its 9 moves, indexed as procgen does: ``a`` in 0..8 moves ``dx = a // 3 - 1``
  (right positive) and ``dy = a % 3 - 1`` (**up** positive, i.e. row ``-dy``); 4 stands still. An orthogonal move
  succeeds iff the target cell is *passable* (inside the world, not a wall, not a lock whose key is not held);
  a **diagonal move succeeds iff the target cell is passable and at least one of the two orthogonal cells it cuts
  past is passable** (the agent slides round the corner; it does not step on that cell, so it does not pick up a key
  there). Otherwise the agent stays. In a Kruskal maze the corner cell is always a node, so a diagonal move replaces
  two orthogonal moves round a corner and never passes a closed lock.
* *Entities.* Entering a key's cell picks the key up (it disappears from the maze and its icon appears at the top
  right); entering a lock's cell with its key held removes the lock (as procgen erases it); entering the gem's cell
  gives reward 10 and terminates. Truncation after ``max_steps`` steps.
* *Levels.* Each episode draws a fresh level seed; the level is a deterministic function of (level seed, config).
  **Split:** training levels use seeds in ``[0, 2**31)``, held-out levels seeds in ``[2**31, 2**32)``
  (:data:`SPLITS`, :func:`level_seeds`), so train and held-out seeds are disjoint by construction (small mazes can
  still repeat a layout by chance under two different seeds). ``HeistConfig.num_levels = n`` restricts training to
  the first ``n`` training seeds (procgen's ``num_levels``).

``info`` (every ``reset``/``step``) carries the symbolic state: ``agent`` (row, col), ``keys``/``locks`` (3, 2)
positions (-1 where a key/lock does not exist), ``keys_present``/``locks_present`` (3,) still in the maze,
``keys_held`` (3,), ``gem`` (2,), ``num_keys``, ``goal`` (0..2 = key index, 3 = gem: the current goal is the first
key not yet held, else the gem), ``goal_name``, ``goal_pos``, ``goal_distance`` (BFS moves with this action set),
``level_seed``, ``t``.

Contents: :class:`HeistConfig`, :func:`make_level` (:class:`Level`), :class:`HeistEnv`, :class:`BatchedHeist` (with
its BFS oracle, :meth:`BatchedHeist.oracle`, for imitation learning),
:func:`bfs_distances`, :func:`solve` (optimal action sequence), :func:`render`, :func:`level_seeds`,
:func:`bench_steps_per_second`, :func:`register_envs`.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlinterp.validation import check_choice, check_int

#: action names in procgen's order (dx = a // 3 - 1, dy_up = a % 3 - 1)
ACTIONS = ("left_down", "left", "left_up", "down", "noop", "up", "right_down", "right", "right_up")
NOOP = 4
#: (d_row, d_col) per action; rows grow downwards, so procgen's "up" is d_row = -1
DELTAS = np.array([[-(a % 3 - 1), a // 3 - 1] for a in range(9)], dtype=np.int64)
#: key/lock colours by index, as procgen
COLOURS = ("blue", "green", "red")
GEM_GOAL = 3
GOAL_NAMES = ("key0", "key1", "key2", "gem")
REWARD = 10.0
#: level-seed ranges [lo, hi) of the two splits (disjoint)
SPLITS = {"train": (0, 2**31), "test": (2**31, 2**32)}

# cell codes of the state grid
FLOOR, WALL, KEY, LOCK, GEM = 0, 1, 2, 5, 8  # KEY + i, LOCK + i for colour i
# extra sprite codes for rendering
AGENT_SPRITE, HUD_KEY = 9, 10  # HUD_KEY + i


@dataclass(frozen=True)
class HeistConfig:
    """The level family and rendering (see the module docstring; defaults = the 2-CPU family, 32x32 images)."""

    world_dim: int = 8  # world side in cells; row 0 is the key row, so mazes up to world_dim - 1 fit
    cell_px: int = 4  # pixels per cell side; image side = world_dim * cell_px
    min_difficulty: int = 0  # difficulty d uniform in [min_difficulty, max_difficulty]; maze side 5 + 2 d
    max_difficulty: int = 1
    num_keys: int | None = None  # None: procgen's min(max_keys, d + U{0,1}); an int fixes the number of keys
    max_keys: int = 3  # cap of procgen's rule (procgen: 3)
    max_steps: int = 200  # truncation (procgen: 1000 steps of continuous movement)
    num_levels: int = 0  # 0: a fresh training level every episode; n > 0: only the first n training seeds
    #                      (procgen's num_levels; for generalisation experiments). The held-out split is unaffected.

    def __post_init__(self) -> None:
        check_int("min_difficulty", self.min_difficulty, 0)
        check_int("max_difficulty", self.max_difficulty, self.min_difficulty)
        check_int("cell_px", self.cell_px, 2, 16)
        check_int("world_dim", self.world_dim, self.max_maze + 1, 64)
        check_int("max_keys", self.max_keys, 0, 3)
        if self.num_keys is not None:
            check_int("num_keys", self.num_keys, 0, 3)
        check_int("max_steps", self.max_steps, 1)
        check_int("num_levels", self.num_levels, 0, 2**31)

    @property
    def max_maze(self) -> int:
        return 5 + 2 * self.max_difficulty

    @property
    def image_size(self) -> int:
        return self.world_dim * self.cell_px

    @classmethod
    def procgen_easy(cls, **overrides: Any) -> "HeistConfig":
        """procgen's easy family: d in {0, 1, 2} (mazes 5/7/9), world 9 (+ the key row), 1000 steps."""
        kw = dict(world_dim=10, cell_px=4, min_difficulty=0, max_difficulty=2, max_steps=1000)
        kw.update(overrides)
        return cls(**kw)


def level_seeds(split: str, n: int, start: int = 0) -> np.ndarray:
    """``n`` consecutive level seeds of ``split`` ("train" or "test"), from the split's ``start``-th seed."""
    check_choice("split", split, SPLITS)
    n = check_int("n", n, 0)
    start = check_int("start", start, 0)
    lo, hi = SPLITS[split]
    if lo + start + n > hi:
        raise ValueError(f"split {split!r} has {hi - lo} seeds; start {start} + n {n} is too many")
    return np.arange(lo + start, lo + start + n, dtype=np.int64)


def _seed_range(split: str, cfg: "HeistConfig") -> tuple[int, int]:
    lo, hi = SPLITS[split]
    return (lo, lo + cfg.num_levels) if split == "train" and cfg.num_levels else (lo, hi)


def split_of(level_seed: int) -> str:
    """The split ("train"/"test") a level seed belongs to."""
    s = check_int("level_seed", level_seed, 0, 2**32 - 1)
    return "train" if s < 2**31 else "test"


# ----------------------------------------------------------------------------------------------------------------
# level generation


@dataclass
class Level:
    """A generated level in world coordinates (row, col). ``keys``/``locks`` are (num_keys, 2)."""

    level_seed: int
    maze_dim: int
    offset: tuple[int, int]
    walls: np.ndarray  # (world_dim, world_dim) bool
    agent: np.ndarray  # (2,)
    keys: np.ndarray  # (k, 2)
    locks: np.ndarray  # (k, 2)
    gem: np.ndarray  # (2,)

    @property
    def num_keys(self) -> int:
        return len(self.keys)

    def cells(self) -> np.ndarray:
        """The state grid (world_dim, world_dim) int8: FLOOR/WALL/KEY+i/LOCK+i/GEM."""
        g = self.walls.astype(np.int8)  # WALL = 1, FLOOR = 0
        for i, (r, c) in enumerate(self.keys):
            g[r, c] = KEY + i
        for i, (r, c) in enumerate(self.locks):
            g[r, c] = LOCK + i
        g[self.gem[0], self.gem[1]] = GEM
        return g


_ORTHO = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _kruskal(m: int, rng: np.random.Generator) -> np.ndarray:
    """Free cells (m, m) bool of a Kruskal maze: nodes at (even, even), a node pair joined by opening the cell between."""
    n = (m + 1) // 2
    free = np.zeros((m, m), bool)
    free[::2, ::2] = True
    edges = [(i, j, i, j + 1) for i in range(n) for j in range(n - 1)] + \
            [(i, j, i + 1, j) for i in range(n - 1) for j in range(n)]
    parent = list(range(n * n))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for e in rng.permutation(len(edges)):
        i1, j1, i2, j2 = edges[e]
        a, b = root(i1 * n + j1), root(i2 * n + j2)
        if a != b:
            parent[a] = b
            free[i1 + i2, j1 + j2] = True  # the cell between (2 i1, 2 j1) and (2 i2, 2 j2)
    return free


def _reach(free: np.ndarray, start: tuple[int, int], closed: set) -> dict:
    """Orthogonal BFS distances from ``start`` over free cells not in ``closed``."""
    m = free.shape[0]
    dist = {start: 0}
    q = deque([start])
    while q:
        r, c = q.popleft()
        for dr, dc in _ORTHO:
            nb = (r + dr, c + dc)
            if 0 <= nb[0] < m and 0 <= nb[1] < m and free[nb] and nb not in closed and nb not in dist:
                dist[nb] = dist[(r, c)] + 1
                q.append(nb)
    return dist


def make_level(level_seed: int, config: HeistConfig | None = None) -> Level:
    """The level of ``level_seed`` (an integer in [0, 2**32)) in the family ``config`` (deterministic)."""
    cfg = config or HeistConfig()
    level_seed = check_int("level_seed", level_seed, 0, 2**32 - 1)
    rng = np.random.default_rng([level_seed, 0x4E15])
    d = int(rng.integers(cfg.min_difficulty, cfg.max_difficulty + 1))
    m = 5 + 2 * d
    k = cfg.num_keys if cfg.num_keys is not None else min(cfg.max_keys, d + int(rng.integers(0, 2)))
    free = _kruskal(m, rng)
    cells = [(r, c) for r in range(m) for c in range(m) if free[r, c]]

    def n_free_nb(rc):
        return sum(0 <= rc[0] + dr < m and 0 <= rc[1] + dc < m and free[rc[0] + dr, rc[1] + dc] for dr, dc in _ORTHO)

    forks = [rc for rc in cells if n_free_nb(rc) > 2]
    k = min(k, len(forks))
    lock_cells = {forks[i] for i in rng.choice(len(forks), size=k, replace=False)} if k else set()
    near_lock = {(r + dr, c + dc) for r, c in lock_cells for dr, dc in _ORTHO}
    starts = [rc for rc in cells if rc not in lock_cells and rc not in near_lock]  # never empty: leaves qualify
    agent = starts[int(rng.integers(len(starts)))]

    ordered: list[tuple[int, int]] = []
    entities: list[tuple[int, int]] = []
    prev: set = set()
    for s in range(k + 1):
        reach = _reach(free, agent, lock_cells - set(ordered))
        new = sorted(rc for rc in reach if rc not in prev and rc not in lock_cells and rc != agent)
        entities.append(new[int(rng.integers(len(new)))])
        prev = set(reach)
        if s < k:  # the closest closed lock next to R_s becomes lock s
            cand = []
            for lc in lock_cells - set(ordered):
                ds = [reach[(lc[0] + dr, lc[1] + dc)] for dr, dc in _ORTHO if (lc[0] + dr, lc[1] + dc) in reach]
                if ds:
                    cand.append((min(ds) + 1, lc))
            ordered.append(min(cand)[1])
    off = (int(rng.integers(1, cfg.world_dim - m + 1)), int(rng.integers(0, cfg.world_dim - m + 1)))
    walls = np.ones((cfg.world_dim, cfg.world_dim), bool)
    walls[off[0]:off[0] + m, off[1]:off[1] + m] = ~free

    def w(rc):
        return [rc[0] + off[0], rc[1] + off[1]]

    return Level(level_seed=level_seed, maze_dim=m, offset=off, walls=walls, agent=np.array(w(agent)),
                 keys=np.array([w(e) for e in entities[:k]], dtype=np.int64).reshape(k, 2),
                 locks=np.array([w(e) for e in ordered], dtype=np.int64).reshape(k, 2),
                 gem=np.array(w(entities[k])))


# ----------------------------------------------------------------------------------------------------------------
# movement, BFS and the optimal solver


def _blocked_grid(cells: np.ndarray, held: Sequence[bool]) -> np.ndarray:
    """(H, W) bool: walls and locks whose key is not held."""
    b = cells == WALL
    for i in range(3):
        if not held[i]:
            b |= cells == LOCK + i
    return b


def _move(blocked: np.ndarray, pos: tuple[int, int], action: int) -> tuple[int, int]:
    """The cell after ``action`` from ``pos`` under the movement rule (module docstring)."""
    dr, dc = DELTAS[action]
    H, W = blocked.shape

    def ok(r, c):
        return 0 <= r < H and 0 <= c < W and not blocked[r, c]

    r, c = pos
    t = (r + dr, c + dc)
    if (dr, dc) == (0, 0) or not ok(*t):
        return pos
    if dr and dc and not (ok(r, c + dc) or ok(r + dr, c)):
        return pos
    return (int(t[0]), int(t[1]))


def bfs_distances(blocked: np.ndarray, start: Sequence[int]) -> np.ndarray:
    """Shortest number of moves (this env's 8 moves and corner rule) from ``start`` to every cell; -1 unreachable."""
    H, W = blocked.shape
    dist = np.full((H, W), -1, np.int64)
    s = (int(start[0]), int(start[1]))
    dist[s] = 0
    q = deque([s])
    while q:
        p = q.popleft()
        for a in range(9):
            n = _move(blocked, p, a)
            if dist[n] < 0:
                dist[n] = dist[p] + 1
                q.append(n)
    return dist


def _path(blocked: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> list[int]:
    """Actions of one shortest path from ``start`` to ``goal`` (BFS; actions tried in index order)."""
    parent: dict = {start: None}
    q = deque([start])
    while q:
        p = q.popleft()
        if p == goal:
            break
        for a in range(9):
            n = _move(blocked, p, a)
            if n not in parent:
                parent[n] = (p, a)
                q.append(n)
    if goal not in parent:
        raise RuntimeError(f"goal {goal} unreachable from {start}")
    acts = []
    n = goal
    while parent[n] is not None:
        n, a = parent[n]
        acts.append(a)
    return acts[::-1]


def solve(level: Level | int, config: HeistConfig | None = None) -> list[int]:
    """An optimal action sequence for a level (or level seed): shortest paths key 0 -> key 1 -> ... -> gem.

    Optimal because the locks force this visiting order and each stage's start (the previous key) and passable set
    (the keys held) are fixed. ``len(solve(...))`` is the BFS-optimal episode length.
    """
    lv = make_level(level, config) if not isinstance(level, Level) else level
    cells = lv.cells()
    held = [False] * 3
    pos = (int(lv.agent[0]), int(lv.agent[1]))
    acts: list[int] = []
    for i in range(lv.num_keys + 1):
        goal = tuple(int(v) for v in (lv.keys[i] if i < lv.num_keys else lv.gem))
        acts += _path(_blocked_grid(cells, held), pos, goal)
        pos = goal
        if i < lv.num_keys:
            held[i] = True
    return acts


# ----------------------------------------------------------------------------------------------------------------
# rendering


def _sprites(p: int) -> np.ndarray:
    """(13, p, p, 3) uint8 sprites by code: floor, wall, key x3, lock x3, gem, agent, key icon x3 (on wall)."""
    floor, wall = np.array([190, 190, 190]), np.array([96, 64, 40])
    rgb = [np.array([40, 90, 255]), np.array([30, 190, 60]), np.array([230, 40, 40])]
    u = (np.arange(p) + 0.5) / p
    uu, vv = np.meshgrid(u, u, indexing="ij")
    disc = (uu - 0.5) ** 2 + (vv - 0.5) ** 2 <= 0.25 + 1e-9
    diamond = np.abs(uu - 0.5) + np.abs(vv - 0.5) <= 0.5 + 1e-9
    hole = (np.abs(uu - 0.5) < 0.26) & (np.abs(vv - 0.5) < 0.26) & (p >= 3)  # 2 px: a plain coloured block
    S = np.zeros((13, p, p, 3), np.int64)
    S[FLOOR] = floor
    S[WALL] = wall
    for i in range(3):
        S[KEY + i] = np.where(disc[..., None], rgb[i], floor)
        S[LOCK + i] = np.where(hole[..., None], np.array([20, 20, 20]), rgb[i])
        S[HUD_KEY + i] = np.where(disc[..., None], rgb[i], wall)
    S[GEM] = np.where(diamond[..., None], np.array([255, 215, 0]), floor)
    S[AGENT_SPRITE] = np.where(disc[..., None], np.array([255, 255, 255]), floor)
    return S.astype(np.uint8)


_SPRITE_CACHE: dict[int, np.ndarray] = {}


def render(cells: np.ndarray, agent: np.ndarray, held: np.ndarray, cell_px: int = 4) -> np.ndarray:
    """Images (N, H, W, 3) uint8 from state grids (N, D, D), agent cells (N, 2) and keys held (N, 3)."""
    if cell_px not in _SPRITE_CACHE:
        _SPRITE_CACHE[cell_px] = _sprites(cell_px)
    S = _SPRITE_CACHE[cell_px]
    N, D, _ = cells.shape
    codes = cells.astype(np.int64)  # a copy
    codes[np.arange(N), agent[:, 0], agent[:, 1]] = AGENT_SPRITE
    for i in range(3):
        codes[:, 0, D - 1 - i] = np.where(held[:, i], HUD_KEY + i, codes[:, 0, D - 1 - i])
    img = S[codes]  # (N, D, D, p, p, 3)
    return img.transpose(0, 1, 3, 2, 4, 5).reshape(N, D * cell_px, D * cell_px, 3)


# ----------------------------------------------------------------------------------------------------------------
# symbolic state


def _symbolic(cells: np.ndarray, agent: np.ndarray, held: np.ndarray, keys: np.ndarray, locks: np.ndarray,
              gem: np.ndarray, num_keys: int) -> dict[str, Any]:
    held = np.asarray(held, bool)
    keys_present = np.array([i < num_keys and cells[keys[i, 0], keys[i, 1]] == KEY + i for i in range(3)])
    locks_present = np.array([i < num_keys and cells[locks[i, 0], locks[i, 1]] == LOCK + i for i in range(3)])
    goal = next((i for i in range(num_keys) if not held[i]), GEM_GOAL)
    goal_pos = gem if goal == GEM_GOAL else keys[goal]
    dist = bfs_distances(_blocked_grid(cells, held), agent)
    return dict(agent=agent.copy(), keys=keys.copy(), locks=locks.copy(), gem=gem.copy(), keys_held=held.copy(),
                keys_present=keys_present, locks_present=locks_present, num_keys=int(num_keys), goal=int(goal),
                goal_name=GOAL_NAMES[goal], goal_pos=np.asarray(goal_pos).copy(),
                goal_distance=int(dist[goal_pos[0], goal_pos[1]]))


def _padded(arr: np.ndarray, k: int) -> np.ndarray:
    out = np.full((3, 2), -1, np.int64)
    out[:k] = arr
    return out


# ----------------------------------------------------------------------------------------------------------------
# the gymnasium environment


class HeistEnv(gym.Env):
    """Heist (registered as ``rlinterp/Heist-v0``); rules, observation, actions and ``info`` in the module docstring.

    ``split`` ("train"/"test") is the level-seed range each ``reset`` draws from (with the env's ``np_random``);
    ``reset(options={"level_seed": s})`` plays level ``s`` instead. Keyword arguments other than ``config``,
    ``split`` and ``render_mode`` are :class:`HeistConfig` fields (``gym.make("rlinterp/Heist-v0", num_keys=0)``).
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}

    def __init__(self, config: HeistConfig | None = None, split: str = "train", render_mode: str | None = None,
                 **config_fields: Any):
        if config is not None and config_fields:
            raise ValueError("give either config or HeistConfig fields, not both")
        self.config = config if config is not None else HeistConfig(**config_fields)
        self.split = check_choice("split", split, SPLITS)
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        s = self.config.image_size
        self.observation_space = spaces.Box(0, 255, (s, s, 3), np.uint8)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.level: Level | None = None

    # -- state
    def _load(self, level: Level) -> None:
        self.level = level
        self.cells = level.cells()
        self.pos = (int(level.agent[0]), int(level.agent[1]))
        self.held = [False, False, False]
        self.t = 0
        self.done = False
        self.keys3 = _padded(level.keys, level.num_keys)
        self.locks3 = _padded(level.locks, level.num_keys)

    def _obs(self) -> np.ndarray:
        return render(self.cells[None], np.array([self.pos]), np.array([self.held]), self.config.cell_px)[0]

    def _info(self) -> dict[str, Any]:
        info = _symbolic(self.cells, np.array(self.pos), self.held, self.keys3, self.locks3, self.level.gem,
                         self.level.num_keys)
        info.update(level_seed=self.level.level_seed, t=self.t)
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and "level_seed" in options:
            ls = check_int("level_seed", options["level_seed"], 0, 2**32 - 1)
        else:
            lo, hi = _seed_range(self.split, self.config)
            ls = int(self.np_random.integers(lo, hi))
        self._load(make_level(ls, self.config))
        return self._obs(), self._info()

    def step(self, action: Any):
        if self.level is None:
            raise ValueError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer in [0, 8] ({', '.join(ACTIONS)}), got {action!r}")
        if self.done:
            raise ValueError("the episode is over; call reset() before step()")
        self.pos = _move(_blocked_grid(self.cells, self.held), self.pos, int(action))
        code = int(self.cells[self.pos])
        reward, terminated = 0.0, False
        if KEY <= code < KEY + 3:
            self.held[code - KEY] = True
            self.cells[self.pos] = FLOOR
        elif LOCK <= code < LOCK + 3:  # passable only with its key: the lock opens
            self.cells[self.pos] = FLOOR
        elif code == GEM:
            reward, terminated = REWARD, True
            self.cells[self.pos] = FLOOR
        self.t += 1
        truncated = not terminated and self.t >= self.config.max_steps
        self.done = terminated or truncated
        return self._obs(), reward, terminated, truncated, self._info()

    def render(self):
        if self.render_mode == "rgb_array":
            return self._obs()
        if self.render_mode == "ansi":
            ch = {FLOOR: ".", WALL: "#", GEM: "G", KEY: "a", KEY + 1: "b", KEY + 2: "c", LOCK: "A", LOCK + 1: "B",
                  LOCK + 2: "C"}
            rows = [[ch[int(v)] for v in row] for row in self.cells]
            rows[self.pos[0]][self.pos[1]] = "@"
            return "\n".join("".join(r) for r in rows) + "\n"
        return None


# ----------------------------------------------------------------------------------------------------------------
# the batched environment


class BatchedHeist:
    """``num_envs`` Heist games stepped together in numpy, with automatic reset (for PPO).

    Same rules as :class:`HeistEnv` (tests check step-for-step equality). Levels: ``reset(level_seeds)`` plays the
    given seeds; every other (re)set draws a fresh seed of ``split`` from the env's generator (seeded by ``seed``).
    :meth:`step` returns ``(obs (N, H, W, 3) uint8, reward (N,), terminated (N,), truncated (N,), info)``; an env
    whose episode ended is reset at once, so ``obs`` is already its next level's first image; ``info`` has
    ``episode_length`` (N,) (length of the episode that just ended, 0 elsewhere) and ``level_seed`` (N,) of the
    episode that was played in this step. :meth:`symbolic` gives ``info``-style symbolic arrays on demand.
    """

    def __init__(self, num_envs: int, config: HeistConfig | None = None, seed: int = 0, split: str = "train"):
        self.num_envs = check_int("num_envs", num_envs, 1)
        self.config = config or HeistConfig()
        self.split = check_choice("split", split, SPLITS)
        self.rng = np.random.default_rng(check_int("seed", seed, 0))
        D = self.config.world_dim
        N = self.num_envs
        # state grids padded by one wall cell on every side (so moves never leave the array)
        self.grid = np.ones((N, D + 2, D + 2), np.int8)
        self.pos = np.zeros((N, 2), np.int64)  # padded coordinates
        self.held = np.zeros((N, 3), bool)
        self.t = np.zeros(N, np.int64)
        self.keys = np.full((N, 3, 2), -1, np.int64)  # world coordinates
        self.locks = np.full((N, 3, 2), -1, np.int64)
        self.gem = np.zeros((N, 2), np.int64)
        self.num_keys = np.zeros(N, np.int64)
        self.level_seed = np.zeros(N, np.int64)
        self._ar = np.arange(N)
        self._oracle_cache: dict[tuple[int, int], tuple[np.ndarray, int]] = {}  # (level seed, goal) -> (dist, rest)
        self.reset()

    def _draw_seed(self) -> int:
        lo, hi = _seed_range(self.split, self.config)
        return int(self.rng.integers(lo, hi))

    def _load(self, i: int, level_seed: int) -> None:
        lv = make_level(level_seed, self.config)
        self.grid[i, 1:-1, 1:-1] = lv.cells()
        self.pos[i] = lv.agent + 1
        self.held[i] = False
        self.t[i] = 0
        self.keys[i] = _padded(lv.keys, lv.num_keys)
        self.locks[i] = _padded(lv.locks, lv.num_keys)
        self.gem[i] = lv.gem
        self.num_keys[i] = lv.num_keys
        self.level_seed[i] = level_seed

    def reset(self, level_seeds: Sequence[int] | None = None) -> np.ndarray:
        """Start every env on a new level (``level_seeds``, one per env, or fresh draws); return the images."""
        if level_seeds is not None:
            level_seeds = np.asarray(level_seeds)
            if level_seeds.shape != (self.num_envs,):
                raise ValueError(f"level_seeds must have {self.num_envs} entries, got shape {level_seeds.shape}")
        for i in range(self.num_envs):
            self._load(i, int(level_seeds[i]) if level_seeds is not None else self._draw_seed())
        return self.obs()

    def obs(self) -> np.ndarray:
        return render(self.grid[:, 1:-1, 1:-1], self.pos - 1, self.held, self.config.cell_px)

    def _blocked(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        code = self.grid[self._ar, r, c]
        is_lock = (code >= LOCK) & (code < LOCK + 3)
        lock_closed = is_lock & ~self.held[self._ar, np.clip(code - LOCK, 0, 2)]
        return (code == WALL) | lock_closed

    def step(self, actions: Any):
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer) or (a < 0).any() or (a > 8).any():
            raise ValueError(f"actions must be {self.num_envs} integers in [0, 8], got {a!r}")
        dr, dc = DELTAS[a, 0], DELTAS[a, 1]
        r, c = self.pos[:, 0], self.pos[:, 1]
        tr, tc = r + dr, c + dc
        ok = ~self._blocked(tr, tc)
        diag = (dr != 0) & (dc != 0)
        corner = ~self._blocked(r, c + dc) | ~self._blocked(r + dr, c)
        ok &= ~diag | corner
        self.pos = np.where(ok[:, None], np.stack([tr, tc], 1), self.pos)
        r, c = self.pos[:, 0], self.pos[:, 1]
        code = self.grid[self._ar, r, c].astype(np.int64)
        is_key = (code >= KEY) & (code < KEY + 3)
        self.held[self._ar[is_key], code[is_key] - KEY] = True
        terminated = code == GEM
        clear = is_key | ((code >= LOCK) & (code < LOCK + 3)) | terminated
        self.grid[self._ar[clear], r[clear], c[clear]] = FLOOR
        reward = np.where(terminated, REWARD, 0.0)
        self.t += 1
        truncated = ~terminated & (self.t >= self.config.max_steps)
        done = terminated | truncated
        info = dict(episode_length=np.where(done, self.t, 0), level_seed=self.level_seed.copy())
        for i in np.flatnonzero(done):
            self._load(int(i), self._draw_seed())
        return self.obs(), reward, terminated, truncated, info

    _STATE = ("grid", "pos", "held", "t", "keys", "locks", "gem", "num_keys", "level_seed")

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (arrays and the level-seed generator), for resumable training."""
        d = {k: getattr(self, k).copy() for k in self._STATE}
        d["rng"] = self.rng.bit_generator.state
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for k in self._STATE:
            if d[k].shape != getattr(self, k).shape:
                raise ValueError(f"state {k!r} has shape {d[k].shape}, this env {getattr(self, k).shape}")
            setattr(self, k, d[k].copy())
        self.rng.bit_generator.state = d["rng"]

    def oracle(self) -> tuple[np.ndarray, np.ndarray]:
        """The BFS oracle at the current states: ``(optimal (N, 9) bool, steps_to_gem (N,) int)``.

        ``optimal[i, a]`` is True when action ``a`` starts a shortest path (this env's moves and corner rule) from
        env ``i``'s agent to its current goal (the first key not held, else the gem); several actions can be optimal
        (diagonals). ``steps_to_gem`` is the fewest steps left to the gem (through the remaining keys in order), the
        length of the rest of :func:`solve`'s path. Distance maps are cached per (level seed, goal) -- the passable
        set depends only on the keys held -- so an imitation learner can query every step.
        """
        N = self.num_envs
        optimal = np.zeros((N, 9), bool)
        steps = np.zeros(N, np.int64)
        cache = self._oracle_cache
        if len(cache) > 50_000:
            cache.clear()
        for i in range(N):
            k = int(self.num_keys[i])
            goal = next((g for g in range(k) if not self.held[i, g]), k)
            key = (int(self.level_seed[i]), goal)
            if key not in cache:
                lv = make_level(int(self.level_seed[i]), self.config)
                cells = lv.cells()
                held = [g < goal for g in range(3)]
                target = lv.keys[goal] if goal < k else lv.gem
                dist = bfs_distances(_blocked_grid(cells, held), target)  # moves are symmetric: distance *to* target
                rest = 0  # steps from this stage's target to the gem: the remaining stages of the optimal path
                pos = tuple(int(v) for v in target)
                held2 = [g <= goal for g in range(3)]
                for g in range(goal + 1, k + 1):
                    nxt = lv.keys[g] if g < k else lv.gem
                    rest += int(bfs_distances(_blocked_grid(cells, held2), pos)[nxt[0], nxt[1]])
                    pos = tuple(int(v) for v in nxt)
                    if g < 3:
                        held2[g] = True
                cache[key] = (dist, rest)
            dist, rest = cache[key]
            r, c = int(self.pos[i, 0]) - 1, int(self.pos[i, 1]) - 1
            d0 = dist[r, c]
            blocked = _blocked_grid(self.grid[i, 1:-1, 1:-1], self.held[i])
            for a in range(9):
                n = _move(blocked, (r, c), a)
                optimal[i, a] = d0 > 0 and dist[n] == d0 - 1
            steps[i] = d0 + rest
        return optimal, steps

    def symbolic(self, i: int) -> dict[str, Any]:
        """The ``info`` dict of :class:`HeistEnv` for env ``i`` (current state)."""
        i = check_int("i", i, 0, self.num_envs - 1)
        info = _symbolic(self.grid[i, 1:-1, 1:-1], self.pos[i] - 1, self.held[i], self.keys[i], self.locks[i],
                         self.gem[i], int(self.num_keys[i]))
        info.update(level_seed=int(self.level_seed[i]), t=int(self.t[i]))
        return info


# ----------------------------------------------------------------------------------------------------------------
# throughput


def bench_steps_per_second(num_envs: int = 64, steps: int = 200, config: HeistConfig | None = None,
                           seed: int = 0) -> dict[str, float]:
    """Env steps per second with uniformly random actions: ``single`` (one :class:`HeistEnv`, ``steps`` steps,
    resets included) and ``batched`` (one :class:`BatchedHeist` of ``num_envs``, ``steps`` calls)."""
    num_envs = check_int("num_envs", num_envs, 1)
    steps = check_int("steps", steps, 1)
    cfg = config or HeistConfig()
    rng = np.random.default_rng(seed)
    env = HeistEnv(cfg)
    env.reset(seed=seed)
    acts = rng.integers(0, 9, steps)
    t0 = time.perf_counter()
    for a in acts:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    single = steps / (time.perf_counter() - t0)
    benv = BatchedHeist(num_envs, cfg, seed=seed)
    acts = rng.integers(0, 9, (steps, num_envs))
    t0 = time.perf_counter()
    for a in acts:
        benv.step(a)
    batched = steps * num_envs / (time.perf_counter() - t0)
    return {"single": single, "batched": batched, "num_envs": float(num_envs)}


# ----------------------------------------------------------------------------------------------------------------
# gymnasium registration (guarded: importing twice, or from envs/__init__, is fine)

def register_envs() -> None:
    from gymnasium.envs.registration import register, registry

    if "rlinterp/Heist-v0" not in registry:
        register(id="rlinterp/Heist-v0", entry_point="rlinterp.envs.heist:HeistEnv")


register_envs()
