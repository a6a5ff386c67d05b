# %% [markdown]
# # Heist: the bilinear agent's eigenfilters {#sec-heist-eigenfilters}
#
# The probes of @sec-heist-probes find the current goal in the CNN agent's activations, but a probe says nothing
# about *how* the weights compute it. A bilinear network makes that question answerable from the weights
# [@pearce2024bilinear; @oozeer2024bilinear]. In the bilinear agent (`kind="bimpala"`, trained with the same recipe
# as the CNN; @sec-heist-agent compares the two) every conv layer computes, at each position, the product of two
# convolutions of its (normalised) input patch $x$: $y_o = (a_o \cdot \tilde x)(b_o \cdot \tilde x)$ with
# $\tilde x = [x, 1]$. Any read-out $u \cdot y$ of the outputs is then a quadratic form of the patch,
#
# $$u \cdot y = \tilde x^\top Q \tilde x, \qquad Q = \tfrac12 \textstyle\sum_o u_o (\tilde a_o \tilde b_o^\top +
# \tilde b_o \tilde a_o^\top),$$
#
# and the eigendecomposition $Q = \sum_i \lambda_i v_i v_i^\top$ splits the read-out into independent terms
# $\lambda_i (v_i \cdot \tilde x)^2$. Each eigenvector $v_i$ is an input pattern of the layer's kernel size, an
# *eigenfilter*: the read-out rises ($\lambda_i > 0$) or falls ($\lambda_i < 0$) with the square of the patch's
# match to it. $Q$ has rank at most twice the number of output channels, so at most that many terms are non-zero.
#
# Taking $u$ to be the current-goal probe's direction (in activation units) asks: *through which input patterns does
# this layer write "the current goal is here"?* If the answer is "a few", removing those few terms should take the
# probe's signal with them -- and, if the agent uses that signal, its success. Removing a term changes only the
# read-out along $u$ (the edit subtracts the term's deviation from its mean, times $u/|u|^2$, from the output; every
# direction orthogonal to $u$ is untouched: `rlinterp.interp.remove_components`), so the test is specific to the
# probe's direction. The control removes as many terms drawn at random from the rest of the non-zero spectrum.
#
# **Protocol.** States visited by the bilinear agent on *validation* levels train the probes and choose the layer
# (the first conv block whose held-out probe meets the target of @sec-heist-probes; its mean term values are also
# taken there). States of *test* levels measure the probe under ablation; other test levels are played in closed loop.
# The number of terms removed in closed loop, `k_loop`, is fixed before the results ("the top few").

# %% tags=["parameters"]
n_probe_levels: int = 300  # validation levels whose agent states train the probes and choose the layer [range: [4, inf)]
n_levels: int = 300  # test levels whose agent states measure the probe under ablation [range: [4, inf)]
n_episodes: int = 500  # test levels played in closed loop per condition [range: [4, inf)]
max_states: int = 4000  # at most this many states per state set [range: [20, inf)]
probe_steps: int = 60  # L-BFGS iterations per probe [range: [1, inf)]
block: int = -1  # conv block to decompose (0..4); -1: chosen on validation levels [range: [-1, 4]]
target_accuracy: float = 0.9  # probe target for the layer choice (exact or within one cell) [range: [0, 1]]
ks: list[int] = [1, 2, 4, 8, 16]  # numbers of top terms removed (open loop) [range: [1, inf)]
k_loop: int = 4  # number of top terms removed in closed loop [range: [1, inf)]
n_random: int = 5  # random term sets per k (the control) [range: [1, inf)]
n_show: int = 6  # eigenfilters drawn [range: [1, inf)]
seed: int = 0  # seed of the action sampling, the control network, random term sets [range: [0, inf)]
device: str = "auto"  # torch device ("auto": CUDA when present)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from rlinterp import artifacts, seeds
from rlinterp.envs import heist as H
from rlinterp.interp import cache_hook, eigen_contributions, eigenfilters, fit_spatial_probe, remove_components
from rlinterp.learners import ppo
from rlinterp.models.impala import BLOCKS, block_input_hook, build_network
from rlinterp.pipeline.report import claim, md, md_table
from rlinterp.stats import mean_interval, paired_difference
from rlinterp.studies import heist as hs

if k_loop not in ks:
    raise ValueError(f"k_loop ({k_loop}) must be one of ks ({ks})")
