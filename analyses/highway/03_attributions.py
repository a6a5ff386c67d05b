# %% [markdown]
# # Attributions, neurons and features {#sec-highway-attributions}
#
# @sec-highway-circuits read the ego-attention network's weights. This chapter asks the complementary, input-level
# questions: which features of which vehicles a given decision depends on [**integrated gradients**,
# @sundararajan2017axiomatic], how much of it flows through each attention head and each neuron [**conductance**,
# @dhamdhere2018important], what the neurons of the output MLP respond to (activations over episodes, their alignment
# with the feature directions the embeddings write, and a **semantic dictionary** built from controlled scenes), and
# which scenes drive a neuron or an action hardest (**feature optimisation**, constrained to valid observations).
#
# **Baselines.** Integrated gradients needs a baseline, and the network has one discontinuity: a vehicle is masked
# out of the attention when its presence flag is below 0.5. A path that switches vehicles on would cross that jump
# and break completeness, so our baseline keeps every vehicle's presence and replaces its kinematic features (x, y,
# vx, vy, cos, sin) by their data mean over ego rows or over present other vehicles: the attribution of a feature is
# its contribution to "this scene versus an average scene with the same vehicles". All attributions are computed in
# float64 with Captum; the ReLU kinks make IG's Riemann sum converge only as $1/n$ in the number of steps, so the
# number of steps is a parameter and we report the completeness error $|\sum_i \mathrm{IG}_i - (Q(x) - Q(b))|$.
#
# **Controlled scenes.** Observations are absolute and normalised, so a valid scene is easy to build: a real ego
# row from the episodes plus one other vehicle at a chosen position relative to the ego, with a chosen heading (one
# of the four road directions) and speed along that heading, normalised and clipped exactly as highway-env does.

# %% tags=["parameters"]
seed: int = 0  # random seed for everything [range: [0, inf)]
device: str = "cpu"  # torch device
n_episodes: int = 30  # greedy episodes of the shipped agent whose observations are analysed [range: [1, inf)]
eval_seed: int = 1000000  # environment seed of the first episode (evaluation seeds, unseen in training) [range: [0, inf)]
ig_obs: int = 24  # observations attributed with integrated gradients and conductance (evenly spaced) [range: [1, inf)]
ig_steps: int = 2048  # integration steps of integrated gradients [range: [1, inf)]
cond_steps: int = 256  # integration steps of layer and neuron conductance [range: [1, inf)]
n_scenes: int = 4000  # random controlled single-vehicle scenes of the semantic dictionary [range: [1, inf)]
map_res: int = 41  # grid resolution of the position maps [range: [2, inf)]
fv_restarts: int = 16  # random restarts of the continuous feature optimisation [range: [1, inf)]
fv_steps: int = 200  # gradient steps of the continuous feature optimisation [range: [1, inf)]
conv_obs: int = 2  # observations of the IG convergence check [range: [1, inf)]
conv_max_steps: int = 16384  # largest number of IG steps in the convergence check (powers of 4 from 256) [range: [256, inf)]

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from rlinterp import artifacts
from rlinterp.studies import highway as hws
from rlinterp.envs.highway import ACTIONS, FEATURES
from rlinterp.interp import captum as at
from rlinterp.interp import featvis
from rlinterp.pipeline.report import claim, md, md_table
from scipy import stats

torch.manual_seed(seed)
rng = np.random.default_rng(seed)
torch.set_num_threads(1)
model = artifacts.load("highway/ego_attention", device=device)
model64 = artifacts.load("highway/ego_attention", device=device).double()
D = hws.collect_episodes(model, n_episodes, seed=eval_seed, device=device, progress=False)
obs = D["obs"].to(device)  # [T, 15, 7]
with torch.no_grad():
    q, cache = model.run_with_cache(obs)
present = obs[..., 0] >= 0.5
H = model.attn.n_heads

# %%
#| echo: false
md(f"We analyse {len(obs)} observations from {n_episodes} greedy episodes of the shipped agent (mean return "
   f"{np.mean(D['returns']):.2f}, {100 * np.mean(D['arrived']):.0f}% arrivals).")

