"""Tests of the Heist environment: gymnasium API, level generation (properties), rules, solver, batched env."""
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import rlinterp.envs  # noqa: F401  (registers rlinterp/Heist-v0)
from rlinterp.envs.heist import (DELTAS, GEM_GOAL, LOCK, SPLITS, WALL, BatchedHeist, HeistConfig, HeistEnv,
                                 bench_steps_per_second, level_seeds, make_level, solve, split_of)

seeds = st.integers(0, 2**32 - 1)
FAMILIES = [HeistConfig(), HeistConfig.procgen_easy(), HeistConfig(num_keys=3, min_difficulty=2, max_difficulty=2,
                                                                    world_dim=10)]
families = st.sampled_from(FAMILIES)


def test_check_env_and_registration():
    env = gym.make("rlinterp/Heist-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    assert env.action_space.n == 9
    for k in ("agent", "keys", "locks", "gem", "keys_held", "goal", "goal_pos", "goal_distance", "level_seed"):
        assert k in info
    env2 = gym.make("rlinterp/Heist-v0", num_keys=0, max_difficulty=0)
    assert env2.reset(seed=0)[1]["num_keys"] == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="world_dim"):
        HeistConfig(world_dim=7, max_difficulty=1)  # maze 7 + key row needs 8
    with pytest.raises(ValueError, match="num_keys"):
        HeistConfig(num_keys=4)
    with pytest.raises(ValueError, match="split"):
        HeistEnv(split="valid")
    with pytest.raises(ValueError, match="level_seed"):
        make_level(-1)
    env = HeistEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(9)
    with pytest.raises(ValueError, match="actions"):
        BatchedHeist(2).step(np.array([0, 9]))


def _free(level):
    return ~level.walls


def _is_free(level, r, c):
    D = level.walls.shape[0]
    return 0 <= r < D and 0 <= c < D and not level.walls[r, c]


@settings(max_examples=100, deadline=None)
@given(seeds, families)
def test_maze_is_a_tree(seed, cfg):
    lv = make_level(seed, cfg)
    free = _free(lv)
    cells = list(zip(*np.nonzero(free)))
    edges = sum(free[r, c] and free[r + dr, c + dc] for r, c in cells for dr, dc in ((0, 1), (1, 0))
                if r + dr < free.shape[0] and c + dc < free.shape[1])
    assert edges == len(cells) - 1  # a tree: |E| = |V| - 1 and connected
    seen, q = {cells[0]}, deque([cells[0]])
    while q:
        r, c = q.popleft()
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            n = (r + dr, c + dc)
            if 0 <= n[0] < free.shape[0] and 0 <= n[1] < free.shape[1] and free[n] and n not in seen:
                seen.add(n)
                q.append(n)
    assert len(seen) == len(cells)
    assert not free[0].any()  # the key row is wall
    assert lv.maze_dim in (5, 7, 9) and lv.num_keys <= 3


@settings(max_examples=100, deadline=None)
@given(seeds, families)
def test_level_structure_and_order(seed, cfg):
    lv = make_level(seed, cfg)
    ents = [tuple(p) for p in [lv.agent, *lv.keys, *lv.locks, lv.gem]]
    assert len(set(ents)) == len(ents)  # distinct cells
    assert all(_free(lv)[p] for p in ents)
    for lk in lv.locks:  # locks on forks, agent never next to a lock
        assert sum(_is_free(lv, lk[0] + dr, lk[1] + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))) > 2
        assert np.abs(lv.agent - lk).sum() > 1
    # with locks 0..s-1 open (orthogonal reach), key s is reachable and key s+1 / the gem is not
    for s in range(lv.num_keys + 1):
        closed = {tuple(p) for p in lv.locks[s:]}
        reach = {tuple(lv.agent)}
        q = deque(reach)
        while q:
            r, c = q.popleft()
            for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                n = (r + dr, c + dc)
                if _is_free(lv, *n) and n not in closed and n not in reach:
                    reach.add(n)
                    q.append(n)
        target = tuple(lv.keys[s]) if s < lv.num_keys else tuple(lv.gem)
        assert target in reach
        later = [tuple(p) for p in lv.keys[s + 1:]] + [tuple(lv.gem)] * (s < lv.num_keys)
        assert not any(p in reach for p in later)