if k_loop > 16:  # the smallest layer (block 0: 16 output channels) has at most 32 terms
    raise ValueError(f"k_loop ({k_loop}) must be at most 16: the random control draws k_loop of the other terms")
dev = ppo.resolve_device(device)
cfg = H.HeistConfig()
grid = (cfg.world_dim, cfg.world_dim)
agent = artifacts.load("heist/bimpala", device=dev)
torch.manual_seed(seed)
control_net = build_network(agent.config, device=dev).eval()  # same shape, random weights
split = seeds.split("heist")
policy = hs.model_policy(agent, greedy=False, seed=seed)
val = hs.collect_states(policy, split.validation_seeds(n_probe_levels), cfg, max_states=max_states)
test = hs.collect_states(hs.model_policy(agent, greedy=False, seed=seed + 1), split.test_seeds(n_levels), cfg,
                         max_states=max_states)
md(f"The bilinear agent visited {len(val['obs']):,} states on {len(np.unique(val['level_seed']))} validation levels "
   f"and {len(test['obs']):,} on {len(np.unique(test['level_seed']))} test levels.")

# %% [markdown]
# ## Where the bilinear agent keeps its current goal
#
# The current-goal probe of @sec-heist-probes at the output of every conv block, fitted on validation states (split
# by level; accuracy on the held-out validation levels), with the random-init network of the same shape as control.

# %%
#| label: tbl-heist-bil-probes
#| tbl-cap: "Bilinear agent, validation states: held-out accuracy of the current-goal probe (exact cell and within one cell) at each conv block's output, and the same probe on a random-init bilinear network."
val_obs = torch.as_tensor(val["obs"])
val_cells = torch.as_tensor(val["goal_pos"])
val_groups = torch.as_tensor(val["level_seed"])
probes, rows = {}, []
for b in range(len(BLOCKS)):
    hook = f"blocks.{b}.hook_post"
    acts = cache_hook(agent, val_obs, hook, batch_size=512).float()
    ctrl = cache_hook(control_net, val_obs, hook, batch_size=512).float()
    probes[b] = fit_spatial_probe(acts, val_cells, grid, groups=val_groups, control=ctrl, seed=seed,
                                  steps=probe_steps)
    p = probes[b]
    rows.append(dict(block=b, hook=hook, shape="×".join(map(str, acts.shape[1:])), accuracy=p.accuracy,
                     within1=p.within1, random_net=p.control_accuracy, random_net_within1=p.control_within1,
                     chance=p.chance))
bil = pd.DataFrame(rows)
bil["score"] = bil[["accuracy", "within1"]].max(axis=1)
md_table(bil.drop(columns="score"), digits=3)

# %%
met = bil[bil.score >= target_accuracy]
chosen = int(block) if block >= 0 else int(met.block.iloc[0] if len(met) else bil.score.idxmax())
how = ("given as a parameter" if block >= 0 else
       "the first block whose probe meets the target" if len(met) else
       "no block meets the target, so the best one")
probe = probes[chosen]
layer = agent.blocks[chosen].conv
in_hook, out_hook = block_input_hook(chosen, "bimpala"), f"blocks.{chosen}.hook_post"
md(f"The probe meets the target ({target_accuracy:.0%} exact or within one cell) at {len(met)} of {len(bil)} blocks. "
   f"The layer decomposed below is block {chosen} ({how}): its probe scores {probe.accuracy:.1%} exact and "
   f"{probe.within1:.1%} within one cell on held-out validation levels, against {probe.control_within1:.1%} within "
   f"one cell on the random-init network.")

# %% [markdown]
# ## The spectrum
#
# The probe's direction $u$ over the block's output channels gives the layer's $Q$ (@fig-heist-eig-spectrum, left:
# its eigenvalues by magnitude). On the right, how much of the read-out $u \cdot y$ the top terms account for over the
# test states and positions: the share of its variance explained by the sum of the top $k$ terms.

# %%
u = probe.direction
eig = eigenfilters(layer, u)
rank = int((eig.values.abs() > 1e-9 * eig.values.abs().max()).sum())
c_out = layer.conv_a.weight.shape[0]
claim(rank <= 2 * c_out, "the quadratic form has rank at most twice the number of output channels")
test_obs = torch.as_tensor(test["obs"])
x_val = cache_hook(agent, val_obs, in_hook, batch_size=512)
x_test = cache_hook(agent, test_obs, in_hook, batch_size=512)
contrib = eigen_contributions(layer, x_test, eig, range(rank))  # [n, rank, h, w]
readout = torch.einsum("nchw,c->nhw", cache_hook(agent, test_obs, out_hook, batch_size=512).double(), u.double())
err = (contrib.sum(1) - readout).abs().max().item()
claim(err < 1e-3 * readout.abs().max().item(), "the terms sum to the probe read-out of the layer")
total_var = readout.var().item()
kk = np.arange(1, rank + 1)
partial = torch.zeros_like(readout)
explained = []
for k in kk:  # running sum of the top k terms
    partial += contrib[:, k - 1]
    explained.append(1 - (readout - partial).var().item() / total_var)
