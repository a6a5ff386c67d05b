# %% [markdown]
# # Inside the ego-attention: QK and OV circuits {#sec-highway-circuits}
#
# @sec-highway-agent trained an ego-attention Q-network that crosses the intersection far better than an MLP of the same
# size. This chapter reads its attention layer. In a transformer one splits an attention head into two nearly
# independent circuits [@elhage2021mathematical]: the **QK circuit**
# $W_Q^\top W_K$ decides *where* the head looks, and the **OV circuit** $W_O W_V$ decides *what* it moves once it
# looks there. The ego-attention network has one query (the ego vehicle) and 15 keys (all vehicles, the ego
# included), so each head's QK circuit is a bilinear form between the ego's embedding and a vehicle's embedding, and
# its OV circuit maps an attended vehicle's embedding into the residual that the output MLP turns into Q-values.
#
# **Method.** The embeddings are two-layer ReLU MLPs and the readout is another one, so the circuits are not
# linear in the raw features. A ReLU network is, however, *piecewise affine*: for every input $x$ there is an exact
# affine map $e(x') = J_x x' + c_x$ valid for all $x'$ with the same ReLU on/off pattern. We use it twice.
# (i) **Exact per observation**: with each vehicle's own $(J_x, c_x)$ the attention scores decompose exactly into
# the QK bilinear form of the features, which we check numerically. (ii) **Effective linear maps on the data
# distribution**: averaging $J_x$ over the ego rows and over the present other vehicles of real episodes gives
# $\bar J_{ego}, \bar J_{oth} \in \mathbb{R}^{64 \times 7}$, and averaging the readout's Jacobian
# $\partial Q / \partial\,\mathrm{resid}$ gives $\bar R \in \mathbb{R}^{3 \times 64}$. The feature-level circuits
# are then $\bar J_{ego}^\top W_Q^{h\top} W_K^h \bar J_{oth} / \sqrt{d_k}$ ($7 \times 7$ per head: how a key's score
# grows with an ego feature times a key feature) and $\bar R \cdot \tfrac12 W_O^h W_V^h \bar J_{oth}$
# ($3 \times 7$ per head: how each action's Q-value moves per unit of a feature of a fully attended vehicle; the
# ½ is the residual average). We then look at the attention patterns on real episodes, ask what each head attends
# to, and read every intermediate representation with a **logit lens**: the final readout applied early.

# %% tags=["parameters"]
seed: int = 0  # random seed for everything [range: [0, inf)]
device: str = "cpu"  # torch device
n_episodes: int = 80  # greedy episodes of the shipped agent whose observations are analysed [range: [1, inf)]
eval_seed: int = 1000000  # environment seed of the first episode (evaluation seeds, unseen in training) [range: [0, inf)]

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from rlinterp import artifacts
from rlinterp.studies import highway as hws
from rlinterp.envs.highway import ACTIONS, FEATURES
from rlinterp.pipeline.report import claim, md, md_table
from scipy import stats

torch.manual_seed(seed)
np.random.seed(seed)
torch.set_num_threads(1)
model = artifacts.load("highway/ego_attention", device=device)
D = hws.collect_episodes(model, n_episodes, seed=eval_seed, device=device, progress=False)
obs = D["obs"].to(device)  # [T, 15, 7]
with torch.no_grad():
    q, cache = model.run_with_cache(obs)
H = model.attn.n_heads

# %%
#| echo: false
md(f"We ran {n_episodes} greedy episodes of the shipped agent (return {np.mean(D['returns']):.2f} on average, "
   f"{100 * np.mean(D['arrived']):.0f}% arrivals, {100 * np.mean(D['crashed']):.0f}% collisions), giving "
   f"{len(obs)} observations with on average {(obs[:, 1:, 0] >= 0.5).sum(1).float().mean():.1f} other vehicles "
   f"present out of 14.")

