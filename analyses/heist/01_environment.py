# %% [markdown]
# # Heist: the game, its levels and its baselines {#sec-heist-environment}
#
# The third study asks a question about goals. In procgen's *heist* [@cobbe2020leveraging] an agent walks through a
# maze to a gem; coloured locks bar the way, and each lock opens only for the key of its colour, so the agent must
# collect the keys in an order the maze imposes. At every moment one entity is the agent's **current goal**: the
# first key it does not hold yet, or the gem once it holds them all. A policy that solves the game must know, from
# the image alone, which entity that is and where it lies. How does a convolutional agent represent it? Work on a
# maze-solving procgen agent found a handful of channels that track the cheese and can be clamped to retarget the
# agent [@mini2023understanding]; on heist, an entity's identity was reported to be multiplexed in the strength of
# one channel's activation [@sturgeon2025entity]. This study asks the same question with the seed's network, probes,
# sparse autoencoders and bilinear layers [@oozeer2024bilinear].
#
# This chapter builds the ground truth: the environment, what its levels look like, which entity is the goal at each
# stage, and what a random player and an optimal one achieve. Training the agents and opening them up come next.
#
# **A native Heist.** procgen's heist is not usable here: its wheel has no build for Python 3.11 and the
# `procgen-mirror` build pins numpy < 2 and gym < 1; and procgen-scale training (about 25 million steps of 64×64
# images) is far beyond two CPU cores. `rlinterp/Heist-v0` (`rlinterp.envs.heist`) keeps heist's rules -- a
# Kruskal maze [@kruskal1956shortest], so exactly one path joins two cells; up to three coloured key/lock pairs placed
# in stages so that key 0 opens lock 0, behind which lies key 1, and so on; the gem behind the last lock; reward 10
# on the gem, nothing else; keys held drawn at the top right -- and makes the world a grid, as @tbl-heist-vs-procgen
# lists.

# %% tags=["parameters"]
n_levels: int = 500  # test levels for the baselines and the level statistics [range: [10, inf)]
n_check: int = 500  # validation levels checked for the rules (tree maze, solvable, forced order) [range: [1, inf)]
n_gallery: int = 8  # levels drawn in the gallery [range: [1, 16]]
bench_steps: int = 200  # steps timed by the throughput benchmark [range: [1, inf)]
seed: int = 0  # seed of the random baseline [range: [0, inf)]

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from rlinterp import seeds
from rlinterp.envs import heist as H
from rlinterp.models.impala import build_network, hook_names
from rlinterp.pipeline.report import claim, md, md_table
from rlinterp.studies import heist as hs

cfg = H.HeistConfig()
easy = H.HeistConfig.procgen_easy()
split = seeds.split("heist")
test_levels = split.test_seeds(n_levels)
check_levels = split.validation_seeds(n_check)

# %% [markdown]
# ## How this Heist differs from procgen's
#
# Everything the rules decide is the same; what changes is the geometry. Movement is one cell per step instead of
# continuous motion (procgen's agent moves at most 0.75 cell per step and can stop between cells); the image is drawn
# from one sprite per cell; the default level family drops procgen easy's largest mazes; and the step limit is
# shorter because a grid move covers more ground. procgen's fifteen actions are nine moves and six copies of "stand
# still"; here the nine moves keep procgen's indices and geometry (a diagonal move slides round a corner when one of
# the two cells it cuts past is free) and index 4 is "stand still". The rules, the placement and the movement are
# written out in the module's documentation and checked by its tests.

# %%
#| label: tbl-heist-vs-procgen
#| tbl-cap: "procgen's heist (easy) and this project's Heist: the default level family (used for training and evaluation) and its procgen-easy variant (`HeistConfig.procgen_easy()`)."
def family(c):
    sides = sorted({5 + 2 * d for d in range(c.min_difficulty, c.max_difficulty + 1)})
    return dict(world=f"{c.world_dim} cells ({c.world_dim - 1} + the key row)", maze=", ".join(map(str, sides)),
                image=f"{c.image_size}×{c.image_size}×3 ({c.cell_px} px per cell)",
                keys=f"min({c.max_keys}, d + U{{0, 1}})", steps=f"{c.max_steps:,}", actions=f"{len(H.ACTIONS)}",
                movement="one cell per step")


rows = [dict(property=k, procgen_easy=v, this_default=family(cfg)[k], this_procgen_easy=family(easy)[k])
        for k, v in dict(world="9 cells", maze="5, 7, 9", image="64×64×3", keys="min(3, d + U{0, 1})",
                         steps="1,000", actions="15 (9 moves + 6 no-ops)",
                         movement="continuous, ≤ 0.75 cell per step").items()]
md_table(rows)

