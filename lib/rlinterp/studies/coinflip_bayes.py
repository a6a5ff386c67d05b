"""Bayes-optimal play of the coin-flip game by exact dynamic programming, baseline policies, and evaluation.

The posterior state of a game is the multiset of per-coin (heads, tails) counts. Coins are exchangeable, so a state
is stored in its canonical order (:func:`rlinterp.envs.coinflip.canonicalize`: heads descending, then tails
ascending). Each coin's (h, t) gets an integer *code* whose ascending order is the canonical order, so a canonical
state is a sorted row of ``n`` codes and a single int64 key ``sum_j code_j * P^(n-1-j)`` (``P`` = number of codes).

:func:`solve` enumerates the states level by level (level = number of flips made) and runs backward induction
``Q(s, j) = q_j (1 + V(s + head_j)) + (1 - q_j) V(s + tail_j)`` with the posterior predictive ``q_j`` of
:class:`~rlinterp.envs.coinflip.CoinPrior` (atoms at 0 and 1 included), vectorised over all states of a level.

Policies come in two forms:
- *probs functions* ``probs_fn(sorted_counts (S, n, 2), flips_left (S,)) -> probs (S, n)`` over canonical coin
  positions; these can be evaluated exactly with :func:`evaluate_exact`;
- *policies* ``policy(counts (B, n, 2), flips_left (B,), rng) -> actions (B,)`` in the original coin order, for
  Monte Carlo with :func:`evaluate_mc` (:func:`policy_from_probs` turns the first kind into the second). A policy
  with attribute ``needs_p = True`` (the oracle) is also passed the true weights as ``p=``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from rlinterp.progress import tqdm

from rlinterp.envs.coinflip import BatchedCoinFlip, CoinPrior, canonicalize
from rlinterp.stats import mean_interval, paired_difference
from rlinterp.validation import check_float, check_int

ProbsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
Policy = Callable[..., np.ndarray]

TIE_TOL = 1e-12  # values within this of the maximum count as ties; ties go to the first canonical position


# ----------------------------------------------------------------------------------------------------------------
# State coding


class StateCoder:
    """Integer codes of coin counts and int64 keys of canonical states for ``n`` coins and ``k`` flips."""

    def __init__(self, n_coins: int, n_flips: int):
        self.n, self.k = n_coins, n_flips
        pairs = [(h, t) for h in range(n_flips + 1) for t in range(n_flips + 1 - h)]
        pairs.sort(key=lambda ht: (-ht[0], ht[1]))  # canonical order: heads descending, tails ascending
        #: (P, 2) the (h, t) of each code
        self.pairs = np.array(pairs, dtype=np.int64)
        self.P = len(pairs)
        #: (k+2, k+2) code of (h, t), -1 where h + t > k
        self.code = np.full((n_flips + 2, n_flips + 2), -1, dtype=np.int64)
        self.code[self.pairs[:, 0], self.pairs[:, 1]] = np.arange(self.P)
        if self.n * np.log2(self.P) >= 62:
            raise ValueError(f"n_coins={n_coins}, n_flips={n_flips}: state space too large for exact DP")
        self.radix = self.P ** np.arange(n_coins - 1, -1, -1, dtype=np.int64)  # (n,)

    def codes(self, counts: np.ndarray) -> np.ndarray:
        """(..., n, 2) counts -> (..., n) codes."""
        return self.code[counts[..., 0], counts[..., 1]]

    def keys(self, sorted_codes: np.ndarray) -> np.ndarray:
        """(..., n) codes in ascending order -> (...,) int64 keys."""
        return sorted_codes @ self.radix


# ----------------------------------------------------------------------------------------------------------------
# Exact dynamic programming


@dataclass
class BayesSolution:
    """The exact Bayes-optimal solution. Level ``m`` (flips made) holds its canonical states sorted by key.

    - ``value``: V* of the start state (expected number of heads under optimal play).
    - ``keys[m]`` (S_m,), ``codes[m]`` (S_m, n), ``V[m]`` (S_m,), ``Q[m]`` (S_m, n) (canonical positions;
      ``Q[n_flips]`` has zero columns at the terminal level).
    """

    n_coins: int
    n_flips: int
    sigma: float
    prior: CoinPrior
    coder: StateCoder
    keys: list[np.ndarray] = field(repr=False)
    codes: list[np.ndarray] = field(repr=False)
    V: list[np.ndarray] = field(repr=False)
    Q: list[np.ndarray] = field(repr=False)
    value: float = 0.0
    seconds: float = 0.0

    @property
    def num_states(self) -> int:
        return int(sum(len(k) for k in self.keys))

    def _locate(self, sorted_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical counts (B, n, 2) -> level (B,), index within level (B,)."""
        if sorted_counts.shape[1:] != (self.n_coins, 2):
            raise ValueError(f"counts must have shape (B, {self.n_coins}, 2), got {sorted_counts.shape}")
        level = sorted_counts.sum(axis=(1, 2))
        if np.any(sorted_counts < 0) or np.any(level > self.n_flips):
            raise ValueError(f"counts must be >= 0 with at most n_flips={self.n_flips} flips in total")
        keys = self.coder.keys(self.coder.codes(sorted_counts))
        idx = np.empty(len(keys), dtype=np.int64)
        for m in np.unique(level):
            sel = level == m
            idx[sel] = np.searchsorted(self.keys[m], keys[sel])
        return level, idx

    def _check_left(self, level: np.ndarray, flips_left: np.ndarray | None) -> None:
        if flips_left is not None and np.any(np.asarray(flips_left) != self.n_flips - level):
            raise ValueError("flips_left must equal n_flips - (number of flips in counts) for this solution")

    def values(self, counts: np.ndarray, flips_left: np.ndarray | None = None) -> np.ndarray:
        """V*(state) for (B, n, 2) counts in any coin order -> (B,)."""
        sorted_counts, _ = canonicalize(np.asarray(counts))
        level, idx = self._locate(sorted_counts)
        self._check_left(level, flips_left)
        return np.array([self.V[m][i] for m, i in zip(level, idx)]) if len(level) else np.zeros(0)

    def q_values(self, counts: np.ndarray, flips_left: np.ndarray | None = None) -> np.ndarray:
        """Q*(state, coin) for (B, n, 2) counts in any coin order -> (B, n) in the same coin order."""
        counts = np.asarray(counts)
        sorted_counts, perm = canonicalize(counts)
        level, idx = self._locate(sorted_counts)
        self._check_left(level, flips_left)
        if np.any(level >= self.n_flips):
            raise ValueError("Q is undefined at terminal states (no flips left)")
        q_can = np.stack([self.Q[m][i] for m, i in zip(level, idx)]) if len(level) else np.zeros((0, self.n_coins))
        out = np.empty_like(q_can)
        np.put_along_axis(out, perm, q_can, axis=1)
        return out

    def probs(self, sorted_counts: np.ndarray, flips_left: np.ndarray) -> np.ndarray:
        """Probs function of the optimal policy (one-hot on the first canonical argmax)."""
        level, idx = self._locate(np.asarray(sorted_counts))
        self._check_left(level, flips_left)
        q = np.stack([self.Q[m][i] for m, i in zip(level, idx)])
        return first_argmax_onehot(q)

    def action(self, counts: np.ndarray, flips_left: np.ndarray | None = None, rng: np.random.Generator | None = None
               ) -> np.ndarray:
        """Optimal coin (original index) for each of (B, n, 2) states; ties -> first canonical position."""
        counts = np.asarray(counts)
        sorted_counts, perm = canonicalize(counts)
        level, _ = self._locate(sorted_counts)
        p = self.probs(sorted_counts, self.n_flips - level)
        return np.take_along_axis(perm, p.argmax(1)[:, None], axis=1)[:, 0]

    def policy(self) -> Policy:
        """The optimal policy with the baseline signature ``policy(counts, flips_left, rng)``."""
        return lambda counts, flips_left, rng=None: self.action(counts, flips_left)


