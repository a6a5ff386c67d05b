# %% [markdown]
# # Heist: training the agent {#sec-heist-agent}
#
# The agent is the seed's convolutional actor-critic (@sec-heist-environment lists its layers and hooks), trained
# with proximal policy optimisation [@schulman2017proximal] as CleanRL writes it [@huang2022cleanrl]: rollouts of
# many games at once, generalised advantage estimation, the clipped objective with an entropy bonus
# (`rlinterp.learners.ppo`). Every training episode is a fresh level of the training split, so the agent cannot
# memorise levels; procgen's own agents show why this matters (trained on 200 levels, heist agents succeed on about
# 80% of them and on about 27% of new ones [@cobbe2020leveraging]).
#
# **Protocol.** Levels come from the study's declared seed ranges (`rlinterp.seeds`): training draws from the
# training split; the choice below between the sampled and the greedy policy is made on *validation* levels; the
# reported numbers are on the first *test* levels, each played once. The targets are stated before the results: the
# agent reaches the gem on at least 90% of test levels, with successful episodes at most 1.3 times the optimal
# length on average, each judged on its 95% interval.

# %% tags=["parameters"]
retrain: bool = False  # train a new agent with the settings below instead of loading the shipped one
total_steps: int = 3000000  # with retrain: environment steps of training [range: [1, inf)]
num_envs: int = 32  # with retrain: games per rollout [range: [1, inf)]
num_steps: int = 128  # with retrain: rollout length per game [range: [1, inf)]
n_validation: int = 200  # validation levels for the choice of sampled vs greedy actions [range: [10, inf)]
n_levels: int = 500  # test levels for the reported numbers [range: [10, inf)]
target_success: float = 0.9  # target share of test levels solved [range: [0, 1]]
target_ratio: float = 1.3  # target mean length of successful episodes over the optimal length [range: [1, inf)]
seed: int = 0  # random seed (training, action sampling) [range: [0, inf)]
device: str = "auto"  # torch device ("auto": CUDA when present)

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from rlinterp import artifacts, seeds
from rlinterp.envs import heist as H
from rlinterp.learners import ppo
from rlinterp.pipeline.report import claim, config_table, md, md_table
from rlinterp.studies import heist as hs

dev = ppo.resolve_device(device)
cfg = H.HeistConfig()
split = seeds.split("heist")
if retrain:
    run = ppo.train(ppo.PPOConfig(total_steps=total_steps, num_envs=num_envs, num_steps=num_steps, seed=seed,
                                  device=dev), progress=False)
    agent, curve, train_cfg = run["model"].eval(), run["curve"], run["config"]
    wall = run["wall_time_s"]
else:
    agent, curve, train_cfg = artifacts.load("heist/impala", device=dev)
    wall = curve["wall_time_s_total"]

# %% [markdown]
# ## Training
#
# @tbl-heist-ppo lists the configuration of the run behind this chapter; @fig-heist-curve its learning curve.

# %%
#| label: tbl-heist-ppo
#| tbl-cap: "PPO configuration of the agent (every field of `PPOConfig`, as it ran)."
config_table(ppo.PPOConfig(**{k: v for k, v in train_cfg.items()}), exclude=("device",))

# %%
#| label: fig-heist-curve
#| fig-cap: "Training curve: share of training episodes that reached the gem (left) and their mean length (right), per PPO update (dots) and smoothed over 10 updates (line). Every episode is a fresh training level."
c = pd.DataFrame(curve)
fig, axes = plt.subplots(1, 2, figsize=(6.5, 2.6))
for ax, key, label in ((axes[0], "success", "success rate"), (axes[1], "length", "episode length (steps)")):
    ax.plot(c.env_steps, c[key], ".", ms=2, alpha=0.4, color="C0")
    ax.plot(c.env_steps, c[key].rolling(10, min_periods=1).mean(), color="C0")
    ax.set(xlabel="environment steps", ylabel=label)
axes[0].set_ylim(0, 1.02)
fig.tight_layout()

