# %% [markdown]
# # Heist: where is the current goal? {#sec-heist-probes}
#
# The agent of @sec-heist-agent walks to key 0, then key 1, then the gem. Which of them it heads for depends on what
# it holds, and the keys it holds are drawn as small icons in a corner of the image, far from the entities. Somewhere
# between the pixels and the policy the network must combine "which keys are held" with "where each entity is" into
# "where my current goal is". This chapter asks where that happens, with linear probes [@alain2016understanding].
#
# **Probes that ask "where".** A convolutional map has a channel vector at every position. A spatial probe scores
# every position with one linear read-out of its channel vector (a 1×1 convolution) and takes a softmax over the
# cells of the world, pooling the positions that cover each cell (`rlinterp.interp.fit_spatial_probe`). Its answer
# is a cell; we report how often it is exactly the goal's cell and how often it is within one cell (maps coarser
# than the world cannot do better than the second). Each probe comes with two controls [@hewitt2019designing]: the
# same probe on a randomly initialised network of the same shape, and on labels shuffled across states. The probe on
# the input image itself is a third reference: what a linear read of the pixels finds without any network.
#
# **Data.** States visited by the agent playing test levels (every step of one episode per level), split into probe
# training and held-out states *by level*, so no level contributes to both.

# %% tags=["parameters"]
n_levels: int = 300  # test levels played by the agent to collect states [range: [4, inf)]
max_states: int = 4000  # at most this many states (every step of each episode until then) [range: [20, inf)]
probe_steps: int = 60  # L-BFGS iterations per probe [range: [1, inf)]
target_accuracy: float = 0.9  # the goal: accuracy (or within-one-cell rate) at the best layer [range: [0, 1]]
target_margin: float = 0.3  # ... and this many points above the best control [range: [0, 1]]
seed: int = 0  # seed of the action sampling, the random-init control network and the probe splits [range: [0, inf)]
device: str = "auto"  # torch device ("auto": CUDA when present)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from rlinterp import artifacts, seeds
from rlinterp.envs import heist as H
from rlinterp.learners import ppo
from rlinterp.models.impala import build_network
from rlinterp.pipeline.report import claim, md, md_table
from rlinterp.studies import heist as hs

dev = ppo.resolve_device(device)
cfg = H.HeistConfig()
agent = artifacts.load("heist/impala", device=dev)
torch.manual_seed(seed)
control_net = build_network(agent.config, device=dev).eval()  # same shape, random weights
levels = seeds.split("heist").test_seeds(n_levels)
data = hs.collect_states(hs.model_policy(agent, greedy=False, seed=seed), levels, cfg, max_states=max_states)
goal_names = np.array(H.GOAL_NAMES)[data["goal"]]
md(f"The agent visited {len(data['obs']):,} states on {len(np.unique(data['level_seed']))} levels; the current goal "
   f"is a key in {np.mean(data['goal'] < H.GEM_GOAL):.0%} of them and the gem in the rest.")

# %% [markdown]
# ## The current goal, layer by layer
#
# @fig-heist-goal-probes and @tbl-heist-goal-probes give the held-out accuracy of the current-goal probe at every
# spatial hook, from the input image to the last pooled map, with its controls.

# %%
rows = hs.probe_layers(agent, control_net, data, "goal_pos", config=cfg, seed=seed, steps=probe_steps)
goal = pd.DataFrame(rows)
goal["shape"] = goal["shape"].map(lambda s: "×".join(map(str, s)))

# %%
#| label: fig-heist-goal-probes
#| fig-cap: "Held-out accuracy of the current-goal probe (exact cell, solid; within one cell, dashed) at every spatial hook of the agent, of a random-init network of the same shape, and with shuffled labels."
fig, ax = plt.subplots(figsize=(6.5, 3.0))
x = np.arange(len(goal))
for col, label, color in (("accuracy", "agent", "C0"), ("random_net", "random-init network", "C1"),
                          ("shuffled", "shuffled labels", "C7")):
    ax.plot(x, goal[col], "o-", color=color, label=label)
    ax.plot(x, goal[col.replace("accuracy", "within1") if col == "accuracy" else col + "_within1"], "o--",
            color=color, alpha=0.6)