# %% [markdown]
# ## Integrated gradients per action
#
# We attribute each action's Q-value on `ig_obs` observations spread evenly over the episodes, and aggregate the
# attributions per feature, separately for the ego row and summed over the 14 other rows.

# %%
idx = torch.linspace(0, len(obs) - 1, min(ig_obs, len(obs))).round().long().unique()
x = obs[idx].double()
ego_mean = obs[:, 0].mean(0).double()
oth_mean = obs[:, 1:][present[:, 1:]].mean(0).double()
base = torch.where(present[idx][..., None], torch.cat([ego_mean[None], oth_mean.expand(14, -1)])[None].expand_as(x),
                   torch.zeros_like(x))
base[..., 0] = x[..., 0]  # presence kept: the path never crosses the attention mask
t0 = time.time()
ig, ig_delta = {}, {}
for a, name in enumerate(ACTIONS):
    attr, delta = at.integrated_gradients(model64, x, target=a, baselines=base, n_steps=ig_steps,
                                          method="riemann_trapezoid", internal_batch_size=8192)
    ig[name], ig_delta[name] = attr.detach(), delta.detach()
ig_time = time.time() - t0
with torch.no_grad():
    dq = model64(x) - model64(base)  # [n, 3]
all_delta = torch.stack([ig_delta[a].abs() for a in ACTIONS])  # [3, n]
rel_delta = all_delta / dq.T.abs().clamp_min(1e-6)

# %%
#| echo: false
md(f"Over {len(idx)} observations and the three actions, with {ig_steps} steps, the completeness error is at most "
   f"{all_delta.max():.1e} (median {all_delta.median():.1e}; relative to |Q(x) − Q(b)|: median "
   f"{rel_delta.median():.1e}), against a target of 10⁻³; "
   f"IG took {ig_time:.1f} s. @tbl-highway-ig-convergence shows how the error shrinks with the number of steps.")

# %%
#| label: tbl-highway-ig-convergence
#| tbl-cap: "Convergence of integrated gradients (FASTER) on a few observations: largest completeness error against the number of integration steps."
conv_rows, n = [], 256
while n <= max(conv_max_steps, 256):
    _, d = at.integrated_gradients(model64, x[:conv_obs], target=2, baselines=base[:conv_obs], n_steps=n,
                                   method="riemann_trapezoid", internal_batch_size=16384)
    conv_rows.append({"steps": n, "max |completeness error|": d.detach().abs().max().item()})
    n *= 4
md_table(conv_rows, digits=3)

# %%
#| echo: false
ok = [r["steps"] for r in conv_rows if r["max |completeness error|"] < 1e-3]
e0, e1 = conv_rows[0]["max |completeness error|"], conv_rows[-1]["max |completeness error|"]
conv_order = np.log(e0 / max(e1, 1e-300)) / np.log(conv_rows[-1]["steps"] / conv_rows[0]["steps"]) if len(conv_rows) > 1 else float("nan")
md(f"The error falls from {e0:.1e} at {conv_rows[0]['steps']} steps to {e1:.1e} at {conv_rows[-1]['steps']}, an "
   f"empirical order of {conv_order:.1f} (error ∝ steps^−order; the trapezoid rule gives order 2 on a smooth integrand "
   "and order 1 where the integrand, here the gradient, jumps at ReLU kinks). Step counts tried that meet the 10⁻³ "
   f"target: {', '.join(f'{n_:,}' for n_ in ok) or 'none'}.")

# %%
#| label: fig-highway-ig
#| fig-cap: "Integrated gradients per action, averaged over observations (signed): contribution of each feature of the ego row (left) and of all other vehicles together (right) to Q(x) − Q(baseline)."
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
w = 0.27
for a, name in enumerate(ACTIONS):
    ego_attr = ig[name][:, 0].mean(0).numpy()
    oth_attr = ig[name][:, 1:].sum(1).mean(0).numpy()
    axes[0].bar(np.arange(7) + (a - 1) * w, ego_attr, w, label=name)
    axes[1].bar(np.arange(7) + (a - 1) * w, oth_attr, w, label=name)
for ax, t in zip(axes, ["ego vehicle", "other vehicles (summed)"]):
    ax.set_xticks(range(7), FEATURES, rotation=30, fontsize=8)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(t)
