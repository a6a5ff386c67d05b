# %% [markdown]
# # Algorithm Distillation: in-context RL in a small transformer {#sec-ad-incontext}
#
# A reinforcement-learning algorithm turns experience into better behaviour. Algorithm Distillation
# [AD, @laskin2022incontext] asks whether a sequence model can learn to *be* such an algorithm: train a causal
# transformer to predict the next action of a learning agent from its whole *learning history*, many episodes long, and
# the transformer may pick up not a single policy but the improvement operator itself. Run on a new task with frozen
# weights, it should then get better from episode to episode, with all learning happening in its context. The
# control is expert distillation (ED): the same model trained on expert trajectories only. ED imitates good play on
# training tasks but has never seen anyone *learn*, so on a new task it should not improve.
#
# A sceptical reading of the original paper [@marks2022caution] points
# out that in the paper's tasks one successful episode is enough to infer perfect play, so "in-context RL" may be
# "find the goal, then copy the path to it". This chapter reproduces AD at a scale that trains on one CPU core
# and sets up the model whose mechanism later chapters dissect; whichever reading is right, it is a question about
# the circuit, not about the learning curve.
#
# **Task.** Dark Room (`rlinterp.envs.darkroom.DarkRoomEnv`, gymnasium id `rlinterp/DarkRoom-v0`): a 9 x 9 grid, the
# agent starts at the centre, five actions (left, right, up, down, no-op), 20 steps per episode, reward 1 for every
# step that ends on an invisible goal cell. The agent observes only its own cell. One task per goal; the 81 goals
# are split once (seeded) into 65 training goals and 16 held-out goals that no model ever sees in training. The best
# return for a goal at Manhattan distance $d$ from the centre is $21 - d$ (walk there, then stay).
#
# **Source algorithms.** AD distils whatever learner produced its data, so we use two real learners and compare.
# The main one is *posterior sampling* [PSRL / Thompson sampling for RL,
# @strens2000bayesian; @osband2013more] with the
# task family's prior, `rlinterp.learners.sources.darkroom_psrl`: the learner knows how the grid moves but not where
# the goal is; its belief is uniform over the cells it has not yet stepped onto without reward; it samples a goal
# from that belief, walks a shortest path to it (along x, then along y), and samples again when the sampled cell is
# ruled out; a reward collapses the belief and from then on it walks straight to the goal. It needs several
# episodes to learn a task (80 % of the optimal return after about six episodes on average, the far corners later):
# exploration is systematic, and all it knows is in its history, which is exactly what a transformer with that
# history in context can use. The second is tabular Q-learning with a UCB-style count bonus,
# $\arg\max_a Q(s,a) + c/\sqrt{N(s,a)+1}$, learning rate 0.3, discount 0.9, 2 % random actions
# (`rlinterp.learners.sources.darkroom_q_learning`): a generic, slow learner that needs tens of episodes, whose
# visit counts cover its whole history. Histories are generated in vectorised numpy for thousands of learners at
# once, deterministically from a seed, so datasets are regenerated rather than shipped.
#
# **Model.** A TransformerLens `HookedTransformer` (`rlinterp.models.ad_transformer.ADTransformer`) with one token
# per step: the embedding of the current cell plus embeddings of the previous action and previous reward (a
# "start" action at the first step of an episode), so a reward token with $r=1$ reads "the cell I am in is the goal".
# A cell is embedded by the sum of an x and a y embedding only (`cell_embedding=False`): a free vector per cell
# would let the model treat the 65 training goals as the only places a goal can be, since no training target ever
# points at a held-out cell, while coordinates shared by all cells make "walk to the rewarded cell" one computation
# for every cell. The logits at step $t$ predict the source's action $a_t$. The context holds
# `n_ctx_episodes` whole episodes (10 for the PSRL model: 200 tokens, enough to hold the whole exploration phase).
# Training windows are consecutive episodes of a history (AD's subsampling `stride` = 1: PSRL's behaviour is a
# function of its history, and skipping episodes would hide the cells it has ruled out). The Q-learning AD model
# (trained in an earlier version of this study, kept for comparison) has a 4-episode context whose episodes are 4
# source episodes apart. ED is the PSRL model's architecture trained on windows of expert episodes (random shortest
# paths to the goal, then no-op). All are trained with AdamW and a cosine schedule on the next-action cross-entropy
# at every position. At evaluation the model acts in the environment, its own actions and rewards become its
# context, and the window slides one episode at a time, exactly like the training contexts.

