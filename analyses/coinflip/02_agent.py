# %% [markdown]
# # A DQN learns to flip coins {#sec-coinflip-agent}
#
# The previous chapter solved the coin-flip game exactly: with the Bayes-optimal policy in hand we know, to the
# fourth decimal, how many heads perfect play earns, and how little is lost by simply flipping the coin that looks
# best (greedy play on the posterior mean). This chapter trains the agent whose internals the rest of the study
# dissects: the seed's "small 2-layer DQN". The questions are practical ones. Can a model-free learner, which never
# sees the prior and only receives heads and tails, learn to *explore*, i.e. to beat greedy play, when the value of
# exploration is a small fraction of a head per game? And where it falls short of the optimum, where exactly does
# it go wrong?
#
# **The agent.** The network maps the observation, the per-coin counts of heads and tails divided by the number of
# flips $k$ and the fraction of flips left, through two hidden ReLU layers to one Q-value per coin
# (`rlinterp.models.qnet.QNetwork`, a TransformerLens `HookedRootModule` with a hook on every activation:
# `hook_obs`, `mlp.0.hook_pre`, `mlp.0.hook_post`, `mlp.1.hook_pre`, `mlp.1.hook_post`, `hook_q_values`).
# Coins are exchangeable, so before every decision the agent *sorts* the coins into a canonical order (more heads
# first, then fewer tails) and maps its chosen position back to the real coin. This is a deliberate design choice:
# the policy is invariant to relabelling the coins by construction, the network has $n!$ times fewer states to
# learn, and, because the policy is a function of the canonical posterior state only, its expected score can be
# computed *exactly* by propagating the distribution over the states it reaches (`bayes.evaluate_exact`). Exact
# evaluation turns the comparison with greedy play from a noisy Monte Carlo question into a number.
#
# **Training.** Deep Q-learning [@mnih2015human] on thousands of parallel games: an experience-replay buffer, a
# target network copied every few hundred gradient steps, the Double-DQN target [@vanhasselt2016double],
# $\epsilon$-greedy exploration with a linearly decaying $\epsilon$, no discounting ($\gamma = 1$: the horizon is
# finite and the flips-left input makes the state Markov), a mean-squared-error loss (the target is the *mean*
# return; a Huber loss would pull Q towards the median of the Bernoulli outcomes) and Adam with a cosine
# learning-rate decay. The decay matters here: a single target has noise of order one head, while the Q-value
# differences that separate exploration from exploitation are hundredths of a head, so the late, small steps are
# what average the noise away. The greedy policy is evaluated exactly at regular intervals and the best evaluated
# weights are kept (model selection on the exact value; the curve below shows all evaluations).

# %% tags=["parameters"]
n_coins: int = 5  # number of coins; a game other than the shipped agent's trains an agent for it [range: [2, inf)]
n_flips: int = 20  # flips per game (the horizon) [range: [1, inf)]
sigma: float = 0.3  # prior sd of the coin weights (Normal(0.5, sigma) clipped to [0, 1]) [range: (0, inf)]
retrain: bool = False  # train even when the shipped checkpoint data/coinflip/dqn.pt is for this game (an identical earlier run under runs/coinflip/ is reused)
save: bool = False  # with retrain: overwrite the shipped checkpoint data/coinflip/dqn.pt (shipped game and config only)
total_steps: int = 40000  # when training: vectorised environment steps (each adds num_games transitions) [range: [1, inf)]
num_games: int = 2048  # when training: parallel games [range: [1, inf)]
batch_size: int = 2048  # when training: transitions per gradient step [range: [1, inf)]
d_hidden: int = 128  # when training: width of both hidden layers [range: [1, inf)]
eval_every: int = 1000  # when training: environment steps between exact evaluations of the greedy policy [range: [1, inf)]
mc_games: int = 200000  # Monte Carlo games per policy for the evaluation table (common random numbers) [range: [2, inf)]
seed: int = 0  # training seed; the Monte Carlo games use the seed-th test seed of seeds.split("coinflip") [range: [0, inf)]
device: str = "cpu"  # torch device

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rlinterp import artifacts, seeds
from rlinterp.learners import dqn
from rlinterp.stats import mean_interval, paired_difference
from rlinterp.studies import coinflip as cf
from rlinterp.studies import coinflip_bayes as bayes
from rlinterp.pipeline.report import claim, config_table, md, md_table