@settings(max_examples=60, deadline=None)
@given(seeds, families)
def test_same_seed_same_level(seed, cfg):
    a, b = make_level(seed, cfg), make_level(seed, cfg)
    assert (a.cells() == b.cells()).all() and (a.agent == b.agent).all()
    e1, e2 = HeistEnv(cfg), HeistEnv(cfg)
    o1, _ = e1.reset(options={"level_seed": seed})
    o2, _ = e2.reset(options={"level_seed": seed})
    assert (o1 == o2).all()


def test_different_seeds_differ_and_env_draws_fresh_levels():
    cells = {make_level(s).cells().tobytes() for s in range(200)}
    assert len(cells) > 150
    env = HeistEnv()
    env.reset(seed=0)
    seen = set()
    for _ in range(20):
        seen.add(env.reset()[1]["level_seed"])
    assert len(seen) == 20
    few = HeistEnv(num_levels=3)  # procgen's num_levels: only the first 3 training seeds
    few.reset(seed=0)
    assert {few.reset()[1]["level_seed"] for _ in range(30)} == {0, 1, 2}
    assert set(BatchedHeist(30, HeistConfig(num_levels=3)).level_seed) == {0, 1, 2}
    assert split_of(HeistEnv(split="test", num_levels=3).reset(seed=0)[1]["level_seed"]) == "test"


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(SPLITS)), st.integers(0, 10**6), st.integers(0, 50))
def test_split_seeds_disjoint(split, start, n):
    s = level_seeds(split, n, start)
    assert all(split_of(int(x)) == split for x in s)
    other = "test" if split == "train" else "train"
    lo, hi = SPLITS[other]
    assert not ((s >= lo) & (s < hi)).any()
    env = HeistEnv(split=split)
    env.reset(seed=start)
    assert split_of(env.reset()[1]["level_seed"]) == split
    assert split_of(int(BatchedHeist(2, seed=start % 97, split=split).level_seed[0])) == split


@settings(max_examples=80, deadline=None)
@given(seeds, families)
def test_solver_reaches_gem(seed, cfg):
    cfg = HeistConfig(**{**cfg.__dict__, "max_steps": 1000})
    env = HeistEnv(cfg)
    _, info = env.reset(options={"level_seed": seed})
    acts = solve(seed, cfg)
    first_goal_dist = info["goal_distance"]
    total = 0.0
    for i, a in enumerate(acts):
        _, r, term, trunc, info = env.step(a)
        total += r
        assert not term or i == len(acts) - 1
    assert term and total == 10.0
    assert first_goal_dist <= len(acts)
    assert info["goal"] == GEM_GOAL


def _lock_neighbour_state(seed, cfg):
    """Put the agent next to lock 0 (on its key-0 side), keys not held; return (env, action into the lock)."""
    env = HeistEnv(cfg)
    env.reset(options={"level_seed": seed})
    lv = env.level
    lk = tuple(lv.locks[0])
    region = set()  # cells reachable without passing any lock
    q = deque([tuple(lv.agent)])
    region.add(q[0])
    locks = {tuple(p) for p in lv.locks}
    while q:
        r, c = q.popleft()
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            n = (r + dr, c + dc)
            if _is_free(lv, *n) and n not in locks and n not in region:
                region.add(n)
                q.append(n)
    for a, (dr, dc) in enumerate(DELTAS):
        if abs(dr) + abs(dc) == 1 and (lk[0] - dr, lk[1] - dc) in region:
            return env, (lk[0] - dr, lk[1] - dc), a
    raise AssertionError("lock 0 has no neighbour in the start region")


@settings(max_examples=60, deadline=None)
@given(seeds)
def test_locks_block_until_key_held(seed):
    cfg = HeistConfig(num_keys=1, min_difficulty=1, max_difficulty=1)
    if make_level(seed, cfg).num_keys == 0:
        return  # no fork to hold a lock
    env, cell, a = _lock_neighbour_state(seed, cfg)
    env.pos = cell
    env.cells[tuple(env.level.keys[0])] = 0  # key not held; remove it so stepping cannot collect it
    for action in range(9):  # no move at all enters the lock without the key
        env.pos = cell
        env.step(action)
        assert env.pos != tuple(env.level.locks[0])
    env.pos, env.t = cell, 0
    env.held[0] = True
    env.step(a)
    assert env.pos == tuple(env.level.locks[0]) and env.cells[env.pos] == 0  # enters; the lock opens


