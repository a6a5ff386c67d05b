"""The coin-flip study's analyses: how good the DQN agent is and what it does on the states it reaches.

The game's exact Bayes-optimal solution, the baseline policies and the exact / Monte Carlo evaluation of any policy
live in :mod:`rlinterp.studies.coinflip_bayes`; this module evaluates the trained agent
(:class:`rlinterp.models.qnet.QNetwork`, trained by :mod:`rlinterp.learners.dqn`) against them, and holds the
circuit chapter's helpers: the stick/switch contrast pairs (:func:`stick_switch_pairs`), weighted least squares per
flips left (:func:`fit_per_left`), integrated gradients grouped by input role (:func:`ig_roles`), first-layer unit
groups for causal scrubbing (:func:`unit_groups`, :func:`identical_draw_prob`) and the last-flip check
(:func:`last_flip_errors`).

The agent of a game (``n_coins``, ``n_flips``, ``sigma``) comes from :func:`agent_for_world`: the shipped checkpoint
``data/coinflip/dqn.pt`` only when the requested world is the one it was trained for, otherwise a checkpoint trained
earlier with exactly the requested configuration (``runs/coinflip/``), otherwise a fresh training run.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlinterp import ROOT
from rlinterp.envs.coinflip import CoinPrior, canonicalize
from rlinterp.interp.captum import integrated_gradients
from rlinterp.models.qnet import QNetwork
from rlinterp.stats import paired_difference
from rlinterp.validation import check_int
from rlinterp.studies import coinflip_bayes as bayes


# agents trained for other worlds or configs (git-ignored), one file per config; RLINTERP_COINFLIP_RUNS moves it
RUNS = Path(os.environ.get("RLINTERP_COINFLIP_RUNS") or ROOT / "runs" / "coinflip")
_CODE = ("learners/dqn.py", "models/qnet.py", "models/layers.py", "envs/coinflip.py")  # what a checkpoint depends on


def world_of(cfg: Any) -> tuple[int, int, float]:
    """The game a config (or a model's ``cfg``) was trained for: ``(n_coins, n_flips, sigma)``."""
    return int(cfg.n_coins), int(cfg.n_flips), float(cfg.sigma)


def _check_world(n_coins: Any, n_flips: Any, sigma: Any) -> tuple[int, int, float]:
    from rlinterp.validation import check_float

    world = check_int("n_coins", n_coins, 2), check_int("n_flips", n_flips, 1), check_float("sigma", sigma, 0.0)
    if world[2] <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return world


def checkpoint_path(cfg: Any, runs_dir: Path | None = None) -> Path:
    """Where :func:`agent_for_world` keeps an agent trained with ``cfg`` (a ``DQNConfig``): the world in the name, then
    a hash of the whole config and of the training code (a code change means a new file, never a stale agent)."""
    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    lib = Path(__file__).resolve().parents[1]
    for f in _CODE:
        h.update((lib / f).read_bytes())
    n, k, sigma = world_of(cfg)
    return Path(runs_dir or RUNS) / f"dqn-n{n}-k{k}-sigma{sigma:g}-{h.hexdigest()[:12]}.pt"


def _load_checkpoint(path: Path, device: str = "cpu") -> QNetwork:
    from rlinterp import artifacts

    return artifacts.load_dqn([Path(path)], device=device)


def agent_for_world(n_coins: int, n_flips: int, sigma: float, retrain: bool = False,
                    train: dict[str, Any] | None = None, device: str = "cpu", runs_dir: Path | None = None,
                    progress: bool = False) -> tuple[QNetwork, str]:
    """The DQN agent of the game with ``n_coins`` coins, ``n_flips`` flips and prior sd ``sigma``.

    Without ``retrain``, the shipped checkpoint (artifact ``coinflip/dqn``) is used only when its declared config
    *and* the loaded checkpoint's config are for this very game; any mismatch leads to training, never to an agent
    of another game. Otherwise the agent is trained with ``DQNConfig(n_coins, n_flips, sigma, **train)`` (``train``:
    the training fields, e.g. ``total_steps``, ``num_games``, ``seed``), or loaded from ``runs/coinflip/`` when a
    previous call trained exactly this config with the same code (training is deterministic, so that is the same
    agent), and stored there. Returns ``(model, source)``, source one of ``"shipped"``, ``"cached"``,
    ``"trained"``; the model carries its training ``history``.
    """
    from rlinterp import artifacts
    from rlinterp.learners.dqn import DQNConfig

    world = _check_world(n_coins, n_flips, sigma)
    if not isinstance(retrain, bool):
        raise ValueError(f"retrain must be a bool, got {retrain!r}")
    if clash := {"n_coins", "n_flips", "sigma"} & set(train or {}):
        raise ValueError(f"train sets the game ({sorted(clash)}); pass the game as n_coins, n_flips, sigma")
    art = artifacts.get("coinflip/dqn")
    if not retrain and world_of(art.config) == world:
        model = artifacts.load("coinflip/dqn", device=device)
        if world_of(model.cfg) == world:
            return model, "shipped"
    cfg = DQNConfig(n_coins=world[0], n_flips=world[1], sigma=world[2], **(train or {}))
    path = checkpoint_path(cfg, runs_dir)
    if path.exists():
        try:
            model = _load_checkpoint(path, device)
            if model.cfg.to_dict() == cfg.to_dict():
                return model, "cached"
        except Exception:  # unreadable: train again and overwrite it
            pass
    model = artifacts.build("coinflip/dqn", config=cfg, device=device, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # chapters may run at once
    with os.fdopen(fd, "wb") as f:
        f.write(artifacts.dump_dqn(model)[0])
    os.replace(tmp, path)
    return model, "trained"


def find_agent(n_coins: int, n_flips: int, sigma: float, device: str = "cpu",
               runs_dir: Path | None = None) -> tuple[QNetwork | None, str]:
    """A trained agent for exactly this game, without training: the shipped checkpoint if it is this game's, else the
    newest readable checkpoint of this game under ``runs/coinflip/``. Returns ``(model, where it came from)``, or
    ``(None, the command that trains one)``."""
    from rlinterp import artifacts

    world = _check_world(n_coins, n_flips, sigma)
    if world_of(artifacts.get("coinflip/dqn").config) == world:
        model = artifacts.load("coinflip/dqn", device=device)
        if world_of(model.cfg) == world:
            return model, "the shipped DQN (data/coinflip/dqn.pt)"
    n, k, s = world
    runs = Path(runs_dir or RUNS)
    for path in sorted(runs.glob(f"dqn-n{n}-k{k}-sigma{s:g}-*.pt"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            model = _load_checkpoint(path, device)
        except Exception:
            continue
        if world_of(model.cfg) == world:
            return model, f"the DQN trained for this game ({path.relative_to(ROOT) if path.is_relative_to(ROOT) else path})"
    return None, (f"rli run coinflip/02_agent -p n_coins={n} -p n_flips={k} -p sigma={s:g}")


def exact_value(model: QNetwork) -> float:
    """Exact expected number of heads of the model's greedy policy (backward induction over canonical states)."""
    c = model.cfg
    return float(bayes.evaluate_exact(model.policy_probs, c.n_coins, c.n_flips, c.sigma))



def evaluate(model: QNetwork, num_games: int = 200_000, seed: int = 1, solution: Any = None,
             progress: bool = False) -> dict[str, float]:
    """Exact and paired-Monte-Carlo evaluation of the agent's greedy policy against the Bayes-optimal one and greedy.

    Returns ``expected_heads`` (exact), ``optimal``, ``pct_optimal``, ``greedy`` (exact, greedy on the posterior
    mean), ``gap_closed`` = (agent - greedy) / (optimal - greedy), and the paired Monte-Carlo difference agent - greedy
    on ``num_games`` common-random-number games (``mc_agent``, ``mc_greedy``, ``mc_diff_vs_greedy`` with its 95% CI
    ``mc_diff_lo``/``mc_diff_hi``). ``solution`` (a :class:`rlinterp.studies.coinflip_bayes.BayesSolution`) is solved if absent.
    """
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
        ci = paired_difference(mc["agent"], mc["greedy"])
        out.update(mc_games=num_games, mc_agent=float(mc["agent"].mean()), mc_greedy=float(mc["greedy"].mean()),
                   mc_diff_vs_greedy=ci.mean, mc_diff_lo=ci.lo, mc_diff_hi=ci.hi)
    return out


# --------------------------------------------------------------------------------------------------------------
# Analysis helpers: what a policy does on the states it reaches
# --------------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------------
# Circuit chapter: the stick/switch contrast, index fits per flips left, integrated gradients by role
# --------------------------------------------------------------------------------------------------------------
def _check_states(name: str, states: Any, flips_left: Any, n_coins: int) -> tuple[np.ndarray, np.ndarray]:
    states, flips_left = np.asarray(states), np.asarray(flips_left)
    if states.ndim != 3 or states.shape[1:] != (n_coins, 2):
        raise ValueError(f"{name}: states must be canonical counts (S, {n_coins}, 2), got {states.shape}")
    if flips_left.shape != (len(states),):
        raise ValueError(f"{name}: flips_left must have shape ({len(states)},), got {flips_left.shape}")
    return states, flips_left


def stick_switch_pairs(model: QNetwork, prior: CoinPrior, states: np.ndarray, flips_left: np.ndarray,
                       q_values: np.ndarray | None = None) -> list[tuple[int, np.ndarray, int, int]]:
    """Clean/corrupted pairs of the stick-or-switch decision among canonical ``states`` (S, n, 2) with
    ``flips_left`` (S,).

    A clean state is one where the agent *sticks* with its incumbent (a flipped coin with the highest posterior
    mean, at least one head) although an unflipped coin is available; its corrupted partner turns one of the
    incumbent's heads into a tail, and is kept when the incumbent stays at its canonical slot ``a``, the agent
    then switches to a coin ``b`` unflipped in both states, and the incumbent's posterior mean is still >= 0.5.
    ``q_values`` (S, n) are the model's Q-values on ``states`` (computed when absent).
    Returns ``(clean index into states, corrupted canonical counts (n, 2), stick slot a, switch slot b)`` per pair.
    """
    states, flips_left = _check_states("stick_switch_pairs", states, flips_left, model.cfg.n_coins)
    if q_values is None:
        with torch.no_grad():
            q_values = model(model.canonical_obs(states, flips_left)).cpu().numpy()
    q_values = np.asarray(q_values)
    if q_values.shape != states.shape[:2]:
        raise ValueError(f"stick_switch_pairs: q_values must have shape {states.shape[:2]}, got {q_values.shape}")
    rows = np.arange(len(states))
    choice = q_values.argmax(1)
    mean, flips = prior.posterior_mean(states[..., 0], states[..., 1]), (states[..., 0] + states[..., 1])
    best = (mean >= mean.max(1, keepdims=True) - 1e-12).argmax(1)
    cand = np.nonzero((choice == best) & (flips[rows, choice] > 0) & (flips == 0).any(1)
                      & (states[rows, choice, 0] > 0))[0]
    out = []
    for i in cand:
        a = choice[i]
        c = states[i].copy()
        c[a] += (-1, 1)  # one of the incumbent's heads becomes a tail
        cs, perm = canonicalize(c[None])
        with torch.no_grad():
            b = int(model(model.canonical_obs(cs, flips_left[i:i + 1])).argmax(1)[0])
        if (perm[0, a] == a and cs[0, b].sum() == 0 and states[i, b].sum() == 0
                and prior.posterior_mean(cs[0, a, 0], cs[0, a, 1]) >= 0.5 - 1e-12):
            out.append((i, cs[0], a, b))
    return out


def fit_per_left(y: np.ndarray, X: list[np.ndarray], w: np.ndarray,
                 flips_left: np.ndarray) -> tuple[float, dict[int, np.ndarray]]:
    """Weighted least squares of ``y`` on the arrays ``X`` (each shaped like ``y``), one coefficient vector per
    value of ``flips_left``.

    ``y`` (S,) gets an intercept per group; ``y`` (S, n) (e.g. Q-values centred per state) is fitted without one,
    every coin of a state sharing the state's weight ``w`` (S,) >= 0. Returns (weighted R², {flips left: beta}),
    the R² against the weighted mean for 1-d ``y`` and against 0 for 2-d ``y``.
    """
    y, w, ls = np.asarray(y, dtype=float), np.asarray(w, dtype=float), np.asarray(flips_left)
    if y.ndim not in (1, 2) or len(y) == 0:
        raise ValueError(f"fit_per_left: y must be a non-empty (S,) or (S, n) array, got shape {y.shape}")
    if not X or any(np.shape(x) != y.shape for x in X):
        raise ValueError(f"fit_per_left: X must be a non-empty list of arrays shaped like y {y.shape}, got "
                         f"{[np.shape(x) for x in X]}")
    if w.shape != (len(y),) or ls.shape != (len(y),):
        raise ValueError(f"fit_per_left: w and flips_left must have shape ({len(y)},), got {w.shape} and {ls.shape}")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("fit_per_left: w must be finite, non-negative weights with a positive sum")
    fitted, coefs = np.zeros_like(y), {}
    for l in np.unique(ls):
        s = ls == l
        A = np.stack([x[s].ravel() for x in X] + ([np.ones(s.sum())] if y.ndim == 1 else []), 1)
        ww = np.repeat(w[s], y.shape[1]) if y.ndim == 2 else w[s]
        beta = np.linalg.lstsq(A * np.sqrt(ww)[:, None], y[s].ravel() * np.sqrt(ww), rcond=None)[0]
        fitted[s] = (A @ beta).reshape(y[s].shape)
        coefs[int(l)] = beta
    wf = w[:, None] if y.ndim == 2 else w
    centred = y if y.ndim == 2 else y - np.average(y, weights=w)
    return float(1 - (wf * (y - fitted) ** 2).sum() / (wf * centred**2).sum()), coefs


IG_BASELINES = ("zero", "same_left")


def ig_roles(model: QNetwork, x: Tensor, a_slots: Tensor, b_slots: Tensor, n_steps: int = 256,
             method: str = "riemann_middle", baseline: str = "zero") -> tuple[dict[str, np.ndarray], Tensor]:
    """Integrated gradients of ``Q(x, a) - Q(x, b)`` per row of ``x`` [B, 2n+1], with ``a_slots``/``b_slots`` [B]
    the canonical slots, grouped by the inputs' role: the incumbent's heads and tails (slot ``a``), the other coins'
    heads and tails (summed), and the flips left.

    ``baseline``: ``"zero"``, the all-zero input (no coin flipped and no flips left); ``"same_left"``, no coin flipped
    with the same flips left as ``x`` (the flips left then get exactly zero attribution).

    Returns ({role: [B] attributions}, completeness error [B] (sum of attributions minus the change of the
    difference, from :func:`rlinterp.interp.captum.integrated_gradients`)).
    """
    n = model.cfg.n_coins
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != 2 * n + 1:
        raise ValueError(f"ig_roles: x must be observations [B, {2 * n + 1}], got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    for name, s in (("a_slots", a_slots), ("b_slots", b_slots)):
        if not isinstance(s, Tensor) or s.shape != (len(x),) or s.min() < 0 or s.max() >= n:
            raise ValueError(f"ig_roles: {name} must be a tensor [{len(x)}] of slots in [0, {n - 1}]")
    n_steps = check_int("ig_roles: n_steps", n_steps, 1)
    if baseline not in IG_BASELINES:
        raise ValueError(f"ig_roles: baseline must be one of {IG_BASELINES}, got {baseline!r}")
    attr = torch.zeros_like(x)
    delta = torch.zeros(len(x))
    base = torch.zeros_like(x)
    if baseline == "same_left":
        base[:, -1] = x[:, -1]
    for a_, b_ in sorted({(int(a), int(b)) for a, b in zip(a_slots, b_slots)}):
        sel = (a_slots == a_) & (b_slots == b_)
        at, de = integrated_gradients(model, x[sel], fn=lambda q, a_=a_, b_=b_: q[:, a_] - q[:, b_],
                                      baselines=base[sel], n_steps=n_steps, method=method)
        attr[sel], delta[sel] = at.detach(), de.detach().float().cpu()
    A = attr.cpu().numpy()
    ar = np.arange(len(A))
    a_np = a_slots.cpu().numpy()
    heads, tails = A[:, 0:2 * n:2], A[:, 1:2 * n:2]
    other = np.ones((len(A), n), bool)
    other[ar, a_np] = False
    roles = {"incumbent heads": heads[ar, a_np], "incumbent tails": tails[ar, a_np],
             "other coins' heads": (heads * other).sum(1), "other coins' tails": (tails * other).sum(1),
             "flips left": A[:, -1]}
    return roles, delta


# --------------------------------------------------------------------------------------------------------------
# Causal scrubbing helpers: unit groups and how often a resample is the reference state itself
# --------------------------------------------------------------------------------------------------------------
def unit_groups(model: QNetwork, x: Tensor, how: str = "every_coin") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Partition the first-layer units into groups ``coin0..coin{n-1}``, ``left`` (flips left) and ``dead`` (never
    active on ``x`` [m, 2n+1]) by the input each unit reads.

    A unit's *reading* of an input is |weight| x the input's sd over ``x``, summed over a coin's heads and tails;
    ``share`` [d, n+1] is each unit's reading normalised to sum 1 (columns: coins, then flips left). ``how="argmax"``
    gives each live unit the input it reads most, so under canonical ordering (coin 0 has the most heads) most units go
    to the first coins and later coins may get no group at all. ``how="every_coin"`` gives each live unit the input it
    reads most *relative to the average live unit* (``share / share.mean(0)``), so every input that any unit reads
    gets the units most specialised in it. Empty groups are dropped. Returns ``(groups, share)``.
    """
    if how not in ("argmax", "every_coin"):
        raise ValueError(f"unit_groups: how must be 'argmax' or 'every_coin', got {how!r}")
    n = model.cfg.n_coins
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != 2 * n + 1 or len(x) < 2:
        raise ValueError(f"unit_groups: x must be at least two observations [m, {2 * n + 1}]")
    W0 = model.mlp[0].linear.weight.detach().cpu().numpy()
    spread = np.abs(W0) * x.detach().cpu().numpy().std(0)
    per = np.stack([spread[:, 2 * j] + spread[:, 2 * j + 1] for j in range(n)] + [spread[:, 2 * n]], 1)
    share = per / np.where(per.sum(1, keepdims=True) > 0, per.sum(1, keepdims=True), 1.0)
    from rlinterp.interp import cache_hook

    dead = (cache_hook(model, x, "mlp.0.hook_post").cpu().numpy() > 0).mean(0) == 0
    score = share
    if how == "every_coin" and (~dead).any():
        score = share / np.maximum(share[~dead].mean(0), 1e-12)
    owner = score.argmax(1)
    groups = {f"coin{j}": np.flatnonzero((owner == j) & ~dead) for j in range(n)}
    groups["left"] = np.flatnonzero((owner == n) & ~dead)
    groups["dead"] = np.flatnonzero(dead)
    return {g: v for g, v in groups.items() if len(v)}, share


def identical_draw_prob(feature_keys: np.ndarray, state_keys: np.ndarray) -> np.ndarray:
    """For each element ``i`` of a pool, the probability that a draw from the pool elements sharing its feature
    (``feature_keys[j] == feature_keys[i]``), uniform over them as causal scrubbing draws, is the *same state*
    (``state_keys[j] == state_keys[i]``): then the "resample" changes nothing. Keys: (m,) or (m, d) arrays."""
    f = np.asarray(feature_keys).reshape(len(feature_keys), -1)
    st = np.asarray(state_keys).reshape(len(state_keys), -1)
    if len(f) != len(st) or len(f) == 0:
        raise ValueError(f"identical_draw_prob: need equally long, non-empty keys, got {len(f)} and {len(st)}")
    _, fk = np.unique(f, axis=0, return_inverse=True)
    _, both = np.unique(np.concatenate([f, st], 1), axis=0, return_inverse=True)
    fk, both = fk.reshape(-1), both.reshape(-1)
    return np.bincount(both)[both] / np.bincount(fk)[fk]


# --------------------------------------------------------------------------------------------------------------
# The last flip: nothing left to learn, the right move is the highest posterior mean
# --------------------------------------------------------------------------------------------------------------
def last_flip_errors(model: QNetwork, solution: Any):
    """The agent's choice in *every* state of the game with one flip left (every canonical state reachable by some
    policy), where the optimal move is a coin with the highest posterior mean.

    Returns a DataFrame, one row per state: ``wrong`` (the agent's coin has a lower posterior mean than the best),
    ``lost`` (heads lost in expectation: best mean - chosen mean), ``chose_unflipped`` (the chosen coin was never
    flipped), ``gap`` (best minus second-best distinct coin's posterior mean; 0 when all coins look alike),
    ``best_mean``, ``best_flips`` (flips of the best-looking coin) and ``code`` (the canonical state's key).
    """
    import pandas as pd

    k, prior = solution.n_flips, solution.prior
    if world_of(model.cfg) != (solution.n_coins, solution.n_flips, float(solution.sigma)):
        raise ValueError(f"last_flip_errors: the model plays {world_of(model.cfg)}, the solution "
                         f"{(solution.n_coins, solution.n_flips, solution.sigma)}")
    ht = solution.coder.pairs[solution.codes[k - 1]]  # (S, n, 2), canonical
    with torch.no_grad():
        q = model(model.canonical_obs(ht, np.ones(len(ht), dtype=np.int64))).cpu().numpy()
    mean = prior.posterior_mean(ht[..., 0], ht[..., 1])
    rows = np.arange(len(ht))
    choice = q.argmax(1)
    best = mean.max(1)
    below = np.where(mean < best[:, None] - 1e-12, mean, -np.inf).max(1)
    best_slot = (mean >= best[:, None] - 1e-12).argmax(1)
    return pd.DataFrame({
        "wrong": mean[rows, choice] < best - 1e-12, "lost": best - mean[rows, choice],
        "chose_unflipped": ht[rows, choice].sum(-1) == 0, "gap": np.where(np.isfinite(below), best - below, 0.0),
        "best_mean": best, "best_flips": ht[rows, best_slot].sum(-1), "code": solution.keys[k - 1]})


def switch_threshold(gap: np.ndarray, switch: np.ndarray, w: np.ndarray, flips_left: np.ndarray
                     ) -> "Any":
    """The exploration bonus of a policy as a decision boundary, per flips left.

    In states with an unflipped coin and a flipped best-looking coin, ``gap`` (S,) = posterior mean of the
    best-looking coin minus that of the unflipped coin (>= 0) and ``switch`` (S,) = the policy flips the unflipped
    coin (else it sticks with the best-looking one). For each flips-left value the threshold ``theta`` is the one that
    best separates the two, "switch iff gap < theta", by reach weight ``w`` (S,): the deficit in expected heads the
    policy pays for a flip of an untried coin. Among equally good thresholds the smallest is taken, so a policy that
    never switches has theta = 0; with one flip left the Bayes-optimal policy never pays for information, so its
    theta is 0. Returns a DataFrame indexed by flips left with ``theta``, ``misclassified`` (reach weight the
    threshold gets wrong, as a fraction of the group's weight) and ``states``.
    """
    import pandas as pd

    gap, switch, w, ls = (np.asarray(gap, dtype=float), np.asarray(switch, dtype=bool), np.asarray(w, dtype=float),
                          np.asarray(flips_left))
    if not (gap.shape == switch.shape == w.shape == ls.shape) or gap.ndim != 1:
        raise ValueError("switch_threshold: gap, switch, w and flips_left must be 1-d arrays of one length")
    if (w < 0).any() or not np.isfinite(gap).all():
        raise ValueError("switch_threshold: weights must be >= 0 and gaps finite")
    rows = []
    for l in np.unique(ls):
        s = ls == l
        g, sw, ww = gap[s], switch[s], w[s]
        u = np.unique(g)
        cand = np.concatenate([[u[0]], (u[:-1] + u[1:]) / 2, [u[-1] + 1.0]])  # below all, between, above all
        cand = np.unique(np.concatenate([[0.0], cand[cand > 0]]))
        order = np.argsort(g)
        gs, sws, wss = g[order], sw[order], ww[order]
        below = np.searchsorted(gs, cand, side="left")  # states with gap < theta: [0, below)
        cum_stick = np.concatenate([[0.0], np.cumsum(wss * ~sws)])  # stick below theta: wrong
        cum_switch = np.concatenate([[0.0], np.cumsum(wss * sws)])
        err = cum_stick[below] + (cum_switch[-1] - cum_switch[below])  # switch at or above theta: wrong
        i = int(np.argmin(err + 1e-15 * np.arange(len(err))))
        total = ww.sum()
        rows.append({"flips left": int(l), "theta": float(cand[i]),
                     "misclassified": float(err[i] / total) if total > 0 else np.nan, "states": int(s.sum())})
    return pd.DataFrame(rows).set_index("flips left")