# %% [markdown]
# The image size follows from the network. The seed's agent halves its input four times (one LPPool of stride 2
# after each of four conv stages), and with 4-pixel cells on an 8-cell world a 32×32 image halves exactly to maps of
# 16, 8, 4 and 2 positions per side; after the second pool each position is one cell of the world, which suits the
# per-cell probes of the later chapters. A 64×64 image would cost about six times the compute per step.

# %% [markdown]
# ## Levels
#
# @fig-heist-levels draws levels as the agent sees them. The brown border is wall; the maze sits at a random
# offset; the white disc is the agent, coloured discs are keys, squares of the same colour with a dark keyhole are
# their locks, the yellow diamond is the gem. The top row is kept free for the icons of held keys.

# %%
#| label: fig-heist-levels
#| fig-cap: "Heist levels of the default family (validation level seeds), as 32×32 observations. The caption of each panel gives the maze side and the number of keys."
shown = split.validation_seeds(n_gallery)
env = H.HeistEnv(cfg)
cols = min(n_gallery, 4)
rows_ = -(-n_gallery // cols)
fig, axes = plt.subplots(rows_, cols, figsize=(6.5, 1.75 * rows_ + 0.2), squeeze=False)
for ax, s in zip(axes.flat, shown):
    obs, info = env.reset(options={"level_seed": int(s)})
    lv = env.level
    ax.imshow(obs, interpolation="nearest")
    ax.set_title(f"maze {lv.maze_dim}, {lv.num_keys} key{'s' if lv.num_keys != 1 else ''}", fontsize=8)
for ax in axes.flat:
    ax.set_xticks([]), ax.set_yticks([])
for ax in axes.flat[len(shown):]:
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# **The rules hold on every level checked.** On each validation level below, the maze is a tree (free cells minus
# one equals the number of open adjacencies between them, and all are connected), the locks force the order (with
# locks ``s`` and beyond closed, key ``s`` is reachable and key ``s+1``, if any, is not), and the optimal solver --
# breadth-first search to each key in turn, then to the gem -- reaches the gem when its plan is played in the
# environment.

# %%
def check_level(s):
    lv = H.make_level(int(s), cfg)
    r0, c0 = lv.offset
    m = lv.maze_dim
    free = ~lv.walls[r0:r0 + m, c0:c0 + m]
    edges = int((free[1:] & free[:-1]).sum() + (free[:, 1:] & free[:, :-1]).sum())
    tree = edges == int(free.sum()) - 1 and hs._reachable(lv.walls, lv.agent).sum() == free.sum()
    order = True
    for st in range(lv.num_keys):
        closed = lv.walls.copy()
        for j in range(st, lv.num_keys):
            closed[tuple(lv.locks[j])] = True
        reach = hs._reachable(closed, lv.agent)
        order &= bool(reach[tuple(lv.keys[st])])
        if st + 1 < lv.num_keys:
            order &= not reach[tuple(lv.keys[st + 1])]
    closed = lv.walls.copy()
    for j in range(lv.num_keys):
        closed[tuple(lv.locks[j])] = True
    gem_locked = lv.num_keys == 0 or not hs._reachable(closed, lv.agent)[tuple(lv.gem)]
    e = H.HeistEnv(cfg)
    e.reset(options={"level_seed": int(s)})
    term = False
    for a in H.solve(lv, cfg):
        _, _, term, trunc, _ = e.step(a)
    return dict(tree=tree, order=order and gem_locked, solved=term)


checks = pd.DataFrame([check_level(s) for s in check_levels])
claim(bool(checks.all().all()), "every checked level is a tree maze with forced key order, solved by the solver")
md(f"All {len(checks):,} validation levels pass the three checks "
   f"(tree: {checks.tree.mean():.0%}, forced order: {checks.order.mean():.0%}, solved: {checks.solved.mean():.0%}).")

# %% [markdown]
# ## Current goals
#
# Each level is played in stages: the goal of stage $s$ is key $s$, and the last stage's goal is the gem.
# @fig-heist-stages shows the stages of one level with the goal circled and, in every cell the agent can occupy
# during the stage, the number of moves it needs to reach the goal. These are the labels that the probes of the
# later chapters read out of the network: the position of the current goal, its identity, and the keys held.

# %%
#| label: fig-heist-stages
#| fig-cap: "The goal stages of one level with two keys (validation seed). Circled: the current goal. Numbers: breadth-first distance, in moves, from each cell the agent can occupy in that stage to the goal."
two_keys = next(int(s) for s in split.validation_seeds(1000) if H.make_level(int(s), cfg).num_keys == 2)
fig = hs.plot_action_fields(None, two_keys, cfg)

# %% [markdown]
# ## What the levels ask for, and two baselines
#
# @tbl-heist-levels summarises the test levels by maze side: how often each occurs, how many keys its levels have,
# and how long the optimal solution is. @tbl-heist-baselines gives the two reference players on the same test
# levels, each level played once: a uniformly random policy over the nine actions and the optimal solver. A trained
# agent lives between these two rows; the targets of the agent chapter are stated against them.

# %%
#| label: tbl-heist-levels
#| tbl-cap: "The test levels by maze side: share of levels, mean number of keys, and mean optimal (breadth-first) solution length with its 95% interval."
from rlinterp.stats import mean_interval, wilson

lv_rows = []
levels = [H.make_level(int(s), cfg) for s in test_levels]
opt = np.array([len(H.solve(lv, cfg)) for lv in levels])
side = np.array([lv.maze_dim for lv in levels])
nkeys = np.array([lv.num_keys for lv in levels])
for m in sorted(set(side)):
    sel = side == m
    L = mean_interval(opt[sel]) if sel.sum() > 1 else (opt[sel].mean(),) * 3
    lv_rows.append(dict(maze_side=int(m), share=float(sel.mean()), keys=float(nkeys[sel].mean()),
                        optimal_length=float(L[0]), ci_low=float(L[1]), ci_high=float(L[2])))
md_table(lv_rows, digits=3)

# %%
#| label: tbl-heist-baselines
#| tbl-cap: "Baselines on the test levels (each played once, step limit as configured): success rate (Wilson 95% interval), mean length of successful episodes, and its ratio to the optimal length (95% interval)."
base = hs.baselines(test_levels, cfg, seed=seed)
md_table(hs.evaluation_rows(base), digits=3)

# %%
rnd, orc = base["random"], base["oracle"]
claim(bool(orc["success"].all()) and np.allclose(orc["length"], orc["optimal"]),
      "the solver reaches the gem on every test level in exactly the optimal number of steps")
claim(rnd["success_rate"][2] < 0.9, "the random policy is well below the agent target of 90%")
md(f"The solver reaches the gem on all {orc['n']:,} test levels, in {orc['optimal'].mean():.1f} steps on average. "
   f"A random policy succeeds on {rnd['success_rate'][0]:.1%} of them "
   f"(95% interval {rnd['success_rate'][1]:.1%} to {rnd['success_rate'][2]:.1%}) within {cfg.max_steps} steps, "
   f"taking {rnd['length_ratio'][0]:.1f} times the optimal length when it does succeed: small mazes are often "
   f"stumbled through, so success alone is a weak measure and the agent chapter reports path length as well.")

# %% [markdown]
# ## The agent network
#
# The agents of this study use the seed's network block for block (`rlinterp.models.impala`): five 'same'
# convolutions (7×7 to 16 channels, then 5×5 to 32) with ReLU, LPPool(2) after the first, third, fourth and fifth,
# then two linear layers of 256 and 512 units and the policy and value heads. It is a TransformerLens
# `HookedRootModule` with a hook on every activation; @tbl-heist-hooks lists them with their shapes for one 32×32
# observation. The bilinear variant replaces every conv + ReLU and linear + ReLU by the product of two linear maps
# of the same shape [@oozeer2024bilinear], and divides the input of every bilinear layer but the first by its
# root-mean-square over the whole map (or vector): a stack of seven products has no scale of its own, and without
# this normalisation the activations of a freshly initialised network shrank to nothing by the policy head (their
# standard deviation was 5e-13 at the logits) and imitation learning did not move. The normalisation is a scalar per
# observation, so each layer stays an exact bilinear form of what it reads (@sec-heist-eigenfilters).

# %%
#| label: tbl-heist-hooks
#| tbl-cap: "Hook points of the agent network and the activation shape at each (one 32×32 observation; batch dimension omitted)."
torch.manual_seed(seed)
net = build_network()
bnet = build_network({"kind": "bimpala"})
obs0, _ = env.reset(options={"level_seed": int(shown[0])})
_, cache = net.run_with_cache(obs0[None])
md_table([dict(hook=h, shape="×".join(map(str, cache[h].shape[1:])) or "scalar") for h in hook_names(net)])

# %%
n_params = sum(p.numel() for p in net.parameters())
n_bparams = sum(p.numel() for p in bnet.parameters())
md(f"The network has {n_params:,} parameters; the bilinear variant, with two maps per layer, {n_bparams:,}.")

# %% [markdown]
# ## Throughput
#
# Training cost is what shaped these choices. The environment is cheap: the batched numpy version steps many games
# at once, so the network, not the game, is the bottleneck of training.

# %%
sps = H.bench_steps_per_second(num_envs=64, steps=bench_steps, config=cfg, seed=seed)
md(f"On this machine one `HeistEnv` runs {sps['single']:,.0f} steps per second and the batched environment with "
   f"{int(sps['num_envs'])} games {sps['batched']:,.0f} steps per second (one process, random actions).")
