# %% [markdown]
# # The coin-flip game and its Bayes-optimal solution {#sec-coinflip-game}
#
# You are handed a handful of coins. Each coin has its own, unknown probability of landing heads, and you may make
# a fixed number of flips, choosing before each flip which coin to toss. Every head is worth a point. Which coin do
# you flip? This puzzle, in the style of a Jane Street interview question, is the seed of this study: it is small
# enough to be solved *exactly*, yet it contains the central tension of reinforcement learning, the trade-off
# between exploiting the coin that looks best and exploring coins we know little about. Later chapters train a
# small neural agent on the game and ask how its weights implement that trade-off; this chapter builds the ground
# truth the agent is compared with.
#
# **The game.** There are $n$ coins and $k$ flips. Coin $i$ has weight $p_i$, drawn independently from a normal
# distribution with mean $0.5$ and standard deviation $\sigma$ and then *clipped* to $[0, 1]$. Clipping, rather
# than truncating, moves the tails of the normal onto the end points, so the prior has point masses of probability
# $\Phi(-0.5/\sigma)$ at $p = 0$ (a coin that never lands heads) and at $p = 1$ (a coin that always does), plus a
# continuous part on $(0, 1)$.
#
# **A finite-horizon Bayesian bandit.** Because the prior is known, the game is a Bayesian multi-armed bandit with
# horizon $k$. Everything a player knows after some flips is summarised by the per-coin counts of heads and tails
# $(h_i, t_i)$: the posterior of $p_i$ has density proportional to $p^{h_i} (1-p)^{t_i}$ times the prior, and the
# probability that the next flip of coin $i$ is a head is the posterior predictive
# $$P(\text{head} \mid h, t) = \frac{M_{h+1,t}}{M_{h,t}}, \qquad M_{h,t} = \mathbb{E}\big[p^h (1-p)^t\big],$$
# where the moments $M$ include the atoms ($0^0 = 1$, so the atom at 0 contributes only when $h = 0$ and the atom at
# 1 only when $t = 0$). The atoms matter: a coin that has shown only heads may be a sure thing, and the posterior
# mass at $p = 1$ grows with every further head.
#
# **Dynamic programming.** The posterior state is the multiset of counts; coins are exchangeable, so we sort each
# state into a canonical order and solve the Bellman equation
# $$\begin{aligned} Q^*(s, i) &= q_i\,\big(1 + V^*(s + \text{head}_i)\big) + (1 - q_i)\, V^*(s + \text{tail}_i), \\
#   V^*(s) &= \max_i Q^*(s, i), \end{aligned}$$
# with $q_i$ the predictive of coin $i$ and $V^* = 0$ once all flips are used. We enumerate the canonical states level
# by level (by the number of flips made) and run backward induction vectorised over each level
# (`rlinterp.studies.coinflip_bayes.solve`). The same machinery evaluates any policy that depends only on the posterior state
# *exactly* (`evaluate_exact`), by propagating the distribution over the states it reaches; this matters because the
# differences between good policies are a few hundredths of a head, too small for plain Monte Carlo.

# %% tags=["parameters"]
n_coins: int = 5  # number of coins [range: [1, inf)]
n_flips: int = 20  # number of flips per game (horizon) [range: [1, inf)]
sigma: float = 0.3  # prior sd of the coin weights (Normal(0.5, sigma) clipped to [0, 1]) [range: (0, inf)]
sigma_alt: float = 0.2  # a second prior sd for the baselines table (0 or less skips it)
mc_games: int = 50000  # Monte Carlo games per policy (common random numbers) [range: [2, inf)]
seed: int = 0  # random seed for the Monte Carlo games [range: [0, inf)]
sweep_sigmas: list[float] = [0.05, 0.1, 0.2, 0.3, 0.5, 1.0]  # prior sds for the value-of-exploration sweep [range: (0, inf)]
sweep_flips: list[int] = [5, 10, 15, 20, 25]  # horizons for the value-of-exploration sweep (at sigma) [range: [1, inf)]

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rlinterp.studies.coinflip_bayes import compare_policies, evaluate_exact, greedy_probs, oracle_value, solve, stick_advantage
from rlinterp.envs.coinflip import CoinPrior
from rlinterp.pipeline.report import claim, md, md_table

sigmas, horizons = list(sweep_sigmas), list(sweep_flips)

# %% [markdown]
# ## The prior
#
# @fig-prior shows the prior for the two values of $\sigma$ used below. The larger $\sigma$, the more the coins
# differ, the more there is to gain by finding a good one, and the heavier the atoms at the end points.

