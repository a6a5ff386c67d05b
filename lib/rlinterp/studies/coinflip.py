"""The coin-flip study's analyses: how good the DQN agent is and what it does on the states it reaches.

The game's exact Bayes-optimal solution, the baseline policies and the exact / Monte Carlo evaluation of any policy
live in :mod:`rlinterp.studies.coinflip_bayes`; this module evaluates the trained agent
(:class:`rlinterp.models.qnet.QNetwork`, trained by :mod:`rlinterp.learners.dqn`) against them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rlinterp.models.qnet import QNetwork
from rlinterp.stats import paired_difference
from rlinterp.studies import coinflip_bayes as bayes


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