# %% tags=["parameters"]
retrain: bool = False  # train AD (PSRL source) and ED from scratch instead of loading data/ad/darkroom_{ad,ed}.pt
retrain_qlearning: bool = False  # train the comparison AD model on Q-learning histories (else load the shipped one)
qlearning_steps: int = 3000  # when the Q-learning AD model is trained (retrain_qlearning, another room): its training steps [range: [1, inf)]
save: bool = False  # with retrain / retrain_qlearning / retrain_ablation: overwrite the shipped files in data/ad/
n_steps: int = 3000  # with retrain: AD training steps (ED uses half) [range: [1, inf)]
batch_size: int = 32  # with retrain: windows per gradient step [range: [1, inf)]
histories_per_goal: int = 100  # with retrain: independent PSRL learners per training goal [range: [1, inf)]
n_source_episodes: int = 12  # with retrain: episodes per PSRL history [range: [1, inf)]
n_ctx_episodes: int = 10  # with retrain: whole episodes in the context [range: [1, inf)]
d_model: int = 64  # with retrain: residual width [range: [1, inf)]
n_layers: int = 3  # with retrain: transformer blocks [range: [1, inf)]
retrain_ablation: bool = False  # retrain the model-size x number-of-training-goals ablation (else load shipped)
ablation_goals: list[int] = [4, 16, 65]  # with retrain_ablation: numbers of training goals (of the 65) [range: [1, 65]]
ablation_d_models: list[int] = [32]  # with retrain_ablation: model widths (d_model < 64 uses 2 layers, else 3) [range: [1, inf)]
ablation_steps: int = 3000  # with retrain_ablation: training steps per ablation model [range: [1, inf)]
ablation_seeds: int = 2  # with retrain_ablation: training seeds per ablation variant [range: [1, inf)]
temperature: float = 0.5  # a lower sampling temperature for AD (chosen on training goals, not held-out ones) [range: (0, inf)]
n_eval_episodes: int = 20  # in-context episodes per evaluation rollout [range: [1, inf)]
n_eval_seeds: int = 5  # rollouts per held-out goal: the first n test sampling seeds of rlinterp.seeds.split("ad") [range: [1, inf)]
seed: int = 0  # random seed for everything [range: [0, inf)]
device: str = "cpu"  # torch device
room_size: int = 9  # the Dark Room is room_size x room_size (odd); a room other than the shipped models' 9 x 9 trains every model of this chapter for it [range: [3, 21]]

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from rlinterp import artifacts
from rlinterp.studies import ad as ads
from rlinterp.learners import sources
from rlinterp.envs import darkroom as dr
from rlinterp.pipeline.report import claim, md, md_table
from rlinterp.seeds import split
from rlinterp.stats import band

room_size = dr.check_size(room_size, "room_size")  # odd, refused here before anything is trained
SHIPPED_ROOM = artifacts.ARTIFACTS["ad/darkroom_ad"].config.room_size
other_room = room_size != SHIPPED_ROOM  # the shipped models are for SHIPPED_ROOM only: train them all here
if other_room and save:
    raise ValueError(f"save=true replaces the shipped models of the {SHIPPED_ROOM}x{SHIPPED_ROOM} room; this run is "
                     f"for a {room_size}x{room_size} room: run it without save")
torch.set_num_threads(1)  # training and evaluation on one CPU thread (the wall times reported below)
torch.manual_seed(seed)
train_goals, test_goals = dr.darkroom_goal_split(room_size, seed=0)
oracle = dr.oracle_return(test_goals, room_size).mean()
# the fit settings of each model: the declared (shipped) ones, with this chapter's parameters
FITS = {name: artifacts.ARTIFACTS[name].config
        for name in ("ad/darkroom_ad", "ad/darkroom_ed", "ad/darkroom_ad_qlearning")}