# %% [markdown]
# ## The QK circuit: where each head looks
#
# First the exactness check: rebuilding every attention score from the features with each vehicle's exact local
# affine embedding and the QK matrix $W_Q^{h\top} W_K^h/\sqrt{d_k}$, and comparing with the scores the network
# computed (`attn.hook_attn_scores`, present vehicles only). Then the same with the *averaged* maps
# $\bar J$, which is only an approximation: its correlation with the true scores says how linear the QK circuit is
# on the data.

# %%
J = hws.embedding_maps(model, obs)  # effective linear maps on the data
M = hws.qk_circuit(model)  # [H, 64, 64]
B = len(obs)
with torch.no_grad():
    Je, ce = hws.local_affine(model.ego_embed, obs[:, 0])
    Jo, co = hws.local_affine(model.others_embed, obs[:, 1:].reshape(-1, 7))
    e_ego = torch.einsum("boi,bi->bo", Je, obs[:, 0]) + ce  # [B, 64]
    e_oth = (torch.einsum("boi,bi->bo", Jo, obs[:, 1:].reshape(-1, 7)) + co).view(B, 14, 64)
    e_all = torch.cat([e_ego[:, None], e_oth], 1)  # [B, 15, 64]
    scores_exact = torch.einsum("bd,hde,bne->bhn", e_ego, M, e_all)
    # averaged linear maps, each embedding centred on its data mean: e ≈ ē + J̄ (x − x̄)
    present = obs[..., 0] >= 0.5
    oth = obs[:, 1:][present[:, 1:]]
    xe, xo = obs[:, 0].mean(0), oth.mean(0)
    ee_bar, eo_bar = cache["ego_embed.hook_out"].mean(0), cache["others_embed.hook_out"][present[:, 1:]].mean(0)
    lin_ego = ee_bar + (obs[:, 0] - xe) @ J["ego"].T
    lin_oth = eo_bar + (obs[:, 1:] - xo) @ J["others"].T
    lin_all = torch.cat([lin_ego[:, None], lin_oth], 1)
    scores_lin = torch.einsum("bd,hde,bne->bhn", lin_ego, M, lin_all)
true_scores = cache["attn.hook_attn_scores"]
mask = present[:, None, :].expand(-1, H, -1)
exact_err = (scores_exact - true_scores)[mask].abs().max().item()
r_lin = [stats.pearsonr(scores_lin[:, h][present].numpy(), true_scores[:, h][present].numpy())[0] for h in range(H)]

# %%
#| echo: false
claim(exact_err < 1e-4, "the exact QK decomposition reproduces the attention scores to float rounding")
md(f"The exact decomposition reproduces all {int(mask.sum())} scores of present vehicles to within "
   f"{exact_err:.1e} (float rounding). With the averaged linear maps the predicted scores correlate with the true "
   "ones at r = " + ", ".join(f"{r:.2f} (head {h})" for h, r in enumerate(r_lin)) +
   ": the feature-level QK matrices below summarise what the heads compute on this data as far as these "
   "correlations go (they explain " + ", ".join(f"{r * r:.0%}" for r in r_lin) + " of the score variance), and they "
   "are read from the weights, not tested by intervention.")

# %%
#| label: fig-highway-qk
#| fig-cap: "Feature-level QK circuit of each head, J̄_egoᵀ W_Qᵀ W_K J̄_oth / √d_k: entry (ego feature f, key feature g) is how much a key vehicle's attention score grows per unit of f times g (normalised features). Presence is constant on present vehicles and acts as a bias."
qk_feat = hws.qk_circuit(model, J["ego"], J["others"]).detach().numpy()  # [H, 7, 7]
fig, axes = plt.subplots(1, H, figsize=(4.2 * H, 3.8))
for h, ax in enumerate(np.atleast_1d(axes)):
    v = np.abs(qk_feat[h]).max()
    im = ax.imshow(qk_feat[h], cmap="RdBu_r", vmin=-v, vmax=v)
    ax.set_xticks(range(7), FEATURES, rotation=45, fontsize=8)
    ax.set_yticks(range(7), FEATURES, fontsize=8)
    ax.set(xlabel="key (other vehicle) feature", ylabel="query (ego) feature", title=f"head {h}")
    plt.colorbar(im, ax=ax, fraction=0.046)