train = dict(total_steps=total_steps, num_games=num_games, batch_size=batch_size, d_hidden=d_hidden,
             eval_every=eval_every, seed=seed)
if retrain and save:  # refused before training: only the declared (shipped) game and config may replace data/
    declared = artifacts.get("coinflip/dqn").config.to_dict()
    requested = dqn.DQNConfig(n_coins=n_coins, n_flips=n_flips, sigma=sigma, **train).to_dict()
    if diff := {f: (declared[f], requested[f]) for f in declared if declared[f] != requested[f]}:
        raise ValueError(f"save=true replaces data/coinflip/dqn.pt, which is declared with its default config; this "
                         f"run differs in {diff} (declared, requested): run it without save")
model, source = cf.agent_for_world(n_coins, n_flips, sigma, retrain=retrain, train=train, device=device)
history = model.history
cfg = model.cfg
claim(cf.world_of(cfg) == (n_coins, n_flips, float(sigma)), "the agent was trained for the requested game")
mc_seed = int(seeds.split("coinflip").test_seeds(1, start=seed)[0])  # reported numbers: a test seed
solution = bayes.solve(cfg.n_coins, cfg.n_flips, cfg.sigma, progress=False)
metrics = cf.evaluate(model, num_games=mc_games, seed=mc_seed, solution=solution)
if retrain and save:
    artifacts.save("coinflip/dqn", model, config=cfg)
md(f"The game: {cfg.n_coins} coins, {cfg.n_flips} flips, prior sd σ = {cfg.sigma:g}. The agent: "
   + {"shipped": "the shipped checkpoint `data/coinflip/dqn.pt`, trained for this game.",
      "cached": f"trained for this game with the configuration below by an earlier run (`{cf.checkpoint_path(cfg).name}` "
                "under `runs/coinflip/`; training is deterministic, so it is the agent this run would train).",
      "trained": f"trained for this game in this run (stored as `{cf.checkpoint_path(cfg).name}` under "
                 "`runs/coinflip/`, where `rli play coinflip` and the next chapter find it)."}[source])

# %% [markdown]
# ## Training
#
# @fig-training shows the exact expected number of heads of the agent's greedy policy during training, between the
# two reference lines that matter: greedy play on the posterior mean below and the Bayes-optimal policy above.

# %%
#| echo: false
h = history
late_evals = [v for s_, v in zip(h["eval_step"], h["eval_value"]) if s_ > cfg.total_steps / 2] or h["eval_value"]
md(f"The agent was trained for {cfg.total_steps:,} steps of {cfg.num_games:,} parallel games "
   f"({cfg.total_steps * cfg.num_games:,} transitions, {cfg.total_steps * cfg.num_games // cfg.n_flips:,} games) "
   f"with the configuration of @tbl-dqn-config; the run took "
   f"{h['wall_time'][0] / 60:.1f} minutes of wall-clock time on one CPU thread"
   + (f" ({h['cpu_time'][0] / 60:.1f} minutes of CPU time)" if "cpu_time" in h else "")
   + f". The weights kept are those of step "
   f"{h['best_step'][0]:,}, whose exact value {h['best_value'][0]:.4f} was the best of "
   f"{len(h['eval_value'])} evaluations; the last evaluation, at the end of training, scored "
   f"{h['eval_value'][-1]:.4f}, and the median of the evaluations in the second half of training "
   f"{np.median(late_evals):.4f}.")

# %%
#| label: tbl-dqn-config
#| tbl-cap: "The agent's configuration (`DQNConfig`, as stored with the weights): every hyper-parameter of the game, the network and the training run."
config_table(cfg)

