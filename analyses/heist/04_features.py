# %% [markdown]
# # Heist: channels and sparse features {#sec-heist-features}
#
# Probes ask whether a fact *can* be read out of a layer; they do not say how the layer stores it. This chapter looks
# at the units themselves. A convolutional layer has few channels (32 here) and, if the maze-agent and heist work is
# a guide, many of them mix several things [@mini2023understanding; @sturgeon2025entity]. Sparse autoencoders
# [@bricken2023monosemanticity] decompose each position's channel vector into more, sparser latents; we train them
# with SAELens (`rlinterp.interp.sae`), one dictionary over all positions of a map (a 1×1-convolutional SAE).
#
# Each channel and each SAE latent is labelled automatically: its activation at every position is correlated with
# seven maps of the same state -- where the agent, walls, keys, closed locks and the gem are, where the *current goal*
# is, and where the other entities are. A unit that tracks the current goal correlates with the current-goal map and
# not with the map of the other entities.

# %% tags=["parameters"]
n_levels: int = 300  # test levels played by the agent to collect states [range: [4, inf)]
max_states: int = 4000  # at most this many states [range: [20, inf)]
hooks: list[str] = ["blocks.2.pool.hook_out", "blocks.3.hook_post"]  # 8x8 maps: one position per world cell
d_sae: int = 128  # SAE latents (4x the 32 channels) [range: [1, inf)]
ks: list[int] = [4, 8, 16]  # BatchTopK sparsities (mean active latents per position) [range: [1, inf)]
training_samples: int = 400000  # SAE training samples (positions) [range: [1, inf)]
featvis_steps: int = 200  # Adam steps of the optimised inputs [range: [1, inf)]
featvis_restarts: int = 8  # random starting images of the optimised inputs [range: [1, inf)]
seed: int = 0  # seed of the action sampling, the splits and the SAEs [range: [0, inf)]
device: str = "auto"  # torch device ("auto": CUDA when present)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from rlinterp import artifacts, seeds
from rlinterp.envs import heist as H
from rlinterp.interp import (SAEConfig, cache_hook, encode, maximize_continuous, sae_metrics, spatial_samples,
                             train_sae)
from rlinterp.learners import ppo
from rlinterp.pipeline.report import md, md_table
from rlinterp.studies import heist as hs

dev = ppo.resolve_device(device)
cfg = H.HeistConfig()
agent = artifacts.load("heist/impala", device=dev)
levels = seeds.split("heist").test_seeds(n_levels)
data = hs.collect_states(hs.model_policy(agent, greedy=False, seed=seed), levels, cfg, max_states=max_states)
maps = hs.entity_maps(data, cfg)
obs = torch.as_tensor(data["obs"])
held_out = np.isin(data["level_seed"], levels[::4])  # every fourth level is held out for the SAE metrics
md(f"{len(obs):,} states on {len(np.unique(data['level_seed']))} test levels; SAE metrics are measured on the "
   f"{held_out.sum():,} states of every fourth level, which the SAEs never see in training.")

# %% [markdown]
# ## Channels
#
# @tbl-heist-channel-labels lists, for each hook, the channels most correlated with the current-goal map, next to
# their correlation with the other entities.

# %%
#| label: tbl-heist-channel-labels
#| tbl-cap: "The five channels per hook most correlated with the current goal's position, with their correlations with every entity map (states and positions pooled)."
acts = {h: cache_hook(agent, obs, h, batch_size=512).float() for h in hooks}
chan = {h: hs.unit_map_correlations(acts[h], maps) for h in hooks}
rows = []
for h in hooks:
    top = chan[h].sort_values("current_goal", ascending=False).head(5)
    for unit, r in top.iterrows():
        rows.append(dict(hook=h, channel=int(unit), **{k: float(r[k]) for k in hs.ENTITY_MAPS}))
md_table(rows, digits=2)

