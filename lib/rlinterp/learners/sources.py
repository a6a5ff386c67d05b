"""Source learning algorithms whose learning histories Algorithm Distillation distils.

Every function runs many tasks at once (vectorised numpy over the task axis) and is deterministic given ``seed``
(one ``numpy.random.Generator``), so multi-megabyte datasets are regenerated on demand instead of being shipped.

- :func:`darkroom_q_learning`: tabular Q-learning with a UCB-style count bonus ``bonus / sqrt(N(s, a) + 1)`` and a
  little epsilon-greedy noise. It needs many episodes: on 9 x 9 Dark Room it reaches ~80 % of the optimal return
  only after ~60-80 episodes, which is what makes its learning history worth distilling.
- :func:`darkroom_psrl`: posterior sampling (Thompson sampling for RL; Strens 2000, Osband et al. 2013) with the
  task family's prior: the dynamics are known, the goal is uniform over the cells not yet ruled out. It samples a goal
  from the posterior, walks a shortest path to it, and resamples when the sample is refuted (``resample="refuted"``,
  ~80 % of the optimal return after ~6 episodes) or only at the next episode (``"episode"``, PSRL as in Osband et al.,
  ~26 episodes, because it then stays on a refuted cell until the episode ends).
- :func:`darkroom_expert`: the optimal policy (a random shortest path to the goal, then no-op): the data of the
  expert-distillation (ED) baseline.
- :func:`darkroom_random`: uniformly random actions (a baseline).

Dark-room histories are dicts of arrays with shapes ``obs, actions, rewards: (B, E, T)`` (observation *before* the
action, the action, the reward it earned) and ``returns: (B, E)``, for ``B`` tasks, ``E`` episodes of ``T`` steps.
"""
from __future__ import annotations


import numpy as np
from rlinterp.progress import tqdm

from rlinterp.envs.darkroom import ACTIONS, DELTAS, NOOP, BatchedDarkRoom, oracle_actions
from rlinterp.validation import check_int, check_prob


def _empty_history(B: int, E: int, T: int) -> dict[str, np.ndarray]:
    return {"obs": np.zeros((B, E, T), np.int64), "actions": np.zeros((B, E, T), np.int64),
            "rewards": np.zeros((B, E, T), np.float32)}


def darkroom_q_learning(goals: np.ndarray, n_episodes: int = 120, seed: int = 0, alpha: float = 0.3,
                        gamma: float = 0.9, bonus: float = 0.5, eps: float = 0.02, size: int = 9,
                        max_steps: int = 20, progress: bool = False) -> dict[str, np.ndarray]:
    """Learning histories of UCB-bonus tabular Q-learning, one independent learner per row of ``goals`` (B, 2).

    Action choice: ``argmax_a Q(s, a) + bonus / sqrt(N(s, a) + 1)`` (random tie-break), replaced by a uniform action
    with probability ``eps``; update ``Q(s, a) += alpha * (r + gamma * max_a' Q(s', a') - Q(s, a))`` (Q starts at 0;
    the time-limit is not treated as terminal).
    """
    n_episodes = check_int("n_episodes", n_episodes, 1)
    alpha = check_prob("alpha", alpha, 1e-6, 1.0)
    gamma = check_prob("gamma", gamma, 0.0, 0.9999)
    eps = check_prob("eps", eps)
    if bonus < 0:
        raise ValueError(f"bonus must be >= 0, got {bonus}")
    rng = np.random.default_rng(seed)
    env = BatchedDarkRoom(goals, size, max_steps)
    B, S, A, T = env.B, env.size ** 2, len(ACTIONS), env.max_steps
    Q = np.zeros((B, S, A))
    N = np.zeros((B, S, A))
    hist = _empty_history(B, n_episodes, T)
    b = np.arange(B)
    for e in tqdm(range(n_episodes), desc="Q-learning", disable=not progress):
        s = env.reset()
        for t in range(T):
            v = Q[b, s] + bonus / np.sqrt(N[b, s] + 1) + 1e-6 * rng.random((B, A))  # (B, A)
            a = np.where(rng.random(B) < eps, rng.integers(0, A, B), v.argmax(1))
            s2, r, _ = env.step(a)
            N[b, s, a] += 1
            Q[b, s, a] += alpha * (r + gamma * Q[b, s2].max(1) - Q[b, s, a])
            hist["obs"][:, e, t], hist["actions"][:, e, t], hist["rewards"][:, e, t] = s, a, r
            s = s2
    hist["returns"] = hist["rewards"].sum(-1)
    return hist