# %%
#| label: fig-training
#| fig-cap: "Training. Left: exact expected heads of the greedy policy (the agent's argmax) at each evaluation, with the Bayes-optimal and greedy-posterior-mean values; the marker is the kept checkpoint. Right: mean return of the epsilon-greedy training games and the TD loss."
kilo = plt.FuncFormatter(lambda x, _: f"{x / 1000:g}k")
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
ax = axes[0]
ax.plot(h["eval_step"], h["eval_value"], "o-", ms=3, label="DQN (greedy policy, exact)")
ax.axhline(metrics["optimal"], color="k", ls="--", label="Bayes-optimal")
ax.axhline(metrics["greedy"], color="C3", ls=":", label="greedy on posterior mean")
ax.plot(h["best_step"], h["best_value"], "*", ms=12, color="C1", label="kept checkpoint")
lo = min(metrics["greedy"], np.quantile(h["eval_value"], 0.25)) - 0.05
ax.set(xlabel="environment steps", ylabel="expected heads", ylim=(lo, metrics["optimal"] + 0.03))
ax.xaxis.set_major_formatter(kilo)
ax.legend(fontsize=8, loc="lower right")
ax = axes[1]
ax.plot(h["log_step"], h["train_return"], color="C0")
ax.set(xlabel="environment steps", ylabel="training return (ε-greedy)")
ax.xaxis.set_major_formatter(kilo)
ax2 = ax.twinx()
ax2.plot(h["log_step"], h["loss"], color="C2", alpha=0.7)
ax2.set_ylabel("TD loss (MSE)", color="C2")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## How good is the agent?
#
# @tbl-eval compares the agent with the Bayes-optimal policy and the usual bandit baselines. The exact column is the
# expected number of heads by backward induction for every policy that depends only on the posterior state; the
# oracle, which knows the coin weights, scores $k\,\mathbb{E}[\max_i p_i]$. The Monte Carlo columns play every
# policy on the *same* games (same coin weights, same flip outcomes per coin: common random numbers), so the paired
# differences with the agent are far more precise than the individual means.

# %%
prior = solution.prior
base = bayes.baselines(cfg.n_coins, cfg.n_flips, cfg.sigma, solution)
policies = {"DQN agent": (model.policy, model.policy_probs), **base}
returns = bayes.evaluate_mc({name: pol for name, (pol, _) in policies.items()}, cfg.n_coins, cfg.n_flips,
                            cfg.sigma, num_games=mc_games, seed=mc_seed)
rows = []
for name, (pol, probs_fn) in policies.items():
    exact = (metrics["expected_heads"] if name == "DQN agent" else
             bayes.oracle_value(cfg.n_coins, cfg.n_flips, cfg.sigma) if name == "oracle" else
             bayes.evaluate_exact(probs_fn, cfg.n_coins, cfg.n_flips, cfg.sigma) if probs_fn is not None else np.nan)
    m, lo_, hi_ = mean_interval(returns[name])
    d = paired_difference(returns[name], returns["DQN agent"]) if name != "DQN agent" else None
    rows.append({"policy": name, "exact": float(exact), "% of optimal": 100 * float(exact) / solution.value,
                 "MC mean": m, "MC 95% CI": f"[{lo_:.3f}, {hi_:.3f}]",
                 "Δ vs agent (paired)": f"{d.mean:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]" if d else "–"})
table = pd.DataFrame(rows)

# %%
#| label: tbl-eval
#| tbl-cap: "Expected heads per game in the game of @tbl-dqn-config. Exact: backward induction (– where the policy is randomised or needs the true weights; the oracle's value is k·E[max p]). MC: Monte Carlo mean with 95% interval; last column: paired difference from the agent on the same games with its 95% interval."
md_table(table, digits=4)

# %%
#| echo: false
g = metrics
beats = g["mc_diff_lo"] > 0
md(f"The agent's greedy policy earns **{g['expected_heads']:.4f}** heads in expectation (exact), "
   f"**{g['pct_optimal']:.2f}%** of the Bayes-optimal {g['optimal']:.4f}, against a 99% target of "
   f"{0.99 * g['optimal']:.4f}. Greedy play on the posterior mean earns {g['greedy']:.4f} "
   f"({100 * g['greedy'] / g['optimal']:.2f}%), so the agent closes **{g['gap_closed']:.0%}** of the "
   f"{g['optimal'] - g['greedy']:.4f}-head gap between greedy and optimal play. On {g['mc_games']:,} paired games "
   f"(test seed {mc_seed:,} of `seeds.split('coinflip')`) it scores {g['mc_diff_vs_greedy']:+.4f} heads per game "
   f"against greedy (95% CI [{g['mc_diff_lo']:+.4f}, {g['mc_diff_hi']:+.4f}]), "
   + ("an interval that excludes zero: the agent has learned to explore profitably." if beats else
      "an interval that does not lie above zero: on these games the agent is not shown to beat greedy play."))