axes[0].set_ylabel("mean IG attribution")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
#| echo: false
share = {n: (ig[n][:, 0].abs().sum(-1) / ig[n].abs().sum((-1, -2)).clamp_min(1e-12)).mean().item() for n in ACTIONS}
top_f = {}
for n in ACTIONS:
    tot = ig[n][:, 0].abs().mean(0) + ig[n][:, 1:].abs().sum(1).mean(0)
    top_f[n] = FEATURES[int(tot[1:].argmax()) + 1]
md("The ego row carries " + ", ".join(f"{100 * share[n]:.0f}% ({n})" for n in ACTIONS) +
   " of the absolute attribution, the other vehicles the rest; the kinematic feature with the largest absolute "
   "attribution (ego and others together) is " + ", ".join(f"{top_f[n]} for {n}" for n in ACTIONS) + ".")

# %% [markdown]
# ## Conductance: heads and neurons
#
# Layer conductance splits the same quantity, $Q(x) - Q(b)$, over the units of a layer. We compute it at the two
# embeddings (every path from the ego row goes through `ego_embed.hook_out`, every path from the others through
# `others_embed.hook_out`), at each head's output (`attn.hook_result`; the remainder is the residual's direct ego
# path) and at the 64 neurons of the last MLP layer (`mlp.1.hook_post`).

# %%
cond_rows, neuron_cond = [], {}
for a, name in enumerate(ACTIONS):
    row = {"action": name, "Q(x) − Q(b)": dq[:, a].abs().mean().item()}
    for hook, label in [("ego_embed.hook_out", "ego embedding"), ("others_embed.hook_out", "others embedding")]:
        c, _ = at.layer_conductance(model64, x, hook, target=a, baselines=base, n_steps=cond_steps,
                                    internal_batch_size=8192)
        row[label] = c.detach().flatten(1).sum(1).abs().mean().item()
    c, _ = at.layer_conductance(model64, x, "attn.hook_result", target=a, baselines=base, n_steps=cond_steps,
                                internal_batch_size=8192)
    for h in range(H):
        row[f"head {h}"] = c[:, h].sum(-1).abs().mean().item()
    c, d = at.layer_conductance(model64, x, "mlp.1.hook_post", target=a, baselines=base, n_steps=cond_steps,
                                internal_batch_size=8192)
    neuron_cond[name] = c.detach()  # [n, 64]
    row["last-layer completeness error"] = d.abs().max().item()
    cond_rows.append(row)

# %%
#| label: tbl-highway-conductance
#| tbl-cap: "Mean absolute conductance (summed over a layer's units) of each stage for each action, next to the mean |Q(x) − Q(b)| it decomposes; the last column is the largest completeness error of the last-layer conductance."
md_table(cond_rows, digits=3)

# %%
#| label: fig-highway-neuron-cond
#| fig-cap: "Mean absolute conductance of each neuron of the last MLP layer for each action (neurons sorted by total conductance)."
nc = torch.stack([neuron_cond[n].abs().mean(0) for n in ACTIONS])  # [3, 64]
order = nc.sum(0).argsort(descending=True)
fig, ax = plt.subplots(figsize=(10, 2.6))
im = ax.imshow(nc[:, order].numpy(), aspect="auto", cmap="viridis")
ax.set_yticks(range(3), ACTIONS)
ax.set_xticks(range(64), order.tolist(), fontsize=5, rotation=90)
ax.set_xlabel("neuron of mlp.1")
plt.colorbar(im, ax=ax, fraction=0.02)
plt.show()

# %%
#| echo: false
k = int((nc.sum(0).sort(descending=True).values.cumsum(0) < 0.8 * nc.sum()).sum()) + 1
md(f"The conductance is concentrated: {k} of the 64 last-layer neurons carry 80% of the total; the three largest "
   f"are neurons {', '.join(str(int(i)) for i in order[:3])}.")

# %% [markdown]
# **Neuron conductance** goes one step further back: through a single neuron, which input features matter. For the
# neuron with the largest conductance for each action we sum the attributions per feature, over ego and other rows.

