# %% [markdown]
# # Heist: retargeting the agent {#sec-heist-retargeting}
#
# If the agent keeps "where my current goal is" as a map, writing a goal into that map at another cell should send
# the agent there. @mini2023understanding retargeted a maze-solving agent this way, by raising a few "cheese"
# channels at the target square. This chapter tries three edits on the heist agent, each against a control of the
# same size, and measures what the agent then does:
#
# * **Probe direction.** Add the current-goal probe's read-out direction (@sec-heist-probes), scaled by $\alpha$, to
#   the channel vector at the target cell.
# * **Goal channels.** Clamp the channels most correlated with the current goal (@sec-heist-features) to a high value
#   at the target cell, as Mini et al. did.
# * **Control.** A random direction with the norm of the probe edit, at the same cell.
#
# Two further causal tests ask whether the agent *needs* the goal representation: subtracting a "goal vector" (the
# activation difference between a level with and without its current goal, the cheese vector of
# @mini2023understanding), and ablating the goal channels everywhere (@sec-heist-ablation).
#
# Targets are free cells of the first goal stage, drawn at random (seeded) at least three moves from the agent's
# start and off its path to its first goal. Two measures: in closed loop, the share of levels where the agent stands
# on the target before it reaches its first goal (within the step limit); and open loop, Mini et al.'s normalised
# path probability -- the geometric mean of the policy's probabilities along the shortest path to the target.
# The edit strength $\alpha$ is chosen on validation levels; the reported numbers are on test levels.

# %% tags=["parameters"]
hook: str = "blocks.2.pool.hook_out"  # the map that is edited (one position per world cell)
n_probe_levels: int = 200  # validation levels whose agent states train the probe and rank the channels [range: [4, inf)]
n_validation: int = 100  # validation levels for choosing alpha [range: [4, inf)]
n_levels: int = 200  # test levels for the reported numbers [range: [4, inf)]
alphas: list[float] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]  # edit strengths tried on validation levels [range: (0, inf)]
n_channels: int = 3  # goal channels clamped [range: [1, inf)]
max_steps: int = 60  # closed-loop steps per level [range: [1, inf)]
goal_vector_alpha: float = 1.0  # multiple of the goal vector subtracted [range: (0, inf)]
n_control_sets: int = 5  # random channel (and latent) sets of the ablation controls [range: [1, inf)]
n_latents: int = 3  # goal latents of the SAE mean-ablated [range: [1, inf)]
d_sae: int = 128  # SAE latents (as in the features chapter) [range: [1, inf)]
sae_k: int = 8  # SAE sparsity: BatchTopK mean active latents per position [range: [1, inf)]
sae_samples: int = 400000  # SAE training samples (positions, cycled) [range: [1024, inf)]
seed: int = 0  # seed of targets, random directions, sampling [range: [0, inf)]
device: str = "auto"  # torch device ("auto": CUDA when present)

# %%
import numpy as np
import pandas as pd
import torch

from rlinterp import artifacts, seeds
from rlinterp.envs import heist as H
from rlinterp.interp import (SAEConfig, ablate_latents, cache_hook, encode, fit_spatial_probe, sae_metrics,
                             spatial_samples, steer_at, train_sae)
from rlinterp.learners import ppo
from rlinterp.pipeline.report import claim, md, md_table
from rlinterp.stats import paired_difference, wilson
from rlinterp.studies import heist as hs

dev = ppo.resolve_device(device)
cfg = H.HeistConfig()
grid = (cfg.world_dim, cfg.world_dim)
agent = artifacts.load("heist/impala", device=dev)
split = seeds.split("heist")
probe_levels = split.validation_seeds(n_probe_levels)
val_levels = split.validation_seeds(n_validation, start=n_probe_levels)
test_levels = split.test_seeds(n_levels)

# the probe direction and the goal channels, from validation states only
data = hs.collect_states(hs.model_policy(agent, seed=seed), probe_levels, cfg, max_states=4000)
acts = cache_hook(agent, torch.as_tensor(data["obs"]), hook, batch_size=512).float()
probe = fit_spatial_probe(acts, torch.as_tensor(data["goal_pos"]), grid,
                          groups=torch.as_tensor(data["level_seed"]), control=None, seed=seed)
direction = probe.direction.float()  # read-out direction in raw activation units
direction = direction / direction.norm()
corr = hs.unit_map_correlations(acts, hs.entity_maps(data, cfg))
goal_channels = corr.current_goal.sort_values(ascending=False).index[:n_channels].tolist()
scale = float(acts.permute(0, 2, 3, 1).reshape(-1, acts.shape[1]).norm(dim=1).mean())  # mean channel-vector norm
clamp_value = float(acts[:, goal_channels].amax())
md(f"The probe at `{hook}` (validation states) finds the current goal's cell {probe.accuracy:.1%} of the time on "
   f"held-out levels; the clamped goal channels are {goal_channels} (correlations "
   f"{', '.join(f'{corr.current_goal[c]:.2f}' for c in goal_channels)}), set to {clamp_value:.2f}, the largest "
   f"value they take on those states. Edit sizes are in units of the mean channel-vector norm ({scale:.2f}).")