# %% [markdown]
# ## Where does the agent deviate from optimal play?
#
# Because both the agent and the optimum are functions of the canonical state, we can list every state the agent
# reaches together with the exact probability of reaching it, and compare its choice with the optimal one there. The
# cost of a choice is its *regret* $V^*(s) - Q^*(s, a)$, the heads lost by taking $a$ once and playing optimally
# afterwards. By the performance-difference lemma the reach-weighted sum of these regrets is exactly the agent's
# total shortfall $V^*(s_0) - V^{\text{agent}}(s_0)$, so the table below is an exact decomposition of what the agent
# loses, by the number of flips left.

# %%
agent_df = cf.reached_decisions(model.policy_probs, solution)
optimal_df = cf.reached_decisions(solution.probs, solution)
shortfall = solution.value - metrics["expected_heads"]
assert abs((agent_df.reach * agent_df.regret).sum() - shortfall) < 1e-8, "performance-difference identity failed"
by_left = agent_df.assign(wdis=agent_df.reach * ~agent_df.agree, wreg=agent_df.reach * agent_df.regret).groupby(
    "flips_left").agg(states=("reach", "size"), disagree=("wdis", "sum"), lost=("wreg", "sum"))
by_left["mean cost of a disagreement"] = by_left.lost / by_left.disagree.where(by_left.disagree > 0)
by_left = by_left.sort_index(ascending=False).reset_index().rename(columns={
    "flips_left": "flips left", "states": "states reached", "disagree": "P(non-optimal choice)",
    "lost": "heads lost"})

# %%
#| label: tbl-disagree
#| tbl-cap: "The agent's deviations from optimal play, by flips left, over the states it reaches (weighted by the exact probability of reaching them). Heads lost = Σ reach × (V* − Q*(s, agent's choice)); the column sums to the agent's total shortfall."
md_table(by_left, digits=4)

# %%
#| echo: false
p_dis = float((agent_df.reach * ~agent_df.agree).sum())
worst = by_left.loc[by_left["heads lost"].idxmax()]
md(f"Over a whole game the agent makes on average {p_dis:.2f} non-optimal choices out of {cfg.n_flips} "
   f"({100 * p_dis / cfg.n_flips:.1f}% of its decisions) and loses {shortfall:.4f} heads to them in total, "
   f"{1000 * shortfall / max(p_dis, 1e-12):.1f} thousandths of a head per non-optimal choice on average. "
   f"The largest share of the loss, {worst['heads lost']:.4f} heads "
   f"({worst['heads lost'] / max(shortfall, 1e-12):.0%}), is incurred with {int(worst['flips left'])} flips left.")

# %% [markdown]
# ## Exploration and exploitation
#
# A decision *explores* when it flips a coin whose posterior mean is below that of the best-looking coin: it gives
# up expected heads now for information. @fig-explore shows how often the agent and the Bayes-optimal policy do so,
# each on the states it reaches itself, as a function of the flips left, of the posterior mean of the best-looking
# coin and of its posterior standard deviation (the uncertainty about the incumbent).

# %%
#| label: fig-explore
#| fig-cap: "Probability of flipping a coin other than the best-looking one (exploring), weighted by the exact probability of reaching each state, for the DQN agent and the Bayes-optimal policy. Left: by flips left; middle: by the posterior mean of the best-looking coin; right: by its posterior standard deviation."
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
mean_bins = np.linspace(0.0, 1.0, 21)  # bins with reach mass below 1e-3 are not drawn
std_bins = np.linspace(0.0, cfg.sigma, 13)  # the posterior sd of a coin is at most about the prior sd
for df, name, style in [(agent_df, "DQN agent", "o-"), (optimal_df, "Bayes-optimal", "s--")]:
    r = cf.weighted_rate(df, "explore", "flips_left")
    axes[0].plot(r.x, r.rate, style, ms=3, label=name)
    r = cf.weighted_rate(df, "explore", "best_mean", mean_bins)
    r = r[r.mass > 1e-3]
    axes[1].plot(r.x, r.rate, style, ms=3, label=name)
    r = cf.weighted_rate(df, "explore", "best_std", std_bins)
    r = r[r.mass > 1e-3]
    axes[2].plot(r.x, r.rate, style, ms=3, label=name)
