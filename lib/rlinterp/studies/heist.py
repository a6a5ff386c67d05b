"""The Heist study's analysis functions: evaluation of agents on held-out levels and the baselines.

* :func:`evaluate` -- a trained network (actions sampled from its policy, or greedy) on given level seeds.
* :func:`evaluate_policy` -- the same for any policy ``act(env, obs) -> actions``; :func:`random_policy` and
  :func:`oracle_policy` (the BFS solver of :mod:`rlinterp.envs.heist`) are the baselines.
* :func:`baselines` -- the random and oracle rows of the evaluation table.
* :func:`stage_states` -- every state of a level's goal stage ``s`` (keys ``< s`` held): the agent on each cell it can
  reach; :func:`action_field` -- the policy at each of them (for the "vector field" figures,
  :func:`plot_action_fields`).
* :func:`collect_states` -- states visited by a policy on given levels, with their symbolic labels (current goal
  position, other entities, keys held), the dataset of the probes; :func:`probe_layers` -- spatial "where" probes of
  one label at every conv hook, with a random-init network and shuffled labels as controls.
* :func:`entity_maps`, :func:`unit_map_correlations` -- automatic labels: each channel's (or SAE latent's)
  correlation with where the agent, walls, keys, locks, gem, the current goal and the other entities are.
* :func:`cell_mask`, :func:`path_probability`, :func:`retarget` -- the causal tests: edit the map at a target cell
  (``interp.editing.steer_at``) and measure Mini et al.'s normalised path probability towards the target and, in
  closed loop, how often the agent goes to the target before its true goal.

Each level is played once (the first episode of each slot of a :class:`~rlinterp.envs.heist.BatchedHeist`).
Reported: success rate (Wilson interval), mean length of successful episodes, and their ratio to the level's
BFS-optimal length (``len(solve(level))``; mean with a normal interval, from :mod:`rlinterp.stats`).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import numpy as np
import torch

from rlinterp.envs.heist import (DELTAS, FLOOR, GEM_GOAL, KEY, LOCK, WALL, BatchedHeist, HeistConfig, Level,
                                 level_seeds, make_level, render, solve)
from rlinterp.stats import mean_interval, wilson
from rlinterp.validation import check_choice, check_int

Policy = Callable[[BatchedHeist, np.ndarray], np.ndarray]


def random_policy(seed: int = 0) -> Policy:
    """Uniformly random actions (9 moves)."""
    rng = np.random.default_rng(check_int("seed", seed, 0))

    def act(env: BatchedHeist, obs: np.ndarray) -> np.ndarray:
        return rng.integers(0, 9, env.num_envs)

    return act


def oracle_policy(config: HeistConfig | None = None) -> Policy:
    """The BFS-optimal plan of each slot's level (:func:`rlinterp.envs.heist.solve`), followed step by step."""
    plans: dict[int, list[int]] = {}

    def act(env: BatchedHeist, obs: np.ndarray) -> np.ndarray:
        out = np.full(env.num_envs, 4, np.int64)
        for i in range(env.num_envs):
            s = int(env.level_seed[i])
            if s not in plans:
                plans[s] = solve(s, env.config)
            t = int(env.t[i])
            out[i] = plans[s][t] if t < len(plans[s]) else 4
        return out

    return act