MODEL = dict(histories_per_goal=histories_per_goal, n_source_episodes=n_source_episodes, batch_size=batch_size,
             seed=seed, n_ctx_episodes=n_ctx_episodes, d_model=d_model, n_layers=n_layers, room_size=room_size)
FITS["ad/darkroom_ad"] = replace(FITS["ad/darkroom_ad"], n_steps=n_steps, **MODEL)
FITS["ad/darkroom_ed"] = replace(FITS["ad/darkroom_ed"], n_steps=n_steps // 2, **MODEL)
FITS["ad/darkroom_ad_qlearning"] = replace(FITS["ad/darkroom_ad_qlearning"], n_steps=qlearning_steps,
                                           batch_size=batch_size, seed=seed, room_size=room_size)
if retrain or other_room:
    ad_model = artifacts.build("ad/darkroom_ad", config=FITS["ad/darkroom_ad"], device=device)
    ed_model = artifacts.build("ad/darkroom_ed", config=FITS["ad/darkroom_ed"], device=device)
else:
    ad_model = artifacts.load("ad/darkroom_ad", device=device)
    ed_model = artifacts.load("ad/darkroom_ed", device=device)
if retrain_qlearning or other_room:  # the first AD model of this study: Q-learning histories, 4 episodes 4 apart
    q_model = artifacts.build("ad/darkroom_ad_qlearning", config=FITS["ad/darkroom_ad_qlearning"], device=device)
else:
    q_model = artifacts.load("ad/darkroom_ad_qlearning", device=device)
ad_log, ed_log, q_log = ad_model.train_log, ed_model.train_log, q_model.train_log
claim(all(ads.room_size(m) == room_size for m in (ad_model, ed_model, q_model)),
      "every model of this chapter was trained for the room it is evaluated in")
if other_room:  # the default run's text is unchanged
    display(md(f"**This run is for a {room_size} x {room_size} room**: {room_size ** 2} goals, {len(train_goals)} "
               f"for training and {len(test_goals)} held out; the best return of a goal at distance $d$ from the "
               f"centre is ${ads.T + 1} - d$. The shipped models are for the {SHIPPED_ROOM} x {SHIPPED_ROOM} room, so "
               f"AD, ED and the Q-learning AD model were all trained in this run for this room, with the "
               f"configuration of this run's parameters (AD: {int(ad_log['n_steps']):,} training steps, "
               f"PSRL histories per training goal: {int(ad_log['histories_per_goal'])}; the Q-learning AD model: "
               f"{int(q_log['n_steps']):,} training steps). The text and captions describe the {SHIPPED_ROOM} x "
               f"{SHIPPED_ROOM} room; every number is this room's."))

# %% [markdown]
# ## In-context learning on held-out goals
#
# Each model plays `n_eval_episodes` consecutive episodes on every held-out goal, several times with different
# sampling seeds, starting from an empty context. The sampling seeds are the first `n_eval_seeds` *test* seeds of
# the study's evaluation protocol (`rlinterp.seeds.split("ad")`); nothing in this chapter is chosen on them (the
# lower sampling temperature was chosen on training goals). All rollouts of a model run as one batch, one forward
# pass per step through TransformerLens's key-value cache, and each rollout draws its actions from its own stream
# seeded by (sampling seed, goal), so a rollout does not depend on what else is in the batch. @fig-curves compares
# the return per episode with the random policy, the oracle, and the two source algorithms run from scratch on the
# same held-out goals. AD is decoded three ways: sampling from its action distribution (temperature 1, what the
# source's data look like), sampling at a lower temperature (the `temperature` parameter), and greedy argmax.

# %%
eval_seeds = split("ad").test_seeds(n_eval_seeds)


def curves_of(model, temperature):
    return ads.evaluate_darkroom(model, test_goals, n_eval_episodes, eval_seeds, temperature, size=room_size)


reps = np.repeat(test_goals, n_eval_seeds, 0)
res = {
    "AD (sampling)": curves_of(ad_model, 1.0),
    f"AD (T={temperature:g})": curves_of(ad_model, temperature),
    "AD (greedy)": curves_of(ad_model, 0.0),
    "ED (sampling)": curves_of(ed_model, 1.0),
    "ED (greedy)": curves_of(ed_model, 0.0),
    "AD, Q-learning source (sampling)": curves_of(q_model, 1.0),
    "random": sources.darkroom_random(reps, n_eval_episodes, seed=seed + 2, size=room_size)["returns"],
}
n_q_episodes = max(120, n_eval_episodes)
psrl_hist = sources.darkroom_psrl(reps, n_eval_episodes, seed=seed + 3, size=room_size)["returns"]
q_hist = sources.darkroom_q_learning(reps, n_q_episodes, seed=seed + 3, size=room_size)["returns"]
res["source: PSRL"] = psrl_hist
res["source: Q-learning"] = q_hist[:, :n_eval_episodes]


def episodes_to(curve, frac=0.8):
    hit = np.nonzero(curve >= frac * oracle)[0]
    return int(hit[0]) + 1 if len(hit) else None


# %%
#| label: fig-curves
#| fig-cap: "Return per episode on the 16 held-out goals as the context grows (mean and 95 % interval over goals x sampling seeds). Left: AD (PSRL source) decoded three ways, ED, PSRL itself and the random policy; dashed: oracle and its 80 % level. Right: the Q-learning source's full learning curve and the AD model distilled from it, drawn at x = episode x stride (the source episode its training windows correspond to)."
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
x = np.arange(1, n_eval_episodes + 1)
for name, c in res.items():
    if "Q-learning" in name:
        continue
    m, h = band(c).mean, band(c).half
    axes[0].plot(x, m, label=name, ls=":" if "greedy" in name else ("--" if "source" in name else "-"))
    axes[0].fill_between(x, m - h, m + h, alpha=0.2)
for ax in axes:
    ax.axhline(oracle, color="k", ls="--", lw=1, label="oracle")
    ax.axhline(0.8 * oracle, color="gray", ls="--", lw=0.8, label="80 % of oracle")
    ax.set_ylabel("return per episode")
axes[0].set_xlabel("in-context episode")
axes[0].legend(fontsize=7, ncol=2)
m, h = band(q_hist).mean, band(q_hist).half
xs = np.arange(1, q_hist.shape[1] + 1)
axes[1].plot(xs, m, label="source: Q-learning")
axes[1].fill_between(xs, m - h, m + h, alpha=0.2)
s_q = int(q_log["stride"])
axes[1].plot(x * s_q, res["AD, Q-learning source (sampling)"].mean(0), "o-", ms=3,
             label=f"AD, Q-learning source (sampling), x{s_q}")
axes[1].set_xlabel("source episode")
axes[1].legend(fontsize=7)
plt.tight_layout()
plt.show()

# %%
#| label: tbl-curves
#| tbl-cap: "Held-out goals: return in the first, fifth, tenth and last in-context episode (fraction of the oracle return) and the first episode whose mean return reaches 80 % of the oracle."
rows = []
for name, c in res.items():
    m = c.mean(0)
    row = {"policy": name}
    for e in sorted({1, min(5, n_eval_episodes), min(10, n_eval_episodes), n_eval_episodes}):
        row[f"episode {e}"] = f"{m[e - 1]:.2f} ({m[e - 1] / oracle:.0%})"
    hit = episodes_to(m)
    row["episodes to 80 %"] = "not reached" if hit is None else str(hit)
    rows.append(row)
rows.append({"policy": "oracle", **{k: f"{oracle:.2f} (100%)" for k in rows[0] if k.startswith("episode ")},
             "episodes to 80 %": "1"})
md_table(rows)

# %%
#| echo: false
ad_m, ed_m = res["AD (sampling)"].mean(0), res["ED (sampling)"].mean(0)
adg_m, src_m = res["AD (greedy)"].mean(0), psrl_hist.mean(0)
q_m, qsrc_m = res["AD, Q-learning source (sampling)"].mean(0), q_hist.mean(0)
k10 = min(10, n_eval_episodes)
hit_ad, hit_adg, hit_src = episodes_to(ad_m), episodes_to(adg_m), episodes_to(src_m)
hit_q, hit_qsrc = episodes_to(q_m), episodes_to(qsrc_m)


def said(hit):
    return f"in episode {hit}" if hit else f"not within {n_eval_episodes} episodes"


adt_m = res[f"AD (T={temperature:g})"].mean(0)
hit_adt = episodes_to(adt_m)
ratio = ad_m[k10 - 1] / src_m[k10 - 1]
md(f"The AD model ({sum(p.numel() for p in ad_model.parameters()):,} parameters, trained on PSRL histories for "
   f"{int(ad_log['n_steps']):,} steps in {float(ad_log['wall_s']) / 60:.1f} minutes on one CPU thread; ED "
   f"{float(ed_log['wall_s']) / 60:.1f} minutes) starts where a policy without task knowledge must start: "
   f"{ad_m[0]:.2f} in its first episode against {res['random'].mean():.2f} for the random policy. By episode {k10} "
   f"it earns {ad_m[k10 - 1]:.2f} ({ad_m[k10 - 1] / oracle:.0%} of the oracle's {oracle:.2f}) with sampling, "
   f"{adt_m[k10 - 1]:.2f} ({adt_m[k10 - 1] / oracle:.0%}) at temperature {temperature:g} and "
   f"{adg_m[k10 - 1]:.2f} ({adg_m[k10 - 1] / oracle:.0%}) greedily; by episode {n_eval_episodes} these are "
   f"{ad_m[-1] / oracle:.0%}, {adt_m[-1] / oracle:.0%} and {adg_m[-1] / oracle:.0%}. Its mean return first reaches "
   f"80 % of the oracle {said(hit_ad)} with sampling, {said(hit_adt)} at temperature {temperature:g} and "
   f"{said(hit_adg)} greedily. PSRL itself reaches 80 % {said(hit_src)} and earns {src_m[k10 - 1]:.2f} in its "
   f"episode {k10}: the distilled model keeps {ratio:.0%} of its source's return there. ED goes from "
   f"{ed_m[0]:.2f} in episode 1 to {ed_m[-1]:.2f} in episode {n_eval_episodes} ({ed_m[-1] / oracle:.0%} of the "
   f"oracle), a change of {ed_m[-1] - ed_m[0]:+.2f} across episodes without weight updates. The AD model distilled from Q-learning "
   f"({float(q_log['wall_s']) / 60:.1f} minutes of training) earns {q_m[k10 - 1]:.2f} "
   f"({q_m[k10 - 1] / oracle:.0%}) in episode {k10} and reaches 80 % {said(hit_q)}; its source reaches 80 % "
   f"{said(hit_qsrc)} of a {q_hist.shape[1]}-episode run. What AD learns in context is bounded by how fast, and how "
   f"legibly, its source learns.")

# %% [markdown]
# Two caveats. The confidence bands are over held-out goals and sampling seeds for one trained model per method;
# training seeds are repeated only in the smaller models of the ablation below (each main model costs many minutes
# of CPU). And greedy decoding is not the free lunch it is
# for a fixed policy: the source's exploration *is* stochastic, and argmax of its distilled action distribution
# repeats the most likely exploratory path every episode instead of trying a new one, which is why several
# reproductions of AD report failures with greedy decoding. @fig-curves shows how large that effect is here.
#
# ## Does in-context learning need many training tasks?
#
# A transformer with enough capacity could also memorise the training goals and never learn to explore; in-context
# learning that generalises to held-out goals should then need enough distinct training tasks. The ablation trains
# AD with 4, 16 or all 65 training goals (the same total number of histories, so the same amount of data) with a
# smaller model (width 32, 2 layers, about a fifth of the main model's parameters, cheap enough to train several;
# `ablation_d_models` adds other widths), and evaluates every variant on the held-out goals and on its own training
# goals. A model that memorises its few training goals does well on them and poorly on new ones.

# %%
# a room with fewer training goals than a requested count trains that variant on all of them (said below)
goal_counts = list(dict.fromkeys(min(n, len(train_goals)) for n in ablation_goals))
widths = list(ablation_d_models)
if goal_counts != list(ablation_goals):
    display(md(f"The {room_size} x {room_size} room has {len(train_goals)} training goals: the ablation's goal "
               f"counts {list(ablation_goals)} become {goal_counts}."))
grid = artifacts.AblationGrid(goals=goal_counts, d_models=widths, n_steps=ablation_steps, seeds=ablation_seeds,
                              histories_per_goal=histories_per_goal, n_source_episodes=n_source_episodes,
                              n_ctx_episodes=n_ctx_episodes, batch_size=batch_size, seed=seed,
                              n_eval_episodes=n_eval_episodes, n_eval_seeds=n_eval_seeds, room_size=room_size)
if retrain_ablation or other_room:
    ablation = artifacts.build("ad/ablation", config=grid, device=device, progress=False)
    if save:
        artifacts.save("ad/ablation", ablation, config=grid)
else:
    ablation = artifacts.load("ad/ablation")
abl_curves = np.asarray(ablation["curves"])  # (variants, rollouts, episodes)

# %%
#| label: fig-ablation
#| fig-cap: "Ablation: in-context return on held-out goals (fraction of the oracle; mean over goals x sampling seeds) for AD trained on few or many training goals, one panel per model width; thin lines are single training seeds, thick lines their mean."
ws = sorted({v["d_model"] for v in ablation["variants"]})
keys = sorted({(v["d_model"], v["train goals"]) for v in ablation["variants"]})
fig, axes = plt.subplots(1, len(ws), figsize=(5 * len(ws), 3.5), squeeze=False)
for i, (w, n) in enumerate(keys):
    ax = axes[0, ws.index(w)]
    cs = np.stack([c.mean(0) / oracle for v, c in zip(ablation["variants"], abl_curves)
                   if (v["d_model"], v["train goals"]) == (w, n)])  # (seeds, episodes)
    xs_ = np.arange(1, cs.shape[1] + 1)
    for c in cs:
        ax.plot(xs_, c, color=f"C{i}", lw=0.7, alpha=0.6)
    ax.plot(xs_, cs.mean(0), color=f"C{i}", lw=2, label=f"{n} train goals ({len(cs)} seeds)")
for w, ax in zip(ws, axes[0]):
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.axhline(0.8, color="gray", ls="--", lw=0.8)
    ax.set_title(f"d_model = {w}")
    ax.set_xlabel("in-context episode")
    ax.set_ylabel("return / oracle")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
#| label: tbl-ablation
#| tbl-cap: "Ablation variants (mean and range over training seeds): size, training goals, return on held-out goals in episode 10 and in the last five in-context episodes and on their own training goals (last five episodes), all as fractions of the oracle; training time and final loss."
rows = []
k_abl = min(10, abl_curves.shape[-1])
for w, n in keys:
    idx = [i for i, v in enumerate(ablation["variants"]) if (v["d_model"], v["train goals"]) == (w, n)]
    vs = [ablation["variants"][i] for i in idx]
    ep_k = np.array([abl_curves[i][:, k_abl - 1].mean() / oracle for i in idx])
    last5 = np.array([abl_curves[i][:, -5:].mean() / oracle for i in idx])
    trn = np.array([v["train return (last 5)"] for v in vs])

    def rng_(x):
        return f"{x.mean():.2f} [{x.min():.2f}, {x.max():.2f}]"

    rows.append({"d_model": w, "n_layers": vs[0]["n_layers"], "parameters": vs[0]["parameters"], "train goals": n,
                 "seeds": len(vs), f"held-out, episode {k_abl}": rng_(ep_k), "held-out, last 5": rng_(last5),
                 "train goals, last 5": rng_(trn), "minutes": np.mean([v["train minutes"] for v in vs]),
                 "final loss": np.mean([v["final loss"] for v in vs]), "_last5": last5.mean(), "_trn": trn.mean()})
md_table([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows], digits=2)

# %%
#| echo: false
few, many = min(r["train goals"] for r in rows), max(r["train goals"] for r in rows)
by = {(r["d_model"], r["train goals"]): r for r in rows}
parts = []
for w in ws:
    if (w, few) in by and (w, many) in by:
        a, b = by[(w, few)], by[(w, many)]
        parts.append(f"at width {w}, {few} training goals give {a['_last5']:.0%} of the oracle on held-out goals in "
                     f"the last five episodes (and {a['_trn']:.0%} on their own training goals) against "
                     f"{b['_last5']:.0%} with {many} goals")
md(f"With {int(ablation['n_steps']):,} training steps per variant: " + "; ".join(parts) + ".")

# %% [markdown]
# ## Discussion

# %%
#| echo: false
md(f"On goals it never saw, AD's return goes from {ad_m[0] / oracle:.0%} of the oracle in the first episode to "
   f"{ad_m[-1] / oracle:.0%} in episode {n_eval_episodes}, with no weight updates; ED, trained on the same goals "
   f"but only on expert play, goes from {ed_m[0] / oracle:.0%} to {ed_m[-1] / oracle:.0%}: it has no procedure to "
   f"fall back on when the goal is unknown.")

# %% [markdown]
# How fast AD learns is inherited from what it distils, and the comparison of the two sources
# shows two conditions for a fast in-context learner. The source's behaviour must be a function of what the model
# can see: PSRL's next move depends only on the cells its history has ruled out and on where it was rewarded, all of
# which is in a 10-episode context, whereas the Q-learner's count bonus depends on visit counts over its whole
# history, which a window of a few subsampled episodes shows only in part. And the source must learn in a few
# episodes, because AD here learns no faster per episode than the algorithm it imitates (a claim checked below
# with a 10% margin).

# %%
#| echo: false
claim(bool(ad_m[k10 - 1] <= 1.1 * src_m[k10 - 1] and q_m[k10 - 1] <= 1.1 * qsrc_m[k10 - 1]),
      "AD learns no faster per episode than the source it distils (within 10% of the source's return)")
md(f"In numbers: at episode {k10}, AD distilled from PSRL earns {ad_m[k10 - 1] / oracle:.0%} of the oracle and its "
   f"source {src_m[k10 - 1] / oracle:.0%}; AD distilled from Q-learning earns {q_m[k10 - 1] / oracle:.0%} and "
   f"Q-learning itself {qsrc_m[k10 - 1] / oracle:.0%} in its episode {k10}. ED ends at {ed_m[-1] / oracle:.0%}.")

# %% [markdown]
# How far this is "reinforcement learning in context" is what the sceptical reading questions: in Dark Room one
# rewarding step in the context identifies the goal cell, and after that exploiting only needs the path to a
# remembered cell; before it, a good explorer only needs to remember where it has been. The next chapter opens the
# model: which past tokens the heads read (the rewarding step? the cells already visited?), whether the goal location
# and "goal found yet" are linearly readable from the residual stream, and what happens when a rewarding episode is
# patched into a context that lacks one.

# %%
if retrain and save:
    artifacts.save("ad/darkroom_ad", ad_model, config=FITS["ad/darkroom_ad"])
    artifacts.save("ad/darkroom_ed", ed_model, config=FITS["ad/darkroom_ed"])
    md("Saved `data/ad/darkroom_ad.pt` and `data/ad/darkroom_ed.pt`.")
if retrain_qlearning and save:
    artifacts.save("ad/darkroom_ad_qlearning", q_model, config=FITS["ad/darkroom_ad_qlearning"])
    md("Saved `data/ad/darkroom_ad_qlearning.pt`.")