ax.set_xticks(x, goal.hook.str.replace(".hook_", ".").str.replace("hook_", ""), rotation=40, ha="right",
              fontsize=7)
ax.set(ylabel="held-out accuracy", ylim=(0, 1.02))
ax.legend(fontsize=7)
fig.tight_layout()

# %%
#| label: tbl-heist-goal-probes
#| tbl-cap: "Current-goal probes: held-out exact-cell accuracy and within-one-cell rate for the agent, the random-init network and shuffled labels, and the chance rate (always the most frequent cell)."
md_table(goal[["hook", "shape", "accuracy", "within1", "random_net", "random_net_within1", "shuffled", "chance"]],
         digits=3)

# %%
goal["score"] = goal[["accuracy", "within1"]].max(axis=1)
goal["control"] = goal[["random_net", "random_net_within1", "shuffled", "shuffled_within1"]].max(axis=1)
best = goal.loc[goal.score.idxmax()]
pixels = goal.loc[goal.hook == "hook_obs"].iloc[0]
first = goal.loc[(goal.score >= target_accuracy) & (goal.score - goal.control >= target_margin)]
md(f"The best layer is `{best.hook}`: {best.accuracy:.1%} exact and {best.within1:.1%} within one cell, against "
   f"{best.control:.1%} for the best control there; a linear read of the pixels gets {pixels.accuracy:.1%}. "
   f"The target ({target_accuracy:.0%}, {target_margin * 100:.0f} points above control) is met at "
   f"{len(first)} of {len(goal)} hooks (the first of them: {', '.join(first.hook.head(1)) or 'none'}).")

# %% [markdown]
# ## The other entities and the keys held
#
# A network that knows its current goal might simply know where *everything* is. The same probes for the gem while
# a key is still the goal, and for key and lock positions, show whether the current goal stands out. Which keys are
# held is a global fact (three yes/no answers); it is read from the flattened map with a logistic probe.

# %%
#| label: tbl-heist-entity-probes
#| tbl-cap: "Spatial probes for the other entities (states where the entity is in the maze and is not the current goal) at three depths: held-out within-one-cell rate for the agent and the random-init network."
depths = ["blocks.0.pool.hook_out", "blocks.2.pool.hook_out", "blocks.3.hook_post"]
ent_rows = []
for label in ("gem", "key0", "key1", "lock0", "lock1"):
    not_goal = ~(data[label] == data["goal_pos"]).all(1) & (data[label] >= 0).all(1)
    if not_goal.sum() < 40 or len(np.unique(data["level_seed"][not_goal])) < 4:
        continue
    sub = {k: v[not_goal] for k, v in data.items()}
    for r in hs.probe_layers(agent, control_net, sub, label, hooks=depths, config=cfg, seed=seed,
                             steps=probe_steps):
        ent_rows.append(dict(entity=label, hook=r["hook"], n=r["n"], agent=r["within1"],
                             random_net=r["random_net_within1"]))
md_table(ent_rows, digits=3)

# %%
#| label: tbl-heist-held-probes
#| tbl-cap: "Which keys are held: logistic probes on the flattened map at three depths (held-out accuracy), with the majority-class rate and the random-init control. Only keys that some level has."
from rlinterp.interp import cache_hook, fit_probe

held_rows = []
obs = torch.as_tensor(data["obs"])
for hook in depths + ["hook_flatten"]:
    acts = cache_hook(agent, obs, hook, batch_size=512).float().flatten(1)
    ctrl = cache_hook(control_net, obs, hook, batch_size=512).float().flatten(1)
    for k in range(3):
        has = data["num_keys"] > k
        y = torch.as_tensor(data["keys_held"][has, k].astype(int))
        if has.sum() < 40 or len(torch.unique(y)) < 2:
            continue
        res = fit_probe(acts[has], y, "logistic", control=ctrl[has], seed=seed, steps=probe_steps, alpha=10.0)
        held_rows.append(dict(hook=hook, key=k, n=int(has.sum()), accuracy=res.score, random_net=res.control,
                              chance=res.chance))
md_table(held_rows, digits=3)
