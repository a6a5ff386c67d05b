# %% [markdown]
# # Does AD do RL in context, or imitate a learner? {#sec-ad-rl-or-imitation}
#
# The seed question behind this study is sceptical: a transformer trained by Algorithm Distillation improves from
# episode to episode on new tasks, but is that *reinforcement learning* (behaviour driven by the rewards in its
# context) or *imitation of a learner* (reproducing what the source algorithm typically does at that stage of
# learning, with rewards used, if at all, only as a cue for which stage it is in)? Both readings predict the
# learning curve of the first chapter. They differ in two places, and this chapter measures both.
#
# 1. **Matched stages.** An imitator should explore the way the source explores at the matching stage of its own
#    learning: the same state-visitation distribution, coverage and action statistics as the source after the same
#    amount of (subsampled) experience. We compare AD's episode $e$ with every episode of the source on the same
#    held-out goals and ask which source episode it resembles most, by state visitation (total-variation distance),
#    action distribution and return.
# 2. **Contexts it never saw.** We hand AD short contexts (`n_context` episodes) that no source history contains and
#    let it play the next episode: the source's late-stage trajectories with the reward flags moved to another cell of the path
#    or to a cell the trajectory never visits (a teleport: an impossible history), with the rewards erased, with two
#    rewarded cells, with the episodes in the wrong order (a successful episode followed by exploratory ones), and
#    histories of a different learner (the expert, a random walk). An in-context RL agent goes where the context's
#    reward says; a stage imitator follows the path it has been shown, or explores as the source would at the stage
#    the context looks like.
#
# Everything uses the shipped AD model of the first chapter (`data/ad/darkroom_ad.pt`), the source it was distilled
# from (posterior sampling, PSRL) and the 16 held-out goals; AD samples its actions with test sampling seeds of the
# study's evaluation protocol (`rlinterp.seeds.split("ad")`), and nothing here is chosen on them.

# %% tags=["parameters"]
n_seeds: int = 5  # rollouts (and source histories) per held-out goal; AD samples with the first n test seeds of rlinterp.seeds.split("ad") [range: [1, inf)]
n_ad_episodes: int = 20  # in-context episodes per AD rollout for the matched-stage comparison [range: [1, inf)]
n_source_episodes: int = 20  # episodes per source history [range: [1, inf)]
late_episode: int = 12  # first source episode (0-based) of the late-stage (goal found) contexts [range: [0, inf)]
n_context: int = 3  # episodes per context in the counterfactual experiments [range: [1, inf)]
n_play: int = 2  # sampled plays of the next episode per context in the counterfactual experiments [range: [1, inf)]
temperature: float = 1.0  # AD sampling temperature (1 is the source's own action distribution) [range: (0, inf)]
seed: int = 0  # random seed for everything [range: [0, inf)]
device: str = "cpu"  # torch device

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from rlinterp import artifacts
from rlinterp.models import ad_transformer as adt
from rlinterp.studies import ad as ads
from rlinterp.learners import sources
from rlinterp.envs import darkroom as dr

from rlinterp.pipeline.report import md, md_table
from rlinterp.seeds import split

torch.set_num_threads(1)
torch.manual_seed(seed)
model = artifacts.load("ad/darkroom_ad", device=device)
cfg = model.ad_cfg
K, T, A, S, G = cfg.n_ctx_episodes, cfg.episode_len, cfg.n_actions, cfg.n_obs, cfg.grid_size
stride, source_name = model.stride, model.source
learner = sources.DARKROOM_LEARNERS[source_name]
if not 1 <= n_context <= K - 1:
    raise ValueError(f"n_context must lie in [1, {K - 1}] (the model's context holds {K} episodes), got {n_context}")
if late_episode + (n_context - 1) * stride >= n_source_episodes or n_context * stride > n_source_episodes:
    raise ValueError(f"late_episode + {(n_context - 1) * stride} must be < n_source_episodes ({n_source_episodes}); "
                     f"lower late_episode or n_context, or raise n_source_episodes")
_, test_goals = dr.darkroom_goal_split(seed=0)
goals = np.repeat(test_goals, n_seeds, 0)  # (B, 2)
B = len(goals)
oracle = dr.oracle_return(test_goals).mean()
ad = ads.rollout_darkroom(model, goals, n_episodes=n_ad_episodes, temperature=temperature,
                          seeds=np.tile(split("ad").test_seeds(n_seeds), len(test_goals)))