def first_argmax_onehot(scores: np.ndarray, tol: float = TIE_TOL) -> np.ndarray:
    """(S, n) scores -> (S, n) one-hot at the first position within ``tol`` of the row maximum."""
    best = (scores >= scores.max(axis=1, keepdims=True) - tol).argmax(axis=1)
    out = np.zeros(scores.shape)
    out[np.arange(len(scores)), best] = 1.0
    return out


def _children(coder: StateCoder, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All successor states: codes (S, n) -> child codes (S, n, 2, n) sorted rows, keys (S, n, 2).

    Axis 1 = coin position flipped, axis 2 = outcome (0 head, 1 tail).
    """
    S, n = codes.shape
    ht = coder.pairs[codes]  # (S, n, 2)
    child = np.broadcast_to(codes[:, None, None, :], (S, n, 2, n)).copy()
    j = np.arange(n)
    child[:, j, 0, j] = coder.code[ht[:, :, 0] + 1, ht[:, :, 1]]
    child[:, j, 1, j] = coder.code[ht[:, :, 0], ht[:, :, 1] + 1]
    child.sort(axis=-1)
    return child, coder.keys(child)


def solve(n_coins: int = 5, n_flips: int = 20, sigma: float = 0.3, progress: bool = True) -> BayesSolution:
    """Exact Bayes-optimal DP for ``n_coins`` coins, ``n_flips`` flips and prior sd ``sigma``.

    Forward: enumerate the canonical states level by level. Backward: Q and V by backward induction.
    """
    import time

    n = check_int("n_coins", n_coins, 1)
    k = check_int("n_flips", n_flips, 1)
    sigma = check_float("sigma", sigma, 0.0)
    t0 = time.perf_counter()
    prior = CoinPrior(sigma, max_count=k)
    coder = StateCoder(n, k)
    codes = [np.full((1, n), coder.code[0, 0], dtype=np.int64)]
    keys = [coder.keys(codes[0])]
    child_idx: list[np.ndarray] = []  # child_idx[m] (S_m, n, 2): index of each successor within level m + 1
    for m in tqdm(range(k), desc=f"DP states n={n} k={k}", disable=not progress, leave=False):
        child, ckeys = _children(coder, codes[m])
        uniq, first, inv = np.unique(ckeys.ravel(), return_index=True, return_inverse=True)
        codes.append(child.reshape(-1, n)[first])
        keys.append(uniq)
        child_idx.append(inv.reshape(ckeys.shape))
    V = [np.zeros(0)] * (k + 1)
    Q = [np.zeros(0)] * (k + 1)
    V[k] = np.zeros(len(keys[k]))
    Q[k] = np.zeros((len(keys[k]), n))
    for m in range(k - 1, -1, -1):
        ht = coder.pairs[codes[m]]  # (S, n, 2)
        q = prior.predictive(ht[..., 0], ht[..., 1])  # (S, n)
        vh, vt = V[m + 1][child_idx[m][..., 0]], V[m + 1][child_idx[m][..., 1]]
        Q[m] = q * (1.0 + vh) + (1.0 - q) * vt
        V[m] = Q[m].max(axis=1)
    return BayesSolution(n, k, sigma, prior, coder, keys, codes, V, Q, value=float(V[0][0]),
                         seconds=time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------------------------
# Exact policy evaluation


def evaluate_exact(policy_probs_fn: ProbsFn, n_coins: int, n_flips: int, sigma: float, progress: bool = False,
                   return_levels: bool = False):
    """Expected number of heads of a policy that depends only on the posterior state, exactly.

    Propagates the distribution over the canonical states the policy reaches, level by level; the policy is queried
    once per level with all reached states ``policy_probs_fn(sorted_counts (S, n, 2), flips_left (S,)) -> (S, n)``.
    Returns the expected heads (and with ``return_levels`` a list of (sorted_counts, reach_prob, probs) per level).
    """
    n = check_int("n_coins", n_coins, 1)
    k = check_int("n_flips", n_flips, 1)
    prior = CoinPrior(check_float("sigma", sigma, 0.0), max_count=k)
    coder = StateCoder(n, k)
    codes = np.full((1, n), coder.code[0, 0], dtype=np.int64)
    reach = np.ones(1)
    total = 0.0
    levels = []
    for m in tqdm(range(k), desc="exact evaluation", disable=not progress, leave=False):
        ht = coder.pairs[codes]  # (S, n, 2), canonical order
        flips_left = np.full(len(codes), k - m, dtype=np.int64)
        probs = np.asarray(policy_probs_fn(ht.copy(), flips_left), dtype=float)
        if probs.shape != (len(codes), n) or np.any(probs < -1e-9) or not np.allclose(probs.sum(1), 1.0, atol=1e-6):
            raise ValueError(f"policy_probs_fn must return (S, {n}) probabilities summing to 1; got {probs.shape}")
        if return_levels:
            levels.append((ht, reach.copy(), probs))
        q = prior.predictive(ht[..., 0], ht[..., 1])  # (S, n)
        total += float(np.sum(reach[:, None] * probs * q))
        s_idx, j_idx = np.nonzero(probs > 0)
        w = reach[s_idx] * probs[s_idx, j_idx]
        child, ckeys = _children(coder, codes[s_idx])  # (all positions; we keep j_idx)
        sel = np.arange(len(s_idx))
        ck = ckeys[sel, j_idx]  # (E, 2)
        cc = child[sel, j_idx]  # (E, 2, n)
        qq = q[s_idx, j_idx]
        wk = np.stack([w * qq, w * (1 - qq)], axis=1)  # (E, 2)
        uniq, first, inv = np.unique(ck.ravel(), return_index=True, return_inverse=True)
        codes = cc.reshape(-1, n)[first]
        reach = np.bincount(inv, weights=wk.ravel(), minlength=len(uniq))
    return (total, levels) if return_levels else total


# ----------------------------------------------------------------------------------------------------------------
# Baseline policies


def random_probs(sorted_counts: np.ndarray, flips_left: np.ndarray) -> np.ndarray:
    """Uniformly random coin."""
    S, n, _ = sorted_counts.shape
    return np.full((S, n), 1.0 / n)


def greedy_probs(prior: CoinPrior, tie_break: str = "explore") -> ProbsFn:
    """Greedy on the posterior mean.

    Coins with equal posterior means (under the symmetric prior: every coin with h == t, e.g. an unflipped coin and
    one with 1 head and 1 tail) are ties, and the tie-break changes the value noticeably:
    ``"explore"`` picks the least-flipped tied coin (largest posterior sd), ``"exploit"`` the most-flipped one,
    ``"uniform"`` a uniformly random tied coin.
    """
    if tie_break not in ("explore", "exploit", "uniform"):
        raise ValueError(f"tie_break must be 'explore', 'exploit' or 'uniform', got {tie_break!r}")

    def fn(sorted_counts: np.ndarray, flips_left: np.ndarray) -> np.ndarray:
        h, t = sorted_counts[..., 0], sorted_counts[..., 1]
        mean = prior.posterior_mean(h, t)
        tie = mean >= mean.max(axis=1, keepdims=True) - TIE_TOL
        if tie_break == "uniform":
            return tie / tie.sum(axis=1, keepdims=True)
        flips = (h + t).astype(float)
        return first_argmax_onehot(np.where(tie, -flips if tie_break == "explore" else flips, -np.inf), tol=0.5)

    return fn


def bayes_ucb_probs(prior: CoinPrior, n_flips: int) -> ProbsFn:
    """Bayes-UCB (Kaufmann et al. 2012, c = 0): the coin with the largest posterior ``1 - 1/(t+1)`` quantile,
    where ``t = flips made + 1`` is the (1-based) time step. Deterministic, so it can be evaluated exactly."""

    def fn(sorted_counts: np.ndarray, flips_left: np.ndarray) -> np.ndarray:
        t = n_flips - np.asarray(flips_left) + 1  # (S,)
        level = np.broadcast_to((1.0 - 1.0 / (t + 1))[:, None], sorted_counts.shape[:2])
        qs = prior.posterior_quantile(sorted_counts[..., 0], sorted_counts[..., 1], level)
        # break ties between equal quantiles (e.g. at the atom 1) by the posterior mean
        return first_argmax_onehot(qs + 1e-9 * prior.posterior_mean(sorted_counts[..., 0], sorted_counts[..., 1]),
                                    tol=1e-13)

    return fn


def mean_plus_c_sd_probs(prior: CoinPrior, c_by_left: dict[int, float]) -> ProbsFn:
    """The index policy "posterior mean + c × posterior sd" with a bonus weight ``c`` per flips left
    (``c_by_left[flips_left]``, 0 where absent); among (near-)equal indices the least-flipped coin, then the first."""
    if not isinstance(c_by_left, dict):
        raise ValueError(f"c_by_left must be a dict {{flips left: c}}, got {type(c_by_left).__name__}")
    for l, c in c_by_left.items():
        check_int("c_by_left key (flips left)", l, 0)
        check_float(f"c_by_left[{l}]", c)

    def fn(sorted_counts: np.ndarray, flips_left: np.ndarray) -> np.ndarray:
        f = coin_features(prior, sorted_counts, flips_left)
        c = np.array([c_by_left.get(int(l), 0.0) for l in flips_left])[:, None]
        return first_argmax_onehot(f["mean"] + c * f["std"] - 1e-9 * f["flips"], tol=1e-12)

    return fn


def policy_from_probs(probs_fn: ProbsFn) -> Policy:
    """Turn a probs function over canonical positions into a policy ``(counts, flips_left, rng) -> actions``."""

    def policy(counts: np.ndarray, flips_left: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        sorted_counts, perm = canonicalize(np.asarray(counts))
        probs = probs_fn(sorted_counts, np.asarray(flips_left))
        if rng is None:
            pos = probs.argmax(1)
        else:
            pos = (probs.cumsum(1) < rng.random((len(probs), 1)) * probs.sum(1, keepdims=True)).sum(1)
            pos = np.minimum(pos, probs.shape[1] - 1)
        return np.take_along_axis(perm, pos[:, None], axis=1)[:, 0]

    return policy


def thompson_policy(prior: CoinPrior) -> Policy:
    """Thompson sampling: draw each coin's weight from its posterior, flip the largest (ties at random)."""

    def policy(counts: np.ndarray, flips_left: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        counts = np.asarray(counts)
        draws = prior.sample_posterior(counts[..., 0], counts[..., 1], rng)  # (B, n)
        return (draws + 1e-9 * rng.random(draws.shape)).argmax(1)

    return policy


def oracle_policy(counts: np.ndarray, flips_left: np.ndarray, rng: np.random.Generator | None = None, *,
                  p: np.ndarray) -> np.ndarray:
    """The oracle that knows the true weights ``p`` (B, n): always the best coin. Not a Bayesian policy."""
    return np.asarray(p).argmax(1)


oracle_policy.needs_p = True  # type: ignore[attr-defined]


def oracle_value(n_coins: int, n_flips: int, sigma: float) -> float:
    """Exact expected heads of the oracle: ``n_flips * E[max_i p_i]`` (quadrature)."""
    return n_flips * CoinPrior(sigma, max_count=1).expected_max(n_coins)


def baselines(n_coins: int, n_flips: int, sigma: float, solution: BayesSolution | None = None
              ) -> dict[str, tuple[Policy, ProbsFn | None]]:
    """The standard baselines as {name: (policy, probs_fn or None)}; probs_fn is None where no exact form exists."""
    prior = CoinPrior(sigma, max_count=n_flips)
    out: dict[str, tuple[Policy, ProbsFn | None]] = {
        "random": (policy_from_probs(random_probs), random_probs),
        "greedy": (policy_from_probs(greedy_probs(prior)), greedy_probs(prior)),
        "thompson": (thompson_policy(prior), None),
        "bayes-ucb": (policy_from_probs(bayes_ucb_probs(prior, n_flips)), bayes_ucb_probs(prior, n_flips)),
    }
    if solution is not None:
        out["optimal"] = (solution.policy(), solution.probs)
    out["oracle"] = (oracle_policy, None)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Monte Carlo evaluation with common random numbers


def play_games(policy: Policy, env: BatchedCoinFlip, rng: np.random.Generator) -> np.ndarray:
    """Play one batch of games (``env`` already reset) to the end -> returns (B,) heads per game."""
    total = np.zeros(env.num_games)
    for _ in range(env.n_flips):
        counts, flips_left = env.state()
        if getattr(policy, "needs_p", False):
            actions = policy(counts, flips_left, rng, p=env.p)
        else:
            actions = policy(counts, flips_left, rng)
        _, reward, done = env.step(np.asarray(actions, dtype=np.int64))
        total += reward
    assert done.all()
    return total


def evaluate_mc(policies: dict[str, Policy], n_coins: int, n_flips: int, sigma: float, num_games: int = 10_000,
                seed: int = 0, batch_size: int = 20_000, progress: bool = False) -> dict[str, np.ndarray]:
    """Per-game returns of each policy on the *same* games (same weights and flip uniforms: common random numbers).

    Games are played in batches of ``batch_size``; batch ``i`` uses environment seed ``[seed, i]`` for every policy,
    and each policy gets its own generator ``[seed, i, 1]`` for its internal randomness.
    """
    num_games = check_int("num_games", num_games, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    out: dict[str, list[np.ndarray]] = {name: [] for name in policies}
    starts = range(0, num_games, batch_size)
    for i, start in enumerate(tqdm(starts, desc="Monte Carlo", disable=not progress, leave=False)):
        B = min(batch_size, num_games - start)
        for name, policy in policies.items():
            env = BatchedCoinFlip(n_coins, n_flips, sigma, num_games=B, seed=[seed, i])  # type: ignore[arg-type]
            env.reset()
            out[name].append(play_games(policy, env, np.random.default_rng([seed, i, 1])))
    return {name: np.concatenate(r) for name, r in out.items()}


# ----------------------------------------------------------------------------------------------------------------
# Summaries used by the chapters


def compare_policies(n_coins: int, n_flips: int, sigma: float, num_games: int = 10_000, seed: int = 0,
                     solution: BayesSolution | None = None, alpha: float = 0.05) -> list[dict]:
    """One row per baseline: exact expected heads (where a probs function exists), the Monte Carlo mean with its
    (1 - alpha) CI on common random numbers, % of the optimum, and the paired difference to the optimal policy.
    Greedy appears once per tie-break rule. Columns starting with "_" are numeric extras for the text."""
    sol = solution if solution is not None else solve(n_coins, n_flips, sigma, progress=False)
    base = baselines(n_coins, n_flips, sigma, sol)
    for tb in ("uniform", "exploit"):
        probs_fn = greedy_probs(sol.prior, tb)
        base[f"greedy (ties: {tb})"] = (policy_from_probs(probs_fn), probs_fn)
    base = {("greedy (ties: explore)" if k == "greedy" else k): v for k, v in base.items()}
    returns = evaluate_mc({k: v[0] for k, v in base.items()}, n_coins, n_flips, sigma, num_games, seed)
    order = ["oracle", "optimal", "greedy (ties: explore)", "greedy (ties: uniform)", "greedy (ties: exploit)",
             "bayes-ucb", "thompson", "random"]
    rows = []
    for name in order:
        _, probs_fn = base[name]
        if name == "oracle":
            exact = oracle_value(n_coins, n_flips, sigma)
        elif name == "optimal":
            exact = sol.value
        else:
            exact = evaluate_exact(probs_fn, n_coins, n_flips, sigma) if probs_fn is not None else float("nan")
        m, lo, hi = mean_interval(returns[name], 1 - alpha)
        d = paired_difference(returns[name], returns["optimal"], 1 - alpha)
        rows.append({"policy": name, "exact": exact, "MC mean": m, "MC CI": f"[{lo:.3f}, {hi:.3f}]",
                     "% of optimal": 100 * (exact if exact == exact else m) / sol.value,
                     "minus optimal (paired MC)": f"{d.mean:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}]",
                     "_ci_halfwidth": (hi - lo) / 2, "_paired_halfwidth": d.half})
    return rows


def stick_advantage(solution: BayesSolution) -> np.ndarray:
    """``A[h, t] = Q*(flip the coin with h heads and t tails) - Q*(flip an unflipped coin)`` in the states where one
    coin has been flipped ``h + t`` times and all others never (NaN where ``h + t >= n_flips``; needs >= 2 coins)."""
    n, k = solution.n_coins, solution.n_flips
    if n < 2:
        raise ValueError("stick_advantage needs at least 2 coins")
    A = np.full((k, k), np.nan)
    hs, ts = np.array([(h, t) for h in range(k) for t in range(k - h)]).T
    counts = np.zeros((len(hs), n, 2), dtype=np.int64)
    counts[:, 0, 0], counts[:, 0, 1] = hs, ts
    q = solution.q_values(counts)
    A[hs, ts] = q[:, 0] - q[:, 1]
    return A


# ----------------------------------------------------------------------------------------------------------------
# Index policies: a finite-horizon Gittins index per coin


def gittins_index(prior: CoinPrior, n_flips: int, grid: int = 4001) -> np.ndarray:
    """Finite-horizon Gittins (calibration) index ``G[h, t, l]`` of one coin with ``h`` heads, ``t`` tails and ``l``
    flips left (NaN where ``h + t + l > n_flips`` or ``l = 0``).

    ``G`` is the pay-off per flip ``lam`` of a known "standard" coin that makes the player indifferent between
    retiring to the standard coin for all ``l`` flips now (value ``l * lam``) and flipping this coin first, with
    the option to retire to the standard coin at any later flip (Gittins & Jones 1974; the finite-horizon version of
    Niño-Mora 2011). For each ``lam`` on a uniform grid over [0, 1] one backward pass computes the optimal-stopping
    values ``W(h, t, l) = max(l lam, q (1 + W(h+1, t, l-1)) + (1 - q) W(h, t+1, l-1))`` for every state at once;
    the index is where the continuation value crosses ``l * lam`` (linear interpolation between grid points, so
    accurate to far better than ``1 / grid``). An index policy flips the coin with the largest ``G``; it is not
    optimal for finite horizons, but close (:func:`gittins_probs`). Cost: ``O(grid k^3)``, well under a second.
    """
    k = check_int("n_flips", n_flips, 1)
    grid = check_int("grid", grid, 3)
    if prior.max_count < k:
        raise ValueError(f"prior.max_count={prior.max_count} < n_flips={k}; create CoinPrior(sigma, max_count=n_flips)")
    lam = np.linspace(0.0, 1.0, grid)  # (G,)
    h, t = np.meshgrid(np.arange(k + 2), np.arange(k + 2), indexing="ij")
    valid = h + t <= k
    q = np.where(valid, prior.predictive(np.where(valid, h, 0), np.where(valid, t, 0)), 0.0)  # (k+2, k+2)
    W = np.zeros((grid, k + 2, k + 2))  # W(., ., l - 1), starts at l = 0
    G = np.full((k + 1, k + 1, k + 1), np.nan)
    for l in range(1, k + 1):
        cont = q * (1.0 + np.roll(W, -1, axis=1)) + (1.0 - q) * np.roll(W, -1, axis=2)  # flip first: (G, k+2, k+2)
        gap = cont - l * lam[:, None, None]  # decreasing in lam; its zero is the index
        ok = valid & (h + t + l <= k)
        below = (gap > 0).sum(axis=0)  # number of grid points with cont > l lam
        j = np.clip(below, 1, grid - 1)  # crossing between lam[j-1] and lam[j]
        g0 = np.take_along_axis(gap, (j - 1)[None], 0)[0]
        g1 = np.take_along_axis(gap, j[None], 0)[0]
        frac = np.where(g0 != g1, g0 / np.where(g0 != g1, g0 - g1, 1.0), 0.0)
        idx = np.clip(lam[j - 1] + frac * (lam[1] - lam[0]), 0.0, 1.0)
        hh, tt = np.nonzero(ok[: k + 1, : k + 1])
        G[hh, tt, l] = idx[hh, tt]
        W = np.maximum(l * lam[:, None, None], cont)
        W[:, ~valid] = 0.0
    return G


def gittins_probs(prior: CoinPrior, n_flips: int, grid: int = 4001) -> ProbsFn:
    """Index policy on :func:`gittins_index` (ties -> the least-flipped coin, then the first canonical position)."""
    G = gittins_index(prior, n_flips, grid)

    def fn(sorted_counts: np.ndarray, flips_left: np.ndarray) -> np.ndarray:
        h, t = sorted_counts[..., 0], sorted_counts[..., 1]
        idx = G[h, t, np.asarray(flips_left)[:, None]]
        return first_argmax_onehot(idx - 1e-9 * (h + t), tol=1e-10)

    return fn


def coin_features(prior: CoinPrior, sorted_counts: np.ndarray, flips_left: np.ndarray,
                  gittins: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Posterior features of every coin of (S, n, 2) canonical states with (S,) flips left, each (S, n):
    ``mean`` and ``std`` (posterior of p), ``flips`` (times flipped), ``unflipped`` (0/1) and, given the table of
    :func:`gittins_index`, ``gittins`` (the coin's finite-horizon Gittins index at the current flips left)."""
    counts = np.asarray(sorted_counts)
    h, t = counts[..., 0], counts[..., 1]
    left = np.asarray(flips_left)
    if left.shape != h.shape[:1]:
        raise ValueError(f"flips_left must have shape ({h.shape[0]},), got {left.shape}")
    out = {"mean": prior.posterior_mean(h, t), "std": prior.posterior_std(h, t), "flips": (h + t).astype(float),
           "unflipped": (h + t == 0).astype(float)}
    if gittins is not None:
        out["gittins"] = gittins[h, t, np.broadcast_to(left[:, None], h.shape)]
    return out