axes[0].set(xlabel="flips left", ylabel="P(explore)")
axes[0].invert_xaxis()
axes[1].set(xlabel="posterior mean of the best-looking coin")
axes[2].set(xlabel="posterior sd of the best-looking coin")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
#| echo: false
e_agent = float((agent_df.reach * agent_df.explore).sum())
e_opt = float((optimal_df.reach * optimal_df.explore).sum())
late = max(1, cfg.n_flips // 4)  # "the last flips": the last quarter of the game
e_agent_late = float((agent_df.reach * agent_df.explore)[agent_df.flips_left <= late].sum())
e_opt_late = float((optimal_df.reach * optimal_df.explore)[optimal_df.flips_left <= late].sum())
untried_agent = float((agent_df.reach * (agent_df.n_tried == cfg.n_coins))[agent_df.flips_left == 1].sum())
untried_opt = float((optimal_df.reach * (optimal_df.n_tried == cfg.n_coins))[optimal_df.flips_left == 1].sum())
early = cfg.n_flips // 2
rate = {name: (float((df.reach * df.explore)[df.flips_left > early].sum()) / (cfg.n_flips - early),
               float((df.reach * df.explore)[df.flips_left <= late].sum()) / late)
        for name, df in [("agent", agent_df), ("optimal", optimal_df)]}
both_less = all(r[1] < r[0] for r in rate.values())
last_n = "the last flip" if late == 1 else f"the last {late} flips"
over_late = rate["agent"][1] / max(rate["optimal"][1], 1e-12)
md(f"Per game, the agent makes {e_agent:.2f} exploratory flips on average, the optimal policy {e_opt:.2f}. "
   f"Per decision, the agent explores with probability {rate['agent'][0]:.3f} in the first {cfg.n_flips - early} "
   f"flips and {rate['agent'][1]:.3f} in {last_n}; the optimal policy with {rate['optimal'][0]:.3f} and "
   f"{rate['optimal'][1]:.3f}"
   + (", so both explore early and explore less as the horizon closes in, when there are too few flips left to cash "
      "in on what a test flip could reveal. " if both_less else
      "; the two policies do not both explore less in the last flips than in the first half. ")
   + (f"In {last_n} the agent explores {over_late:.1f} times as often as the optimal policy. "
      if rate["agent"][1] > rate["optimal"][1] and rate["optimal"][1] > 0 else
      f"In {last_n} the agent explores and the optimal policy does not. " if rate["agent"][1] > 0 == rate["optimal"][1]
      else "")
   + f"By the last flip the agent has tried all {cfg.n_coins} coins in {untried_agent:.0%} of games, the optimal "
   f"policy in {untried_opt:.0%}.")

# %% [markdown]
# ## The last flip
#
# With one flip left there is nothing left to learn: whatever the flip reveals cannot be used, so its only value is
# its expected head, $Q^*(s, a) = \bar p_a$, the coin's posterior mean, and the right move is simply a coin with the
# highest posterior mean. This makes the last flip a clean test of the agent's values, and one we can run on *every*
# state of the game with one flip left (every state some policy reaches), not only on the states the agent's own
# play reaches.

# %%
lf = cf.last_flip_errors(model, solution)
own1 = agent_df[agent_df.flips_left == 1]
p_wrong_all = float(lf.wrong.mean())
p_wrong_own = float((own1.reach * ~own1.agree).sum())
p_wrong_own_states = float((~own1.agree).mean())
gap_bins = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 1.0]
lf_by_gap = (lf.assign(gap_bin=pd.cut(lf.gap, gap_bins, include_lowest=True))
             .groupby("gap_bin", observed=True)
             .agg(states=("wrong", "size"), wrong=("wrong", "mean"),
                  unflipped=("chose_unflipped", lambda v: float((v & lf.loc[v.index, "wrong"]).mean())),
                  lost=("lost", "mean"))
             .reset_index())
lf_by_gap["gap_bin"] = lf_by_gap.gap_bin.astype(str)
lf_by_gap = lf_by_gap.rename(columns={
    "gap_bin": "best − second-best posterior mean", "states": "states", "wrong": "P(wrong coin)",
    "unflipped": "P(wrong: an unflipped coin)", "lost": "mean heads lost"})