# %%
#| label: tbl-highway-neuron-conductance
#| tbl-cap: "Neuron conductance: mean attribution of each feature (ego row; other rows summed) to the action's Q-value through the action's top neuron."
nrows = []
for a, name in enumerate(ACTIONS):
    n_top = int(neuron_cond[name].abs().mean(0).argmax())
    attr = at.neuron_conductance(model64, x, "mlp.1.hook_post", n_top, target=a, baselines=base, n_steps=cond_steps,
                                 internal_batch_size=8192).detach()
    for part, v in [("ego", attr[:, 0].mean(0)), ("others", attr[:, 1:].sum(1).mean(0))]:
        nrows.append({"action": name, "neuron": n_top, "rows": part, **{f: float(v[i]) for i, f in enumerate(FEATURES)}})
md_table(nrows, digits=3)

# %% [markdown]
# ## Neuron activations over episodes
#
# @fig-highway-neuron-trace shows the last-layer neurons along the episodes (one column per step), and how each
# neuron's input weights align with the feature directions that the embeddings write into the residual: for an ego
# feature $f$, $\tfrac12 \bar J_{ego}[:, f]$; for a feature of a vehicle attended by head $h$,
# $\tfrac12 W_O^h W_V^h \bar J_{oth}[:, f]$ (the averaged embedding maps of @sec-highway-circuits). The residual is read
# by the first MLP layer, so we compare these directions with the rows of `mlp.0`'s weight matrix.

# %%
#| label: fig-highway-neuron-trace
#| fig-cap: "Left: activations of the 64 neurons of mlp.1 over all steps of the episodes (white lines separate episodes). Right: cosine similarity of each mlp.0 neuron's input weights with the residual-space direction of each feature (ego row; other vehicles through head 0 and head 1)."
act1 = cache["mlp.1.hook_post"]  # [T, 64]
J = hws.embedding_maps(model, obs)
hw_ = hws.head_weights(model)
dirs, names = [J["ego"] / 2], [f"ego {f}" for f in FEATURES]
for h in range(H):
    dirs.append(hw_["W_O"][h] @ hw_["W_V"][h] @ J["others"] / 2)
    names += [f"h{h} {f}" for f in FEATURES]
dirs = torch.cat(dirs, 1).detach()  # [64, 21]
W0 = model.mlp.get_submodule("0").linear.weight.detach()  # [64 neurons, 64 resid]
cos = torch.nn.functional.normalize(W0, dim=1) @ torch.nn.functional.normalize(dirs, dim=0)  # [64, 21]
fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1.3]})
axes[0].imshow(act1.T.numpy(), aspect="auto", cmap="magma", interpolation="nearest")
for b in np.flatnonzero(np.diff(D["episode"].numpy())) + 0.5:
    axes[0].axvline(b, color="w", lw=0.5)
axes[0].set(xlabel="step (episodes concatenated)", ylabel="mlp.1 neuron")
v = cos.abs().max().item()
im = axes[1].imshow(cos.numpy(), aspect="auto", cmap="RdBu_r", vmin=-v, vmax=v)
axes[1].set_xticks(range(len(names)), names, rotation=90, fontsize=6)
axes[1].set_ylabel("mlp.0 neuron")
plt.colorbar(im, ax=axes[1], fraction=0.05)
fig.tight_layout()
plt.show()

# %%
#| echo: false
dead = (act1.max(0).values <= 0).sum().item()
always = (act1.min(0).values > 0).sum().item()
rand_cos = torch.nn.functional.normalize(torch.randn(64, 2000, generator=torch.Generator().manual_seed(seed)), dim=0)
rand_level = (torch.nn.functional.normalize(W0, dim=1) @ rand_cos).abs().max(0).values.median().item()
best = cos.abs().max(0)
claim(best.values.median() < 0.9, "the neurons are far from one neuron per feature direction (median best |cos| < 0.9)")
md(f"{dead} of the 64 last-layer neurons never fire on these episodes and {always} fire at every step. The feature "
   f"direction best aligned with a single first-layer neuron is '{names[int(best.values.argmax())]}' "
   f"(|cos| = {best.values.max():.2f}); the median of the per-direction best |cos| is {best.values.median():.2f}, "
   f"against {rand_level:.2f} for random directions (one neuron per feature would give a median near 1): the "
   f"neurons are {best.values.median() - rand_level:+.2f} more aligned with individual feature directions than chance "
   "and far from one neuron per feature.")