fig.tight_layout()
plt.show()

# %% [markdown]
# Because the query is a single vector per scene, what matters for *which* vehicle wins the softmax is the key
# side: for the average ego state, the score of a vehicle is approximately linear in its features with
# coefficients $\bar e_{ego}^\top W_Q^{h\top} W_K^h \bar J_{oth}$. @tbl-highway-key-weights lists these
# coefficients, in score units per unit of normalised feature (x, y: per 100 m; vx, vy: per 20 m/s).

# %%
#| label: tbl-highway-key-weights
#| tbl-cap: "Key-side QK coefficients for the average ego state: change of a vehicle's attention score per unit of each normalised feature, per head."
with torch.no_grad():
    key_coef = torch.einsum("d,hde,ef->hf", ee_bar, M, J["others"]).numpy()  # [H, 7]
md_table([{"head": h, **{f: float(key_coef[h, i]) for i, f in enumerate(FEATURES)}} for h in range(H)], digits=3)

# %% [markdown]
# ## The OV circuit: what an attended vehicle does to the Q-values
#
# @fig-highway-ov shows, per head, $\bar R \cdot \tfrac12 W_O^h W_V^h \bar J_{oth}$: the change of each
# action's Q-value per unit of a feature of a vehicle the head attends to with weight 1, through the averaged
# linear readout. The presence column is the effect of attending to *some* vehicle at the mean state at all.

# %%
#| label: fig-highway-ov
#| fig-cap: "Feature-level OV circuit of each head through the averaged readout: ∂Q(action)/∂(feature of the attended vehicle) for full attention."
R = hws.readout_map(model, obs)  # [3, 64]
ov_feat = hws.ov_circuit(model, J["others"], R).detach().numpy()  # [H, 3, 7]
fig, axes = plt.subplots(1, H, figsize=(4.2 * H, 2.4))
for h, ax in enumerate(np.atleast_1d(axes)):
    v = np.abs(ov_feat[h]).max()
    im = ax.imshow(ov_feat[h], cmap="RdBu_r", vmin=-v, vmax=v)
    ax.set_xticks(range(7), FEATURES, rotation=45, fontsize=8)
    ax.set_yticks(range(3), ACTIONS, fontsize=8)
    ax.set_title(f"head {h}")
    plt.colorbar(im, ax=ax, fraction=0.046)
fig.tight_layout()
plt.show()

# %%
#| echo: false
pref = ov_feat[:, 2] - ov_feat[:, 0]  # FASTER minus SLOWER per feature
lines = []
for h in range(H):
    i = int(np.argmax(np.abs(pref[h, 1:]))) + 1
    lines.append(f"for head {h} the feature that most moves the FASTER − SLOWER preference of an attended vehicle is "
                 f"{FEATURES[i]} ({pref[h, i]:+.2f} per unit)")
md("Reading the FASTER − SLOWER difference of @fig-highway-ov: " + "; ".join(lines) + ".")

# %% [markdown]
# ## Attention on real episodes: head specialisation
#
# For every observation and every present other vehicle we compute, from the raw features, its distance to the
# ego vehicle (m), its closing speed (m/s, positive when the distance shrinks), its own speed, and whether it is
# ahead of the ego (positive projection of the relative position on the ego heading). @fig-highway-attn-scatter
# plots each head's attention weight against distance, and @tbl-highway-heads summarises how each head
# distributes its attention.