explained = np.array(explained)

# %%
#| label: fig-heist-eig-spectrum
#| fig-cap: "Left: eigenvalues of the probe-direction quadratic form of the decomposed layer, by magnitude (blue: positive, red: negative); the rest of the spectrum is zero. Right: share of the variance of the probe read-out (test states, all positions) explained by the sum of the top k terms."
fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.6))
lam = eig.values[:rank].numpy()
axes[0].bar(np.arange(rank), np.abs(lam), color=np.where(lam > 0, "C0", "C3"))
axes[0].set(xlabel="term (by |λ|)", ylabel="|λ|", yscale="log")
axes[1].plot(kk, explained, "o-", ms=3)
axes[1].set(xlabel="top k terms", ylabel="variance explained", ylim=(min(0, explained.min()), 1.02), xscale="log")
fig.tight_layout()

# %%
k_half = int(kk[np.argmax(explained >= 0.5)])  # all terms explain everything, so both exist
k_90 = int(kk[np.argmax(explained >= 0.9)])
md(f"The form has {rank} non-zero terms (at most {2 * c_out}: twice the {c_out} output channels) out of "
   f"{len(eig.values)} dimensions of the extended patch; the largest has |λ| = {abs(lam[0]):.3g}, the "
   f"{min(10, rank)}th {abs(lam[min(10, rank) - 1]):.3g}. The top term alone explains {explained[0]:.0%} of the "
   f"read-out's variance, the top {k_loop} {explained[k_loop - 1]:.0%}; half of it takes the top {k_half} terms and "
   f"90% the top {k_90}.")

# %% [markdown]
# ## The top eigenfilters
#
# @fig-heist-eigenfilters draws the top terms in two ways: where each one is large in test states (the maze crop
# around the position of its largest term value, with that position marked) and which entities it follows (its
# term map correlated, over states and positions, with the entity maps of @sec-heist-features).

# %%
maps = hs.entity_maps(test, cfg)
corr = hs.unit_map_correlations(contrib[:, :n_show].float(), maps)
corr.index = [f"term {i}" for i in range(len(corr))]
corr.insert(0, "lambda", lam[:n_show])


def crop(img, pos, map_hw, half=8):
    """The image window around map position ``pos`` (its centre pixel), padded with black at the border."""
    H_, W_ = img.shape[:2]
    r = int((pos[0] + 0.5) * H_ / map_hw[0])
    c = int((pos[1] + 0.5) * W_ / map_hw[1])
    pad = np.pad(img, ((half, half), (half, half), (0, 0)))
    return pad[r:r + 2 * half, c:c + 2 * half], (half, half)


# %%
#| label: fig-heist-eigenfilters
#| fig-cap: "The top eigenfilters of the decomposed layer along the goal-probe direction. Each column is one term (λ above it): the three test states where its value λ(v·x̃)² is largest in magnitude, cropped around that position (marked) of the map."
n_col = min(n_show, rank)
fig, axes = plt.subplots(3, n_col, figsize=(1.3 * n_col, 4.0), squeeze=False)
hw = tuple(contrib.shape[-2:])
for i in range(n_col):
    m = contrib[:, i].abs().flatten()
    for j, flat in enumerate(m.topk(3).indices.tolist()):
        n_, rest = divmod(flat, hw[0] * hw[1])
        img, centre = crop(test["obs"][n_], divmod(rest, hw[1]), hw)
        ax = axes[j, i]
        ax.imshow(img, interpolation="nearest")
        ax.plot(*centre[::-1], "w+", ms=8, mew=1.5)
        ax.set_xticks([]), ax.set_yticks([])
    axes[0, i].set_title(f"{i}: λ={lam[i]:+.2g}", fontsize=8)
fig.tight_layout()