# %% [markdown]
# ## A semantic dictionary from controlled scenes
#
# We sample valid single-vehicle scenes: an ego row, and one other vehicle at a uniformly random bearing and a
# distance between 5 and 60 m, heading along one of the four road directions at a speed between 0 and 10 m/s. For
# each scene we compute interpretable variables of the other vehicle (distance, closing speed, its speed, how far
# it is ahead, how much its heading crosses the ego's) and, for every last-layer neuron, the Spearman correlation
# of its activation with each variable. Two families of `n_scenes` scenes each: one with the ego row fixed at a
# *decision state* (the ego row of the first observation where the agent chose SLOWER, i.e. yielded; the median
# ego row if it never did), which isolates the response to the other vehicle, and one with ego rows drawn from the
# episodes, which measures the response to the ego's own speed. A neuron's **label** is its most correlated
# other-vehicle variable with the sign; its **effect** is its weight in the head on FASTER − SLOWER.

# %%
slower = torch.nonzero(D["action"] == 0).flatten()
ego0 = obs[int(slower[0]), 0] if len(slower) else obs[:, 0].median(0).values  # the decision state


def spearman_matrix(acts: np.ndarray, var: pd.DataFrame) -> np.ndarray:
    """[64, n_vars] Spearman ρ of each neuron's activation with each variable (0 for a constant neuron)."""
    return np.nan_to_num(np.array([[stats.spearmanr(acts[:, j], var[c])[0] if acts[:, j].std() > 0 else 0.0
                                    for c in var.columns] for j in range(acts.shape[1])]))


scenes, var = hws.random_scenes(n_scenes, rng, ego=ego0)
scenes_e, var_e = hws.random_scenes(n_scenes, rng, obs=obs)
with torch.no_grad():
    q_s, c_s = model.run_with_cache(scenes, names_filter=lambda n: n == "mlp.1.hook_post")
    _, c_e = model.run_with_cache(scenes_e, names_filter=lambda n: n == "mlp.1.hook_post")
a_s, a_e = c_s["mlp.1.hook_post"].numpy(), c_e["mlp.1.hook_post"].numpy()  # [n, 64]
other_vars = var.drop(columns="ego speed")
rho = spearman_matrix(a_s, other_vars)
rho_ego = spearman_matrix(a_e, var_e[["ego speed"]])[:, 0]
effect = (model.head.weight[2] - model.head.weight[0]).detach().numpy()  # [64]
dict_rows = []
for j in np.argsort(-a_s.std(0))[:12]:
    c = int(np.abs(rho[j]).argmax())
    dict_rows.append({"neuron": int(j), "activation std": float(a_s[:, j].std()),
                      "label": f"{'+' if rho[j, c] > 0 else '−'}{other_vars.columns[c]}", "ρ": float(rho[j, c]),
                      "ρ with ego speed": float(rho_ego[j]), "effect on FASTER − SLOWER": float(effect[j])})

# %%
#| label: tbl-highway-dictionary
#| tbl-cap: "Semantic dictionary of the 12 last-layer neurons whose response to the other vehicle varies most (ego at the decision state): the other-vehicle variable each correlates with most (sign: + increases, − decreases the activation) and its Spearman ρ, the ρ with the ego's speed over varied ego rows, and the neuron's head weight on FASTER − SLOWER."
md_table(dict_rows, digits=3)

# %%
#| echo: false
labels = pd.Series([r["label"] for r in dict_rows]).value_counts()
q_rho = {c: stats.spearmanr(q_s[:, 2] - q_s[:, 0], other_vars[c])[0] for c in other_vars.columns}
qc = max(q_rho, key=lambda c: abs(q_rho[c]))
claim(bool(abs(q_rho[qc]) < 0.3), "the decision's global correlations with the other vehicle's variables are weak "
      "(|ρ| < 0.3)")