def test_keys_shown_top_right_when_held():
    cfg = HeistConfig(num_keys=1, min_difficulty=1, max_difficulty=1)
    seed = next(s for s in range(100) if make_level(s, cfg).num_keys == 1)
    env = HeistEnv(cfg)
    obs0, _ = env.reset(options={"level_seed": seed})
    p, D = cfg.cell_px, cfg.world_dim
    corner = slice(0, p), slice((D - 1) * p, D * p)
    acts = solve(seed, cfg)
    for a in acts:
        obs, _, term, _, info = env.step(a)
        if info["keys_held"][0]:
            break
    assert (obs0[corner] == obs0[0, 0]).all()  # wall only before
    icon = obs[corner].reshape(-1, 3)
    assert (icon[:, 2] > 200).any()  # blue key icon after pick-up
    assert not info["keys_present"][0] and info["goal"] == GEM_GOAL


def test_diagonal_rule():
    env = HeistEnv()
    env.reset(options={"level_seed": 0})
    env.cells[:] = WALL
    env.cells[3, 3] = env.cells[2, 4] = 0  # target free, both corner cells wall -> blocked
    env.pos, env.t = (3, 3), 0
    env.step(8)  # right_up: d_row -1, d_col +1
    assert env.pos == (3, 3)
    env.cells[2, 3] = 0  # one corner free -> succeeds
    env.step(8)
    assert env.pos == (2, 4)
    env.cells[3, 4] = LOCK  # a closed lock is not a free corner
    env.cells[2, 3] = WALL
    env.pos = (3, 3)
    env.cells[3, 3] = 0
    env.step(8)
    assert env.pos == (3, 3)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), families)
def test_batched_equals_single(seed, cfg):
    n = 4
    rng = np.random.default_rng(seed)
    ls = rng.integers(0, 2**32, n)
    b = BatchedHeist(n, cfg, seed=seed)
    obs_b = b.reset(ls)
    singles = [HeistEnv(cfg) for _ in range(n)]
    alive = np.ones(n, bool)
    for i, e in enumerate(singles):
        o, _ = e.reset(options={"level_seed": int(ls[i])})
        assert (o == obs_b[i]).all()
    for _ in range(60):
        acts = rng.integers(0, 9, n)
        # steer one env along its optimal path sometimes so keys, locks and the gem are exercised
        obs_b, r_b, te_b, tr_b, _ = b.step(acts)
        for i, e in enumerate(singles):
            if not alive[i]:
                continue
            o, r, te, tr, info = e.step(int(acts[i]))
            assert (r, te, tr) == (r_b[i], te_b[i], tr_b[i])
            if te or tr:
                alive[i] = False
                continue
            assert (o == obs_b[i]).all()
            sym = b.symbolic(i)
            for k in ("agent", "keys_held", "keys_present", "locks_present", "goal", "goal_distance"):
                assert np.array_equal(np.asarray(sym[k]), np.asarray(info[k])), k


def test_batched_equals_single_along_solutions():
    cfg = HeistConfig.procgen_easy()
    ls = [s for s in range(40) if make_level(s, cfg).num_keys >= 2][:3]
    b = BatchedHeist(len(ls), cfg)
    b.reset(ls)
    plans = [solve(s, cfg) for s in ls]
    envs = [HeistEnv(cfg) for _ in ls]
    for e, s in zip(envs, ls):
        e.reset(options={"level_seed": s})
    done = [False] * len(ls)
    for t in range(max(map(len, plans))):
        acts = np.array([p[t] if t < len(p) else 4 for p in plans])
        obs_b, r_b, te_b, _, info_b = b.step(acts)
        for i, e in enumerate(envs):
            if done[i]:
                continue
            o, r, te, _, _ = e.step(int(acts[i]))
            assert r == r_b[i] and te == te_b[i]
            if te:
                done[i] = True
                assert info_b["episode_length"][i] == len(plans[i])
            else:
                assert (o == obs_b[i]).all()
    assert all(done)


def test_bench_reports_rates():
    r = bench_steps_per_second(num_envs=8, steps=20)
    assert r["single"] > 0 and r["batched"] > 0