# %%
#| label: fig-prior
#| fig-cap: "The prior of a coin's weight: Normal(0.5, σ) clipped to [0, 1]. Curves are the continuous part, stems the point masses at 0 and 1 (right axis: probability)."
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax2 = ax.twinx()
x = np.linspace(0, 1, 401)
for s, color in [(sigma, "C0"), (sigma_alt, "C1")]:
    if s <= 0:
        continue
    prior = CoinPrior(s, max_count=1)
    ax.plot(x, np.exp(-0.5 * ((x - 0.5) / s) ** 2) / (s * np.sqrt(2 * np.pi)), color=color, label=f"σ = {s}")
    ax2.vlines([0.0, 1.0], 0, prior.atom, color=color, lw=3, alpha=0.7)
    ax2.plot([0.0, 1.0], [prior.atom] * 2, "o", color=color)
ax.set(xlabel="coin weight p", ylabel="density (continuous part)")
ax2.set_ylabel("point mass")
ax2.set_ylim(0, None)
ax.legend(loc="upper left")
plt.show()

# %%
#| echo: false
atoms = {s: CoinPrior(s, max_count=1).atom for s in [sigma, sigma_alt] if s > 0}
md(" ".join(f"With σ = {s}, each end point carries probability {a:.4f}, so a coin is a certain loser or a certain "
            f"winner with probability {2 * a:.4f}." for s, a in atoms.items()))

# %% [markdown]
# ## Solving the game exactly

# %%
solutions = {}
for s in [sigma, sigma_alt]:
    if s > 0 and s not in solutions:
        solutions[s] = solve(n_coins, n_flips, s, progress=False)
sol = solutions[sigma]

# %%
#| echo: false
md(f"For n = {n_coins} coins and k = {n_flips} flips the dynamic programme visits {sol.num_states:,} canonical "
   f"posterior states and takes {sol.seconds:.2f} s. The Bayes-optimal expected number of heads is "
   f"**{sol.value:.4f}** for σ = {sigma}"
   + (f" and **{solutions[sigma_alt].value:.4f}** for σ = {sigma_alt}" if sigma_alt > 0 and sigma_alt != sigma else "")
   + f", against {n_flips / 2:g} for random play and {oracle_value(n_coins, n_flips, sigma):.4f} for an oracle that "
   f"knows the weights and always flips the best coin (k · E[max p_i], computed by quadrature).")

# %% [markdown]
# ## Baselines
#
# We compare the optimal policy with the usual bandit heuristics: **greedy** flips the coin with the largest
# posterior mean; **Bayes-UCB** flips the coin with the largest posterior quantile at level $1 - 1/(t+1)$ on step $t$;
# **Thompson sampling** draws a weight for each coin from its posterior and flips the largest draw; **random** picks a
# coin uniformly; the **oracle** knows $p$. Greedy needs a tie-break: under the symmetric prior every coin with as
# many heads as tails has posterior mean exactly $0.5$, so an untouched coin ties with one that came up
# head-tail. We report three rules: prefer the least-flipped tied coin ("explore"), a uniformly random tied coin, or
# the most-flipped tied coin ("exploit"). Deterministic policies are evaluated exactly; every policy is also played
# on the same Monte Carlo games (the same weights and the same flip outcomes, i.e. common random numbers), which
# makes the paired differences to the optimal policy far more precise than the separate means.

# %%
#| label: tbl-baselines
#| tbl-cap: "Expected heads of each policy: exact value (where the policy is a deterministic or explicit function of the posterior state), Monte Carlo mean with 95% CI, percentage of the Bayes-optimal value, and the paired Monte Carlo difference to the optimal policy with its 95% CI (common random numbers)."
tables = {}
for s, solution in solutions.items():
    tables[s] = pd.DataFrame(compare_policies(n_coins, n_flips, s, mc_games, seed, solution))
    tables[s].insert(0, "σ", s)
table = pd.concat(tables.values(), ignore_index=True)
md_table(table[[c for c in table.columns if not c.startswith("_")]])

# %%
#| echo: false
t0 = tables[sigma].set_index("policy")
gap = lambda name: sol.value - t0.loc[name, "exact"]
tie_worth = t0.loc["greedy (ties: explore)", "exact"] - t0.loc["greedy (ties: exploit)", "exact"]
thompson_loss = sol.value - t0.loc["thompson", "MC mean"]
claim(tie_worth > gap("greedy (ties: explore)"), "the tie-break is worth more than greedy's remaining gap to optimal")
claim(thompson_loss > max(gap("greedy (ties: explore)"), gap("bayes-ucb")),
      "Thompson sampling loses more than greedy and Bayes-UCB (randomised exploration is expensive)")
claim(t0.loc["greedy (ties: explore)", "_paired_halfwidth"] < t0.loc["greedy (ties: explore)", "_ci_halfwidth"],
      "the paired interval is narrower than a single policy's interval (common random numbers)")
