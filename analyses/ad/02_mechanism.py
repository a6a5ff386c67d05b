# %% [markdown]
# # Inside the AD transformer: where the goal goes {#sec-ad-mechanism}
#
# The previous chapter trained a small transformer by Algorithm Distillation and watched it improve across episodes
# on held-out Dark Room goals. This chapter asks how. In Dark Room everything the agent needs to know about a task
# is *where the goal is*, and the only evidence is a reward token: the step whose previous reward is 1 sits on the
# goal cell. A model that "learns in context" must therefore (i) find such tokens in its context, (ii) carry the
# goal's location to the current step, and (iii) turn "goal at (x, y), I am at (x', y')" into a move. Before the
# goal has been seen it must instead explore. We look for each piece with the standard tools, all run through
# TransformerLens hooks on the unmodified `HookedTransformer`:
#
# - **Attention patterns:** do heads at the current step attend to past rewarding steps?
# - **Linear probes** (`rlinterp.interp.probes`, with shuffled-label controls): are "goal found yet" and the goal's
#   coordinates linearly readable from the residual stream, and from which layer on?
# - **Logit lens** (`rlinterp.interp.lens`): at which layer does the final action become readable?
# - **Activation patching:** take a context whose earlier episodes contain a rewarding step and a corrupted copy in
#   which those rewards are erased (the same trajectory, reward flags set to 0). Patching the clean residual stream
#   into the corrupted run, layer by layer, at the rewarding positions or at the current position, shows where the
#   goal information lives and when it moves.
#
# The data are the model's own rollouts (sampling, as in the previous chapter, on test sampling seeds of the study's
# evaluation protocol) on all 81 goals, cut into windows of
# as many whole episodes as the model's context holds, the windows it acts on; analyses read the positions of the
# last, current episode of each window.

# %% tags=["parameters"]
n_rollout_episodes: int = 12  # episodes per rollout (windows end at episodes K..n; K: the context length in episodes) [range: [1, inf)]
n_rollout_seeds: int = 2  # rollouts per goal (all 81 goals): the first n test sampling seeds of rlinterp.seeds.split("ad") [range: [1, inf)]
probe_steps: int = 200  # L-BFGS steps per logistic probe [range: [1, inf)]
n_patch: int = 200  # windows used for activation patching [range: [1, inf)]
seed: int = 0  # random seed for everything [range: [0, inf)]
device: str = "cpu"  # torch device

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from rlinterp import artifacts
from rlinterp.models import ad_transformer as adt
from rlinterp.studies import ad as ads
from rlinterp.envs import darkroom as dr
from rlinterp.interp import fit_probe
from rlinterp.interp.lens import transformer_readout
from rlinterp.pipeline.report import claim, md, md_table
from rlinterp.seeds import split

torch.set_num_threads(1)
torch.manual_seed(seed)
model = artifacts.load("ad/darkroom_ad", device=device)
cfg = model.ad_cfg
K, T, L, H = cfg.n_ctx_episodes, cfg.episode_len, model.cfg.n_layers, model.cfg.n_heads
if n_rollout_episodes < K:
    raise ValueError(f"n_rollout_episodes must be >= {K} (the context length in episodes), got {n_rollout_episodes}")