md("The most common labels among these neurons are " + ", ".join(f"'{k}' ({v})" for k, v in labels.items()) +
   f". At the decision state, Q(FASTER) − Q(SLOWER) over the same scenes correlates most with {qc} "
   f"(ρ = {q_rho[qc]:.2f}); the other correlations are " +
   ", ".join(f"{c} {r:.2f}" for c, r in q_rho.items() if c != qc) + ". Global correlations this weak (all "
   "|ρ| < 0.3) suggest that the decision depends on the other vehicle only in a small region of the scene space, "
   "which the position maps below locate.")

# %% [markdown]
# @fig-highway-maps makes this concrete: the ego at the decision state and one vehicle swept over a grid of
# positions around it, either driving towards the ego or away from it at 8 m/s (heading rounded to the nearest road
# direction).

# %%
#| label: fig-highway-maps
#| fig-cap: "Q(FASTER) − Q(SLOWER) of the shipped agent as a function of the other vehicle's position relative to the ego (at the origin, arrow: its heading), for a vehicle driving towards the ego (left) or away from it (right) at 8 m/s. Without any other vehicle the value is marked on the colour bar (black line)."
g = np.linspace(-50, 50, map_res)
gx, gy = np.meshgrid(g, g)
rel = torch.tensor(np.stack([gx.ravel(), gy.ravel()], -1), dtype=torch.float32)
maps = {}
for label, sign in [("towards the ego", -1.0), ("away from the ego", 1.0)]:
    ang = torch.atan2(sign * rel[:, 1], sign * rel[:, 0])
    ang = torch.round(ang / (np.pi / 2)) * (np.pi / 2)  # the nearest road direction
    sc = hws.single_vehicle_scenes(ego0, rel, ang, torch.full((len(rel),), 8.0))
    with torch.no_grad():
        qq = model(sc)
    maps[label] = (qq[:, 2] - qq[:, 0]).view(map_res, map_res).numpy()
alone = ego0.clone()[None].repeat(1, 1)[:, None].expand(1, 15, 7).clone()
alone[:, 1:] = 0
with torch.no_grad():
    q_alone = model(alone)[0]
pref_alone = float(q_alone[2] - q_alone[0])
v = max(np.abs(m).max() for m in maps.values())
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
for ax, (label, m) in zip(axes, maps.items()):
    im = ax.imshow(m, origin="lower", extent=[-50, 50, -50, 50], cmap="RdBu", vmin=-v, vmax=v)
    ax.arrow(0, 0, 8 * float(ego0[5]), 8 * float(ego0[6]), color="k", width=0.8)
    ax.set(title=f"other vehicle driving {label}", xlabel="Δx (m)", ylabel="Δy (m)")
cb = plt.colorbar(im, ax=axes, label="Q(FASTER) − Q(SLOWER)")
cb.ax.axhline(pref_alone, color="k")
plt.show()

# %%
#| echo: false
md(f"Alone, the ego vehicle at the decision state has Q(FASTER) − Q(SLOWER) = {pref_alone:+.2f} (positive: it "
   "prefers FASTER). "
   f"A vehicle driving towards it lowers Q(FASTER) − Q(SLOWER) to as little as {maps['towards the ego'].min():.2f}, "
   f"a vehicle driving away to {maps['away from the ego'].min():.2f}; the fraction of positions where the agent "
   f"would prefer SLOWER is {100 * (maps['towards the ego'] < 0).mean():.0f}% (towards) and "
   f"{100 * (maps['away from the ego'] < 0).mean():.0f}% (away).")

# %% [markdown]
# ## Feature optimisation: scenes that drive an action or a neuron
#
# Two searches for each objective (each action's advantage $Q_a - \tfrac13\sum_b Q_b$, and the top-conductance
# neuron of FASTER and of SLOWER). **Continuous**: the toolkit's projected gradient ascent
# (`featvis.maximize_continuous`) on the one other vehicle's six kinematic features inside the box $[-1, 1]$, the ego
# row and all presence flags fixed (lower = upper bound); the box does not enforce $\cos^2 + \sin^2 = 1$ or a
# velocity along the heading, so we report how far the optimum is from a valid scene. **Discrete**: the best of the
# `n_scenes` valid controlled scenes (`featvis.maximize_discrete` over them as candidates), all with the same ego
# state as the continuous search.