def darkroom_psrl(goals: np.ndarray, n_episodes: int = 12, seed: int = 0, resample: str = "refuted", size: int = 9,
                  max_steps: int = 20, progress: bool = False) -> dict[str, np.ndarray]:
    """Learning histories of posterior sampling over the goal cell, one independent learner per row of ``goals`` (B, 2).

    Belief: the goal is uniform over the cells the learner has not yet *stepped onto* without reward (a reward is only
    paid for the step that ends on the goal, so merely starting on a cell says nothing about it); a reward collapses
    the belief onto that cell. Policy: move to the sampled goal along x, then along y
    (:func:`~rlinterp.envs.darkroom.oracle_actions`), no-op on it (which tests the start cell). A new sample is drawn
    at every episode start and, with ``resample="refuted"``, also as soon as the sampled cell is ruled out. Once
    the goal is found the learner heads there at once, also within the episode in which it found it.
    """
    n_episodes = check_int("n_episodes", n_episodes, 1)
    if resample not in ("refuted", "episode"):
        raise ValueError(f"resample must be 'refuted' (resample when the sampled goal is ruled out) or 'episode' "
                         f"(PSRL: once per episode), got {resample!r}")
    rng = np.random.default_rng(seed)
    env = BatchedDarkRoom(goals, size, max_steps)
    B, S, T, G = env.B, env.size ** 2, env.max_steps, env.size
    b = np.arange(B)
    ruled_out = np.zeros((B, S), bool)  # cells visited without reward
    found = np.full(B, -1)  # the goal cell once a reward was seen
    hist = _empty_history(B, n_episodes, T)

    def sample_goal() -> np.ndarray:  # (B,) a cell drawn uniformly from the posterior support
        draw = ((~ruled_out) * (rng.random((B, S)) + 1e-9)).argmax(1)
        return np.where(found >= 0, found, draw)

    for e in tqdm(range(n_episodes), desc="PSRL", disable=not progress):
        s = env.reset()
        target = sample_goal()
        for t in range(T):
            if resample == "refuted":
                target = np.where(ruled_out[b, target], sample_goal(), target)
            target = np.where(found >= 0, found, target)
            a = oracle_actions(np.stack([s % G, s // G], 1), np.stack([target % G, target // G], 1))
            s2, r, _ = env.step(a)
            found = np.where(r > 0, s2, found)
            ruled_out[b, s2] |= r == 0
            hist["obs"][:, e, t], hist["actions"][:, e, t], hist["rewards"][:, e, t] = s, a, r
            s = s2
    hist["returns"] = hist["rewards"].sum(-1)
    return hist


#: the Dark Room learners whose histories AD distils, by the name checkpoints record (``log["source"]``)
DARKROOM_LEARNERS = {"psrl": darkroom_psrl, "q_learning": darkroom_q_learning}


def darkroom_expert(goals: np.ndarray, n_episodes: int = 4, seed: int = 0, size: int = 9,
                    max_steps: int = 20) -> dict[str, np.ndarray]:
    """Expert trajectories: each step a uniformly chosen move that shortens the distance to the goal; no-op on it."""
    n_episodes = check_int("n_episodes", n_episodes, 1)
    rng = np.random.default_rng(seed)
    env = BatchedDarkRoom(goals, size, max_steps)
    B, T = env.B, env.max_steps
    hist = _empty_history(B, n_episodes, T)
    for e in range(n_episodes):
        s = env.reset()
        for t in range(T):
            d = env.goals - env.pos  # (B, 2)
            good = np.stack([d[:, 0] < 0, d[:, 0] > 0, d[:, 1] < 0, d[:, 1] > 0, (d == 0).all(-1)], 1)  # (B, 5)
            a = (good * rng.random(good.shape)).argmax(1)
            s2, r, _ = env.step(a)
            hist["obs"][:, e, t], hist["actions"][:, e, t], hist["rewards"][:, e, t] = s, a, r
            s = s2
    hist["returns"] = hist["rewards"].sum(-1)
    return hist


def darkroom_random(goals: np.ndarray, n_episodes: int = 4, seed: int = 0, size: int = 9,
                    max_steps: int = 20) -> dict[str, np.ndarray]:
    """Uniformly random actions (the random baseline)."""
    rng = np.random.default_rng(seed)
    env = BatchedDarkRoom(goals, size, max_steps)
    hist = _empty_history(env.B, check_int("n_episodes", n_episodes, 1), env.max_steps)
    for e in range(n_episodes):
        s = env.reset()
        for t in range(env.max_steps):
            a = rng.integers(0, len(ACTIONS), env.B)
            s2, r, _ = env.step(a)
            hist["obs"][:, e, t], hist["actions"][:, e, t], hist["rewards"][:, e, t] = s, a, r
            s = s2
    hist["returns"] = hist["rewards"].sum(-1)
    return hist


__all__ = ["darkroom_q_learning", "darkroom_psrl", "DARKROOM_LEARNERS", "darkroom_expert", "darkroom_random", "NOOP",
           "DELTAS"]