train_goals, test_goals = dr.darkroom_goal_split(seed=0)
goals = np.repeat(np.concatenate([train_goals, test_goals]), n_rollout_seeds, 0)
hist = ads.rollout_darkroom(model, goals, n_episodes=n_rollout_episodes, temperature=1.0,
                           seeds=np.tile(split("ad").test_seeds(n_rollout_seeds), len(goals) // n_rollout_seeds))

# windows of K episodes ending at every episode e >= K-1: tokens (N, K*T), goal (N, 2)
starts = range(0, n_rollout_episodes - K + 1)
tokens = torch.from_numpy(np.concatenate([hist["tokens"][:, s * T:(s + K) * T] for s in starts]))
win_goal = np.concatenate([goals for _ in starts])
_, _, prev_r = adt.unpack_tokens(tokens, cfg.n_actions)
found = (prev_r.cumsum(1) > 0)  # (N, K*T): a rewarding step at or before this position
found_before = prev_r[:, :(K - 1) * T].sum(1) > 0  # goal seen in the earlier episodes of the window
cur = slice((K - 1) * T, K * T)  # positions of the current episode
# one forward pass over all windows, caching only what the sections below read (attention patterns, the embedding
# and the residual stream: the probes and the logit lens)
LENS_HOOKS = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(L)]
kept = {"hook_embed", "hook_pos_embed", *LENS_HOOKS, *(f"blocks.{l}.attn.hook_pattern" for l in range(L))}
logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in kept)
md(f"{len(tokens):,} windows of {K} episodes ({K * T} tokens); in {found_before.float().mean():.0%} of them the goal "
   f"was already rewarded in an earlier episode of the window.")

# %% [markdown]
# ## Attention to rewarding steps
#
# For every head we measure the attention that positions of the current episode pay to the rewarding steps of the
# earlier episodes (summed over those keys), in windows that contain at least one, and compare it with what uniform
# attention over the causal context would give.

# %%
#| label: fig-attention
#| fig-cap: "Left: attention mass from current-episode positions to rewarding steps of earlier episodes, per layer and head (bars), against uniform attention over the context (black ticks). Right: the attention pattern of the head with the largest mass, for one window (query rows = current episode; key columns = the whole context; dotted lines = episode boundaries; red ticks = rewarding steps)."
rew_keys = (prev_r == 1) & (torch.arange(K * T)[None] < (K - 1) * T)  # (N, pos)
sel = found_before
mass = np.zeros((L, H))
for l in range(L):
    pat = cache[f"blocks.{l}.attn.hook_pattern"][sel][:, :, cur]  # (n, H, q, k)
    mass[l] = (pat * rew_keys[sel][:, None, None, :]).sum(-1).mean((0, 2)).numpy()
q_pos = torch.arange(cur.start, cur.stop)
uniform = float((rew_keys[sel].sum(1, keepdim=True) / (q_pos[None] + 1)).mean())
l_best, h_best = np.unravel_index(mass.argmax(), mass.shape)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 1.4]})
labels = [f"L{l}H{h}" for l in range(L) for h in range(H)]
axes[0].bar(labels, mass.ravel())
axes[0].axhline(uniform, color="k", lw=1)
axes[0].set_ylabel("attention to rewarding steps")
axes[0].tick_params(axis="x", rotation=90)
i = int(torch.nonzero(sel)[0])
pat = cache[f"blocks.{l_best}.attn.hook_pattern"][i, h_best, cur].numpy()
axes[1].imshow(pat, aspect="auto", cmap="viridis")
for b in range(1, K):
    axes[1].axvline(b * T - 0.5, color="w", ls=":", lw=1)
for k in torch.nonzero(rew_keys[i])[:, 0].tolist():
    axes[1].plot([k, k], [-0.5, 1], color="r", lw=2)
axes[1].set_xlabel("key position")
axes[1].set_ylabel("query (current-episode step)")
axes[1].set_title(f"L{l_best}H{h_best}")
plt.tight_layout()
plt.show()

# %%
#| echo: false
md(f"The head with the most attention on earlier rewarding steps is L{l_best}H{h_best}: {mass.max():.2f} of its "
   f"attention from current-episode positions goes to them, {mass.max() / uniform:.1f} times what uniform attention "
   f"over the context would give ({uniform:.3f}).")

# %% [markdown]
# ## Linear probes: "goal found yet" and the goal's coordinates
#
# Logistic probes on the residual stream after each block (current-episode positions) for two features: whether a
# rewarding step has occurred at or before this position (binary), and, at positions where it has, the goal's x and
# y coordinates (9 classes each). Held-out accuracy is compared with the same probe on shuffled labels and the
# majority-class rate.