claim(t0.loc["greedy (ties: explore)", "% of optimal"] >= 95, "greedy is within a few percent of the optimum (Discussion)")
md(f"At σ = {sigma} greedy with exploratory tie-breaking reaches {t0.loc['greedy (ties: explore)', '% of optimal']:.2f}% "
   f"of the optimum, {gap('greedy (ties: explore)'):.4f} heads short; the tie-break alone is worth "
   f"{tie_worth:.4f} heads, more than "
   f"the remaining gap to optimal play. Bayes-UCB loses {gap('bayes-ucb'):.4f} heads, and Thompson sampling, which "
   f"keeps exploring at random until the very end, loses {thompson_loss:.3f}: with only "
   f"{n_flips} flips, randomised exploration is expensive. With {mc_games:,} games the 95% interval of a single "
   f"policy's mean is ±{t0.loc['greedy (ties: explore)', '_ci_halfwidth']:.3f} heads, while the paired interval of "
   f"its difference to the optimal policy is ±{t0.loc['greedy (ties: explore)', '_paired_halfwidth']:.3f}: common "
   f"random numbers resolve gaps that separate runs could not.")

# %% [markdown]
# ## What optimal play looks like
#
# Where does the optimal policy explore? Consider the states in which one coin has been flipped $h + t$ times and
# all the others never, so $k - h - t$ flips are left. Greedy keeps flipping the known coin exactly when
# $h > t$ (its posterior mean exceeds $0.5$) and, with exploratory tie-breaking, moves to a fresh coin otherwise.
# @fig-policy shows the advantage $Q^*(\text{known coin}) - Q^*(\text{fresh coin})$ of the optimal policy.