# %%
#| label: tbl-lastflip
#| tbl-cap: "The agent's last-flip decisions on every state of the game with one flip left (unweighted), by the margin between the best and the second-best posterior mean. Wrong: the agent's coin has a lower posterior mean than the best coin; the right move has no exploration component."
md_table(lf_by_gap, digits=4)

# %%
#| echo: false
wrong = lf[lf.wrong]
small = lf.gap <= 0.02
md(f"With one flip left the agent chooses a coin with a lower posterior mean than the best in **{p_wrong_all:.1%}** "
   f"of the {len(lf):,} states of the game with one flip left"
   + (f" ({float(wrong.chose_unflipped.mean()):.0%} of these errors flip an unflipped coin, the rest another "
      f"flipped coin), losing {float(wrong.lost.mean()):.4f} heads per wrong choice on average. " if len(wrong) else
      ". ")
   + "On the states its own play reaches the error " + ("is rarer" if p_wrong_own_states < p_wrong_all else "is not rarer")
   + f": {p_wrong_own_states:.1%} of those states, {p_wrong_own:.1%} of its games (reach-weighted). "
   + (f"The agent is wrong in {float(lf.wrong[small].mean()):.1%} of the states whose two best posterior means are "
      f"within 0.02 of each other and {float(lf.wrong[~small].mean()):.1%} of the others"
      + (": errors concentrate where the choice is close. " if lf.wrong[small].mean() > lf.wrong[~small].mean()
         else ". ") if small.any() and (~small).any() else "")
   + "Nothing in the last flip needs exploration, so every error is an error in the agent's values. Q-learning only "
   "corrects the values of the actions it takes in the states it visits, and it has to average away reward noise of "
   "about one head per flip; a bias of a few hundredths of a head in Q is enough to reorder two coins whose "
   "posterior means are that close, and the states the agent rarely or never reaches are where such biases "
   "survive training (we did not test this explanation beyond the comparison of reached and all states above).")

# %% [markdown]
# ## Discussion

# %%
#| echo: false
closes = g["gap_closed"] > 0
md(f"A small model-free learner, given only its own heads and tails, recovers {g['gap_closed']:.0%} of the value of "
   f"exploration in this Bayesian bandit ({cfg.n_coins} coins, {cfg.n_flips} flips, σ = {cfg.sigma:g}): "
   + ("it does better than exploiting the posterior mean" if closes else
      "it does *not* do better than exploiting the posterior mean")
   + f", a baseline that is itself within {100 - 100 * g['greedy'] / g['optimal']:.1f}% of optimal, and the difference "
   "is measured exactly rather than estimated. "
   f"Its shortfall from the optimum is {shortfall:.4f} heads per game. "
   + (f"It over-explores late: in {last_n} it flips a coin that does not look best with probability "
      f"{rate['agent'][1]:.3f} per decision against {rate['optimal'][1]:.3f} for the optimal policy, when a test "
      "flip has almost no time left to pay off. " if rate["agent"][1] > rate["optimal"][1] else
      f"In {last_n} it explores with probability {rate['agent'][1]:.3f} per decision, the optimal "
      f"policy {rate['optimal'][1]:.3f}. ")
   + f"At the last flip, where the right move is simply the coin with the highest posterior mean, it chooses "
   f"another coin in {p_wrong_all:.1%} of the states of the game ({p_wrong_own:.1%} of its own games)"
   + (": where two coins look almost equally good, its values do not resolve the difference."
      if small.any() and (~small).any() and lf.wrong[small].mean() > lf.wrong[~small].mean() else "."))

# %% [markdown]
# Two design choices address the difficulty of the problem (we did not ablate them): canonical (sorted) states, which
# make the policy permutation-invariant and exactly evaluable, and a long learning-rate decay over many parallel
# games, which averages away reward noise that is two orders of magnitude larger than the Q-value differences the
# agent must resolve. Exact evaluation also served
# model selection: the checkpoint kept is the best evaluated one, a mild form of selection on the test metric that is
# harmless here because the evaluation is exact (there is no evaluation noise to overfit) and the game is the same at
# training and test time; the Monte Carlo numbers above use test seeds that nothing was chosen on. The next chapter
# asks how the network's two hidden layers represent the posterior quantities that drive these choices.