# %%
def draw_targets(levels, seed_):
    """``(levels kept, one target per kept level)``: a free cell of stage 0 at >= 3 moves from the start, off the
    path to the first goal (else any other free cell of stage 0)."""
    rng = np.random.default_rng(seed_)
    kept, out = [], []
    for s in levels:
        lv = H.make_level(int(s), cfg)
        st = hs.stage_states(lv, 0, cfg)
        blocked = H._blocked_grid(st["cells"][0], st["held"])
        d0 = H.bfs_distances(blocked, lv.agent)
        path, pos = set(), tuple(lv.agent)
        for a in H._path(blocked, tuple(lv.agent), tuple(st["goal_pos"])):
            pos = H._move(blocked, pos, a)
            path.add(pos)
        cand = [tuple(c) for c in st["agent"] if d0[tuple(c)] >= 3 and tuple(c) not in path]
        if not cand:
            cand = [tuple(c) for c in st["agent"] if tuple(c) != tuple(lv.agent)]
        if cand:  # a level whose first stage has no other free cell has no target: it is left out
            kept.append(int(s))
            out.append(cand[rng.integers(len(cand))])
    return np.array(kept), np.array(out)


h_w = tuple(acts.shape[-2:])
g = torch.Generator().manual_seed(seed)
random_dir = torch.randn(len(direction), generator=g)
random_dir = random_dir / random_dir.norm()


def edits(kind, alpha):
    """cells [n, 2] -> forward hooks for edit ``kind`` at strength ``alpha``."""
    def make(cells):
        mask = hs.cell_mask(cells, h_w, grid)
        if kind == "none":
            return []
        if kind == "probe":
            return [steer_at(hook, mask, direction, alpha * scale)]
        if kind == "random":
            return [steer_at(hook, mask, random_dir, alpha * scale)]
        if kind == "channels":
            vec = torch.zeros(len(direction))
            vec[goal_channels] = clamp_value
            return [steer_at(hook, mask, vec, alpha, mode="set", channels=goal_channels)]
        raise ValueError(kind)
    return make


def closed_loop(kind, alpha, levels, targets):
    out = hs.retarget(agent, levels, targets, edits(kind, alpha), cfg, max_steps=max_steps, greedy=False, seed=seed)
    return out["hit_target"] & ~out["first_goal_first"], out


# %% [markdown]
# ## Choosing the edit strength (validation levels)

# %%
#| label: tbl-heist-retarget-val
#| tbl-cap: "Validation levels: share of levels where the agent reaches the target before its first goal, per edit and strength (channels: the clamp value is multiplied by the strength)."
val_levels, val_targets = draw_targets(val_levels, seed)
val_rows = []
for kind in ("probe", "channels", "random"):
    for a in alphas:
        hit, _ = closed_loop(kind, a, val_levels, val_targets)
        val_rows.append(dict(edit=kind, alpha=a, retargeted=float(hit.mean())))
val_tab = pd.DataFrame(val_rows)
chosen = {k: float(val_tab[val_tab.edit == k].sort_values(["retargeted", "alpha"], ascending=[False, True]).alpha.iloc[0])
          for k in ("probe", "channels")}  # the best strength; the weakest among equals
chosen["random"] = chosen["probe"]  # the control takes the probe edit's strength (same norm)
md_table(val_tab, digits=3)

# %% [markdown]
# ## Test levels

# %%
#| label: tbl-heist-retarget
#| tbl-cap: "Test levels: share retargeted (Wilson 95% interval), the agent's success at its own task within the step budget, and the normalised path probability towards the target (mean over levels), for each edit at its validation-chosen strength and without edit."
test_levels, test_targets = draw_targets(test_levels, seed + 1)
res, rows = {}, []
for kind in ("none", "probe", "channels", "random"):
    a = chosen.get(kind, 0.0)
    hit, out = closed_loop(kind, a, test_levels, test_targets)
    pp = np.array([hs.path_probability(agent, int(s), 0, t, config=cfg,
                                       fwd_hooks=lambda n, t=t, k=kind, a=a: edits(k, a)(np.repeat([t], n, 0)))
                   for s, t in zip(test_levels, test_targets)])
    res[kind] = dict(hit=hit, pp=pp)
    w = wilson(float(hit.mean()), len(hit))
    rows.append(dict(edit=kind, alpha=a, retargeted=w.mean, lo=w.lo, hi=w.hi,
                     goal_first=float(out["first_goal_first"].mean()), path_probability=float(np.nanmean(pp))))
