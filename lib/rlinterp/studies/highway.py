"""The highway study's analyses: policies and episodes on ``intersection-v0``, evaluation, and the weight-based
QK / OV circuits of the ego-attention network taken back to the 7 input features and forward to the 3 actions,
the geometry of the other vehicles an observation holds (:func:`vehicle_table`) and controlled single-vehicle scenes
with their interpretable variables (:func:`single_vehicle_scenes`, :func:`random_scenes`).

The environment is :mod:`rlinterp.envs.highway`, the networks :mod:`rlinterp.models.ego_attention`, the trainer
:mod:`rlinterp.learners.ddqn`; drawing (frames, attention, action bars, GIFs) is in
:mod:`rlinterp.studies.highway_plots`.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from rlinterp.progress import tqdm
from transformer_lens import HookedRootModule

from rlinterp.envs.highway import ACTIONS, env_config, has_arrived, make_env, obs_positions
from rlinterp.models.ego_attention import N_FEATURES, N_VEHICLES, EgoAttentionNetwork
from rlinterp.models.layers import MLP
from rlinterp.seeds import split as _seed_split
from rlinterp.stats import Interval, mean_interval, paired_difference, wilson
from rlinterp.validation import check_float, check_int
from rlinterp.studies.highway_plots import world_to_pixel

# --------------------------------------------------------------------------------------------------------------------
# Policies, episodes, evaluation
# --------------------------------------------------------------------------------------------------------------------
Policy = Callable[[np.ndarray], int]
_SPLIT = _seed_split("highway")


#: The first validation seed (choosing: checkpoints, the episode a figure shows, the analysis episodes of chapters 2-4)
#: and the first test seed (the reported evaluation) of :func:`rlinterp.seeds.split` ``("highway")``. Training seeds
#: its environments with ``seed * 1000 + worker`` (< 10**6), so both are fresh traffic scenes.
VALIDATION_SEED = _SPLIT.validation.start
TEST_SEED = _SPLIT.test.start


def constant_policy(action: int) -> Policy:
    """Always the same action (0 SLOWER, 1 IDLE, 2 FASTER)."""
    if action not in range(len(ACTIONS)):
        raise ValueError(f"action must be 0 (SLOWER), 1 (IDLE) or 2 (FASTER), got {action!r}")
    return lambda obs: action


class RandomPolicy:
    """Uniformly random actions. :func:`run_episode` calls ``reset(env_seed)`` at the start of every episode, which
    reseeds the generator from ``(seed, env_seed)``: an episode's actions depend on its scene only, not on which
    episodes ran before it (so evaluations can be split across processes and stay identical)."""

    def __init__(self, seed: int = 0):
        self.seed = check_int("seed", seed, 0)
        self.rng = np.random.default_rng(self.seed)

    def reset(self, env_seed: int) -> None:
        self.rng = np.random.default_rng([self.seed, check_int("env_seed", env_seed, 0)])

    def __call__(self, obs: np.ndarray) -> int:
        return int(self.rng.integers(len(ACTIONS)))


def random_policy(seed: int = 0) -> RandomPolicy:
    """Uniformly random actions, reseeded per episode from ``(seed, env seed)`` (:class:`RandomPolicy`)."""
    return RandomPolicy(seed)


def run_episode(env: gym.Env, policy: Policy, seed: int, render: bool = False, max_steps: int | None = None,
                callback: Callable[[np.ndarray], Any] | None = None) -> dict[str, Any]:
    """One episode from ``env.reset(seed=seed)``; returns its return, length, outcome and (optionally) frames.

    A policy with a ``reset(seed)`` method (:class:`RandomPolicy`) is reset with the episode's seed first.
    ``callback(obs)`` is called before every action and its results are collected in ``"extras"`` (e.g. Q-values
    and attention for the figures). ``frames`` holds ``len + 1`` frames (the initial scene and one per step) and
    ``pixels`` the pixel coordinates of the observed vehicles in each frame.
    """
    if hasattr(policy, "reset"):
        policy.reset(seed)
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


#: The per-episode fields :func:`evaluate` keeps (lists over the seeds, in seed order).
EPISODE_FIELDS = ("returns", "arrived", "crashed", "lengths", "speeds")

_JOB: dict[str, Any] = {}  # the policies and env overrides of the episodes in progress (inherited by forked workers)


def _run_chunk(task: tuple[str, list[int], bool]) -> tuple[str, list[tuple]]:
    """Episodes of policy ``name`` on ``seeds`` (one worker's share): rows (return, arrived, crashed, length, mean
    speed), with the observations [T, 15, 7] and actions [T] appended when ``keep``."""
    name, seeds, keep = task
    policy, overrides = _JOB["policies"][name], _JOB["overrides"]
    env = make_env(seeds[0], **overrides)
    rows = []
    for s in seeds:
        e = run_episode(env, policy, s)
        row = (e["ret"], e["arrived"], e["crashed"], e["length"], e["mean_speed"])
        rows.append(row + (np.stack(e["obs"]), e["actions"]) if keep else row)
    env.close()
    return name, rows


def _worker_init() -> None:
    torch.set_num_threads(1)


def default_workers(device: str = "cpu") -> int:
    """Processes for episodes: one per core on the CPU, one with an accelerator (its context does not fork)."""
    return (os.cpu_count() or 1) if str(device) == "cpu" else 1


def run_episodes(policies: dict[str, Policy], seeds: Any, workers: int | None = None, progress: bool = True,
                 chunk: int | None = None, cache_dir: str | Path | None = None, keep: bool = False,
                 desc: str = "episodes", **overrides: Any) -> dict[str, list[tuple]]:
    """Every policy of ``policies`` (name -> policy) on the scenes ``seeds`` (env seeds): ``{name: [row per seed, in
    seed order]}`` with rows ``(return, arrived, crashed, length, mean speed)`` (``keep``: plus the observations
    [T, 15, 7] and the actions).

    Every episode is a function of its seed and policy alone (``env.reset(seed=...)``, :class:`RandomPolicy`
    reseeds per episode), so ``workers`` forked processes (default :func:`default_workers`) give the same episodes
    as one process, only sooner on a machine with free cores. ``chunk`` seeds go to a task (default: enough tasks to
    keep every worker busy, at most 10 seeds each). A policy that draws from a generator shared across episodes (not
    reseeded per scene) must run with ``workers=1`` to keep its draws. With ``cache_dir`` (not with ``keep``) every
    finished task is written there as ``<policy>_<first seed>_<n>.json`` and read back instead of run again, so an
    interrupted long evaluation resumes; the caller keys ``cache_dir`` by everything that identifies the policies
    (checkpoint hashes, the random policy's seed) and the environment.
    """
    seeds = [check_int("seed", int(s), 0) for s in np.asarray(seeds).ravel()]
    if not seeds:
        raise ValueError("run_episodes needs at least one seed")
    if not policies:
        raise ValueError("run_episodes needs at least one policy")
    workers = default_workers() if workers is None else check_int("workers", workers, 1)
    chunk = min(10, -(-len(seeds) // (2 * workers))) if chunk is None else check_int("chunk", chunk, 1)
    if keep and cache_dir is not None:
        raise ValueError("run_episodes: cache_dir stores outcomes only; it cannot be used with keep=True")
    env_config(**overrides)  # unknown keys fail here, before any episode runs
    # chunk-major order: an interrupted (cached) run holds every policy on the same first seeds
    tasks = [(name, seeds[i:i + chunk], keep) for i in range(0, len(seeds), chunk) for name in policies]
    rows: dict[str, dict[int, list[tuple]]] = {name: {} for name in policies}
    bar = tqdm(total=len(seeds) * len(policies), desc=desc, disable=not progress)
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)

        def cached(task):
            return cache_dir / f"{task[0].replace(' ', '_')}_{task[1][0]}_{len(task[1])}.json"

        for task in tasks:
            if cached(task).exists():
                rows[task[0]][task[1][0]] = [tuple(r) for r in json.loads(cached(task).read_text())]
                bar.update(len(task[1]))
        tasks = [t for t in tasks if t[1][0] not in rows[t[0]]]
    _JOB.update(policies=policies, overrides=overrides)
    pool = None
    try:
        if min(workers, len(tasks)) <= 1:
            results = map(_run_chunk, tasks)
        else:
            import multiprocessing as mp

            pool = mp.get_context("fork").Pool(min(workers, len(tasks)), initializer=_worker_init)
            results = pool.imap(_run_chunk, tasks)
        for task, (_, r) in zip(tasks, results):
            rows[task[0]][task[1][0]] = r
            if cache_dir is not None:
                cached(task).write_text(json.dumps(r))
            bar.update(len(r))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        _JOB.clear()
        bar.close()
    return {name: [row for first in sorted(rows[name]) for row in rows[name][first]] for name in policies}


def evaluate_policies(policies: dict[str, Policy], seeds: Any, workers: int | None = None, progress: bool = True,
                      chunk: int | None = None, cache_dir: str | Path | None = None,
                      **overrides: Any) -> dict[str, dict[str, Any]]:
    """Every policy of ``policies`` (name -> policy) on the same scenes ``seeds`` (env seeds; paired), summarised
    per policy as :func:`evaluate` does; the episodes are run by :func:`run_episodes` (``workers``, ``chunk``,
    ``cache_dir`` as there: the numbers do not depend on the number of workers)."""
    seeds = np.asarray(seeds).ravel()
    rows = run_episodes(policies, seeds, workers, progress, chunk, cache_dir, desc="evaluate", **overrides)
    return {name: _summary(r, [int(s) for s in seeds]) for name, r in rows.items()}


def _summary(rows: list[tuple], seeds: list[int]) -> dict[str, Any]:
    ret, arr, cra, length, speed = (list(c) for c in zip(*rows))
    ci = mean_interval(ret, method="t")
    return dict(n_episodes=len(seeds), seed=seeds[0], mean_return=ci.mean, ci95=ci.half, lo=ci.lo, hi=ci.hi,
                success_rate=float(np.mean(arr)), collision_rate=float(np.mean(cra)),
                mean_length=float(np.mean(length)), mean_speed=float(np.mean(speed)),
                returns=[round(float(r), 6) for r in ret], arrived=[bool(a) for a in arr],
                crashed=[bool(c) for c in cra], lengths=[int(n) for n in length],
                speeds=[round(float(v), 4) for v in speed])


def evaluate(policy: Policy, n_episodes: int = 100, seed: int = TEST_SEED, progress: bool = True,
             desc: str = "evaluate", workers: int | None = None, **overrides: Any) -> dict[str, Any]:
    """Run ``policy`` on ``n_episodes`` fresh scenes (env seeds ``seed, seed+1, ...``; default: the first test
    seeds) and summarise.

    Returns mean return with its 95% CI (Student t: ``ci95`` half-width, ``lo``, ``hi``), success (arrival) and
    collision rates, mean episode length, mean ego speed (m/s, averaged over steps then episodes) and the per-episode
    ``returns``, ``arrived``, ``crashed``, ``lengths``, ``speeds`` (in seed order, for paired comparisons).
    ``workers``: processes (:func:`run_episodes`; the numbers do not depend on it).
    """
    n_episodes = check_int("n_episodes", n_episodes, 1)
    seed = check_int("seed", seed, 0)
    return evaluate_policies({desc: policy}, np.arange(seed, seed + n_episodes), workers=workers,
                             progress=progress, **overrides)[desc]


#: The targets of the highway study (issue 12): the paper's ego-attention return (6.2 to 6.4 after 4000 episodes) and
#: a margin over the fully-connected baseline, paired on the same scenes.
TARGET_RETURN = 6.4
TARGET_MARGIN = 1.5


def verdict(interval: Interval, threshold: float) -> str:
    """A threshold target ``value >= threshold`` judged on a 95% interval, not on the point estimate: "met" when
    the whole interval lies at or above ``threshold``, "not met" when it lies below, "undecided" when it straddles."""
    threshold = check_float("threshold", threshold)
    if not isinstance(interval, Interval) or not np.isfinite([interval.lo, interval.hi]).all():
        raise ValueError(f"verdict needs an Interval with finite bounds, got {interval!r}")
    if interval.lo >= threshold:
        return "met"
    return "not met" if interval.hi < threshold else "undecided"


def eval_summary(stored: dict[str, Any], agent: str = "Ego-attention DQN",
                 baseline: str = "MLP DQN") -> dict[str, Any]:
    """Intervals and target verdicts of a stored evaluation (``artifacts.load("highway/eval")`` or
    ``artifacts.build("highway/eval", ...)``): every policy's mean return (Student t), arrival and collision rates
    (Wilson), the paired difference ``agent - baseline`` of the returns (Student t over the shared scenes) and the
    verdicts of ``agent >= TARGET_RETURN`` and ``agent - baseline >= TARGET_MARGIN`` on those intervals.

    Returns ``{"rows": [one dict per policy], "return": {policy: Interval}, "success": ..., "collision": ...,
    "margin": Interval, "targets": {"return": verdict, "margin": verdict}, "n": episodes per policy}``."""
    results = stored["results"]
    for name in (agent, baseline):
        if name not in results:
            raise ValueError(f"eval_summary: no policy {name!r} in the evaluation; it has {', '.join(results)}")
    lengths = {len(r["returns"]) for r in results.values()}
    if len(lengths) != 1:
        raise ValueError(f"eval_summary: the policies were not evaluated on the same scenes (episodes {lengths})")
    n = lengths.pop()
    ret = {k: mean_interval(r["returns"], method="t") for k, r in results.items()}
    succ = {k: wilson(r["success_rate"], n) for k, r in results.items()}
    coll = {k: wilson(r["collision_rate"], n) for k, r in results.items()}
    margin = paired_difference(results[agent]["returns"], results[baseline]["returns"], method="t") if n > 1 \
        else Interval(ret[agent].mean - ret[baseline].mean, float("nan"), float("nan"))
    targets = {"return": verdict(ret[agent], TARGET_RETURN) if n > 1 else "undecided",
               "margin": verdict(margin, TARGET_MARGIN) if n > 1 else "undecided"}
    rows = [{"policy": k, "return": ret[k].mean, "95% CI": ci_text(ret[k]), "success": f"{succ[k].mean:.1%}",
             "success 95% CI": ci_text(succ[k], "{:.1%}"), "collision": f"{coll[k].mean:.1%}",
             "collision 95% CI": ci_text(coll[k], "{:.1%}"), "length": r["mean_length"], "speed": r["mean_speed"]}
            for k, r in results.items()]
    return dict(rows=rows, n=n, agent=agent, baseline=baseline, **{"return": ret}, success=succ, collision=coll,
                margin=margin, targets=targets)


def ci_text(iv: Interval, fmt: str = "{:.2f}") -> str:
    """The text "[lo, hi]" of an interval, each bound in ``fmt`` ("n/a" when a bound is not finite: one sample)."""
    if not np.isfinite([iv.lo, iv.hi]).all():
        return "n/a"
    return f"[{fmt.format(iv.lo)}, {fmt.format(iv.hi)}]"


def bench_rows(fast: bool = False) -> list[tuple[str, str, str, bool | None]]:
    """``rli bench highway``: the stored test evaluation (data/highway/eval.json, checked against the shipped
    checkpoints) with its intervals and the targets judged on them, and a reproduction check that re-runs the
    ego-attention agent on the first 3 (``fast``) or 10 test scenes and compares every return with the stored one."""
    from rlinterp import artifacts
    from rlinterp.learners.ddqn import greedy_policy

    stored = artifacts.load("highway/eval")
    S = eval_summary(stored)
    a, b = S["agent"], S["baseline"]
    ra, m = S["return"][a], S["margin"]
    k = min(3 if fast else 10, S["n"])
    rerun = evaluate(greedy_policy(artifacts.load("highway/ego_attention")), k, stored["seed"], progress=False)
    same = np.allclose(rerun["returns"], stored["results"][a]["returns"][:k], atol=1e-6, rtol=0)
    return [
        (f"{a} mean return, {S['n']} {stored['split']} scenes (seeds {stored['seed']}+), 95% CI",
         f"{ra.mean:.2f} {ci_text(ra)}", f"≥ {TARGET_RETURN} on the CI", S["targets"]["return"] == "met"),
        (f"{a} − {b}, paired, 95% CI", f"{m.mean:+.2f} {ci_text(m)}", f"≥ {TARGET_MARGIN} on the CI",
         S["targets"]["margin"] == "met"),
        *[(f"{name} mean return, 95% CI", f"{S['return'][name].mean:.2f} {ci_text(S['return'][name])}", "report",
           None) for name in stored["results"] if name != a],
        (f"{a} arrivals / collisions", f"{S['success'][a].mean:.1%} / {S['collision'][a].mean:.1%}", "report", None),
        (f"stored returns reproduce (first {k} scenes re-run)", "identical" if same else "DIFFERENT", "identical",
         bool(same)),
    ]


# --------------------------------------------------------------------------------------------------------------------
# The ego-attention network on episodes; weight-based QK / OV circuits
# --------------------------------------------------------------------------------------------------------------------
def q_and_attention(model: HookedRootModule, device: str = "cpu"):
    """A callback ``obs [15, 7] -> {"q": [3], "pattern": [H, 15] or None}`` for figures of episodes."""

    def fn(obs) -> dict[str, Any]:
        x = torch.as_tensor(obs, dtype=torch.float32, device=device)[None]
        with torch.no_grad():
            q, cache = model.run_with_cache(x, names_filter=lambda n: n == "attn.hook_pattern")
        pattern = cache["attn.hook_pattern"][0].cpu().numpy() if "attn.hook_pattern" in cache else None
        return {"q": q[0].cpu().numpy(), "pattern": pattern}

    return fn


def collect_episodes(model: HookedRootModule, n_episodes: int, seed: int = VALIDATION_SEED, device: str = "cpu",
                     progress: bool = True, workers: int | None = None) -> dict[str, Any]:
    """Greedy episodes of ``model`` on ``intersection-v0`` (env seeds ``seed, seed+1, ...``), stacked.

    Returns ``obs`` [T, 15, 7] float32 tensor (every observation the agent acted on), ``episode`` [T] and ``step`` [T]
    long tensors, ``action`` [T] long tensor, and per-episode ``returns``, ``arrived``, ``crashed`` lists. The
    episodes run in ``workers`` processes (default :func:`default_workers` for ``device``); the result does not
    depend on it.
    """
    n_episodes = check_int("n_episodes", n_episodes, 1)
    model.eval()

    def act(o) -> int:
        with torch.no_grad():
            return int(model(torch.as_tensor(o, dtype=torch.float32, device=device)).argmax())

    workers = default_workers(device) if workers is None else workers
    eps = run_episodes({"greedy": act}, np.arange(seed, seed + n_episodes), workers, progress, keep=True)["greedy"]
    lengths = [len(e[6]) for e in eps]
    return dict(obs=torch.as_tensor(np.concatenate([e[5] for e in eps]), dtype=torch.float32),
                episode=torch.tensor(np.repeat(np.arange(n_episodes), lengths)),
                step=torch.tensor(np.concatenate([np.arange(n) for n in lengths])),
                action=torch.tensor([a for e in eps for a in e[6]]), returns=[e[0] for e in eps],
                arrived=[e[1] for e in eps], crashed=[e[2] for e in eps])


def local_affine(mlp: MLP, x: Tensor) -> tuple[Tensor, Tensor]:
    """Exact local affine map of a ReLU ``MLP`` at each input: ``mlp(x') = J x' + c`` for every ``x'`` with the same
    ReLU on/off pattern as ``x`` (a ReLU network is piecewise affine). x [B, d_in] -> J [B, d_out, d_in], c [B, d_out].
    """
    J = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device).expand(len(x), -1, -1)  # [B, d_in, d_in]
    h = x
    for i in range(mlp.n_layers):
        lin = getattr(mlp, str(i)).linear
        pre = lin(h)
        on = (pre > 0).to(x.dtype)  # [B, d_out]
        J = on[:, :, None] * torch.einsum("oi,bij->boj", lin.weight, J)
        h = F.relu(pre)
    return J, h - torch.einsum("boi,bi->bo", J, x)


def embedding_maps(model: EgoAttentionNetwork, obs: Tensor) -> dict[str, Tensor]:
    """Effective linear maps of the two embeddings on a data set: the Jacobians ∂e/∂features averaged over the ego
    rows (``ego`` [64, 7]) and over the present other vehicles (``others`` [64, 7]) of ``obs`` [B, 15, 7]."""
    with torch.no_grad():
        J_ego, _ = local_affine(model.ego_embed, obs[:, 0])
        others = obs[:, 1:][obs[:, 1:, 0] >= 0.5]  # [M, 7]
        if len(others) == 0:
            raise ValueError("embedding_maps: no other vehicle is present in obs; pass observations with traffic")
        J_oth, _ = local_affine(model.others_embed, others)
    return {"ego": J_ego.mean(0), "others": J_oth.mean(0)}


def readout_map(model: EgoAttentionNetwork, obs: Tensor) -> Tensor:
    """Effective linear map from the residual (``hook_resid``) to the Q-values, ∂Q/∂resid averaged over ``obs``:
    [3, 64] (the output MLP's local Jacobian times the linear head)."""
    with torch.no_grad():
        _, cache = model.run_with_cache(obs, names_filter=lambda n: n == "hook_resid")
        J, _ = local_affine(model.mlp, cache["hook_resid"])  # [B, 64, 64]
        return torch.einsum("ao,bor->bar", model.head.weight, J).mean(0)


def head_weights(model: EgoAttentionNetwork) -> dict[str, Tensor]:
    """Per-head weight matrices: ``W_Q``, ``W_K``, ``W_V`` [H, d_head, 64] (rows of the head's slice) and ``W_O``
    [H, 64, d_head] (the combine columns that read the head)."""
    a = model.attn
    H, dh, D = a.n_heads, a.d_head, a.d_model
    return {"W_Q": a.W_Q.weight.view(H, dh, D), "W_K": a.W_K.weight.view(H, dh, D), "W_V": a.W_V.weight.view(H, dh, D),
            "W_O": a.W_O.weight.view(D, H, dh).permute(1, 0, 2)}


def qk_circuit(model: EgoAttentionNetwork, J_ego: Tensor | None = None, J_key: Tensor | None = None) -> Tensor:
    """QK circuit per head, ``W_Qᵀ W_K / √d_head`` [H, 64, 64] in embedding space, or, given the embeddings' linear
    maps ``J_ego`` [64, 7] and ``J_key`` [64, 7], ``J_egoᵀ W_Qᵀ W_K J_key / √d_head`` [H, 7, 7]: entry (f, g) is how
    much the score of a key vehicle grows with ego feature f times key feature g."""
    w = head_weights(model)
    M = torch.einsum("hqd,hqe->hde", w["W_Q"], w["W_K"]) / math.sqrt(model.attn.d_head)  # [H, 64, 64]
    if J_ego is None:
        return M
    return torch.einsum("df,hde,eg->hfg", J_ego, M, J_key)


def ov_circuit(model: EgoAttentionNetwork, J_value: Tensor | None = None, readout: Tensor | None = None) -> Tensor:
    """OV circuit per head, ``W_O W_V`` [H, 64, 64] (what an attended embedding writes into the combine output), or,
    with the value embedding's linear map ``J_value`` [64, 7] and the residual's readout ``readout`` [3, 64],
    ``readout · ½ W_O W_V · J_value`` [H, 3, 7]: the change of each Q-value per unit of a feature of a vehicle the
    head attends to fully (the ½ is the residual average)."""
    w = head_weights(model)
    M = torch.einsum("hod,hde->hoe", w["W_O"], w["W_V"])  # [H, 64, 64]
    if J_value is None:
        return M
    return torch.einsum("ao,hoe,ef->haf", readout, M / 2, J_value)


def single_vehicle_scenes(ego: Tensor, rel_xy: Tensor, heading: Tensor, speed: Tensor) -> Tensor:
    """Controlled, valid observations: the ego row ``ego`` [7] (a real normalised ego row) and one other vehicle
    at ``rel_xy`` [n, 2] metres from the ego, with heading ``heading`` [n] (radians, world frame) and speed ``speed``
    [n] m/s (velocity along the heading), normalised and clipped like highway-env's Kinematics observation (x, y by
    100 m, vx, vy by 20 m/s). Returns obs [n, 15, 7] with rows 2..14 absent (zeros)."""
    if ego.shape != (N_FEATURES,) or ego[0] < 0.5:
        raise ValueError(f"ego must be one present normalised ego row of shape ({N_FEATURES},), got {tuple(ego.shape)}")
    n = len(rel_xy)
    obs = torch.zeros(n, N_VEHICLES, N_FEATURES)
    obs[:, 0] = ego
    obs[:, 1, 0] = 1.0
    obs[:, 1, 1:3] = (ego[1:3] + rel_xy / 100.0).clamp(-1, 1)
    vel = speed[:, None] * torch.stack([heading.cos(), heading.sin()], -1)
    obs[:, 1, 3:5] = (vel / 20.0).clamp(-1, 1)
    obs[:, 1, 5], obs[:, 1, 6] = heading.cos(), heading.sin()
    return obs


def _check_obs(name: str, obs: Any, batch_dims: int = 1) -> None:
    shape = (N_VEHICLES, N_FEATURES)
    if not isinstance(obs, Tensor) or obs.ndim != batch_dims + 2 or tuple(obs.shape[-2:]) != shape:
        got = tuple(obs.shape) if isinstance(obs, Tensor) else type(obs).__name__
        raise ValueError(f"{name} must be a tensor [n, {N_VEHICLES}, {N_FEATURES}] of observations, got {got}")


def vehicle_table(obs: Tensor, pattern: Tensor) -> pd.DataFrame:
    """One row per (observation, present other vehicle) of ``obs`` [n, 15, 7]: ``obs`` (row of ``obs``),
    ``vehicle`` (1..14), ``distance`` to the ego (m), ``closing`` speed (m/s, positive when the distance shrinks),
    its ``speed``, ``ahead`` (positive projection of the relative position on the ego heading), ``nearest`` (the
    closest present other vehicle), and ``w{h}``, head ``h``'s attention weight on it from ``pattern`` [n, H, 15]."""
    _check_obs("vehicle_table: obs", obs)
    if not isinstance(pattern, Tensor) or pattern.ndim != 3 or len(pattern) != len(obs) \
            or pattern.shape[2] != N_VEHICLES:
        raise ValueError(f"vehicle_table: pattern must be [{len(obs)}, H, {N_VEHICLES}], got "
                         f"{tuple(pattern.shape) if isinstance(pattern, Tensor) else type(pattern).__name__}")
    o = obs.numpy().astype(float)
    pos, vel = o[..., 1:3] * 100.0, o[..., 3:5] * 20.0  # metres, m/s
    rel, rvel = pos[:, 1:] - pos[:, :1], vel[:, 1:] - vel[:, :1]
    dist = np.linalg.norm(rel, axis=-1)
    closing = -(rel * rvel).sum(-1) / np.maximum(dist, 1e-6)
    ahead = (rel * o[:, :1, 5:7]).sum(-1)
    b, j = np.nonzero(o[:, 1:, 0] >= 0.5)
    rank = np.argsort(np.argsort(np.where(o[:, 1:, 0] >= 0.5, dist, np.inf), axis=1), axis=1)
    df = pd.DataFrame(dict(obs=b, vehicle=j + 1, distance=dist[b, j], closing=closing[b, j],
                           speed=np.linalg.norm(vel[:, 1:], axis=-1)[b, j], ahead=ahead[b, j] > 0,
                           nearest=rank[b, j] == 0))
    for h in range(pattern.shape[1]):
        df[f"w{h}"] = pattern[b, h, j + 1].numpy()
    return df


def random_scenes(n: int, gen: np.random.Generator, *, ego: Tensor | None = None,
                  obs: Tensor | None = None) -> tuple[Tensor, pd.DataFrame]:
    """``n`` valid single-vehicle scenes (:func:`single_vehicle_scenes`) [n, 15, 7] and their interpretable
    variables (a DataFrame: ``distance``, ``closing speed``, ``other speed``, ``ahead``, ``crossing``, ``ego speed``).

    The other vehicle sits at a uniform distance in [5, 60] m and bearing, heads along one of the four road
    directions at a uniform speed in [0, 10] m/s. The ego row is ``ego`` [7] in every scene, or (give ``obs``
    [m, 15, 7] instead) the ego row of a random observation of ``obs`` per scene. All randomness from ``gen``."""
    n = check_int("random_scenes: n", n, 1)
    if not isinstance(gen, np.random.Generator):
        raise ValueError(f"random_scenes: gen must be a numpy Generator, got {type(gen).__name__}")
    if (ego is None) == (obs is None):
        raise ValueError("random_scenes: give exactly one of ego (a fixed ego row) or obs (observations to draw "
                         "ego rows from)")
    if ego is None:
        _check_obs("random_scenes: obs", obs)
        egos = obs[torch.as_tensor(gen.integers(0, len(obs), n))][:, 0]
    else:
        egos = ego[None].expand(n, -1)
    dist, bearing = gen.uniform(5, 60, n), gen.uniform(-np.pi, np.pi, n)
    heading = gen.integers(0, 4, n) * np.pi / 2
    speed = gen.uniform(0, 10, n)
    rel = np.stack([dist * np.cos(bearing), dist * np.sin(bearing)], -1)
    scenes = torch.stack([single_vehicle_scenes(egos[i], torch.tensor(rel[i:i + 1], dtype=torch.float32),
                                                torch.tensor(heading[i:i + 1], dtype=torch.float32),
                                                torch.tensor(speed[i:i + 1], dtype=torch.float32))[0]
                          for i in range(n)])
    e = egos.numpy().astype(float)
    ego_v = e[:, 3:5] * 20
    oth_v = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], -1)
    closing = -(rel * (oth_v - ego_v)).sum(-1) / dist
    ego_dir = e[:, 5:7]
    var = pd.DataFrame({"distance": dist, "closing speed": closing, "other speed": speed,
                        "ahead": (rel * ego_dir).sum(-1) / dist,
                        "crossing": np.abs(ego_dir[:, 0] * np.sin(heading) - ego_dir[:, 1] * np.cos(heading)),
                        "ego speed": np.linalg.norm(ego_v, axis=-1)})
    return scenes, var
