"""The coin-flip game: ``n`` coins of unknown weights, ``k`` flips, one head = one point.

Each coin's weight is drawn i.i.d. from a Normal(0.5, sigma) *clipped* to [0, 1], so the prior has point masses
``Phi(-0.5 / sigma)`` at 0 and at 1 plus a continuous part on (0, 1). Flipping coin ``i`` gives a head with
probability ``p_i``. Maximising the expected number of heads is a finite-horizon Bayesian bandit; the posterior state
is the per-coin (heads, tails) counts, and because coins are exchangeable a state is only defined up to a permutation
of the coins (:func:`canonicalize`).

Contents
- :class:`CoinPrior`: the prior, its moment table ``M[h, t] = E[p^h (1-p)^t]`` and posterior summaries.
- :func:`encode_obs`, :func:`canonicalize`: the one observation encoding and the canonical coin order.
- :class:`CoinFlipEnv`: a ``gymnasium.Env`` (registered as ``rlinterp/CoinFlip-v0``).
- :class:`BatchedCoinFlip`: ``B`` games at once in numpy, with common random numbers.
"""
from __future__ import annotations

import math
from numbers import Integral
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from scipy.special import ndtr

from rlinterp.validation import check_float, check_int

# ----------------------------------------------------------------------------------------------------------------
# The prior