# %% [markdown]
# ## Sparse autoencoders
#
# One SAE per hook and sparsity, trained on the channel vectors of every position of the training states.
# @tbl-heist-sae gives the usual quality measures on held-out states: the share of variance explained, L0 (mean
# number of active latents per position) and the share of latents that never fire (dead). For scale: an SAE on a
# small language model is considered usable at about 85% explained variance with L0 near 40 and 20% dead latents.

# %%
#| label: tbl-heist-sae
#| tbl-cap: "SAEs (BatchTopK, SAELens) on the channel vectors of every position: held-out explained variance, L0 and dead fraction."
saes, sae_rows = {}, []
for h in hooks:
    train = spatial_samples(acts[h][torch.as_tensor(~held_out)])
    test = spatial_samples(acts[h][torch.as_tensor(held_out)])
    for k in ks:
        sae = train_sae(train, SAEConfig(d_sae=d_sae, architecture="batchtopk", k=k,
                                         training_samples=training_samples, batch_size=1024, lr=1e-3, seed=seed,
                                         device=dev))
        saes[h, k] = sae
        m = sae_metrics(sae, test)
        sae_rows.append(dict(hook=h, k=k, d_sae=d_sae, explained_variance=m["explained_variance"], l0=m["l0"],
                             dead=m["dead_fraction"]))
sae_tab = pd.DataFrame(sae_rows)
md_table(sae_tab, digits=3)

# %% [markdown]
# ## Latents that carry the current goal
#
# The same automatic labels for the SAE latents of the middle sparsity. A latent *selective* for the current goal
# correlates with it and much less with the other entities; @tbl-heist-sae-goal lists the best ones, and
# @fig-heist-sae-top shows where the best latent fires in its top-activating states.