# %%
pattern = cache["attn.hook_pattern"]  # [T, H, 15]
V = hws.vehicle_table(obs, pattern)
# chance levels: how often a present other vehicle drawn uniformly at random in each step would be the nearest one
# (the mean of 1 / number of present vehicles) or an approaching one
per_step = V.groupby("obs").agg(n=("vehicle", "size"), approaching=("closing", lambda c: float((c > 0).mean())))
chance_nearest, chance_approaching = float((1 / per_step["n"]).mean()), float(per_step["approaching"].mean())
rows = []
for h in range(H):
    w = V[f"w{h}"]
    top = V.loc[V.groupby("obs")[f"w{h}"].idxmax()]
    ent = -(pattern[:, h] * pattern[:, h].clamp_min(1e-12).log()).sum(-1)
    rows.append({"head": h, "weight on ego": pattern[:, h, 0].mean().item(),
                 "entropy (nats)": ent.mean().item(),
                 "top vehicle is nearest": top["nearest"].mean(), "nearest by chance": chance_nearest,
                 "top vehicle approaching": (top["closing"] > 0).mean(), "approaching by chance": chance_approaching,
                 "ρ(weight, distance)": stats.spearmanr(w, V["distance"])[0],
                 "ρ(weight, closing speed)": stats.spearmanr(w, V["closing"])[0],
                 "ρ(weight, speed)": stats.spearmanr(w, V["speed"])[0],
                 "mean weight ahead / behind": V.loc[V.ahead, f"w{h}"].mean() / max(V.loc[~V.ahead, f"w{h}"].mean(), 1e-9)})
heads = pd.DataFrame(rows)

# %%
#| label: tbl-highway-heads
#| tbl-cap: "How each head distributes its attention over real episodes: mean weight on the ego itself, mean pattern entropy, how often the most-attended other vehicle is the nearest one or is approaching (next to the chance level: a present other vehicle drawn uniformly at random in each step), and Spearman correlations (ρ) of the weight on each present other vehicle with its geometry."
md_table(heads, digits=3)

# %%
#| label: fig-highway-attn-scatter
#| fig-cap: "Attention weight on each present other vehicle against its distance to the ego, per head, coloured by closing speed (red: approaching)."
fig, axes = plt.subplots(1, H, figsize=(4.5 * H, 3.2), sharey=True)
for h, ax in enumerate(np.atleast_1d(axes)):
    sc = ax.scatter(V["distance"], V[f"w{h}"], c=V["closing"].clip(-10, 10), cmap="coolwarm", s=6, vmin=-10, vmax=10)
    ax.set(xlabel="distance to ego (m)", title=f"head {h}")
np.atleast_1d(axes)[0].set_ylabel("attention weight")
plt.colorbar(sc, ax=axes, label="closing speed (m/s)")
plt.show()

# %%
#| echo: false
def describe(r):
    return (f"head {int(r['head'])} puts {r['weight on ego']:.2f} of its weight on the ego itself on average, its "
            f"most-attended vehicle is the nearest one in {100 * r['top vehicle is nearest']:.0f}% of the steps and "
            f"approaching in {100 * r['top vehicle approaching']:.0f}%, and its weight has rank correlation "
            f"ρ = {r['ρ(weight, distance)']:.2f} with the distance and ρ = {r['ρ(weight, closing speed)']:.2f} with the "
            f"closing speed")


md("In words: " + "; ".join(describe(r) for _, r in heads.iterrows()) + " (a negative ρ with distance means nearer "
   "vehicles get more weight, a positive ρ with closing speed that approaching ones do). For comparison, a present "
   f"other vehicle drawn uniformly at random is the nearest one in {100 * chance_nearest:.0f}% of the steps (there "
   f"are {per_step['n'].mean():.1f} present other vehicles per step on average) and an approaching one in "
   f"{100 * chance_approaching:.0f}%.")

# %% [markdown]
# ## Logit lens: which action each intermediate representation already points to
#
# The network's readout is the linear head applied to the last MLP layer. The classic logit lens applies that
# head to earlier 64-dimensional activations directly (`hook_resid`, `mlp.0.hook_post`); since the head was only
# trained on the last layer, we also use a "rest-of-network lens" for activations in residual space, applying the
# whole output MLP and head: the ego embedding alone (as if the attention wrote nothing, $\mathrm{resid} =
# e_{ego}/2$), each head alone ($\mathrm{resid} = (\mathrm{head}_h + e_{ego})/2$) and the attention alone
# ($\mathrm{resid} = \mathrm{combine}/2$). For each we report how often its argmax agrees with the agent's greedy
# action and the mean absolute difference from the final Q-values.