md_table(rows, digits=3)

# %%
d = paired_difference(res["probe"]["hit"].astype(float), res["random"]["hit"].astype(float))
dpp = paired_difference(np.nan_to_num(res["probe"]["pp"]), np.nan_to_num(res["random"]["pp"]))
md(f"Adding the probe direction at the target retargets the agent on {res['probe']['hit'].mean():.1%} of the "
   f"{len(test_levels)} test levels with a target cell (of {n_levels}) against {res['random']['hit'].mean():.1%} "
   f"for a random direction of the same norm "
   f"(paired difference {d.mean:+.1%}, 95% interval {d.lo:+.1%} to {d.hi:+.1%}) and "
   f"{res['none']['hit'].mean():.1%} without edit; the path probability towards the target moves by "
   f"{dpp.mean:+.3f} (interval {dpp.lo:+.3f} to {dpp.hi:+.3f}) relative to the random edit. Clamping the "
   f"{n_channels} goal channels retargets it on {res['channels']['hit'].mean():.1%}.")

# %% [markdown]
# ## Removing the goal {#sec-heist-ablation}
#
# **Goal vector.** For each test level, the activations at `{hook}` of the start state minus those of the same state
# with the first goal entity erased from the image form the level's goal vector; subtracting it (times
# `goal_vector_alpha`) at every step should hide the goal from the agent if the network represents it additively, as
# the cheese vector did in the maze agent. Control: a random map of the same norm. **Ablation.** The goal channels
# are set to their mean (over the probe states and positions) at every position of the map; control: as many
# channels drawn at random among the others, `n_control_sets` draws. **SAE latents.** The same for features instead
# of channels: a BatchTopK SAE (SAELens, as in @sec-heist-features) trained on the channel vectors of the probe
# states at `{hook}`; the `n_latents` latents most correlated with the current goal are removed from the map at every
# position, each replaced by its mean (the SAE's other latents and its reconstruction error stay:
# `rlinterp.interp.ablate_latents`); control: as many latents drawn at random among the other live ones. All are
# measured in closed loop on the test
# levels: the share that reach the first goal within `max_steps` steps, and the share that reach the gem within the
# game's step limit.

# %%
#| label: tbl-heist-ablation
#| tbl-cap: "Test levels: share reaching the first goal within the closed-loop budget and share reaching the gem within the game's step limit (Wilson 95% intervals), with the goal vector subtracted, the goal channels or the goal latents of an SAE mean-ablated, and their controls."
first = np.array([H.make_level(int(s_), cfg).keys[0] if H.make_level(int(s_), cfg).num_keys else
                  H.make_level(int(s_), cfg).gem for s_ in test_levels])


def start_images(levels, erase_goal):
    imgs = []
    for s_ in levels:
        lv = H.make_level(int(s_), cfg)
        cells = lv.cells()
        if erase_goal:
            goal = lv.keys[0] if lv.num_keys else lv.gem
            cells[tuple(goal)] = H.FLOOR
        imgs.append(H.render(cells[None], np.asarray(lv.agent)[None], np.zeros((1, 3), bool), cfg.cell_px)[0])
    return torch.as_tensor(np.stack(imgs))


goal_vec = (cache_hook(agent, start_images(test_levels, False), hook) -
            cache_hook(agent, start_images(test_levels, True), hook)).float()  # [n, c, h, w]
rand_vec = torch.randn(goal_vec.shape, generator=g)
rand_vec = rand_vec * (goal_vec.flatten(1).norm(dim=1) / rand_vec.flatten(1).norm(dim=1))[:, None, None, None]
means = acts.mean(dim=(0, 2, 3))  # per-channel mean over probe states and positions
others = [c for c in range(acts.shape[1]) if c not in goal_channels]
rng_c = np.random.default_rng(seed)
control_sets = [sorted(rng_c.choice(others, size=min(n_channels, len(others)), replace=False).tolist())
                for _ in range(n_control_sets)]


def subtract(vec):
    return lambda cells: [(hook, lambda act, hook=None: act - goal_vector_alpha * vec.to(act.device, act.dtype))]


def mean_ablate(chs):
    def make(cells):
        def fn(act, hook=None):
            out = act.clone()
            out[:, chs] = means[chs].to(act.device, act.dtype)[None, :, None, None]
            return out
        return [(hook, fn)]
    return make


def outcome(edit):
    short = hs.retarget(agent, test_levels, first, edit, cfg, max_steps=max_steps, greedy=False, seed=seed)
    full = hs.retarget(agent, test_levels, first, edit, cfg, greedy=False, seed=seed)
    return short["hit_target"] | short["first_goal_first"], full["success"]