# %%
#| label: tbl-heist-eig-entities
#| tbl-cap: "Correlation of each top term's map with the entity maps (test states, all positions); λ is the term's eigenvalue."
md_table(corr.reset_index(names="term"), digits=2)

# %%
best_ent = corr.drop(columns="lambda").abs().idxmax(axis=1)
goal_terms = [t for t in corr.index if best_ent[t] == "current_goal"]
md(f"Of the top {len(corr)} terms, {len(goal_terms)} follow the current goal more than any other entity map"
   + (f" ({', '.join(goal_terms)}; the largest correlation {corr.loc[goal_terms, 'current_goal'].abs().max():.2f})"
      if goal_terms else "")
   + f"; the others follow mostly {', '.join(sorted(set(best_ent[[t for t in corr.index if t not in goal_terms]])) or ['nothing else'])}.")

# %% [markdown]
# ## Removing the top terms
#
# Each test state's probe answer is recomputed with terms removed from the layer (each replaced by its mean over
# validation states and positions): the top $k$ terms, $k$ random terms from the rest of the non-zero spectrum
# (`n_random` draws), and -- the converse -- everything *except* the top $k$. Accuracies are averaged per level first
# (states of one level are not independent); intervals are over levels (@fig-heist-eig-ablation).

# %%
mean_val = eigen_contributions(layer, x_val, eig, range(rank)).mean((0, 2, 3))  # [rank] baseline per term
rng = np.random.default_rng(seed)
test_levels_of = test["level_seed"]


def probe_accuracy(which):
    """Per-level mean of exact / within-one-cell accuracy of the (fixed) probe with terms ``which`` removed."""
    hooks = remove_components(layer, eig, u, which, in_hook, out_hook, baseline=mean_val[list(which)])
    with agent.hooks(fwd_hooks=hooks):
        acts = cache_hook(agent, test_obs, out_hook, batch_size=512)
    pred = probe.predict(acts).numpy()
    exact = (pred == test["goal_pos"]).all(1)
    near = np.abs(pred - test["goal_pos"]).max(1) <= 1
    lv = pd.DataFrame(dict(level=test_levels_of, exact=exact, near=near)).groupby("level").mean()
    return lv.exact.to_numpy(), lv.near.to_numpy()


intact = probe_accuracy([])
abl_rows, per_level = [], {}
for k in ks:
    if 2 * k > rank:  # the random control draws k terms from the other rank - k
        continue
    top = probe_accuracy(range(k))
    keep = probe_accuracy(range(k, rank))
    rand = [probe_accuracy(sorted(rng.choice(np.arange(k, rank), k, replace=False).tolist()))
            for _ in range(n_random)]
    rand_near = np.mean([r[1] for r in rand], 0)
    per_level[k] = dict(top=top[1], random=rand_near, keep=keep[1])
    d = paired_difference(top[1], rand_near)
    abl_rows.append(dict(k=k, top_removed=top[1].mean(), random_removed=rand_near.mean(), top_kept_only=keep[1].mean(),
                         top_minus_random=d.mean, lo=d.lo, hi=d.hi, top_removed_exact=top[0].mean()))
abl = pd.DataFrame(abl_rows)

# %%
#| label: fig-heist-eig-ablation
#| fig-cap: "Probe accuracy (within one cell, test states, mean over levels with 95% intervals) with the top k terms removed, k random terms removed (mean of the random draws) and all terms but the top k removed; dashed: the intact layer."
fig, ax = plt.subplots(figsize=(5.0, 2.8))
for key, label, col in (("top", "top k removed", "C3"), ("random", "k random removed", "C7"),
                        ("keep", "only top k kept", "C0")):
    ivs = [mean_interval(per_level[k][key]) for k in abl.k]
    ax.errorbar(abl.k, [i.mean for i in ivs], yerr=[[i.mean - i.lo for i in ivs], [i.hi - i.mean for i in ivs]],
                fmt="o-", ms=3, capsize=2, color=col, label=label)
ax.axhline(intact[1].mean(), ls="--", color="k", lw=1, label="intact")
ax.set(xscale="log", xlabel="k", ylabel="probe accuracy (±1 cell)", ylim=(0, 1.02))
ax.set_xticks(list(abl.k), [str(k) for k in abl.k])
ax.legend(fontsize=7)
fig.tight_layout()

# %%
#| label: tbl-heist-eig-ablation
#| tbl-cap: "Probe accuracy within one cell (mean over test levels) with terms removed; top − random: paired difference over levels with its 95% interval; last column: exact-cell accuracy with the top k removed."
md_table(abl, digits=3)

