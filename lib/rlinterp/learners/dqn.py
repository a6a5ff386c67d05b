"""A small 2-layer DQN that learns to play the coin-flip game (CleanRL-style: the whole algorithm in one file).

The game (:mod:`rlinterp.envs.coinflip`): ``n`` coins with unknown weights ``p_i ~ clip(Normal(0.5, sigma), 0, 1)``,
``k`` flips, one coin per flip, maximise the number of heads. The Bayes-optimal policy is known exactly
(:mod:`rlinterp.studies.coinflip_bayes`), which makes this a clean testbed: we can say *exactly* how good the learned agent is.

Design choices
--------------
* **Network** (:class:`rlinterp.models.qnet.QNetwork`): ``obs (2n+1) -> Linear -> ReLU -> Linear -> ReLU -> Linear -> n Q-values``; the
  observation is the per-coin (heads, tails) counts divided by ``k`` and the number of flips left divided by ``k``
  (:func:`rlinterp.envs.coinflip.encode_obs`). It is a TransformerLens ``HookedRootModule`` with a ``HookPoint`` on
  every activation (``hook_obs``, ``mlp.{0,1}.hook_pre``, ``mlp.{0,1}.hook_post``, ``hook_q_values``), so
  ``run_with_cache`` / ``run_with_hooks`` and every method in :mod:`rlinterp.interp` work on it unchanged.
* **Canonical states**: the coins are exchangeable, so the agent always sees the coins *sorted* (heads descending,
  then tails ascending; :func:`rlinterp.envs.coinflip.canonicalize`) and its chosen canonical slot is mapped back to
  the real coin through the permutation. The policy is permutation-invariant by construction, the network has
  ``n!`` times fewer states to learn, and -- because the policy is a function of the canonical state only -- its
  expected score can be computed *exactly* by backward induction over the ~350k canonical states
  (:func:`rlinterp.studies.coinflip_bayes.evaluate_exact`) instead of estimated by noisy Monte Carlo.
* **Algorithm** (:func:`train`): DQN (Mnih et al. 2015) on thousands of parallel games, a replay buffer, a target
  network, the Double-DQN target (van Hasselt et al. 2016), epsilon-greedy exploration with a linear schedule,
  ``gamma = 1`` (the horizon is finite and ``flips_left`` is an input, so the state is Markov and undiscounted returns
  are well defined), MSE loss (it estimates the *mean* return; Huber would bias Q towards the median of the
  Bernoulli outcomes), Adam with a cosine learning-rate decay (the Q-value differences that matter are ~0.01 heads,
  far below the reward noise, so the late, small steps average the noise away). The greedy policy is evaluated
  exactly every ``eval_every`` steps and the best evaluated weights are kept (model selection on the exact value).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from rlinterp.progress import tqdm

from rlinterp.envs.coinflip import BatchedCoinFlip, canonicalize
from rlinterp.learners.replay import ReplayBuffer
from rlinterp.models.qnet import QNetwork



# ----------------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class DQNConfig:
    """Everything that defines a trained agent: the game, the network and the training run."""

    # game
    n_coins: int = 5
    n_flips: int = 20
    sigma: float = 0.3
    # network
    d_hidden: int = 128  # width of both hidden layers
    # training
    seed: int = 0
    num_games: int = 2048  # parallel games; one env step adds num_games transitions to the buffer
    total_steps: int = 40_000  # vectorised env steps (= total_steps * num_games transitions)
    learning_starts: int = 200  # env steps collected before the first gradient step
    buffer_size: int = 1_000_000  # transitions
    batch_size: int = 2048
    updates_per_step: int = 1  # gradient steps per env step
    lr: float = 1e-3
    lr_final: float = 1e-5  # cosine decay from lr to lr_final over training
    weight_decay: float = 0.0
    gamma: float = 1.0
    target_update_every: int = 250  # gradient steps between hard target-network copies
    double_dqn: bool = True
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_decay_frac: float = 0.5  # fraction of training over which epsilon decays linearly
    eval_every: int = 1_000  # env steps between exact evaluations of the greedy policy (0: only at the end)
    keep_best: bool = True  # return the weights with the best exact value (else the last ones)

    def __post_init__(self) -> None:
        checks = {
            "n_coins": self.n_coins >= 2, "n_flips": self.n_flips >= 1, "sigma": self.sigma > 0,
            "d_hidden": self.d_hidden >= 1, "num_games": self.num_games >= 1, "total_steps": self.total_steps >= 1,
            "batch_size": self.batch_size >= 1, "buffer_size": self.buffer_size >= self.num_games,
            "lr": self.lr > 0, "lr_final": 0 < self.lr_final <= self.lr, "gamma": 0 < self.gamma <= 1,
            "target_update_every": self.target_update_every >= 1, "updates_per_step": self.updates_per_step >= 0,
            "eps_start": 0 <= self.eps_end <= self.eps_start <= 1, "eps_decay_frac": 0 < self.eps_decay_frac <= 1,
            "eval_every": self.eval_every >= 0, "learning_starts": self.learning_starts >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid DQNConfig field(s) {bad}: got "
                             + ", ".join(f"{b}={getattr(self, b)!r}" for b in bad)
                             + "; sizes must be positive, 0 < lr_final <= lr, 0 <= eps_end <= eps_start <= 1, "
                               "buffer_size >= num_games")

    @property
    def d_obs(self) -> int:
        return 2 * self.n_coins + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DQNConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown DQNConfig field(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------
def epsilon(cfg: DQNConfig, step: int) -> float:
    """Linear epsilon schedule: eps_start -> eps_end over the first eps_decay_frac of the env steps."""
    frac = min(1.0, step / max(1.0, cfg.eps_decay_frac * cfg.total_steps))
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


def learning_rate(cfg: DQNConfig, step: int) -> float:
    """Cosine decay from lr to lr_final over the env steps."""
    frac = min(1.0, step / cfg.total_steps)
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * frac))


def train(config: DQNConfig, device: str = "cpu", progress: bool = True,
          evaluator: Callable[[QNetwork], float] | None | str = "exact") -> tuple[QNetwork, dict[str, list]]:
    """Train a DQN agent; returns ``(model, history)``.

    ``history`` holds lists: ``eval_step``/``eval_value``/``eval_wall`` (exact expected heads of the greedy policy,
    evaluated every ``eval_every`` env steps and at the end), ``log_step``/``loss``/``train_return``/``epsilon``/``lr``
    (averaged over each logging window), plus ``best_step``/``best_value`` (the evaluation whose weights are
    returned when ``keep_best``), ``wall_time`` and ``cpu_time`` (seconds). Same config and seed -> identical weights
    (on CPU, training runs on one thread). ``evaluator(model) -> float`` scores the greedy policy (default: exact
    expected heads, :func:`rlinterp.studies.coinflip.exact_value`; None skips evaluation, and then the last weights are
    returned).
    """
    cfg = config
    if evaluator == "exact":
        from rlinterp.studies.coinflip import exact_value as evaluator
    device = torch.device(device)
    threads = torch.get_num_threads()
    if device.type == "cpu":  # one thread: frugal, and bit-identical results whatever the machine's core count
        torch.set_num_threads(1)
    try:
        return _train(cfg, device, progress, evaluator)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: DQNConfig, device: torch.device, progress: bool, evaluator: Callable[[QNetwork], float] | None
           ) -> tuple[QNetwork, dict[str, list]]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    n, k, B = cfg.n_coins, cfg.n_flips, cfg.num_games

    env = BatchedCoinFlip(n, k, cfg.sigma, B, seed=cfg.seed)
    q_net = QNetwork(cfg).to(device)
    target = copy.deepcopy(q_net)
    opt = torch.optim.Adam(q_net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    buf = ReplayBuffer(cfg.buffer_size, cfg.d_obs, device)

    hist: dict[str, list] = {k_: [] for k_ in ("eval_step", "eval_value", "eval_wall", "log_step", "loss",
                                                "train_return", "epsilon", "lr")}
    best = (-math.inf, -1, None)  # (value, step, state_dict)
    log_every = max(1, min(500, cfg.total_steps // 50))
    win_loss, win_ret = [], []
    t0, c0 = time.time(), time.process_time()

    def evaluate(step: int) -> None:
        nonlocal best
        if evaluator is None:
            return
        value = evaluator(q_net)
        hist["eval_step"].append(step)
        hist["eval_value"].append(value)
        hist["eval_wall"].append(time.time() - t0)
        if value > best[0]:
            best = (value, step, copy.deepcopy(q_net.state_dict()))

    env.reset()
    ep_return = np.zeros(B)
    n_updates = 0
    bar = tqdm(range(cfg.total_steps), desc="DQN", disable=not progress, mininterval=1.0)
    for step in bar:
        # -- act epsilon-greedily on the canonical state -----------------------------------------------------------
        eps = epsilon(cfg, step)
        sorted_counts, perm = canonicalize(np.asarray(env.counts))
        obs = q_net.canonical_obs(sorted_counts, env.flips_left)  # [B, 2n+1]
        with torch.no_grad():
            slot = q_net(obs).argmax(dim=1).cpu().numpy()  # [B]
        explore = rng.random(B) < eps
        slot = np.where(explore, rng.integers(0, n, B), slot)
        _, reward, done = env.step(perm[np.arange(B), slot])
        reward, done = np.asarray(reward, dtype=np.float32), np.asarray(done, dtype=bool)
        next_obs = q_net.canonical_obs(canonicalize(np.asarray(env.counts))[0], env.flips_left)
        buf.add(obs, torch.as_tensor(slot, device=device), torch.as_tensor(reward, device=device), next_obs,
                torch.as_tensor(done, dtype=torch.float32, device=device))
        ep_return += reward
        if done.any():  # all games share the horizon k, so they all end together
            win_ret.append(float(ep_return.mean()))
            ep_return[:] = 0
            env.reset()

        # -- learn: Double-DQN target, MSE, Adam with cosine lr decay ---------------------------------------------
        if step >= cfg.learning_starts:
            lr = learning_rate(cfg, step)
            for g in opt.param_groups:
                g["lr"] = lr
            for _ in range(cfg.updates_per_step):
                b = buf.sample(cfg.batch_size, gen)
                o, a, r, o2, d = b["obs"], b["action"], b["reward"], b["next_obs"], b["done"]
                with torch.no_grad():
                    q_next_target = target(o2)  # [batch, n]
                    a2 = q_net(o2).argmax(dim=1) if cfg.double_dqn else q_next_target.argmax(dim=1)
                    y = r + cfg.gamma * (1 - d) * q_next_target.gather(1, a2[:, None]).squeeze(1)
                q_sa = q_net(o).gather(1, a[:, None]).squeeze(1)  # [batch]
                loss = F.mse_loss(q_sa, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                n_updates += 1
                win_loss.append(loss.item())
                if n_updates % cfg.target_update_every == 0:
                    target.load_state_dict(q_net.state_dict())

        # -- log and evaluate ------------------------------------------------------------------------------------
        if (step + 1) % log_every == 0:
            hist["log_step"].append(step + 1)
            hist["loss"].append(float(np.mean(win_loss)) if win_loss else float("nan"))
            hist["train_return"].append(float(np.mean(win_ret)) if win_ret else float("nan"))
            hist["epsilon"].append(eps)
            hist["lr"].append(opt.param_groups[0]["lr"])
            bar.set_postfix(refresh=False, ret=f"{hist['train_return'][-1]:.3f}", loss=f"{hist['loss'][-1]:.4f}",
                            eps=f"{eps:.3f}", best=f"{best[0]:.4f}")
            win_loss, win_ret = [], []
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.total_steps:
            evaluate(step + 1)
    evaluate(cfg.total_steps)
    bar.close()

    hist["best_step"], hist["best_value"] = [best[1]], [best[0]]
    if cfg.keep_best and best[2] is not None:
        q_net.load_state_dict(best[2])
    hist["wall_time"] = [time.time() - t0]
    hist["cpu_time"] = [time.process_time() - c0]
    return q_net.eval(), hist
