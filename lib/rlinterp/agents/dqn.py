"""A small 2-layer DQN that learns to play the coin-flip game (CleanRL-style: the whole algorithm in one file).

The game (:mod:`rlinterp.envs.coinflip`): ``n`` coins with unknown weights ``p_i ~ clip(Normal(0.5, sigma), 0, 1)``,
``k`` flips, one coin per flip, maximise the number of heads. The Bayes-optimal policy is known exactly
(:mod:`rlinterp.agents.bayes`), which makes this a clean testbed: we can say *exactly* how good the learned agent is.

Design choices
--------------
* **Network** (:class:`QNetwork`): ``obs (2n+1) -> Linear -> ReLU -> Linear -> ReLU -> Linear -> n Q-values``; the
  observation is the per-coin (heads, tails) counts divided by ``k`` and the number of flips left divided by ``k``
  (:func:`rlinterp.envs.coinflip.encode_obs`). It is a TransformerLens ``HookedRootModule`` with a ``HookPoint`` on
  every activation (``hook_obs``, ``mlp.{0,1}.hook_pre``, ``mlp.{0,1}.hook_post``, ``hook_q``), so
  ``run_with_cache`` / ``run_with_hooks`` and every method in :mod:`rlinterp.interp` work on it unchanged.
* **Canonical states**: the coins are exchangeable, so the agent always sees the coins *sorted* (heads descending,
  then tails ascending; :func:`rlinterp.envs.coinflip.canonicalize`) and its chosen canonical slot is mapped back to
  the real coin through the permutation. The policy is permutation-invariant by construction, the network has
  ``n!`` times fewer states to learn, and -- because the policy is a function of the canonical state only -- its
  expected score can be computed *exactly* by backward induction over the ~350k canonical states
  (:func:`rlinterp.agents.bayes.evaluate_exact`) instead of estimated by noisy Monte Carlo.
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
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from rlinterp.envs.coinflip import BatchedCoinFlip, canonicalize, encode_obs



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
# Network
# ----------------------------------------------------------------------------------------------------------------------
class MLPLayer(nn.Module):
    """``post = ReLU(W x + b)`` with hook points on the pre- and post-activation."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.W = nn.Linear(d_in, d_out)
        self.hook_pre = HookPoint()  # [batch, d_out]
        self.hook_post = HookPoint()  # [batch, d_out]

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_post(F.relu(self.hook_pre(self.W(x))))