# %%
#| label: tbl-ad-probes
#| tbl-cap: "Held-out accuracy of logistic probes on the residual stream (current-episode positions), with shuffled-label control and majority-class chance."
f_cur = found[:, cur].reshape(-1)
gx = torch.from_numpy(np.repeat(win_goal[:, 0], T)).long()
gy = torch.from_numpy(np.repeat(win_goal[:, 1], T)).long()
rows = []
for name in ["hook_embed"] + [f"blocks.{l}.hook_resid_post" for l in range(L)]:
    X = (cache[name] + (cache["hook_pos_embed"] if name == "hook_embed" else 0))[:, cur].reshape(-1, model.cfg.d_model)
    row = {"layer": "embed" if name == "hook_embed" else f"after block {name.split('.')[1]}"}
    for feat, Xs, y in [("found", X, f_cur.long()), ("goal x", X[f_cur], gx[f_cur]), ("goal y", X[f_cur], gy[f_cur])]:
        r = fit_probe(Xs, y, kind="logistic", seed=seed, steps=probe_steps)
        row[f"{feat}"] = r.score
        row[f"{feat} (control / chance)"] = f"{r.control:.2f} / {r.chance:.2f}"
    rows.append(row)
probe_rows = rows
md_table(rows, digits=2)

# %% [markdown]
# ## Logit lens
#
# Reading each intermediate residual stream with the final LayerNorm and unembedding shows when the model's action
# becomes decided, separately for positions before and after the goal has been seen.

# %%
#| label: fig-lens
#| fig-cap: "Logit lens: fraction of current-episode positions at which the argmax of the lens readout after each block equals the model's final action, split by whether the goal has been seen."
with torch.no_grad():  # the logit lens (rlinterp.interp.logit_lens) read from the cache of the forward pass above
    lens = {h: transformer_readout(model)(cache[h]) for h in LENS_HOOKS}
final = logits[:, cur].argmax(-1)
fig, ax = plt.subplots(figsize=(5, 3.2))
names = list(lens)
for lab, m in [("goal seen", found[:, cur]), ("goal not seen", ~found[:, cur])]:
    acc = [float((lens[n][:, cur].argmax(-1) == final)[m].float().mean()) for n in names]
    ax.plot(range(len(names)), acc, "o-", label=lab)
ax.set_xticks(range(len(names)), ["embed"] + [f"block {l}" for l in range(L)])
ax.set_ylabel("agreement with final action")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Activation patching: erasing and restoring the reward
#
# Clean runs are windows whose earlier episodes contain a rewarding step; corrupted runs are the same tokens with
# those rewards erased. The metric is the probability the model puts, at the first step of the current episode, on
# moves that bring it closer to the goal (no-op if it is at the goal). We patch the clean residual stream before
# each block (and after the last) into the corrupted run, either at the rewarding positions only or at the current
# position only, and report the fraction of the clean-minus-corrupted gap that is restored.

# %%
#| label: fig-patching
#| fig-cap: "Activation patching: restored fraction of the goal-directed probability at the first current-episode step, patching the clean residual stream at the rewarding positions (blue) or at the current position (orange), layer by layer."
idx = torch.nonzero(found_before)[:, 0][:n_patch]
clean = tokens[idx]
rew_pos = rew_keys[idx]  # (n, pos)
corrupt = clean - rew_pos.long()  # the reward flag is the lowest bit of a token: r=1 -> r=0
q = (K - 1) * T  # first step of the current episode (agent at the centre)
g = torch.from_numpy(win_goal[idx.numpy()])
d = g - cfg.grid_size // 2  # goal relative to the start cell (the centre)
good = torch.stack([d[:, 0] < 0, d[:, 0] > 0, d[:, 1] < 0, d[:, 1] > 0, (d == 0).all(-1)], 1).float()  # (n, 5)


def metric(lg):
    return (lg[:, q].softmax(-1) * good).sum(-1)  # (n,)