src = learner(goals, n_source_episodes, seed=seed + 2)

# %% [markdown]
# ## AD against the source at matched stages of learning
#
# For every held-out goal we pool the cells visited in one episode index over the `n_seeds` rollouts (AD) or
# histories (source), giving a visitation distribution over the 81 cells per goal and episode, and likewise the
# distribution over the 5 actions. For AD's episode $e$ we find the source episode $e'$ that minimises the
# total-variation (TV) distance between the two visitation distributions, averaged over goals. If AD imitates its
# source's learning progress, $e'$ should grow with $e$ and track the source episode with the same return; the first
# chapter's training windows put AD's episode $e$ near source episode $e \times$ `stride`.

# %%
def visitation(obs: np.ndarray, n: int) -> np.ndarray:
    """obs (B, E, T) -> per-goal visitation distributions (n_goals, E, n), pooled over the seeds of each goal."""
    E = obs.shape[1]
    oh = np.zeros((B, E, n))
    np.add.at(oh, (np.arange(B)[:, None, None], np.arange(E)[None, :, None], obs), 1.0)
    oh = oh.reshape(len(test_goals), n_seeds, E, n).sum(1)
    return oh / oh.sum(-1, keepdims=True)


def tv_matrix(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(g, E1, n), (g, E2, n) -> mean over goals of the TV distance, (E1, E2)."""
    return 0.5 * np.abs(p[:, :, None] - q[:, None]).sum(-1).mean(0)


def coverage(obs: np.ndarray) -> np.ndarray:
    """Distinct cells per episode, (B, E)."""
    return np.array([[len(np.unique(o)) for o in row] for row in obs])


def novelty(obs: np.ndarray, window: int | None) -> np.ndarray:
    """Fraction of an episode's distinct cells not visited in the previous ``window`` episodes (all if None), (B, E)."""
    Bn, E, _ = obs.shape
    out = np.zeros((Bn, E))
    for b in range(Bn):
        for e in range(E):
            lo = 0 if window is None else max(0, e - window)
            seen = set(obs[b, lo:e].ravel().tolist())
            cur = set(obs[b, e].tolist())
            out[b, e] = len(cur - seen) / len(cur)
    return out


vis_ad, vis_src = visitation(ad["obs"], S), visitation(src["obs"], S)
act_ad, act_src = visitation(ad["actions"], A), visitation(src["actions"], A)
tv_vis, tv_act = tv_matrix(vis_ad, vis_src), tv_matrix(act_ad, act_src)
ret_ad, ret_src = ad["returns"].mean(0), src["returns"].mean(0)
match_vis = tv_vis.argmin(1)  # (E_ad,) best-matching source episode by visitation
match_act = tv_act.argmin(1)
match_ret = np.abs(ret_ad[:, None] - ret_src[None]).argmin(1)  # source episode with the closest mean return
# baseline: TV between two independent halves of the source's own histories at the same episode (sampling noise)
half = n_seeds // 2
if half >= 1:
    o = src["obs"].reshape(len(test_goals), n_seeds, n_source_episodes, T)
    ohs = []
    for part in (o[:, :half], o[:, half:2 * half]):
        oh = np.zeros((len(test_goals), n_source_episodes, S))
        for s_ in range(part.shape[1]):
            np.add.at(oh, (np.arange(len(test_goals))[:, None, None], np.arange(n_source_episodes)[None, :, None],
                           part[:, s_]), 1.0)
        ohs.append(oh / oh.sum(-1, keepdims=True))
    tv_noise = 0.5 * np.abs(ohs[0] - ohs[1]).sum(-1).mean(0)  # (E_src,)
else:
    tv_noise = np.full(n_source_episodes, np.nan)
cov_ad, cov_src = coverage(ad["obs"]).mean(0), coverage(src["obs"]).mean(0)
nov_ad = novelty(ad["obs"], K - 1).mean(0)
nov_src_all, nov_src_win = novelty(src["obs"], None).mean(0), novelty(src["obs"], (K - 1) * stride).mean(0)

# %%
#| label: fig-matched
#| fig-cap: "AD against its source on the held-out goals. Left: TV distance between AD's state visitation in episode e (rows) and the source's in each episode (columns); white dots: the best-matching source episode, black line: e x stride. Middle: best-matching source episode by visitation, by actions and by return, per AD episode. Right: distinct cells per episode (coverage) against the equivalent source episode (AD drawn at x = e x stride)."
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
im = axes[0].imshow(tv_vis, aspect="auto", cmap="viridis", origin="lower",
                    extent=(0.5, n_source_episodes + 0.5, 0.5, n_ad_episodes + 0.5))
e_ad = np.arange(1, n_ad_episodes + 1)
axes[0].plot(match_vis + 1, e_ad, "w.", ms=5)
axes[0].plot(np.minimum(e_ad * stride, n_source_episodes), e_ad, "k-", lw=1)
axes[0].set_xlabel("source episode")
axes[0].set_ylabel("AD episode")
plt.colorbar(im, ax=axes[0], label="TV (visitation)")
axes[1].plot(e_ad, match_vis + 1, "o-", ms=3, label="by visitation")
axes[1].plot(e_ad, match_act + 1, "s-", ms=3, label="by actions")
axes[1].plot(e_ad, match_ret + 1, "^-", ms=3, label="by return")
axes[1].plot(e_ad, e_ad * stride, "k--", lw=1, label=f"e x {stride}")
axes[1].set_xlabel("AD episode")
axes[1].set_ylabel("best-matching source episode")
axes[1].legend(fontsize=7)
axes[2].plot(np.arange(1, n_source_episodes + 1), cov_src, label="source")
axes[2].plot(e_ad * stride, cov_ad, "o-", ms=3, label=f"AD (x = e x {stride})")
axes[2].set_xlabel("source episode")
axes[2].set_ylabel("distinct cells per episode")
axes[2].legend(fontsize=7)
plt.tight_layout()
plt.show()

# %%
#| label: tbl-matched
#| tbl-cap: "Per AD episode: return (fraction of oracle), coverage, share of new cells (not visited in the previous K-1 episodes, the ones in AD's context), the best-matching source episode by visitation / actions / return with the TV distance to it, and the TV between two independent halves of the source's histories at that episode (sampling-noise floor)."
rows = []
for e in sorted({0, 1, 2, 4, 9, n_ad_episodes - 1} & set(range(n_ad_episodes))):
    rows.append({"AD episode": e + 1, "return": f"{ret_ad[e]:.2f} ({ret_ad[e] / oracle:.0%})",
                 "coverage": float(cov_ad[e]), "new cells": float(nov_ad[e]),
                 "match (visitation)": int(match_vis[e]) + 1, "TV": float(tv_vis[e, match_vis[e]]),
                 "noise TV": float(tv_noise[match_vis[e]]), "match (actions)": int(match_act[e]) + 1,
                 "match (return)": int(match_ret[e]) + 1})
md_table(rows, digits=2)

# %%
#| echo: false
corr_vr = float(np.corrcoef(match_vis, match_ret)[0, 1]) if np.std(match_vis) > 0 and np.std(match_ret) > 0 else float("nan")
# the slope is fitted while AD is still learning (mean return below 90 % of the oracle): once AD and the source
# both walk straight to the goal every episode, all later source episodes match equally well
learning = ret_ad < 0.9 * oracle
n_learn = int(learning.sum())
slope = float(np.polyfit(e_ad[learning], match_vis[learning] + 1, 1)[0]) if n_learn > 1 else float("nan")
e_cmp = min(10, n_ad_episodes) - 1
src_same = min(e_cmp, n_source_episodes - 1)
mv = int(match_vis[e_cmp])
md(f"Matched by state visitation, the best-matching source episode grows by "
   f"{slope:.1f} source episodes per AD episode over the {n_learn} AD episodes with mean return below 90 % of the "
   f"oracle (training windows are {stride} apart), and over all episodes it correlates with the "
   f"source episode of equal return at r = {corr_vr:.2f}. At AD episode {e_cmp + 1} the closest source episode by "
   f"visitation is {match_vis[e_cmp] + 1} (TV {tv_vis[e_cmp, match_vis[e_cmp]]:.2f}, against a sampling-noise floor "
   f"of {tv_noise[match_vis[e_cmp]]:.2f} between halves of the source's own histories), by actions "
   f"{match_act[e_cmp] + 1} and by return {match_ret[e_cmp] + 1}; the source's episode {src_same + 1} itself is at "
   f"TV {tv_vis[e_cmp, src_same]:.2f}. AD visits {cov_ad[0]:.1f} distinct cells in its first episode and "
   f"{cov_ad[e_cmp]:.1f} in episode {e_cmp + 1}; the source visits {cov_src[0]:.1f} in its first and "
   f"{cov_src[min(e_cmp * stride, n_source_episodes - 1)]:.1f} in episode {min(e_cmp * stride, n_source_episodes - 1) + 1}. "
   f"Of the cells AD visits in episode {e_cmp + 1}, {nov_ad[e_cmp]:.0%} were not in the {K - 1} earlier episodes "
   f"of its context; for the source at its visitation-matched episode {mv + 1}, {nov_src_win[mv]:.0%} were not in the "
   f"previous {(K - 1) * stride} episodes, and at episode {min(e_cmp * stride, n_source_episodes - 1) + 1}, {nov_src_win[min(e_cmp * stride, n_source_episodes - 1)]:.0%} "
   f"were not in the previous {(K - 1) * stride} episodes and {nov_src_all[min(e_cmp * stride, n_source_episodes - 1)]:.0%} "
   f"were never visited before.")

# %% [markdown]
# ## Contexts AD never saw
#
# Base contexts are `n_context` episodes of the source's own histories on each held-out goal $g$, `stride` episodes
# apart like AD's training windows: a *late* window from episode `late_episode` on, in which the source has mostly
# found the goal and walks to it, and an *early* window (the first episodes), which is exploration. Each is edited,
# then AD plays the next episode (`n_play` samples per context) in a room whose reward sits on the cell
# the edited context *claims* is the goal, $c$. We record how often AD steps on $c$, how often on the source's real
# goal $g$ (when $c \neq g$), how many cells it covers, and the probability its first action moves towards $c$. In
# a token, the reward flag says "the cell I am in is rewarding", so moving a reward is a change of flag bits, and a
# cell the trajectory never visits can only be rewarded by a teleport (one token's cell is replaced).
#
# | condition | context | claimed goal $c$ |
# |---|---|---|
# | late, true | unchanged late window | $g$ |
# | late, rewards erased | late window, every reward flag 0 | $g$ |
# | late, reward moved on path | late window, reward flag on the path's cell halfway to $g$ instead of $g$ | halfway cell |
# | late, reward at unvisited cell | late window, rewards erased, one teleport step onto a never-visited rewarded cell | that cell |
# | late, two rewarded cells | late window with rewards on $g$ and on the halfway cell | halfway cell |
# | shuffled order | one late (rewarded) episode, then early (exploratory) episodes | $g$ |
# | early, true | unchanged early window | $g$ |
# | early, reward on a visited cell | early window, reward flag on a cell visited in the last context episode | that cell |
# | expert | expert episodes to $g$ | $g$ |
# | random | uniformly random episodes (rewards where they hit $g$) | $g$ |

# %%
rng = np.random.default_rng(seed + 3)


def tokens_of(obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """Histories (n, E, T) -> context tokens (n, E*T)."""
    n = len(obs)
    return adt.pack_tokens(obs.reshape(n, -1), actions.reshape(n, -1), rewards.reshape(n, -1), S, A, T)


def set_rewards(tokens: np.ndarray, rewarded: np.ndarray) -> np.ndarray:
    return ads.set_token_rewards(tokens, rewarded, A, T)


def cell(xy: np.ndarray) -> np.ndarray:
    return xy[..., 1] * G + xy[..., 0]


def play_after(prefix: np.ndarray, claimed: np.ndarray, n: int, seed_: int) -> dict:
    out = ads.play_after(model, prefix, claimed, n, temperature, seed_)
    return {"obs": out["cells"], "p0": out["p0"]}


def toward(p0: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Probability mass of the first action on moves that shorten the distance from the centre to target (m, 2)."""
    d = target - G // 2
    good = np.stack([d[:, 0] < 0, d[:, 0] > 0, d[:, 1] < 0, d[:, 1] > 0, (d == 0).all(-1)], 1)
    return (p0 * good).sum(-1)


late = [late_episode + i * stride for i in range(n_context)]
early = [i * stride for i in range(n_context)]
ctx_late = tokens_of(src["obs"][:, late], src["actions"][:, late], src["rewards"][:, late])
ctx_early = tokens_of(src["obs"][:, early], src["actions"][:, early], src["rewards"][:, early])
late_obs = src["obs"][:, late].reshape(B, -1)
g_cell = cell(goals)
visited_late = np.zeros((B, S), bool)
visited_late[np.arange(B)[:, None], late_obs] = True


def halfway(b: int) -> np.ndarray:
    """A visited cell of the late window about halfway between the centre and the goal (not the goal)."""
    xy = np.stack([late_obs[b] % G, late_obs[b] // G], -1)
    dc, dg = np.abs(xy - G // 2).sum(-1), np.abs(xy - goals[b]).sum(-1)
    score = np.abs(dc - dg) + 100 * (late_obs[b] == g_cell[b]) + 100 * (dc == 0)
    return xy[score.argmin()]


mid = np.stack([halfway(b) for b in range(B)])  # (B, 2)
conds = {}
onehot = lambda c: np.eye(S, dtype=bool)[c]
conds["late, true"] = (ctx_late, goals)
conds["late, rewards erased"] = (set_rewards(ctx_late, np.zeros((B, S), bool)), goals)
conds["late, reward moved on path"] = (set_rewards(ctx_late, onehot(cell(mid))), mid)
# impossible history: rewards erased, then the middle step of the last context episode teleports onto an unvisited cell
unvis = np.array([rng.choice(np.nonzero(~visited_late[b])[0]) if (~visited_late[b]).any() else g_cell[b]
                  for b in range(B)])
tel = set_rewards(ctx_late, np.zeros((B, S), bool))
p_tel = (n_context - 1) * T + T // 2
obs_, pa_, pr_ = (t.numpy() for t in adt.unpack_tokens(torch.from_numpy(tel), A))
obs_[:, p_tel], pr_[:, p_tel] = unvis, 1
conds["late, reward at unvisited cell"] = (adt.step_token(obs_, pa_, pr_, A), np.stack([unvis % G, unvis // G], -1))
conds["late, two rewarded cells"] = (set_rewards(ctx_late, onehot(g_cell) | onehot(cell(mid))), mid)
conds["shuffled order"] = (np.concatenate([ctx_late[:, :T], ctx_early[:, T:]], 1), goals)
conds["early, true"] = (ctx_early, goals)
last_early = src["obs"][:, early[-1]]
centre_cell = G // 2 * G + G // 2
vcell = np.array([rng.choice(c_) if len(c_ := np.setdiff1d(last_early[b], [g_cell[b], centre_cell])) else g_cell[b]
                  for b in range(B)])
conds["early, reward on a visited cell"] = (set_rewards(ctx_early, onehot(vcell)), np.stack([vcell % G, vcell // G], -1))
ex = sources.darkroom_expert(goals, n_context, seed=seed + 4)
conds["expert"] = (tokens_of(ex["obs"], ex["actions"], ex["rewards"]), goals)
rd = sources.darkroom_random(goals, n_context, seed=seed + 5)
conds["random"] = (tokens_of(rd["obs"], rd["actions"], rd["rewards"]), goals)

# control for "reaches c": the same cell reached after the unedited (or reward-free) base context
base_of = {"late, true": "late, rewards erased", "late, reward moved on path": "late, rewards erased",
           "late, reward at unvisited cell": "late, rewards erased", "late, two rewarded cells": "late, rewards erased",
           "shuffled order": "early, true", "early, reward on a visited cell": "early, true",
           "late, rewards erased": "late, true", "early, true": "late, rewards erased"}
plays, results = {}, {}
play_seeds = split("ad").test_seeds(len(conds))  # one test sampling seed per condition (streams per context x play)
for i, (name, (ctx, claimed)) in enumerate(conds.items()):
    plays[name] = play_after(ctx, claimed, n_play, int(play_seeds[i]))
for name, (ctx, claimed) in conds.items():
    out = plays[name]
    on_c = out["obs"] == cell(claimed)[:, None, None]  # (B, n, T)
    hit_g = (out["obs"] == g_cell[:, None, None]).any(-1)
    differs = cell(claimed) != g_cell
    prev_r = ctx % 2
    ctrl = (plays[base_of[name]]["obs"] == cell(claimed)[:, None, None]).any(-1).mean() if name in base_of else np.nan
    results[name] = {
        "condition": name, "context has reward": float((prev_r.sum(1) > 0).mean()),
        "reaches c": float(on_c.any(-1).mean()), "reaches c, control": float(ctrl),
        "steps on c": float(on_c.sum(-1).mean()),
        "reaches true g (c != g)": float(hit_g[differs].mean()) if differs.any() else float("nan"),
        "coverage": float(np.mean([[len(np.unique(o)) for o in row] for row in out["obs"]])),
        "P(first move toward c)": float(toward(out["p0"], claimed).mean())}

# %%
#| label: tbl-counterfactual
#| tbl-cap: "AD playing the next episode after edited short contexts (held-out goals x seeds x plays). c: the cell the context's rewards claim is the goal (the room's reward is there); g: the source's real goal, on which the late trajectories end. Control: how often the same cell c is reached after the base context without the edit (late conditions: the late window with rewards erased; early conditions and shuffled order: the unedited early window; late, rewards erased: the unedited late window). Coverage: distinct cells visited in the episode."
md_table(list(results.values()), digits=2)

# %%
#| label: fig-counterfactual
#| fig-cap: "How often AD reaches the claimed goal c in the next episode (bars) and, where c differs from the source's real goal g, how often it reaches g (dots), per context condition."
fig, ax = plt.subplots(figsize=(9, 3.6))
names = list(results)
ax.bar(range(len(names)), [results[n]["reaches c"] for n in names], label="reaches claimed goal c")
ax.plot(range(len(names)), [results[n]["reaches true g (c != g)"] for n in names], "ko", label="reaches true g")
ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
ax.set_ylabel("fraction of plays")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
#| echo: false
R = results
md(f"With the source's own late window AD reaches the goal in {R['late, true']['reaches c']:.0%} of plays; with the "
   f"rewards erased from the very same trajectories, {R['late, rewards erased']['reaches c']:.0%}. When the reward "
   f"flags are moved to a cell halfway along the path, AD reaches that cell in "
   f"{R['late, reward moved on path']['reaches c']:.0%} of plays (it lies on the way, so passing it is not evidence) "
   f"but sits on it for {R['late, reward moved on path']['steps on c']:.1f} steps on average against "
   f"{R['late, true']['steps on c']:.1f} steps on the real goal in the unedited context, and still walks on to the "
   f"old goal g in {R['late, reward moved on path']['reaches true g (c != g)']:.0%} of plays. A reward on a cell the "
   f"trajectory never visits (a teleport) draws AD there in {R['late, reward at unvisited cell']['reaches c']:.0%} "
   f"of plays (control without the edit: {R['late, reward at unvisited cell']['reaches c, control']:.0%}) (first-move probability towards it {R['late, reward at unvisited cell']['P(first move toward c)']:.2f}), "
   f"while it still reaches the old path's end g in "
   f"{R['late, reward at unvisited cell']['reaches true g (c != g)']:.0%}. With the rewarded episode placed first "
   f"and {n_context - 1} exploratory episode(s) after it (shuffled order), AD reaches g in {R['shuffled order']['reaches c']:.0%} "
   f"of plays, against {R['late, true']['reaches c']:.0%} in the correct order and "
   f"{R['early, true']['reaches c']:.0%} after the early window alone. A reward flag put on a cell of an early, "
   f"exploratory episode brings AD to that cell in {R['early, reward on a visited cell']['reaches c']:.0%} of plays "
   f"(control without the flag: {R['early, reward on a visited cell']['reaches c, control']:.0%}; first-move probability {R['early, reward on a visited cell']['P(first move toward c)']:.2f} towards it, against "
   f"{R['early, true']['P(first move toward c)']:.2f} towards the true goal after the unedited early window). After "
   f"expert contexts it reaches g in {R['expert']['reaches c']:.0%} of plays, after random walks in "
   f"{R['random']['reaches c']:.0%} (coverage {R['random']['coverage']:.1f} cells, against "
   f"{R['early, true']['coverage']:.1f} after the source's early window).")

# %% [markdown]
# ## Discussion
#
# The matched-stage comparison (@fig-matched, @tbl-matched) and the counterfactual contexts (@tbl-counterfactual,
# @fig-counterfactual) answer the seed's question from two sides. @tbl-signatures states each reading rule as a
# criterion with this model's value, and the paragraph below it the numbers behind them. If AD were doing reinforcement learning in context, the reward flag
# would be the cause of goal-directed behaviour: erasing rewards would send it back to exploring, moving the reward
# would move the destination, and the order of episodes would matter only through what is rewarded. If it imitates
# a learner, the *path* and the *stage* the context looks like would drive it: it would walk the demonstrated path
# whether or not it was rewarded, and after a successful episode followed by exploratory ones it would keep
# exploring as the source does early on.

# %%
#| label: tbl-signatures
#| tbl-cap: "Six signatures of reinforcement learning in context, each with the criterion we apply, this model's measured value and whether the criterion holds (a reach rate or a lift is in percentage points of plays; lifts are against the unedited control)."
erase_drop = R["late, true"]["reaches c"] - R["late, rewards erased"]["reaches c"]
moved_stay = R["late, reward moved on path"]["steps on c"]
true_stay = R["late, true"]["steps on c"]
path_follow = R["late, reward moved on path"]["reaches true g (c != g)"]
shuffle_ratio = R["shuffled order"]["reaches c"] / max(R["late, true"]["reaches c"], 1e-9)
lift = {n: R[n]["reaches c"] - R[n]["reaches c, control"] for n in R}
signatures = [  # (signature, criterion, measured value, holds)
    ("erasing rewards removes goal-directedness", "goal-reaching drops by > 30 points", f"{100 * erase_drop:.0f}",
     erase_drop > 0.3),
    ("a moved reward holds the agent on the new cell", "steps on it > half the steps on the true goal "
     f"({0.5 * true_stay:.1f})", f"{moved_stay:.1f}", moved_stay > 0.5 * true_stay),
    ("the agent leaves the old path when the reward moves", "reaches the old goal in < 50% of plays",
     f"{path_follow:.0%}", path_follow < 0.5),
    ("a reward at an unvisited cell attracts it", "lift > 30 points",
     f"{100 * lift['late, reward at unvisited cell']:.0f}", lift["late, reward at unvisited cell"] > 0.3),
    ("episode order does not matter", "shuffled / true goal-reaching > 0.8", f"{shuffle_ratio:.2f}",
     shuffle_ratio > 0.8),
    ("a reward flag in an exploratory context attracts it", "lift > 30 points",
     f"{100 * lift['early, reward on a visited cell']:.0f}", lift["early, reward on a visited cell"] > 0.3),
]
n_hold = sum(bool(h) for *_, h in signatures)
lift_path = lift["late, reward moved on path"]
lift_off = max(lift["late, reward at unvisited cell"], lift["early, reward on a visited cell"], 0.01)
nov_gap = nov_ad[e_cmp] - nov_src_win[mv]  # > 0: AD revisits less of its context than the source of its history
md_table([{"signature": n_, "criterion": c_, "measured": v_, "holds": bool(h_)} for n_, c_, v_, h_ in signatures])

# %%
#| echo: false
md(f"{n_hold} of the six RL-like signatures hold for this model (@tbl-signatures); reward-driven behaviour would "
   f"satisfy all six, imitation of the demonstrated path and stage few of them. "
   f"Erasing the rewards lowers the rate of reaching the goal by {100 * erase_drop:.0f} percentage points, a reward "
   f"at an off-path cell raises the rate of reaching it by {100 * lift['late, reward at unvisited cell']:.0f} points "
   f"and a reward flag in an exploratory context by {100 * lift['early, reward on a visited cell']:.0f} points "
   f"(each against its unedited control), while a reward moved to a cell *on* the demonstrated path raises it by "
   f"{100 * lift['late, reward moved on path']:.0f} points and holds the agent there for {moved_stay:.1f} steps. "
   f"The on-path lift is {lift_path / lift_off:.1f} times the larger off-path one: well above 2 would mean that "
   "reward flags steer AD mainly when the rewarded cell lies on a path the context walks repeatedly, replaying the "
   "demonstrated path up to it as a late-stage source does, rather than inferring a goal from a reward anywhere. "
   f"Without a reward to follow, AD's state visitation moves through the source's stages at {slope:.1f} source "
   f"episodes per AD episode, and {nov_ad[e_cmp]:.0%} of the cells it visits in episode {e_cmp + 1} are new "
   f"relative to its context, against {nov_src_win[mv]:.0%} for its source relative to the same span of its "
   f"history ({100 * nov_gap:+.0f} points); a clearly positive difference would mean that AD imitates the "
   f"source's stage-typical coverage, not its history-wide novelty seeking, which a {K - 1}-episode context cannot "
   f"fully represent. Caveats: one trained model, one source "
   f"algorithm, and held-out goals only; 'reaching' a cell on the "
   f"path is weak evidence, so the dwell time on it and the attraction to off-path cells carry the argument.")