abl = {"none": outcome(lambda cells: []), "goal vector subtracted": outcome(subtract(goal_vec)),
       "random map of the same norm": outcome(subtract(rand_vec)),
       f"goal channels {goal_channels} mean-ablated": outcome(mean_ablate(goal_channels))}
ctrl = [outcome(mean_ablate(cs)) for cs in control_sets]
abl[f"{n_channels} random channels mean-ablated ({n_control_sets} sets)"] = (
    np.concatenate([c[0] for c in ctrl]), np.concatenate([c[1] for c in ctrl]))
sae = train_sae(spatial_samples(acts), SAEConfig(d_sae=d_sae, architecture="batchtopk", k=sae_k,
                                                 training_samples=sae_samples, batch_size=1024, lr=1e-3, seed=seed,
                                                 device=dev))
z = encode(sae, spatial_samples(acts).to(dev)).cpu()  # [n * h * w, d_sae]
zmap = z.reshape(len(acts), *h_w, -1).permute(0, 3, 1, 2)
lcorr = hs.unit_map_correlations(zmap, hs.entity_maps(data, cfg))
live = np.flatnonzero((z > 0).any(0).numpy())
goal_latents = lcorr.current_goal.iloc[live].sort_values(ascending=False).index[:n_latents].tolist()
z_mean = z.mean(0)
other_latents = [i for i in live if i not in goal_latents]
latent_sets = [sorted(rng_c.choice(other_latents, size=min(n_latents, len(other_latents)), replace=False).tolist())
               for _ in range(n_control_sets)]


def latent_ablate(ids):
    return lambda cells: ablate_latents(sae, hook, ids, z_mean[ids])


abl[f"goal latents {goal_latents} mean-ablated"] = outcome(latent_ablate(goal_latents))
lctrl = [outcome(latent_ablate(ls)) for ls in latent_sets]
abl[f"{n_latents} random latents mean-ablated ({n_control_sets} sets)"] = (
    np.concatenate([c[0] for c in lctrl]), np.concatenate([c[1] for c in lctrl]))
abl_rows = []
for name, (reach, succ) in abl.items():
    wr, ws = wilson(float(reach.mean()), len(reach)), wilson(float(succ.mean()), len(succ))
    abl_rows.append(dict(edit=name, levels=len(reach), first_goal=wr.mean, first_lo=wr.lo, first_hi=wr.hi,
                         gem=ws.mean, gem_lo=ws.lo, gem_hi=ws.hi))
abl_tab = pd.DataFrame(abl_rows)
md_table(abl_tab, digits=3)

# %%
gv, rv = abl["goal vector subtracted"], abl["random map of the same norm"]
ga = abl[f"goal channels {goal_channels} mean-ablated"]
dg_ = paired_difference(gv[0].astype(float), rv[0].astype(float))
cs_rate = float(np.mean([c[1].mean() for c in ctrl]))
md(f"Subtracting the goal vector changes the share of test levels whose first goal is reached within {max_steps} "
   f"steps from {abl['none'][0].mean():.1%} (no edit) to {gv[0].mean():.1%}, against {rv[0].mean():.1%} for a random "
   f"map of the same norm (paired difference {dg_.mean:+.1%}, 95% interval {dg_.lo:+.1%} to {dg_.hi:+.1%}). "
   f"Mean-ablating the {n_channels} goal channels leaves the agent reaching the gem on {ga[1].mean():.1%} of the "
   f"levels, against {abl['none'][1].mean():.1%} intact and {cs_rate:.1%} on average over {n_control_sets} sets of "
   f"{n_channels} random channels.")
sm = sae_metrics(sae, spatial_samples(acts).to(dev))
gl = abl[f"goal latents {goal_latents} mean-ablated"]
dl = paired_difference(gl[1].astype(float), np.mean([c[1] for c in lctrl], 0))
md(f"The SAE explains {sm['explained_variance']:.1%} of the variance of the channel vectors it was trained on "
   f"(L0 {sm['l0']:.1f}, {sm['dead_fraction']:.0%} dead); its goal latents {goal_latents} correlate with the current "
   f"goal at {', '.join(f'{lcorr.current_goal[i]:.2f}' for i in goal_latents)}. Mean-ablating them leaves the agent "
   f"reaching its first goal within {max_steps} steps on {gl[0].mean():.1%} of the levels and the gem on "
   f"{gl[1].mean():.1%}, against {np.mean([c[1].mean() for c in lctrl]):.1%} for {n_latents} random live latents "
   f"(gem, paired over levels against the mean of the {n_control_sets} control sets: {dl.mean:+.1%}, 95% interval "
   f"{dl.lo:+.1%} to {dl.hi:+.1%}).")