# %%
row = abl.set_index("k").loc[k_loop]
below = abl[abl.hi < 0].k.tolist()
claim(k_loop in below, f"removing the top {k_loop} terms lowers the probe's accuracy more than removing random terms")
md(f"Intact, the probe is within one cell of the current goal on {intact[1].mean():.1%} of test states (exact: "
   f"{intact[0].mean():.1%}). Removing the top {k_loop} terms leaves {row.top_removed:.1%}; removing {k_loop} random "
   f"terms {row.random_removed:.1%} (top − random {row.top_minus_random:+.1%}, 95% interval {row.lo:+.1%} to "
   f"{row.hi:+.1%}); keeping only the top {k_loop} gives {row.top_kept_only:.1%}. The top terms carry more of the "
   f"probe's signal than random ones -- the interval lies below zero -- for k in {below} of the k tried "
   f"({abl.k.tolist()}).")

# %% [markdown]
# ## Does the agent need them?
#
# The same edits in closed loop: the agent plays `n_episodes` test levels (each once, actions sampled) with the top
# `k_loop` terms removed at every step, with `k_loop` random terms removed (`n_random` draws, the same sets' mean), and
# intact.

# %%
#| label: tbl-heist-eig-closed-loop
#| tbl-cap: "Closed loop on test levels: success (Wilson 95% interval) and length ratio of successful episodes, intact and with terms of the decomposed layer removed."
ep_levels = split.test_seeds(n_episodes, start=n_levels)  # levels not used for the probe states


def play(which):
    hooks = remove_components(layer, eig, u, which, in_hook, out_hook, baseline=mean_val[list(which)])
    return hs.evaluate(agent, ep_levels, cfg, greedy=False, seed=seed + 2, fwd_hooks=hooks)


loop = {"intact": play([]), f"top {k_loop} removed": play(range(k_loop))}
rand_sets = [sorted(rng.choice(np.arange(k_loop, rank), k_loop, replace=False).tolist()) for _ in range(n_random)]
rand_runs = [play(w) for w in rand_sets]
loop_rows = hs.evaluation_rows(loop) + [
    dict(r, policy=f"{k_loop} random removed (draw {i})") for i, r in enumerate(hs.evaluation_rows(
        {str(i): e for i, e in enumerate(rand_runs)}))]
md_table(loop_rows, digits=3)

# %%
rand_success = np.mean([e["success"] for e in rand_runs], 0)
top_success = loop[f"top {k_loop} removed"]["success"].astype(float)
d_loop = paired_difference(top_success, rand_success)
d_int = paired_difference(top_success, loop["intact"]["success"].astype(float))
md(f"Intact, the agent solves {loop['intact']['success'].mean():.1%} of these {n_episodes} test levels. With the top "
   f"{k_loop} terms removed it solves {top_success.mean():.1%} (paired difference to intact {d_int.mean:+.1%}, 95% "
   f"interval {d_int.lo:+.1%} to {d_int.hi:+.1%}); with {k_loop} random terms removed {rand_success.mean():.1%} on "
   f"average over {n_random} draws (top − random {d_loop.mean:+.1%}, interval {d_loop.lo:+.1%} to {d_loop.hi:+.1%}).")
claim(bool(d_int.lo <= 0.02 and d_int.hi >= -0.02 and d_loop.lo <= 0.02 and d_loop.hi >= -0.02),
      f"removing the top {k_loop} terms changes the agent's success by less than 2 points, against intact and "
      f"against random terms")

# %% [markdown]
# ## What the eigenfilters say
#
# The decomposition does what it promises for the probe: the read-out of "the current goal is here" at the decomposed
# block is concentrated in a few input patterns, some of them visibly tied to the current goal and others to the
# agent and the walls, and removing the few that matter takes a large part of the probe's accuracy with them while
# random terms of the same number do not. The agent, however, does not need them: with the same terms removed at every
# step it reaches the gem as often as intact, within a couple of points. The hypothesis that the agent's use of its
# current goal runs through these eigenfilters is therefore **not supported**. Two readings remain open and are not
# separated here: the goal is represented redundantly (the earlier blocks' probes are about as accurate, so the
# information can reach the policy by other paths), or the probe's direction is a correlate of the goal that the
# policy does not read. An edit of the whole goal representation (@sec-heist-ablation) is the stronger test, and on
# the CNN agent it did move behaviour.