hooks = [f"blocks.{l}.hook_resid_pre" for l in range(L)] + [f"blocks.{L - 1}.hook_resid_post"]
with torch.no_grad():  # one clean forward pass gives the clean metric and the activations patched in below
    lg_clean, ccache = model.run_with_cache(clean, names_filter=lambda n: n in hooks)
    m_clean = metric(lg_clean)
    m_corrupt = metric(model(corrupt))
restored = {}
for where, mask in [("rewarding positions", rew_pos), ("current position", torch.arange(K * T)[None] == q)]:
    vals = []
    for h in hooks:
        def patch(act, hook, mask=mask):
            m = mask[..., None].expand_as(act)
            return torch.where(m, ccache[hook.name], act)
        with torch.no_grad():
            vals.append(float(((metric(model.run_with_hooks(corrupt, fwd_hooks=[(h, patch)])) - m_corrupt).mean())
                              / (m_clean - m_corrupt).mean()))
    restored[where] = vals
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for where, vals in restored.items():
    ax.plot(range(len(hooks)), vals, "o-", label=where)
ax.set_xticks(range(len(hooks)), [f"before {l}" for l in range(L)] + ["after last"])
ax.set_ylabel("restored fraction")
ax.axhline(0, color="k", lw=0.5)
ax.axhline(1, color="k", lw=0.5, ls="--")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
#| echo: false
pr = probe_rows
best_x = max(pr, key=lambda r: r["goal x"])
md(f"Erasing the rewards lowers the goal-directed probability at the first step of the current episode from "
   f"{float(m_clean.mean()):.2f} to {float(m_corrupt.mean()):.2f} (mean over {len(idx)} windows). Patching the "
   f"rewarding positions restores {restored['rewarding positions'][0]:.0%} of the gap before block 0 and "
   f"{restored['rewarding positions'][-1]:.0%} after the last block; patching the current position restores "
   f"{restored['current position'][0]:.0%} before block 0 and {restored['current position'][-1]:.0%} after the "
   f"last block. The goal's x coordinate is best decoded {best_x['layer']} (accuracy {best_x['goal x']:.2f}), "
   f"and 'goal found yet' reaches {max(r['found'] for r in pr):.2f}.")

# %%
#| echo: false
rp, cp = np.array(restored["rewarding positions"]), np.array(restored["current position"])
cross = int(np.argmax(cp >= rp)) if (cp >= rp).any() else None
where = "never" if cross is None else ("before block 0" if cross == 0 else
                                       f"before block {cross}" if cross < L else "only after the last block")
first_x = next((r["layer"] for r in pr if r["goal x"] > 0.8), None)
claim(cross is not None, "patching the current position restores at least as much as patching the rewarding "
      "positions at some layer (the reward information moves to the current position)")
md(f"The information carried by the rewards moves from the rewarding positions to the current position across "
   f"the layers: patching the current position first restores at least as much as patching the rewarding "
   f"positions {where}. The first layer from which the goal's x coordinate is decoded with accuracy above 0.8: "
   f"{first_x or 'none'}.")

# %% [markdown]
# ## Discussion
#
# These measurements sketch the goal-directed half of the model: how much the heads read the rewarding steps of
# the context (@fig-attention; in a window where the goal was found the agent usually stays on it, so rewarding
# steps are a large share of the keys and uniform attention is a demanding baseline), whether the goal's
# coordinates and "goal seen" are linearly readable in the residual stream (@tbl-ad-probes), and in which layers the
# information is moved from the rewarding tokens to the token that acts (@fig-patching). The second and third are
# what the sceptical reading of AD predicts for Dark Room, where one rewarding step identifies the task. Only the
# patching is an intervention: the attention shares and the probes are correlational, and no probe direction is
# ablated or steered here, so they show what is readable, not what the model uses. What this chapter does not show is the exploration half of
# in-context learning, i.e. how the model chooses where to go *before* any reward is seen; avoiding cells visited in
# earlier episodes is the natural hypothesis to test next with the same tools (probes for visited cells, patching
# of earlier unrewarded episodes).