# %%
#| label: tbl-heist-sae-goal
#| tbl-cap: "SAE latents (middle sparsity) most correlated with the current goal's position, with their correlation with the other entities and the gem, and how often they fire."
k_mid = sorted(ks)[len(ks) // 2]
lat_rows, lat_maps = [], {}
for h in hooks:
    z = encode(saes[h, k_mid], spatial_samples(acts[h]))  # [n*h*w, d_sae]
    n, _, hh, ww = acts[h].shape
    zmap = z.reshape(n, hh, ww, -1).permute(0, 3, 1, 2)
    lat_maps[h] = zmap
    corr = hs.unit_map_correlations(zmap, maps)
    fires = (zmap > 0).float().mean((0, 2, 3)).numpy()
    top = corr.assign(fires=fires).sort_values("current_goal", ascending=False).head(5)
    for unit, r in top.iterrows():
        lat_rows.append(dict(hook=h, latent=int(unit), current_goal=float(r.current_goal),
                             other_entities=float(r.other_entities), gem=float(r.gem), key=float(r.key),
                             fires=float(r.fires)))
lat = pd.DataFrame(lat_rows)
md_table(lat, digits=3)

# %%
#| label: fig-heist-sae-top
#| fig-cap: "Where the most goal-selective SAE latent fires: the six states where it is largest, with its activation map (red, transparent where zero) over the observation; the circle marks the current goal."
best = lat.loc[lat.current_goal.idxmax()]
zb = lat_maps[best.hook][:, int(best.latent)]
order = zb.flatten(1).max(1).values.argsort(descending=True)[:6]
fig, axes = plt.subplots(1, 6, figsize=(6.5, 1.5))
for ax, i in zip(axes, order.tolist()):
    ax.imshow(data["obs"][i], extent=(0, cfg.world_dim, cfg.world_dim, 0))
    a = zb[i].numpy()
    ax.imshow(np.ma.masked_where(a <= 0, a), cmap="Reds", alpha=0.6, extent=(0, cfg.world_dim, cfg.world_dim, 0))
    gr, gc = data["goal_pos"][i]
    ax.add_patch(plt.Circle((gc + 0.5, gr + 0.5), 0.6, fill=False, color="magenta", lw=1.2))
    ax.set_xticks([]), ax.set_yticks([])
fig.suptitle(f"{best.hook}, latent {int(best.latent)} (k = {k_mid})", fontsize=8)
fig.tight_layout()

# %%
md(f"The most goal-selective latent ({best.hook}, latent {int(best.latent)}) correlates {best.current_goal:.2f} "
   f"with the current goal's position and {best.other_entities:.2f} with the other entities; the best channel of "
   f"the same hook correlates {chan[best.hook].current_goal.max():.2f} with the current goal.")

# %% [markdown]
# ## Optimised inputs
#
# Top-activating states show what a unit responds to among the states the agent meets; feature visualisation
# [@olah2017feature] asks what image drives it hardest. Gradient ascent on the pixels (kept in [0, 1];
# `rlinterp.interp.maximize_continuous`, `featvis_restarts` random starts, `featvis_steps` Adam steps) maximises, at
# the central cell of the map of @fig-heist-sae-top's hook, the channel most correlated with the current goal (its
# convolution output, before the ReLU: an inactive ReLU unit gives no gradient) and the pre-activation of the most
# goal-selective SAE latent. @fig-heist-featvis shows the best images; the numbers below
# compare the activation they reach with the largest one over the agent's states.

# %%
#| label: fig-heist-featvis
#| fig-cap: "Optimised inputs: images (pixels in [0, 1]) that maximise the best goal channel before its ReLU (top row) and the pre-activation of the most goal-selective SAE latent (bottom row) at the central cell of the map (circled), best restarts first."
fh = best.hook
ch_best = int(chan[fh].current_goal.idxmax())
sae_best = saes[fh, k_mid]
n_, c_, hh, ww = acts[fh].shape
r0, c0 = hh // 2, ww // 2
size = cfg.image_size
# the channel is maximised before its ReLU (and pool): from a random image a ReLU unit is usually off, and an off
# unit has no gradient; the conv output feeding map position (r0, c0) is summed
pre = fh.split(".pool")[0].replace(".hook_post", "") + ".conv.hook_out"
f = 2 if ".pool" in fh else 1  # a pooled position covers 2x2 conv positions
units = {f"channel {ch_best} (before ReLU)": (pre, lambda a: a[:, ch_best, f * r0:f * r0 + f, f * c0:f * c0 + f].sum((1, 2))),
         f"SAE latent {int(best.latent)}": (fh, lambda a: (sae_best.process_sae_in(a[:, :, r0, c0]) @ sae_best.W_enc
                                                          + sae_best.b_enc)[:, int(best.latent)])}
fv, reached = {}, {}
for name, (uh, obj) in units.items():
    fv[name] = maximize_continuous(agent, uh, (size, size, 3), objective=obj, restarts=featvis_restarts,
                                   steps=featvis_steps, lr=0.05, seed=seed, device=str(agent.device))
    with torch.no_grad():
        a_states = cache_hook(agent, obs, uh, batch_size=512).float()
        on_states = torch.cat([obj(a_states[i:i + 1024].to(agent.device)) for i in range(0, n_, 1024)])
    reached[name] = (float(fv[name].values[0]), float(on_states.max()))
shown = min(4, featvis_restarts)
fig, axes = plt.subplots(2, shown, figsize=(1.5 * shown, 3.2), squeeze=False)
cell = cfg.world_dim / ww  # world cells per map position
for row, name in enumerate(units):
    for j in range(shown):
        ax = axes[row, j]
        ax.imshow(fv[name].inputs[j].cpu().numpy(), extent=(0, cfg.world_dim, cfg.world_dim, 0))
        ax.add_patch(plt.Circle(((c0 + 0.5) * cell, (r0 + 0.5) * cell), 0.6 * cell, fill=False, color="magenta",
                                lw=1.2))
        ax.set_xticks([]), ax.set_yticks([])
    axes[row, 0].set_ylabel(name, fontsize=8)
fig.suptitle(fh, fontsize=8)
fig.tight_layout()

# %%
md("The optimised images reach " + "; ".join(
    f"{v:.2f} for the {name} (its largest value on the agent's states: {m:.2f})" for name, (v, m) in reached.items())
   + ".")