def model_policy(model: torch.nn.Module, greedy: bool = False, seed: int = 0) -> Policy:
    """A network's policy: actions sampled from ``softmax(logits)`` (``greedy=False``, seeded) or the argmax."""
    gen = torch.Generator(device=model.device).manual_seed(check_int("seed", seed, 0))
    model.eval()

    def act(env: BatchedHeist, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits, _ = model(obs)
        if greedy:
            return logits.argmax(-1).cpu().numpy()
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(-1).cpu().numpy()

    return act


def evaluate_policy(policy: Policy, seeds: Sequence[int], config: HeistConfig | None = None,
                    batch: int = 256) -> dict[str, Any]:
    """Play each level of ``seeds`` once with ``policy``; per-level arrays and summary intervals.

    Returns ``success`` (bool per level), ``length`` (steps played), ``optimal`` (BFS-optimal length),
    ``success_rate`` (:class:`~rlinterp.stats.Interval`, Wilson), ``mean_length`` (successful episodes),
    ``length_ratio`` (mean of length / optimal over successful episodes, normal interval; NaN when none), ``n``.
    """
    cfg = config or HeistConfig()
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.ndim != 1 or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty 1-d list of level seeds, got shape {seeds.shape}")
    batch = check_int("batch", batch, 1)
    success = np.zeros(len(seeds), bool)
    length = np.zeros(len(seeds), np.int64)
    for lo in range(0, len(seeds), batch):
        chunk = seeds[lo:lo + batch]
        env = BatchedHeist(len(chunk), cfg)
        obs = env.reset(chunk)
        open_ = np.ones(len(chunk), bool)
        while open_.any():
            obs, _, term, trunc, info = env.step(np.asarray(policy(env, obs), dtype=np.int64))
            ended = open_ & (term | trunc)
            success[lo:lo + len(chunk)][ended] = term[ended]
            length[lo:lo + len(chunk)][ended] = info["episode_length"][ended]
            open_ &= ~ended
    optimal = np.array([len(solve(int(s), cfg)) for s in seeds])
    n = len(seeds)
    ratio = length[success] / np.maximum(optimal[success], 1)
    nan = float("nan")
    return dict(success=success, length=length, optimal=optimal, n=n,
                success_rate=wilson(float(success.mean()), n),
                mean_length=mean_interval(length[success]) if success.any() else (nan, nan, nan),
                length_ratio=mean_interval(ratio) if success.any() else (nan, nan, nan))


def evaluate(model: torch.nn.Module, level_seeds_: Sequence[int], config: HeistConfig | None = None,
             greedy: bool = False, seed: int = 0, batch: int = 256, fwd_hooks: Sequence | None = None) -> dict[str, Any]:
    """:func:`evaluate_policy` of a network (see :func:`model_policy`), with TransformerLens ``fwd_hooks`` (an edit
    or ablation) active on every step when given."""
    hooks = list(fwd_hooks or [])
    with model.hooks(fwd_hooks=hooks) if hooks else contextlib.nullcontext():
        return evaluate_policy(model_policy(model, greedy, seed), level_seeds_, config, batch)


def choose_mode(model: torch.nn.Module, validation_seeds: Sequence[int], config: HeistConfig | None = None,
                seed: int = 0) -> tuple[str, dict[str, dict[str, Any]]]:
    """Play the validation levels sampled and greedy; return the mode with the higher success rate (``"sampled"``
    on a tie: greedy play can loop) and both evaluations. The reported numbers then use test levels."""
    val = {mode: evaluate(model, validation_seeds, config, greedy=(mode == "greedy"), seed=seed)
           for mode in ("sampled", "greedy")}
    return max(val, key=lambda m: (val[m]["success_rate"][0], m == "sampled")), val


def held_out_seeds(n: int = 500, start: int = 0) -> np.ndarray:
    """The first ``n`` held-out level seeds (the study's evaluation set)."""
    return level_seeds("test", n, start)


def baselines(seeds: Sequence[int], config: HeistConfig | None = None, seed: int = 0) -> dict[str, dict[str, Any]]:
    """The random and BFS-oracle rows: ``{"random": evaluate_policy(...), "oracle": ...}``."""
    return {"random": evaluate_policy(random_policy(seed), seeds, config),
            "oracle": evaluate_policy(oracle_policy(config), seeds, config)}


def summary_row(res: dict[str, Any]) -> dict[str, float]:
    """A flat table row of an evaluation: success and length ratio with their 95% intervals."""
    s, r = res["success_rate"], res["length_ratio"]
    return dict(n=int(res["n"]), success=float(s[0]), success_lo=float(s[1]), success_hi=float(s[2]),
                length_ratio=float(r[0]), length_ratio_lo=float(r[1]), length_ratio_hi=float(r[2]))


def evaluation_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of an evaluation table, one per policy of ``results`` (name -> :func:`evaluate_policy` output):
    levels, success with its Wilson interval, mean length of successful episodes, length ratio with its interval."""
    rows = []
    for name, r in results.items():
        row = summary_row(r)
        rows.append(dict(policy=name, levels=row["n"], success=row["success"], success_lo=row["success_lo"],
                         success_hi=row["success_hi"], mean_length=float(r["mean_length"][0]),
                         length_ratio=row["length_ratio"], ratio_lo=row["length_ratio_lo"],
                         ratio_hi=row["length_ratio_hi"]))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# goal stages and action fields


def _reachable(blocked: np.ndarray, start: Sequence[int]) -> np.ndarray:
    """(D, D) bool: cells the agent can reach from ``start`` through unblocked cells (the env's own BFS)."""
    from rlinterp.envs.heist import bfs_distances

    return bfs_distances(blocked, start) >= 0


def stage_states(level: Level | int, stage: int, config: HeistConfig | None = None) -> dict[str, Any]:
    """Every state of goal stage ``stage`` of a level: keys ``0..stage-1`` held (gone from the maze), the current
    goal key ``stage`` (the gem when ``stage`` = number of keys), the agent on each free cell it can reach then.

    A lock ``j < stage`` is drawn open (gone) exactly for the agent cells behind it (cells the start cannot reach
    with lock ``j`` closed): in the real game the agent passed it to get there. Cells holding an entity still in the
    maze are left out (the agent would pick it up). Returns ``obs`` (n, H, W, 3) uint8, ``agent`` (n, 2),
    ``cells`` (n, D, D) state grids, ``held`` (3,), ``goal`` (0..2 key, 3 gem), ``goal_pos`` (2,), ``background``
    (H, W, 3): the stage without the agent (locks as at the start of the stage).
    """
    cfg = config or HeistConfig()
    lv = level if isinstance(level, Level) else make_level(check_int("level", level, 0), cfg)
    k = lv.num_keys
    stage = check_int("stage", stage, 0, k)
    base = lv.cells()
    held = np.zeros(3, bool)
    held[:stage] = True
    for i in range(stage):
        base[tuple(lv.keys[i])] = FLOOR
    walls = base == WALL
    closed = walls.copy()
    for j in range(stage, k):
        closed[tuple(lv.locks[j])] = True
    reach = _reachable(closed, lv.agent)
    behind = [~_reachable(closed | (np.arange(base.size).reshape(base.shape) == np.ravel_multi_index(
        tuple(lv.locks[j]), base.shape)), lv.agent) for j in range(stage)]
    occupied = (base != FLOOR) & ~((base >= LOCK) & (base < LOCK + stage))  # keys/gem/locks still closed
    cand = np.argwhere(reach & ~occupied)
    grids = np.repeat(base[None], len(cand), 0)
    for n, (r, c) in enumerate(cand):
        for j in range(stage):
            if behind[j][r, c]:
                grids[n][tuple(lv.locks[j])] = FLOOR
    H = np.repeat(held[None], len(cand), 0)
    obs = render(grids, cand, H, cfg.cell_px)
    bg = base.copy()
    bg_img = render(bg[None], np.array([[0, 0]]), held[None], cfg.cell_px)[0]
    p = cfg.cell_px  # the agent was drawn on wall cell (0, 0): paint that cell as wall again
    bg_img[:p, :p] = render(bg[None], np.array([[1, 0]]), held[None], cfg.cell_px)[0][:p, :p]
    goal = stage if stage < k else GEM_GOAL
    goal_pos = lv.gem if goal == GEM_GOAL else lv.keys[goal]
    return dict(obs=obs, agent=cand, cells=grids, held=held, goal=int(goal), goal_pos=np.asarray(goal_pos),
                background=bg_img, level=lv)


def action_field(model: torch.nn.Module, level: Level | int, stage: int, config: HeistConfig | None = None,
                 fwd_hooks: Sequence | Callable[[int], Sequence] = ()) -> dict[str, Any]:
    """The policy at every state of :func:`stage_states`: ``probs`` (n, 9) and ``arrow`` (n, 2) = the expected move
    ``sum_a p(a) (d_row, d_col)(a)`` (the direction the policy pushes the agent, as in maze-agent vector fields).
    ``fwd_hooks``: edits active during the forward pass (a list, or a function of the number of states giving one,
    for edits whose mask has a batch axis)."""
    st = stage_states(level, stage, config)
    model.eval()
    hooks = list(fwd_hooks(len(st["obs"])) if callable(fwd_hooks) else fwd_hooks)
    with torch.no_grad(), (model.hooks(fwd_hooks=hooks) if hooks else contextlib.nullcontext()):
        logits, value = model(st["obs"])
    probs = torch.softmax(logits, -1).cpu().numpy()
    st.update(probs=probs, arrow=probs @ DELTAS.astype(float), value=value.cpu().numpy())
    return st


def plot_action_fields(model: torch.nn.Module | None, level: Level | int, config: HeistConfig | None = None,
                       width: float = 6.5):
    """One panel per goal stage of a level: the maze as the agent sees it at the start of the stage, an arrow at
    every cell the agent can stand on (length = how decided the policy is), the current goal circled. With
    ``model=None`` each cell shows instead its BFS distance (moves) to the stage's goal."""
    import matplotlib.pyplot as plt

    cfg = config or HeistConfig()
    lv = level if isinstance(level, Level) else make_level(check_int("level", level, 0), cfg)
    n = lv.num_keys + 1
    fig, axes = plt.subplots(1, n, figsize=(width, width / n + 0.6), squeeze=False)
    names = [f"goal: key {i}" for i in range(lv.num_keys)] + ["goal: gem"]
    for s, ax in enumerate(axes[0]):
        f = action_field(model, lv, s, cfg) if model is not None else stage_states(lv, s, cfg)
        ax.imshow(f["background"], extent=(0, cfg.world_dim, cfg.world_dim, 0))
        y, x = f["agent"][:, 0] + 0.5, f["agent"][:, 1] + 0.5
        if model is not None:
            ax.quiver(x, y, f["arrow"][:, 1], -f["arrow"][:, 0], angles="xy", scale_units="xy", scale=1.25,
                      width=0.012, color="black")
        else:
            from rlinterp.envs.heist import _blocked_grid, bfs_distances

            dist = bfs_distances(_blocked_grid(f["cells"][0], f["held"]), f["goal_pos"])
            for (r, c), yy, xx in zip(f["agent"], y, x):
                ax.text(xx, yy, str(dist[r, c]), ha="center", va="center", fontsize=6)
        gr, gc = f["goal_pos"]
        ax.add_patch(plt.Circle((gc + 0.5, gr + 0.5), 0.62, fill=False, lw=1.5, color="magenta"))
        ax.set_title(names[s], fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# probe datasets and probes

#: spatial hooks of the agent networks probed by :func:`probe_layers`, input to output
SPATIAL_HOOKS = ("hook_obs", "blocks.0.hook_post", "blocks.0.pool.hook_out", "blocks.1.hook_post",
                 "blocks.2.hook_post", "blocks.2.pool.hook_out", "blocks.3.hook_post", "blocks.3.pool.hook_out",
                 "blocks.4.hook_post", "blocks.4.pool.hook_out")
#: labels of :func:`collect_states` that are positions (probed with spatial probes)
POSITION_LABELS = ("goal_pos", "agent", "gem", "key0", "key1", "key2", "lock0", "lock1", "lock2")


def collect_states(policy: Policy, seeds: Sequence[int], config: HeistConfig | None = None,
                   max_states: int = 5000, every: int = 1) -> dict[str, np.ndarray]:
    """States visited by ``policy`` playing each level of ``seeds`` once (every ``every``-th step, at most
    ``max_states`` in all), with their symbolic labels.

    Returns ``obs`` (n, H, W, 3) uint8, ``level_seed`` (n,), ``t`` (n,), ``agent`` / ``goal_pos`` / ``gem`` (n, 2),
    ``key{i}`` / ``lock{i}`` (n, 2) (-1 when absent or gone), ``goal`` (n,) (0..2 key, 3 gem), ``keys_held`` (n, 3),
    ``num_keys`` (n,), ``goal_distance`` (n,).
    """
    cfg = config or HeistConfig()
    seeds = np.asarray(seeds, dtype=np.int64)
    max_states = check_int("max_states", max_states, 1)
    every = check_int("every", every, 1)
    rows: list[dict[str, Any]] = []
    obs_list: list[np.ndarray] = []
    env = BatchedHeist(len(seeds), cfg)
    obs = env.reset(seeds)
    open_ = np.ones(len(seeds), bool)
    t = 0
    while open_.any() and len(rows) < max_states:
        if t % every == 0:
            for i in np.flatnonzero(open_):
                info = env.symbolic(int(i))
                row = dict(level_seed=info["level_seed"], t=info["t"], agent=info["agent"], goal_pos=info["goal_pos"],
                           gem=info["gem"], goal=info["goal"], keys_held=info["keys_held"],
                           num_keys=info["num_keys"], goal_distance=info["goal_distance"])
                for j in range(3):
                    row[f"key{j}"] = info["keys"][j] if info["keys_present"][j] else np.array([-1, -1])
                    row[f"lock{j}"] = info["locks"][j] if info["locks_present"][j] else np.array([-1, -1])
                rows.append(row)
                obs_list.append(obs[i])
                if len(rows) >= max_states:
                    break
        obs, _, term, trunc, _ = env.step(np.asarray(policy(env, obs), dtype=np.int64))
        open_ &= ~(term | trunc)
        t += 1
    out = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
    out["obs"] = np.stack(obs_list)
    return out


def probe_layers(model: torch.nn.Module, control_model: torch.nn.Module, data: dict[str, np.ndarray],
                 label: str = "goal_pos", hooks: Sequence[str] = SPATIAL_HOOKS, config: HeistConfig | None = None,
                 seed: int = 0, steps: int = 100) -> list[dict[str, Any]]:
    """Spatial probes of position label ``label`` at every hook (states split by level), each with two controls:
    the same probe on ``control_model``'s activations (a random-init network of the same shape) and on shuffled
    labels. Rows with an absent entity (-1) are left out. One row per hook: ``hook``, ``shape``, ``accuracy``,
    ``within1``, ``random_net``, ``random_net_within1``, ``shuffled``, ``chance``, ``n``."""
    from rlinterp.interp.probes import cache_hook, fit_spatial_probe

    check_choice("label", label, POSITION_LABELS)
    cfg = config or HeistConfig()
    pos = data[label]
    keep = (pos >= 0).all(1)
    obs = torch.as_tensor(data["obs"][keep])
    cells = torch.as_tensor(pos[keep])
    groups = torch.as_tensor(data["level_seed"][keep])
    grid = (cfg.world_dim, cfg.world_dim)
    out = []
    for hook in hooks:
        acts = cache_hook(model, obs, hook, batch_size=512).float()
        ctrl = cache_hook(control_model, obs, hook, batch_size=512).float()
        res = fit_spatial_probe(acts, cells, grid, groups=groups, control=ctrl, seed=seed, steps=steps)
        perm = torch.randperm(len(cells), generator=torch.Generator().manual_seed(seed + 1))
        sh = fit_spatial_probe(acts, cells[perm], grid, groups=groups, control=None, seed=seed, steps=steps)
        out.append(dict(hook=hook, shape=tuple(acts.shape[1:]), accuracy=res.accuracy, within1=res.within1,
                        random_net=res.control_accuracy, random_net_within1=res.control_within1,
                        shuffled=sh.accuracy, shuffled_within1=sh.within1, chance=res.chance, n=len(cells)))
    return out


# ----------------------------------------------------------------------------------------------------------------
# causal tests: retargeting


def cell_mask(cells: Any, map_hw: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """Bool [n, h, w]: the positions of an ``h x w`` map (covering the whole ``grid``-cell world) that overlap each
    of ``cells`` [n, 2] (row, col). A finer map marks several positions per cell; a coarser one the position that
    contains the cell."""
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    h, w = map_hw
    R, C = grid
    if (cells < 0).any() or (cells[:, 0] >= R).any() or (cells[:, 1] >= C).any():
        raise ValueError(f"cell_mask: cells must lie in the {R}x{C} grid")
    ys = (np.arange(h) + 0.5) * R / h  # position centres in cell units
    xs = (np.arange(w) + 0.5) * C / w
    out = np.zeros((len(cells), h, w), bool)
    for i, (r, c) in enumerate(cells):
        if h >= R:
            rows = (ys >= r) & (ys < r + 1)
        else:
            rows = np.arange(h) == (r * h) // R
        if w >= C:
            cols = (xs >= c) & (xs < c + 1)
        else:
            cols = np.arange(w) == (c * w) // C
        out[i] = rows[:, None] & cols[None, :]
    return torch.as_tensor(out)


def path_probability(model: torch.nn.Module, level: Level | int, stage: int, target: Sequence[int],
                     start: Sequence[int] | None = None, config: HeistConfig | None = None,
                     fwd_hooks: Sequence | Callable[[int], Sequence] = ()) -> float:
    """Mini et al.'s normalised path probability: the geometric mean of the policy's probabilities of the actions of
    the shortest path from ``start`` (default: the level's start cell) to ``target`` in goal stage ``stage``. NaN
    when the path leaves the stage's states (it would pick up a key or reach the gem on the way) or the target is
    not reachable."""
    from rlinterp.envs.heist import _blocked_grid, _path

    cfg = config or HeistConfig()
    lv = level if isinstance(level, Level) else make_level(check_int("level", level, 0), cfg)
    f = action_field(model, lv, stage, cfg, fwd_hooks)
    index = {tuple(a): i for i, a in enumerate(f["agent"])}
    s = tuple(int(v) for v in (lv.agent if start is None else start))
    t = tuple(int(v) for v in target)
    if s not in index or t not in index:
        return float("nan")
    blocked = _blocked_grid(f["cells"][index[s]], f["held"])
    for j in range(stage):  # locks of earlier stages are passable (their key is held)
        blocked[tuple(lv.locks[j])] = False
    try:
        actions = _path(blocked, s, t)
    except Exception:
        return float("nan")
    logp, pos = 0.0, s
    for a in actions:
        if pos not in index:
            return float("nan")
        logp += float(np.log(max(f["probs"][index[pos], a], 1e-30)))
        dr, dc = DELTAS[a]
        pos = (pos[0] + int(dr), pos[1] + int(dc))
    if pos != t:
        return float("nan")
    return float(np.exp(logp / max(len(actions), 1)))


def retarget(model: torch.nn.Module, seeds: Sequence[int], targets: Any, edit: Callable[[torch.Tensor], list],
             config: HeistConfig | None = None, max_steps: int | None = None, greedy: bool = True,
             seed: int = 0) -> dict[str, np.ndarray]:
    """Play each level of ``seeds`` once with the edit ``edit(cells [n, 2]) -> fwd_hooks`` active (built from the
    per-level ``targets`` [n, 2]); record whether and when the agent first stands on its target cell, and whether it
    reached its true goal entity of the first stage (key 0, or the gem) before that.

    Returns ``hit_target`` (n,) bool, ``t_target`` (n,) first step on the target (-1 never), ``first_goal_first``
    (n,) bool (the first-stage goal was reached before the target), ``success`` (n,) gem reached."""
    cfg = config or HeistConfig()
    seeds = np.asarray(seeds, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1, 2)
    if len(targets) != len(seeds):
        raise ValueError(f"retarget: one target per level needed ({len(seeds)}), got {len(targets)}")
    steps = cfg.max_steps if max_steps is None else check_int("max_steps", max_steps, 1)
    env = BatchedHeist(len(seeds), cfg)
    obs = env.reset(seeds)
    first_goal = np.array([env.symbolic(i)["goal_pos"] for i in range(len(seeds))])
    act = model_policy(model, greedy=greedy, seed=seed)
    hooks = edit(torch.as_tensor(targets))
    hit = np.zeros(len(seeds), bool)
    t_hit = np.full(len(seeds), -1)
    goal_first = np.zeros(len(seeds), bool)
    success = np.zeros(len(seeds), bool)
    open_ = np.ones(len(seeds), bool)
    hooks = list(hooks)
    with model.hooks(fwd_hooks=hooks) if hooks else contextlib.nullcontext():
        for t in range(steps):
            obs, _, term, trunc, _ = env.step(np.asarray(act(env, obs), dtype=np.int64))
            pos = env.pos - 1  # padded -> world coordinates (after an auto-reset: the new level's start)
            live = open_ & ~(term | trunc)
            on_t = live & (pos == targets).all(1)
            on_g = live & (pos == first_goal).all(1) | (open_ & term)
            new_hit = on_t & ~hit
            t_hit[new_hit] = t + 1
            hit |= on_t
            goal_first |= on_g & ~hit
            success |= open_ & term
            open_ &= ~(term | trunc)
            if not open_.any():
                break
    return dict(hit_target=hit, t_target=t_hit, first_goal_first=goal_first, success=success)


# ----------------------------------------------------------------------------------------------------------------
# automatic labels: units against entity maps

#: entity maps of :func:`entity_maps`, in table order
ENTITY_MAPS = ("agent", "wall", "key", "lock", "gem", "current_goal", "other_entities")


def entity_maps(data: dict[str, np.ndarray], config: HeistConfig | None = None) -> dict[str, np.ndarray]:
    """Bool maps [n, D, D] (world cells) of each state of :func:`collect_states`: the agent, walls, keys in the
    maze, closed locks, the gem, the current goal, and every entity that is *not* the current goal."""
    cfg = config or HeistConfig()
    n, D = len(data["obs"]), cfg.world_dim
    p = cfg.cell_px
    out = {k: np.zeros((n, D, D), bool) for k in ENTITY_MAPS}
    # walls from the image: a cell is wall iff its pixels are the wall colour (the HUD row is wall too)
    wall_rgb = np.array([96, 64, 40])  # the wall sprite is plain: its top-left pixel decides
    out["wall"] = (data["obs"].reshape(n, D, p, D, p, 3)[:, :, 0, :, 0] == wall_rgb).all(-1)
    ar = np.arange(n)

    def put(name, pos):
        ok = (pos >= 0).all(1)
        out[name][ar[ok], pos[ok, 0], pos[ok, 1]] = True

    put("agent", data["agent"])
    put("gem", data["gem"])
    for j in range(3):
        put("key", data[f"key{j}"])
        put("lock", data[f"lock{j}"])
    put("current_goal", data["goal_pos"])
    out["other_entities"] = (out["key"] | out["lock"] | out["gem"]) & ~out["current_goal"]
    return out


def unit_map_correlations(acts: torch.Tensor | np.ndarray, maps: dict[str, np.ndarray]) -> "Any":
    """Pearson correlation, over states and positions, of every unit (channel or SAE latent) of a map ``acts``
    [n, u, h, w] with every entity map [n, D, D] (maps are resampled to h x w by their cells' overlap: a position
    counts as "entity present" when any cell it covers holds the entity). Returns a DataFrame [unit x entity]."""
    import pandas as pd

    A = torch.as_tensor(acts).detach().float()
    n, u, h, w = A.shape
    cols = {}
    for name, m in maps.items():
        m = torch.as_tensor(m).float()[:, None]  # [n, 1, D, D]
        D = m.shape[-1]
        if h >= D:
            r = torch.nn.functional.interpolate(m, size=(h, w), mode="nearest")
        else:
            r = torch.nn.functional.adaptive_max_pool2d(m, (h, w))
        cols[name] = r.reshape(n, h * w).reshape(-1)
    X = A.permute(0, 2, 3, 1).reshape(-1, u)  # [n*h*w, u]
    Xc = X - X.mean(0)
    out = {}
    for name, y in cols.items():
        yc = y - y.mean()
        denom = (Xc.norm(dim=0) * yc.norm()).clamp_min(1e-12)
        out[name] = (Xc.T @ yc / denom).numpy()
    return pd.DataFrame(out, index=pd.RangeIndex(u, name="unit"))