# %%
def advantage(a):
    return lambda qv: qv[:, a] - qv.mean(-1)


disc_scenes, disc_var = hws.random_scenes(n_scenes, np.random.default_rng(seed + 1), ego=ego0)
low = torch.zeros(15, 7)
low[0] = ego0
low[1, 0] = 1.0
high = low.clone()
low[1, 1:], high[1, 1:] = -1.0, 1.0
objectives = [(f"advantage of {n}", "hook_q_values", advantage(a)) for a, n in enumerate(ACTIONS)]
for n in ("FASTER", "SLOWER"):
    j = int(neuron_cond[n].abs().mean(0).argmax())
    objectives.append((f"mlp.1 neuron {j} (top for {n})", "mlp.1.hook_post", lambda act, j=j: act[:, j]))
fv_rows = []
for label, hook, obj in objectives:
    cont = featvis.maximize_continuous(model, hook, (15, 7), objective=obj, low=low, high=high, restarts=fv_restarts,
                                       steps=fv_steps, lr=0.05, seed=seed, device=device)
    best = cont.inputs[0, 1].double().numpy()
    disc = featvis.maximize_discrete(model, hook, objective=obj, candidates=disc_scenes, top=1)
    o = disc.inputs[0].double().numpy()
    rel_d = (o[1, 1:3] - o[0, 1:3]) * 100
    fv_rows.append({"objective": label, "continuous optimum": float(cont.values[0]),
                    "|cos²+sin²−1|": float(abs(best[5] ** 2 + best[6] ** 2 - 1)),
                    "velocity ∦ heading (deg)": float(np.degrees(np.arccos(np.clip(
                        (best[3:5] @ best[5:7]) / (np.linalg.norm(best[3:5]) * np.linalg.norm(best[5:7]) + 1e-9),
                        -1, 1)))),
                    "best valid scene": float(disc.values[0]),
                    "its Δx, Δy (m)": f"{rel_d[0]:.0f}, {rel_d[1]:.0f}",
                    "its speed (m/s)": float(np.linalg.norm(o[1, 3:5]) * 20),
                    "its heading (deg)": float(np.degrees(np.arctan2(o[1, 6], o[1, 5])))})

# %%
#| label: tbl-highway-featvis
#| tbl-cap: "Feature optimisation for each objective: the value reached by box-constrained gradient ascent on the other vehicle's features, how invalid that optimum is (heading not a unit vector; angle between velocity and heading), and the best valid controlled scene with its geometry relative to the ego."
md_table(fv_rows, digits=3)

# %%
#| echo: false
wins = sum(r["continuous optimum"] > r["best valid scene"] for r in fv_rows)
md(f"Gradient ascent in the box beats the best valid scene on {wins} of the {len(fv_rows)} objectives, and its "
   f"optima are not valid scenes: the heading vector is off the unit circle by up to "
   f"{max(r['|cos²+sin²−1|'] for r in fv_rows):.2f} and the velocity is up to "
   f"{max(r['velocity ∦ heading (deg)'] for r in fv_rows):.0f}° away from the heading. Where it wins it exploits "
   "combinations highway-env never produces; where it loses it is stuck in a local optimum of a piecewise-linear "
   "landscape. Either way we read the valid-scene search as the answer.")

# %% [markdown]
# ## Discussion

# %%
#| echo: false
md(f"Integrated gradients and conductance agree on where the decision is made, and they are exact up to the "
   f"reported completeness errors (at most {float(all_delta.max()):.1e} with {ig_steps:,} steps), which shrink with an "
   f"empirical order of {conv_order:.1f} in the number of steps (@tbl-highway-ig-convergence).")

# %% [markdown]
# The neurons are only partly aligned with individual feature directions, and the dictionary labels are correlations over one
# family of controlled scenes (a single other vehicle on a road direction): they say what a neuron tracks in that
# family, not that it computes that variable in dense traffic. The position maps are the most direct evidence of
# the policy's logic. All of this chapter is observational: the attributions, the neuron dictionary, the position maps
# and the feature optimisation are not tested by intervention here; @sec-highway-causal tests causal claims about the
# heads and the residual stream with interventions, not the neuron labels.