class CoinPrior:
    """Prior of a coin weight: ``p = clip(Normal(0.5, sigma), 0, 1)``.

    The moment table ``M[h, t] = E[p^h (1-p)^t]`` (``0 <= h, t <= max_count``) includes the atoms at 0 and 1; the
    continuous part is integrated with composite Gauss-Legendre quadrature (64 panels x 32 nodes), accurate to
    ~1e-14 relative for ``sigma >= 0.005``. The posterior after ``h`` heads and ``t`` tails has density proportional
    to ``p^h (1-p)^t`` times the prior, so all posterior moments are ratios of table entries, e.g. the posterior
    predictive ``P(head | h, t) = M[h+1, t] / M[h, t]``.

    ``sigma = 0`` is the degenerate prior: every coin has weight exactly 0.5.
    """

    def __init__(self, sigma: float, max_count: int = 64, grid_size: int = 4096):
        self.sigma = check_float("sigma", sigma, 0.0)
        self.max_count = check_int("max_count", max_count, 1)
        self.grid_size = check_int("grid_size", grid_size, 16)
        #: probability of each atom (at 0 and at 1)
        self.atom = float(ndtr(-0.5 / self.sigma)) if self.sigma > 0 else 0.0
        K = self.max_count + 2  # room for the second moment of the posterior at max_count
        h = np.arange(K + 1)[:, None]
        t = np.arange(K + 1)[None, :]
        if self.sigma == 0:
            M = 0.5 ** (h + t) * np.ones((K + 1, K + 1))
        else:
            x, w = self._quadrature()  # (N,), (N,) weights include the prior density
            # M_cont[h, t] = sum_x w x^h (1-x)^t ; compute via powers (exact enough for K <= ~200)
            xp = x[None, :] ** np.arange(K + 1)[:, None]  # (K+1, N)
            yp = (1 - x)[None, :] ** np.arange(K + 1)[:, None]  # (K+1, N)
            M = (xp * w[None, :]) @ yp.T  # (K+1, K+1)
            M = M + self.atom * ((h == 0) & np.ones_like(t, dtype=bool))  # atom at 0: 0^h = [h == 0]
            M = M + self.atom * ((t == 0) & np.ones_like(h, dtype=bool))  # atom at 1: 0^t = [t == 0]
        #: moment table, shape (max_count + 3, max_count + 3)
        self.M = M
        self._cdf_table: np.ndarray | None = None

    # -- quadrature ----------------------------------------------------------------------------------------------
    def _quadrature(self, panels: int = 64, nodes: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Nodes on (0, 1) and weights ``w_i = quadrature weight x prior density`` of the continuous part."""
        g, gw = np.polynomial.legendre.leggauss(nodes)  # on [-1, 1]
        edges = np.linspace(0.0, 1.0, panels + 1)
        a, b = edges[:-1, None], edges[1:, None]
        x = (a + (b - a) * (g[None, :] + 1) / 2).ravel()
        w = ((b - a) / 2 * gw[None, :]).ravel()
        dens = np.exp(-0.5 * ((x - 0.5) / self.sigma) ** 2) / (self.sigma * math.sqrt(2 * math.pi))
        return x, w * dens

    def _check_counts(self, h: np.ndarray, t: np.ndarray) -> None:
        if h.size and (h.min() < 0 or t.min() < 0 or (h + t).max() > self.max_count):
            raise ValueError(
                f"counts out of range for this CoinPrior (max_count={self.max_count}); "
                f"create it with a larger max_count (>= the number of flips)"
            )

    # -- posterior summaries (vectorised over arrays of counts) --------------------------------------------------
    def predictive(self, h: Any, t: Any) -> np.ndarray:
        """Posterior predictive ``P(head | h heads, t tails) = M[h+1, t] / M[h, t]``."""
        h, t = np.asarray(h, dtype=np.int64), np.asarray(t, dtype=np.int64)
        self._check_counts(h, t)
        return self.M[h + 1, t] / self.M[h, t]

    def posterior_mean(self, h: Any, t: Any) -> np.ndarray:
        """Posterior mean of ``p`` (equal to the predictive probability of a head)."""
        return self.predictive(h, t)

    def posterior_std(self, h: Any, t: Any) -> np.ndarray:
        """Posterior standard deviation of ``p``: ``sqrt(M[h+2,t]/M[h,t] - mean^2)``."""
        h, t = np.asarray(h, dtype=np.int64), np.asarray(t, dtype=np.int64)
        self._check_counts(h, t)
        mean = self.M[h + 1, t] / self.M[h, t]
        var = self.M[h + 2, t] / self.M[h, t] - mean**2
        return np.sqrt(np.maximum(var, 0.0))

    def sample(self, rng: np.random.Generator, size: Any = None) -> np.ndarray:
        """Draw coin weights from the prior."""
        if self.sigma == 0:
            return np.full(size if size is not None else (), 0.5)
        return np.clip(rng.normal(0.5, self.sigma, size=size), 0.0, 1.0)

    def cdf(self, x: Any) -> np.ndarray:
        """Prior CDF ``P(p <= x)`` (right-continuous; jumps of ``atom`` at 0 and 1)."""
        x = np.asarray(x, dtype=float)
        if self.sigma == 0:
            return (x >= 0.5).astype(float)
        F = ndtr((x - 0.5) / self.sigma)
        return np.where(x < 0, 0.0, np.where(x >= 1, 1.0, F))

    # -- posterior quantiles (for Thompson sampling and Bayes-UCB) -----------------------------------------------
    def _cdf_rows(self) -> np.ndarray:
        """Posterior CDFs on a uniform grid for every (h, t) with h + t <= max_count.

        ``table[h, t, j] = P(p < x_j | h, t)`` at ``x_j = j / G`` for j = 0..G, with the atom at 0 counted at
        ``x_0`` (i.e. ``table[..., 0]`` = posterior mass of the atom at 0) and the atom at 1 excluded, so
        ``1 - table[..., G]`` is the posterior mass at 1. Cell masses use a 4-point Gauss-Legendre rule per cell.
        """
        if self._cdf_table is not None:
            return self._cdf_table
        G, K = self.grid_size, self.max_count
        table = np.zeros((K + 1, K + 1, G + 1))
        if self.sigma == 0:
            table[..., G // 2 + 1 :] = 1.0  # point mass at 0.5 (approximately, at the grid resolution)
            self._cdf_table = table
            return table
        g, gw = np.polynomial.legendre.leggauss(4)
        edges = np.linspace(0.0, 1.0, G + 1)
        x = (edges[:-1, None] + (g[None, :] + 1) / (2 * G)).ravel()  # (4G,)
        w = (gw[None, :] / (2 * G)).repeat(G, axis=0).ravel()
        dens = np.exp(-0.5 * ((x - 0.5) / self.sigma) ** 2) / (self.sigma * math.sqrt(2 * math.pi))
        logx, log1x = np.log(x), np.log1p(-x)
        for h in range(K + 1):
            for t in range(K + 1 - h):
                mass = (w * dens * np.exp(h * logx + t * log1x)).reshape(G, 4).sum(1)  # (G,)
                a0 = self.atom if h == 0 else 0.0
                table[h, t, 0] = a0
                table[h, t, 1:] = a0 + np.cumsum(mass)
                table[h, t] /= self.M[h, t]
        self._cdf_table = table
        return table

    def posterior_quantile(self, h: Any, t: Any, q: Any) -> np.ndarray:
        """The ``q``-quantile of the posterior of ``p`` after ``h`` heads and ``t`` tails (arrays broadcast).

        Exact up to the grid resolution ``1 / grid_size`` (linear interpolation of the CDF inside a cell).
        """
        h, t, q = np.broadcast_arrays(np.asarray(h, np.int64), np.asarray(t, np.int64), np.asarray(q, float))
        self._check_counts(h, t)
        if np.any((q < 0) | (q > 1)):
            raise ValueError("quantile levels q must lie in [0, 1]")
        if self.sigma == 0:
            return np.full(h.shape, 0.5)
        table = self._cdf_rows()
        G = self.grid_size
        out = np.empty(h.shape)
        flat_h, flat_t, flat_q, flat_out = h.ravel(), t.ravel(), q.ravel(), out.reshape(-1)
        keys = flat_h * (self.max_count + 1) + flat_t
        for key in np.unique(keys):
            idx = np.nonzero(keys == key)[0]
            row = table[key // (self.max_count + 1), key % (self.max_count + 1)]  # (G+1,) non-decreasing
            qq = flat_q[idx]
            j = np.searchsorted(row, qq, side="left")  # first grid point with F >= q
            res = np.empty(len(idx))
            at0 = qq <= row[0]
            at1 = j > G  # q above all continuous mass -> the atom at 1
            mid = ~at0 & ~at1
            jm = j[mid]
            lo, hi = row[jm - 1], row[jm]
            frac = np.where(hi > lo, (qq[mid] - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
            res[mid] = (jm - 1 + frac) / G
            res[at0] = 0.0
            res[at1] = 1.0
            flat_out[idx] = res
        return out

    def sample_posterior(self, h: Any, t: Any, rng: np.random.Generator) -> np.ndarray:
        """One draw of ``p`` from the posterior for each element of ``h``, ``t`` (inverse-CDF sampling)."""
        h, t = np.broadcast_arrays(np.asarray(h, np.int64), np.asarray(t, np.int64))
        return self.posterior_quantile(h, t, rng.random(h.shape))

    def expected_max(self, n: int) -> float:
        """``E[max_i p_i]`` of ``n`` i.i.d. coins: ``int_0^1 (1 - F(x)^n) dx`` by adaptive quadrature."""
        from scipy.integrate import quad

        n = check_int("n", n, 1)
        if self.sigma == 0:
            return 0.5
        val, _ = quad(lambda x: 1.0 - float(ndtr((x - 0.5) / self.sigma)) ** n, 0.0, 1.0, limit=200,
                      epsabs=1e-13, epsrel=1e-13, points=[0.5])
        return float(val)


# ----------------------------------------------------------------------------------------------------------------
# Observation encoding and canonical order


def encode_obs(counts: np.ndarray, flips_left: np.ndarray, n_flips: int) -> np.ndarray:
    """The observation: per-coin (heads, tails) / n_flips, then flips_left / n_flips.

    counts: (B, n, 2) int, flips_left: (B,) int -> (B, 2n + 1) float32 (coin-major: h0, t0, h1, t1, ..., left).
    """
    counts = np.asarray(counts)
    flips_left = np.asarray(flips_left)
    B = counts.shape[0]
    out = np.empty((B, counts.shape[1] * 2 + 1), dtype=np.float32)
    out[:, :-1] = counts.reshape(B, -1) / n_flips
    out[:, -1] = flips_left / n_flips
    return out


def canonicalize(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort the coins of each state into the canonical order: heads descending, then tails ascending.

    counts: (B, n, 2) int -> sorted_counts (B, n, 2), perm (B, n) with ``perm[b, j]`` = original index of the coin at
    canonical position j (so ``sorted_counts[b, j] = counts[b, perm[b, j]]``). The sort is stable, so identical
    coins keep their original relative order.
    """
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[-1] != 2:
        raise ValueError(f"counts must have shape (B, n, 2), got {counts.shape}")
    h, t = counts[..., 0].astype(np.int64), counts[..., 1].astype(np.int64)
    key = -h * (int(t.max(initial=0)) + 1) + t  # ascending key = heads descending, then tails ascending
    perm = np.argsort(key, axis=1, kind="stable")
    return np.take_along_axis(counts, perm[..., None], axis=1), perm


# ----------------------------------------------------------------------------------------------------------------
# The gymnasium environment


class CoinFlipEnv(gym.Env):
    """Single coin-flip game as a ``gymnasium.Env``.

    - action: coin index in ``Discrete(n_coins)``; reward 1.0 for a head, 0.0 for a tail.
    - observation: ``encode_obs`` of the counts, shape ``(2 n_coins + 1,)`` float32 in [0, 1].
    - terminated after ``n_flips`` flips (never truncated).
    - ``info``: ``p`` (true weights) and ``counts`` ((n, 2) heads/tails).
    - ``reset(options={"p": [...]})`` fixes the weights; the flip outcomes come from uniforms pre-drawn at reset
      (coin i's j-th flip is a head iff ``u[i, j] < p[i]``), so the same seed gives the same outcomes whatever the
      policy (common random numbers).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, n_coins: int = 5, n_flips: int = 20, sigma: float = 0.3, render_mode: str | None = None):
        self.n_coins = check_int("n_coins", n_coins, 1)
        self.n_flips = check_int("n_flips", n_flips, 1)
        self.sigma = check_float("sigma", sigma, 0.0)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.prior = CoinPrior(self.sigma, max_count=self.n_flips)
        self.action_space = spaces.Discrete(self.n_coins)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(2 * self.n_coins + 1,), dtype=np.float32)
        self.p = np.full(self.n_coins, 0.5)
        self.u = np.zeros((self.n_coins, self.n_flips))
        self.counts = np.zeros((self.n_coins, 2), dtype=np.int64)
        self.flips_left = self.n_flips
        self.score = 0
        self._last: tuple[int, bool] | None = None

    def _obs(self) -> np.ndarray:
        return encode_obs(self.counts[None], np.array([self.flips_left]), self.n_flips)[0]

    def _info(self) -> dict[str, Any]:
        return {"p": self.p.copy(), "counts": self.counts.copy()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        p = (options or {}).get("p")
        if p is None:
            self.p = self.prior.sample(self.np_random, self.n_coins)
        else:
            p = np.asarray(p, dtype=float)
            if p.shape != (self.n_coins,) or np.any((p < 0) | (p > 1)):
                raise ValueError(f"options['p'] must be {self.n_coins} weights in [0, 1], got {p!r}")
            self.p = p.copy()
        self.u = self.np_random.random((self.n_coins, self.n_flips))
        self.counts = np.zeros((self.n_coins, 2), dtype=np.int64)
        self.flips_left = self.n_flips
        self.score = 0
        self._last = None
        return self._obs(), self._info()

    def step(self, action: Any):
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        if isinstance(action, bool) or not isinstance(action, Integral) or not 0 <= action < self.n_coins:
            raise ValueError(f"action must be a coin index in 0..{self.n_coins - 1}, got {action!r}")
        if self.flips_left <= 0:
            raise ValueError("the game is over (all flips used); call reset() to start a new one")
        a = int(action)
        j = int(self.counts[a].sum())
        head = bool(self.u[a, j] < self.p[a])
        self.counts[a, 0 if head else 1] += 1
        self.flips_left -= 1
        self.score += int(head)
        self._last = (a, head)
        terminated = self.flips_left == 0
        return self._obs(), float(head), terminated, False, self._info()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return board_text(self.counts, self.flips_left, self.score, self.prior, last=self._last)


def board_text(counts: np.ndarray, flips_left: int, score: int, prior: CoinPrior,
               last: tuple[int, bool] | None = None) -> str:
    """A text board: one line per coin with its counts, posterior mean and sd."""
    counts = np.asarray(counts)
    mean = prior.posterior_mean(counts[:, 0], counts[:, 1])
    std = prior.posterior_std(counts[:, 0], counts[:, 1])
    lines = [f"flips left: {flips_left}   heads so far: {score}"]
    if last is not None:
        lines.append(f"last flip: coin {last[0]} -> {'HEAD' if last[1] else 'tail'}")
    lines.append(" coin | heads | tails | post. mean | post. sd")
    for i, ((h, t), m, s) in enumerate(zip(counts, mean, std)):
        lines.append(f" {i:>4} | {h:>5} | {t:>5} | {m:>10.3f} | {s:>8.3f}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Many games at once


class BatchedCoinFlip:
    """``num_games`` coin-flip games played in lock-step in numpy.

    Attributes: ``p`` (B, n) float, ``u`` (B, n, k) pre-drawn uniforms, ``counts`` (B, n, 2) int64,
    ``flips_left`` (B,) int64. All games end together after ``n_flips`` steps. Two instances with the same
    ``seed`` draw the same ``p`` and ``u`` on each successive ``reset``, so different policies face the same coins
    and the same flip outcomes (common random numbers).
    """

    def __init__(self, n_coins: int = 5, n_flips: int = 20, sigma: float = 0.3, num_games: int = 1024,
                 seed: int | None = 0):
        self.n_coins = check_int("n_coins", n_coins, 1)
        self.n_flips = check_int("n_flips", n_flips, 1)
        self.sigma = check_float("sigma", sigma, 0.0)
        self.num_games = check_int("num_games", num_games, 1)
        self.prior = CoinPrior(self.sigma, max_count=self.n_flips)
        self.rng = np.random.default_rng(seed)
        B, n = self.num_games, self.n_coins
        self.p = np.full((B, n), 0.5)
        self.u = np.zeros((B, n, self.n_flips))
        self.counts = np.zeros((B, n, 2), dtype=np.int64)
        self.flips_left = np.zeros(B, dtype=np.int64)  # not started: step() before reset() is an error

    def reset(self, p: np.ndarray | None = None) -> np.ndarray:
        """Start new games (weights from the prior unless ``p`` (B, n) is given) -> obs (B, 2n+1) float32."""
        B, n = self.num_games, self.n_coins
        p_new = self.prior.sample(self.rng, (B, n))  # always drawn, so the stream of uniforms doesn't depend on p
        if p is not None:
            p_new = np.broadcast_to(np.asarray(p, dtype=float), (B, n)).copy()
            if np.any((p_new < 0) | (p_new > 1)):
                raise ValueError("p must lie in [0, 1]")
        self.p = p_new
        self.u = self.rng.random((B, n, self.n_flips))
        self.counts = np.zeros((B, n, 2), dtype=np.int64)
        self.flips_left = np.full(B, self.n_flips, dtype=np.int64)
        return self.obs()

    def obs(self) -> np.ndarray:
        return encode_obs(self.counts, self.flips_left, self.n_flips)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts (B, n, 2), flips_left (B,)) copies."""
        return self.counts.copy(), self.flips_left.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flip coin ``actions[b]`` in game b -> (obs (B, 2n+1) float32, reward (B,) float32, done (B,) bool)."""
        actions = np.asarray(actions)
        B = self.num_games
        if actions.shape != (B,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be an integer array of shape ({B},), got {actions.dtype} {actions.shape}")
        if np.any((actions < 0) | (actions >= self.n_coins)):
            raise ValueError(f"actions must be coin indices in 0..{self.n_coins - 1}")
        if np.any(self.flips_left <= 0):
            raise ValueError("the games are over (or were never started); call reset() first")
        b = np.arange(B)
        j = self.counts[b, actions].sum(-1)  # how often each chosen coin was flipped before
        head = self.u[b, actions, j] < self.p[b, actions]
        self.counts[b, actions, np.where(head, 0, 1)] += 1
        self.flips_left -= 1
        done = self.flips_left == 0
        return self.obs(), head.astype(np.float32), done
