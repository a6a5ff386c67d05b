"""The Heist study's analysis functions: evaluation of agents on held-out levels and the baselines.

* :func:`evaluate` -- a trained network (actions sampled from its policy, or greedy) on given level seeds.
* :func:`evaluate_policy` -- the same for any policy ``act(env, obs) -> actions``; :func:`random_policy` and
  :func:`oracle_policy` (the BFS solver of :mod:`rlinterp.envs.heist`) are the baselines.
* :func:`baselines` -- the random and oracle rows of the evaluation table.

Each level is played once (the first episode of each slot of a :class:`~rlinterp.envs.heist.BatchedHeist`).
Reported: success rate (Wilson interval), mean length of successful episodes, and their ratio to the level's
BFS-optimal length (``len(solve(level))``; mean with a normal interval, from :mod:`rlinterp.stats`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from rlinterp.envs.heist import BatchedHeist, HeistConfig, level_seeds, solve
from rlinterp.stats import mean_interval, wilson
from rlinterp.validation import check_int

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
             greedy: bool = False, seed: int = 0, batch: int = 256) -> dict[str, Any]:
    """:func:`evaluate_policy` of a network (see :func:`model_policy`)."""
    return evaluate_policy(model_policy(model, greedy, seed), level_seeds_, config, batch)


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