class QNetwork(HookedRootModule):
    """The 2-hidden-layer Q-network: ``obs [batch, 2n+1] -> q [batch, n]`` (one Q-value per canonical coin slot).

    Hook points: ``hook_obs`` [batch, 2n+1], ``mlp.0.hook_pre``/``mlp.0.hook_post`` [batch, d_hidden],
    ``mlp.1.hook_pre``/``mlp.1.hook_post`` [batch, d_hidden], ``hook_q`` [batch, n].
    """

    def __init__(self, cfg: DQNConfig):
        super().__init__()
        self.cfg = cfg
        self.hook_obs = HookPoint()
        self.mlp = nn.ModuleList([MLPLayer(cfg.d_obs, cfg.d_hidden), MLPLayer(cfg.d_hidden, cfg.d_hidden)])
        self.unembed = nn.Linear(cfg.d_hidden, cfg.n_coins)
        self.hook_q = HookPoint()
        self.setup()

    def forward(self, obs: Tensor) -> Tensor:
        x = self.hook_obs(obs)  # [batch, 2n+1]
        for layer in self.mlp:
            x = layer(x)  # [batch, d_hidden]
        return self.hook_q(self.unembed(x))  # [batch, n]

    @property
    def device(self) -> torch.device:
        return self.unembed.weight.device

    def graph(self, level: str = "neuron", groups: dict[str, Any] | None = None):
        """The computational graph for circuit discovery and causal scrubbing (:mod:`rlinterp.interp.graph`).

        ``level="neuron"`` (:func:`~rlinterp.interp.graph.mlp_graph`): sources ``in.i`` (observation entries:
        ``in.{2j}``/``in.{2j+1}`` = heads/tails of canonical coin j, ``in.{2n}`` = flips left), ``h0.i``/``h1.i``
        (hidden units after the ReLU); destinations ``h0.i``/``h1.i`` (pre-activations) and ``out.j`` (Q-value of
        canonical slot j); every weight is an edge (``(2n+1) d + d^2 + d n`` edges). ``level="layer"``: one node per
        layer (``in -> h0 -> h1 -> out``).

        ``groups`` ({name: first-layer unit indices}, a partition of the ``d_hidden`` units) builds the graph used to
        scrub hypotheses about *groups* of first-layer units: ``in -> (each unit, component = its group) -> group ->
        h1 -> out``; the edge group->h1 carries the group's contribution ``W1[:, group] a[group]`` to layer 2's
        pre-activation. Edge-level methods (:meth:`Graph.forward`, scrubbing, ACDC, EAP) work on it; node-level
        patching does not (a group is not a single index of its hook).
        """
        from rlinterp.interp.graph import EdgeGroup, Graph, Node, mlp_graph

        layers = [("hook_obs", self.mlp[0].W, "mlp.0.hook_pre"), ("mlp.0.hook_post", self.mlp[1].W, "mlp.1.hook_pre"),
                  ("mlp.1.hook_post", self.unembed, "hook_q")]
        if groups is None:
            return mlp_graph(layers, level=level)
        d = self.cfg.d_hidden
        members = {str(g): [int(i) for i in idx] for g, idx in groups.items()}
        flat = sorted(i for idx in members.values() for i in idx)
        if flat != list(range(d)):
            raise ValueError(f"groups must partition the {d} first-layer units 0..{d - 1} (each exactly once)")
        if {"in", "h1", "out"} & set(members):
            raise ValueError("group names 'in', 'h1' and 'out' are reserved")
        comp = {i: g for g, idx in members.items() for i in idx}
        W0, W1, Wu = self.mlp[0].W.weight, self.mlp[1].W.weight, self.unembed.weight
        x_in = Node("in", "hook_obs", (), 0, "in")
        units = [Node(f"{comp[i]}.{i}", "mlp.0.hook_pre", (i,), 1, comp[i]) for i in range(d)]
        gsrc = [Node(g, "mlp.0.hook_post", (), 1, g) for g in members]
        h1_dst, h1_src = Node("h1.in", "mlp.1.hook_pre", (), 2, "h1"), Node("h1", "mlp.1.hook_post", (), 2, "h1")
        out = Node("out", "hook_q", (), 3, "out")
        idx = [torch.tensor(members[g]) for g in members]
        return Graph([
            EdgeGroup("hook_obs", "mlp.0.hook_pre", [x_in], units,
                      lambda a: (a @ W0.detach().T).unsqueeze(-2), "neuron"),  # [..., 1, d]
            EdgeGroup("mlp.0.hook_post", "mlp.1.hook_pre", gsrc, [h1_dst],  # [..., G, d]
                      lambda a: torch.stack([a[..., i.to(a.device)] @ W1.detach()[:, i.to(a.device)].T for i in idx],
                                            -2), "resid", dst_unsqueeze=True),
            EdgeGroup("mlp.1.hook_post", "hook_q", [h1_src], [out], lambda a: (a @ Wu.detach().T).unsqueeze(-2),
                      "resid", dst_unsqueeze=True),
        ])

    # -- acting ------------------------------------------------------------------------------------------------------
    def canonical_obs(self, sorted_counts: np.ndarray, flips_left: np.ndarray) -> Tensor:
        """Encode already-canonical counts [batch, n, 2] and flips_left [batch] as a float tensor [batch, 2n+1]."""
        obs = encode_obs(np.asarray(sorted_counts), np.asarray(flips_left), self.cfg.n_flips)
        return torch.as_tensor(obs, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def q_values(self, counts: np.ndarray, flips_left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Q-values in *canonical* order and the permutation: (q [batch, n], perm [batch, n]).

        ``q[b, j]`` is the value of flipping the coin in canonical slot ``j``, i.e. the original coin ``perm[b, j]``.
        """
        counts = np.asarray(counts)
        self._check_state(counts, flips_left)
        sorted_counts, perm = canonicalize(counts)
        q = self(self.canonical_obs(sorted_counts, flips_left)).cpu().numpy()
        return q, perm

    def act(self, counts: np.ndarray, flips_left: np.ndarray) -> np.ndarray:
        """Greedy action (original coin index) [batch] for raw per-coin counts [batch, n, 2] and flips_left [batch].

        The state is canonicalised first, so permuting the coins permutes the chosen coin (ties between identical
        coins are broken towards the first canonical slot)."""
        q, perm = self.q_values(counts, flips_left)
        slot = q.argmax(axis=1)
        return perm[np.arange(len(slot)), slot]

    def policy(self, counts: np.ndarray, flips_left: np.ndarray, rng: np.random.Generator | None = None
               ) -> np.ndarray:
        """The agent as a baseline-style policy ``policy(counts, flips_left, rng) -> actions`` (rng unused)."""
        return self.act(counts, flips_left)

    @torch.no_grad()
    def policy_probs(self, sorted_counts: np.ndarray, flips_left: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
        """Action probabilities over canonical slots [S, n] for canonical states (for ``bayes.evaluate_exact``).

        The greedy policy is deterministic, so each row is one-hot at the argmax."""
        sorted_counts, flips_left = np.asarray(sorted_counts), np.asarray(flips_left)
        slots = np.empty(len(flips_left), dtype=np.int64)
        for i in range(0, len(flips_left), chunk):
            q = self(self.canonical_obs(sorted_counts[i:i + chunk], flips_left[i:i + chunk]))
            slots[i:i + chunk] = q.argmax(dim=1).cpu().numpy()
        probs = np.zeros((len(slots), self.cfg.n_coins))
        probs[np.arange(len(slots)), slots] = 1.0
        return probs

    def _check_state(self, counts: np.ndarray, flips_left: Any) -> None:
        n = self.cfg.n_coins
        if counts.ndim != 3 or counts.shape[1:] != (n, 2):
            raise ValueError(f"counts must have shape (batch, {n}, 2) for a {n}-coin agent, got {counts.shape}")
        if np.shape(flips_left) != (counts.shape[0],):
            raise ValueError(f"flips_left must have shape ({counts.shape[0]},), got {np.shape(flips_left)}")


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------
class ReplayBuffer:
    """A ring buffer of canonical transitions ``(obs, action slot, reward, next_obs, done)`` stored as tensors."""

    def __init__(self, size: int, d_obs: int, device: str | torch.device):
        self.size, self.ptr, self.full = size, 0, False
        self.obs = torch.zeros(size, d_obs, device=device)
        self.next_obs = torch.zeros(size, d_obs, device=device)
        self.action = torch.zeros(size, dtype=torch.long, device=device)
        self.reward = torch.zeros(size, device=device)
        self.done = torch.zeros(size, device=device)

    def __len__(self) -> int:
        return self.size if self.full else self.ptr

    def add(self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor, done: Tensor) -> None:
        b = len(obs)
        idx = (torch.arange(b, device=obs.device) + self.ptr) % self.size
        self.obs[idx], self.action[idx], self.reward[idx] = obs, action, reward
        self.next_obs[idx], self.done[idx] = next_obs, done
        self.full = self.full or self.ptr + b >= self.size
        self.ptr = (self.ptr + b) % self.size

    def sample(self, batch_size: int, gen: torch.Generator) -> tuple[Tensor, ...]:
        idx = torch.randint(len(self), (batch_size,), generator=gen, device=gen.device)
        return self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx], self.done[idx]


def epsilon(cfg: DQNConfig, step: int) -> float:
    """Linear epsilon schedule: eps_start -> eps_end over the first eps_decay_frac of the env steps."""
    frac = min(1.0, step / max(1.0, cfg.eps_decay_frac * cfg.total_steps))
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


def learning_rate(cfg: DQNConfig, step: int) -> float:
    """Cosine decay from lr to lr_final over the env steps."""
    frac = min(1.0, step / cfg.total_steps)
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * frac))


def exact_value(model: QNetwork) -> float:
    """Exact expected number of heads of the model's greedy policy (backward induction over canonical states)."""
    from rlinterp.agents.bayes import evaluate_exact

    c = model.cfg
    return float(evaluate_exact(model.policy_probs, c.n_coins, c.n_flips, c.sigma))


def train(config: DQNConfig, device: str = "cpu", progress: bool = True,
          evaluator: Callable[[QNetwork], float] | None = exact_value) -> tuple[QNetwork, dict[str, list]]:
    """Train a DQN agent; returns ``(model, history)``.

    ``history`` holds lists: ``eval_step``/``eval_value``/``eval_wall`` (exact expected heads of the greedy policy,
    evaluated every ``eval_every`` env steps and at the end), ``log_step``/``loss``/``train_return``/``epsilon``/``lr``
    (averaged over each logging window), plus ``best_step``/``best_value`` (the evaluation whose weights are
    returned when ``keep_best``), ``wall_time`` and ``cpu_time`` (seconds). Same config and seed -> identical weights
    (on CPU, training runs on one thread). ``evaluator(model) -> float`` scores the greedy policy (default: exact
    expected heads; None skips evaluation, and then the last weights are returned).
    """
    cfg = config
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
                o, a, r, o2, d = buf.sample(cfg.batch_size, gen)
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


# ----------------------------------------------------------------------------------------------------------------------
# Evaluation (the shipped checkpoint is the artifact "coinflip/dqn": rlinterp.artifacts.load / rebuild)
# ----------------------------------------------------------------------------------------------------------------------
def evaluate(model: QNetwork, num_games: int = 200_000, seed: int = 1, solution: Any = None,
             progress: bool = False) -> dict[str, float]:
    """Exact and paired-Monte-Carlo evaluation of the agent's greedy policy against the Bayes-optimal one and greedy.

    Returns ``expected_heads`` (exact), ``optimal``, ``pct_optimal``, ``greedy`` (exact, greedy on the posterior
    mean), ``gap_closed`` = (agent - greedy) / (optimal - greedy), and the paired Monte-Carlo difference agent - greedy
    on ``num_games`` common-random-number games (``mc_agent``, ``mc_greedy``, ``mc_diff_vs_greedy`` with its 95% CI
    ``mc_diff_lo``/``mc_diff_hi``). ``solution`` (a :class:`rlinterp.agents.bayes.BayesSolution`) is solved if absent.
    """
    from rlinterp.agents import bayes

    c = model.cfg
    if solution is None:
        solution = bayes.solve(c.n_coins, c.n_flips, c.sigma, progress=progress)
    prior = solution.prior
    agent = exact_value(model)
    greedy = float(bayes.evaluate_exact(bayes.greedy_probs(prior), c.n_coins, c.n_flips, c.sigma))
    optimal = float(solution.value)
    out = {"expected_heads": agent, "optimal": optimal, "pct_optimal": 100 * agent / optimal, "greedy": greedy,
           "gap_closed": (agent - greedy) / (optimal - greedy)}
    if num_games:
        mc = bayes.evaluate_mc({"agent": model.policy, "greedy": bayes.policy_from_probs(bayes.greedy_probs(prior))},
                               c.n_coins, c.n_flips, c.sigma, num_games=num_games, seed=seed, progress=progress)
        ci = bayes.paired_ci(mc["agent"], mc["greedy"])
        out.update(mc_games=num_games, mc_agent=float(mc["agent"].mean()), mc_greedy=float(mc["greedy"].mean()),
                   mc_diff_vs_greedy=ci["mean"], mc_diff_lo=ci["lo"], mc_diff_hi=ci["hi"])
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Analysis helpers: what a policy does on the states it reaches
# ----------------------------------------------------------------------------------------------------------------------
def reached_decisions(probs_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], solution: Any, tol: float = 1e-9):
    """Every canonical state a deterministic policy reaches, with its exact reach probability and decision.

    Returns a pandas DataFrame, one row per reached non-terminal state: ``flips_left``, ``reach`` (probability of
    reaching the state; sums to 1 per level), ``slot`` (chosen canonical coin), ``regret`` = V*(s) - Q*(s, slot)
    (by the performance-difference lemma ``sum(reach * regret) = V*(s0) - V_policy(s0)`` exactly), ``agree``
    (the choice is optimal, ties included), ``explore`` (the chosen coin's posterior mean is below the best-looking
    coin's), ``best_mean``/``best_std`` (posterior mean and sd of the best-looking coin), ``chosen_mean``,
    ``chosen_flips`` (how often the chosen coin was flipped before) and ``n_tried`` (coins flipped at least once).
    """
    import pandas as pd

    from rlinterp.agents import bayes

    n, k, prior = solution.n_coins, solution.n_flips, solution.prior
    _, levels = bayes.evaluate_exact(probs_fn, n, k, solution.sigma, return_levels=True)
    frames = []
    for m, (ht, reach, probs) in enumerate(levels):
        if not np.allclose(probs.max(axis=1), 1.0):
            raise ValueError("reached_decisions needs a deterministic policy (one-hot probabilities)")
        slot = probs.argmax(axis=1)
        rows = np.arange(len(slot))
        q_star = solution.q_values(ht, np.full(len(ht), k - m))  # (S, n); canonical input -> canonical order
        mean = prior.posterior_mean(ht[..., 0], ht[..., 1])  # (S, n)
        std = prior.posterior_std(ht[..., 0], ht[..., 1])
        best = (mean >= mean.max(axis=1, keepdims=True) - 1e-12).argmax(axis=1)
        regret = q_star.max(axis=1) - q_star[rows, slot]
        frames.append(pd.DataFrame({
            "flips_left": k - m, "reach": reach, "slot": slot, "regret": regret, "agree": regret <= tol,
            "explore": mean[rows, slot] < mean[rows, best] - 1e-12, "best_mean": mean[rows, best],
            "best_std": std[rows, best], "chosen_mean": mean[rows, slot], "chosen_flips": ht[rows, slot].sum(-1),
            "n_tried": (ht.sum(-1) > 0).sum(-1)}))
    return pd.concat(frames, ignore_index=True)


def weighted_rate(df, column: str, by: str, bins: Any = None):
    """Reach-weighted mean of ``column`` grouped by ``by`` (optionally binned with ``bins``) -> DataFrame with
    ``x`` (group or bin centre), ``rate`` and ``mass`` (total reach probability of the group)."""
    import pandas as pd

    key = df[by] if bins is None else pd.cut(df[by], bins, include_lowest=True)
    w = df["reach"]
    g = pd.DataFrame({"key": key, "wx": w * df[column].astype(float), "w": w}).groupby("key", observed=True).sum()
    x = [k.mid if hasattr(k, "mid") else k for k in g.index]
    return pd.DataFrame({"x": x, "rate": (g["wx"] / g["w"]).to_numpy(), "mass": g["w"].to_numpy()})