# %%
#| label: fig-policy
#| fig-cap: "Optimal choice between the one coin flipped so far (h heads, t tails) and an unflipped coin, with all other coins unflipped. Colour: Q*(known) − Q*(fresh) in expected heads (red: keep flipping the known coin; blue: switch). Black contour: the optimal policy's indifference line Q*(known) = Q*(fresh). Green dotted line: greedy's boundary h = t + ½ (greedy keeps the coin above it). Cells with h + t ≥ k are unreachable."
fig, axes = plt.subplots(1, len(solutions), figsize=(5.2 * len(solutions), 4.2), squeeze=False)
for ax, (s, solution) in zip(axes[0], solutions.items()):
    A = stick_advantage(solution)
    lim = np.nanmax(np.abs(A))
    im = ax.imshow(A, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.contour(np.ma.masked_invalid(A), levels=[0.0], colors="black", linewidths=1.5)
    tt = np.linspace(-0.5, (n_flips - 1) / 2, 50)
    ax.plot(tt, tt + 0.5, color="tab:green", lw=2, ls=":")
    ax.set(xlabel="tails t of the known coin", ylabel="heads h of the known coin", title=f"σ = {s}",
           xlim=(-0.5, n_flips - 0.5), ylim=(-0.5, n_flips - 0.5))
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
    fig.colorbar(im, ax=ax, shrink=0.8, label="Q*(known) − Q*(fresh)")
plt.tight_layout()
plt.show()

# %%
#| echo: false
A = stick_advantage(sol)
hs, ts = np.nonzero(A < -1e-12)
leave = [(h, t) for h, t in zip(hs, ts) if h > t]  # greedy would keep these
claim(len(leave) > 0, "the optimal policy abandons coins that greedy would keep")
first = min(leave, key=lambda ht: (ht[0] + ht[1], -ht[0]))
md(f"The optimal policy abandons coins that greedy would keep: with all other coins unflipped it switches to a "
   f"fresh coin in {len(leave)} states where the known coin's posterior mean is above 0.5, the earliest after "
   f"{first[0]} heads and {first[1]} tails (posterior mean {sol.prior.posterior_mean(*first):.3f}, "
   f"{n_flips - first[0] - first[1]} flips left)."
   " Early in the game a coin has to be clearly better than the prior mean to be worth keeping, because an "
   "unflipped coin carries the option of turning out excellent (including the atom at 1) and many flips remain "
   "to exploit that discovery; as the horizon shrinks, the black indifference contour bends back towards greedy's line.")

# %% [markdown]
# ## The value of exploration
#
# How much is principled exploration worth? @fig-sweep shows the gap between the optimal policy and greedy (both
# tie-breaking rules that bracket it) as the prior widens and as the horizon grows. As σ → 0 all coins are alike and
# there is nothing to learn; for very wide priors a single flip is already very informative, so little deliberate
# exploration should be needed: we expect the value of exploration to peak at an intermediate σ, which the sweep
# shows only if it spans that peak.

# %%
sweep = []
for s in sigmas:
    solution = solutions.get(s) or solve(n_coins, n_flips, s, progress=False)
    prior = CoinPrior(s, max_count=n_flips)
    sweep.append({"axis": "sigma", "sigma": s, "k": n_flips, "optimal": solution.value,
                  **{tb: evaluate_exact(greedy_probs(prior, tb), n_coins, n_flips, s) for tb in ("explore", "exploit")}})
for k in horizons:
    solution = solve(n_coins, k, sigma, progress=False)
    prior = CoinPrior(sigma, max_count=k)
    sweep.append({"axis": "k", "sigma": sigma, "k": k, "optimal": solution.value,
                  **{tb: evaluate_exact(greedy_probs(prior, tb), n_coins, k, sigma) for tb in ("explore", "exploit")}})
sweep = pd.DataFrame(sweep)
sweep["gap (explore ties)"] = sweep["optimal"] - sweep["explore"]
sweep["gap (exploit ties)"] = sweep["optimal"] - sweep["exploit"]

# %%
#| label: fig-sweep
#| fig-cap: "Value of exploration: expected heads of the optimal policy minus greedy (exploratory and exploitative tie-breaking), as a function of the prior sd σ (left, fixed horizon) and of the horizon k (right, fixed σ)."
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, axis, col, label in [(axes[0], "sigma", "sigma", "prior sd σ"), (axes[1], "k", "k", "flips k")]:
    d = sweep[sweep["axis"] == axis]
    ax.plot(d[col], d["gap (explore ties)"], "o-", label="optimal − greedy (ties: explore)")
    ax.plot(d[col], d["gap (exploit ties)"], "s--", label="optimal − greedy (ties: exploit)")
    ax.set(xlabel=label, ylabel="expected heads")
    ax.axhline(0, color="grey", lw=0.5)
axes[0].set_title(f"n = {n_coins}, k = {n_flips}")
axes[1].set_title(f"n = {n_coins}, σ = {sigma}")
axes[0].legend()
plt.tight_layout()
plt.show()

# %%
#| label: tbl-sweep
#| tbl-cap: "The value-of-exploration sweep: exact expected heads of the optimal policy and of greedy with both tie-breaks."
md_table(sweep[["sigma", "k", "optimal", "explore", "exploit", "gap (explore ties)", "gap (exploit ties)"]]
         .rename(columns={"explore": "greedy (explore ties)", "exploit": "greedy (exploit ties)"}))

# %%
#| echo: false
ds = sweep[sweep["axis"] == "sigma"]
dk = sweep[sweep["axis"] == "k"]
best = ds.loc[ds["gap (explore ties)"].idxmax()]
claim(bool(dk["gap (explore ties)"].is_monotonic_increasing) and len(dk) > 1,
      "the exploration gap grows with the horizon (the longer the game, the more a discovery is worth)")
md(f"Over the σ values studied, the exploration gap (optimal − greedy with exploratory ties) is largest at "
   f"σ = {best['sigma']:g} ({best['gap (explore ties)']:.4f} heads, "
   f"{100 * best['gap (explore ties)'] / best['optimal']:.2f}% of the optimum) and smallest at "
   f"σ = {ds['sigma'].iloc[ds['gap (explore ties)'].argmin()]:g} ({max(ds['gap (explore ties)'].min(), 0):.2g} heads)."
   + f" At the ends of the sweep the gap is {max(ds['gap (explore ties)'].iloc[0], 0):.2g} heads "
   f"(σ = {ds['sigma'].iloc[0]:g}) and {ds['gap (explore ties)'].iloc[-1]:.4f} heads (σ = {ds['sigma'].iloc[-1]:g})."
   f" At σ = {sigma} the gap grows"
   f" from {max(dk['gap (explore ties)'].iloc[0], 0):.4f} heads at k = {int(dk['k'].iloc[0])} to "
   f"{dk['gap (explore ties)'].iloc[-1]:.4f} at k = {int(dk['k'].iloc[-1])}"
   ": the longer the game, the more a discovery is worth.")

# %% [markdown]
# ## Discussion
#
# The coin-flip game has an exact Bayes-optimal solution that is cheap to compute, so every agent trained on it can
# be scored against the true optimum, state by state, rather than against another heuristic. Greedy play on the
# posterior mean comes within a few percent of the optimum (@tbl-baselines), which means that any learned policy that "only"
# exploits already looks good: the interesting behaviour — and the thing an interpretability analysis has to find —
# is in the small set of states where the optimal policy leaves a coin that looks good for an unknown one, and in
# how the value of that option depends on the flips left. The next chapter trains a small DQN on this game and asks
# whether it discovers these decisions.