# %%
from rlinterp.interp import logit_lens

head = model.head
rest = lambda r: model.head(model.mlp(r))
lens = logit_lens(model, obs, hooks=["hook_resid", "mlp.0.hook_post", "mlp.1.hook_post"], readout=head)
with torch.no_grad():
    lens_rest = {"ego embedding only": rest(cache["ego_embed.hook_out"] / 2),
                 "attention only": rest(cache["attn.hook_combine"] / 2),
                 **{f"ego + head {h} only": rest((cache["attn.hook_result"][:, h] + cache["ego_embed.hook_out"]) / 2)
                    for h in range(H)},
                 "full residual (= Q)": rest(cache["hook_resid"])}
greedy = q.argmax(-1)
lens_rows = [{"representation": f"head(·) on {k}", "agrees with greedy action": (v.argmax(-1) == greedy).float().mean().item(),
              "mean |ΔQ|": (v - q).abs().mean().item()} for k, v in lens.items()]
lens_rows += [{"representation": f"head(mlp(·)) on {k}", "agrees with greedy action": (v.argmax(-1) == greedy).float().mean().item(),
               "mean |ΔQ|": (v - q).abs().mean().item()} for k, v in lens_rest.items()]
majority = int(torch.bincount(greedy, minlength=len(ACTIONS)).argmax())  # chance level: always the commonest action
lens_rows += [{"representation": f"always {ACTIONS[majority]} (chance level)",
               "agrees with greedy action": (greedy == majority).float().mean().item(), "mean |ΔQ|": float("nan")}]
lens_final_err = (lens["mlp.1.hook_post"] - q).abs().max().item()

# %%
#| label: tbl-highway-lens
#| tbl-cap: "Logit lens on the ego-attention network: agreement of each lens' argmax with the greedy action and mean absolute difference from the final Q-values, over all observations. The last row is the chance level: always the agent's commonest action."
md_table(lens_rows, digits=3)

# %%
#| echo: false
greedy_share = {a: (greedy == i).float().mean().item() for i, a in enumerate(ACTIONS)}
ego_only = lens_rest["ego embedding only"].argmax(-1)
claim(lens_final_err < 1e-5, "the lens of the last layer reproduces the Q-values")
md(f"The lens of the last layer reproduces the Q-values exactly (largest difference {lens_final_err:.1e}), as it "
   f"must. The greedy actions in these episodes are " + ", ".join(f"{a} {100 * s:.0f}%" for a, s in greedy_share.items())
   + f". From the ego embedding alone the network would choose {ACTIONS[int(ego_only.mode().values)]} most often "
     f"({100 * (ego_only == ego_only.mode().values).float().mean():.0f}% of the steps) and agree with the agent "
     f"{100 * (ego_only == greedy).float().mean():.0f}% of the time; with the attention output added back "
     f"(through either head alone) the agreement is "
     + ", ".join(f"{100 * (lens_rest[f'ego + head {h} only'].argmax(-1) == greedy).float().mean():.0f}% (head {h})"
                 for h in range(H)) + f", against {100 * greedy_share[ACTIONS[majority]]:.0f}% for always choosing "
     f"{ACTIONS[majority]}, the agent's commonest action (the chance level of these agreements).")

# %% [markdown]
# ## Discussion
#
# The weight-based circuits are exact only per observation; the averaged maps are a linear summary whose
# faithfulness we measured by the score correlation above. The per-head OV matrices go through an averaged readout,
# so they describe the *typical* direction in which an attended vehicle pushes the decision, not its size in any
# particular scene. None of these readings is tested by intervention here: the QK and OV matrices and the logit lens
# are read from weights and activations. @sec-highway-attributions compares them with attributions, neurons and
# controlled scenes on individual inputs (still observational), and @sec-highway-causal intervenes on the attention
# heads and the residual (patching, ablation, steering), which tests what the heads do for the decision but not the
# feature-level QK/OV readings themselves.