# %%
last = c.tail(max(1, len(c) // 10))
md(f"The run took {int(c.env_steps.iloc[-1]):,} environment steps ({len(c):,} updates) in {wall / 3600:.2f} hours "
   f"of wall time; over its last {len(last)} updates the training episodes reached the gem "
   f"{last.success.mean():.1%} of the time in {last.length.mean():.1f} steps on average.")

# %% [markdown]
# ## Held-out levels
#
# A policy network can be played by sampling its action distribution or by taking its most likely action. Greedy
# play is usually stronger, but it can loop: at a cell where the policy is undecided the argmax may send the agent
# back and forth. We choose the mode with the higher success on the validation levels and report the chosen mode on
# the test levels, next to the random policy and the optimal solver on the same levels.

# %%
val_levels = split.validation_seeds(n_validation)
val = {mode: hs.evaluate(agent, val_levels, cfg, greedy=(mode == "greedy"), seed=seed)
       for mode in ("sampled", "greedy")}
mode = max(val, key=lambda m: (val[m]["success_rate"][0], m == "sampled"))
md(f"On {n_validation} validation levels the sampled policy succeeds on {val['sampled']['success_rate'][0]:.1%} "
   f"and the greedy one on {val['greedy']['success_rate'][0]:.1%}; the chapter reports the **{mode}** policy.")

# %%
#| label: tbl-heist-eval
#| tbl-cap: "Test levels, each played once: success rate (Wilson 95% interval), mean length of successful episodes and its ratio to the optimal length (95% interval)."
test_levels = split.test_seeds(n_levels)
results = {f"agent ({mode})": hs.evaluate(agent, test_levels, cfg, greedy=(mode == "greedy"), seed=seed + 1),
           **hs.baselines(test_levels, cfg, seed=seed)}
rows = []
for name, r in results.items():
    row = hs.summary_row(r)
    rows.append(dict(policy=name, levels=row["n"], success=row["success"], success_lo=row["success_lo"],
                     success_hi=row["success_hi"], mean_length=float(r["mean_length"][0]),
                     length_ratio=row["length_ratio"], ratio_lo=row["length_ratio_lo"],
                     ratio_hi=row["length_ratio_hi"]))
md_table(rows, digits=3)

# %%
#| label: tbl-heist-targets
#| tbl-cap: "The targets, judged on the 95% interval: success is met when the interval's lower end reaches the target, the length ratio when the interval's upper end stays below it."
ag = results[f"agent ({mode})"]
s, r = ag["success_rate"], ag["length_ratio"]
targets = pd.DataFrame([
    dict(target=f"success ≥ {target_success:.0%}", measured=float(s[0]), ci_low=float(s[1]), ci_high=float(s[2]),
         met=bool(s[1] >= target_success)),
    dict(target=f"length ratio ≤ {target_ratio}", measured=float(r[0]), ci_low=float(r[1]), ci_high=float(r[2]),
         met=bool(r[2] <= target_ratio)),
])
md_table(targets, digits=3)

# %%
rnd = results["random"]
claim(bool(s[1] > rnd["success_rate"][2]), "the agent's success interval lies above the random policy's")
md(f"The agent solves {s[0]:.1%} of the {n_levels} test levels (95% interval {s[1]:.1%} to {s[2]:.1%}), against "
   f"{rnd['success_rate'][0]:.1%} for the random policy; when it succeeds it takes {r[0]:.2f} times the optimal "
   f"number of steps (interval {r[1]:.2f} to {r[2]:.2f}). @tbl-heist-targets judges the two targets on these "
   f"intervals: {int(targets.met.sum())} of 2 are met.")

# %% [markdown]
# ## Where the policy pushes
#
# @fig-heist-fields draws the policy as a vector field, in the style of the maze-agent work
# [@mini2023understanding]: for one validation level and each goal stage, the agent is placed on every cell it can
# occupy in that stage and an arrow shows its expected move, the sum of the nine moves weighted by their
# probabilities (long arrows: a decided policy; short ones: an undecided one). If the agent knows its current goal,
# the arrows of each stage converge on that stage's goal and not on the others.

# %%
#| label: fig-heist-fields
#| fig-cap: "Action fields of the agent on one validation level with two keys, one panel per goal stage (circled: the stage's goal). Each arrow is the policy's expected move from that cell."
field_level = next(int(q) for q in split.validation_seeds(1000) if H.make_level(int(q), cfg).num_keys == 2)
fig = hs.plot_action_fields(agent, field_level, cfg)

# %%
lv = H.make_level(field_level, cfg)
agree = []
for stage in range(lv.num_keys + 1):
    f = hs.action_field(agent, lv, stage, cfg)
    dist = H.bfs_distances(H._blocked_grid(f["cells"][0], f["held"]), f["goal_pos"])
    for (rr, cc), p in zip(f["agent"], f["probs"]):
        # does the most likely move bring the agent closer to the stage's goal?
        nxt = H._move(H._blocked_grid(f["cells"][0], f["held"]), (rr, cc), int(p.argmax()))
        agree.append(dist[nxt] < dist[rr, cc])
md(f"Over all cells and stages of this level, the policy's most likely move shortens the distance to the current "
   f"goal in {np.mean(agree):.0%} of the {len(agree)} states.")
