# %% [markdown]
# # How the DQN explores and exploits {#sec-coinflip-circuits}
#
# The previous chapter showed *that* the DQN explores profitably: it earns almost all of the Bayes-optimal value and
# closes most of the small gap between greedy play and the optimum. This chapter asks *how*. The agent is a
# two-hidden-layer ReLU network that maps the sorted per-coin counts and the number of flips left to one Q-value per coin,
# and every question about exploration is a question about this map: which quantities of the posterior it represents,
# which units decide between flipping the best-looking coin again and trying an unexplored one, and how its values
# compare with the index policies that the bandit literature proposes. We use the toolkit validated on planted circuits
# in the methods part of this book, in five steps:
#
# 1. **Probes**: is the posterior of each coin (mean and standard deviation), its exploration index and the number of
#    flips left linearly decodable from each layer, relative to shuffled labels and to a randomly initialised network?
# 2. **Circuit discovery** on the decision "stick with the incumbent or switch to an unexplored coin": attribution
#    patching at the node level, EAP and EAP-IG at the edge level, and ACDC, compared for agreement, faithfulness and
#    run time. This answers the seed's open question, whether attribution patching can replace ACDC, with
#    measurements on a trained agent.
# 3. **Causal scrubbing** of a mechanistic hypothesis about the first layer ("its units compute per-coin features")
#    against weaker hypotheses that keep only posterior means.
# 4. **The agent's implicit index**: how much of the variation of its Q-values across coins is explained by the
#    Bayes-optimal Q\*, by a finite-horizon Gittins index, by Bayes-UCB and by "posterior mean + c × posterior sd".
# 5. **Integrated gradients** (Captum) on the stick/switch decision, with their completeness error.
#
# All states come from the agent's own visitation distribution: because the agent is deterministic and acts on
# canonical states, we enumerate every state it reaches together with its exact reach probability
# (`dqn.reached_decisions`), and draw states in proportion to it.

# %% tags=["parameters"]
n_coins: int = 5  # number of coins; a game other than the shipped agent's trains (or reuses) an agent for it [range: [2, inf)]
n_flips: int = 20  # flips per game (the horizon) [range: [1, inf)]
sigma: float = 0.3  # prior sd of the coin weights (Normal(0.5, sigma) clipped to [0, 1]) [range: (0, inf)]
total_steps: int = 40000  # for another game: training steps of its agent (as in the agent chapter) [range: [1, inf)]
num_games: int = 2048  # for another game: parallel training games [range: [1, inf)]
batch_size: int = 2048  # for another game: transitions per gradient step [range: [1, inf)]
d_hidden: int = 128  # for another game: width of both hidden layers [range: [1, inf)]
eval_every: int = 1000  # for another game: environment steps between exact evaluations [range: [1, inf)]
train_seed: int = 0  # for another game: training seed (the agent chapter's seed) [range: [0, inf)]
seed: int = 0  # random seed for every sample, split, bootstrap and random-init control [range: [0, inf)]
device: str = "cpu"  # torch device
n_probe_states: int = 4000  # distinct reached states for the probes (drawn in proportion to the reach probability) [range: [1, inf)]
probe_alpha: float = 1.0  # ridge penalty of the probes (on standardised activations) [range: [0, inf)]
n_pairs: int = 64  # clean/corrupted stick-switch pairs for circuit discovery [range: [1, inf)]
eap_ig_steps: int = 10  # interpolation steps of EAP-IG [range: [1, inf)]
acdc_taus: list[float] = [1e-3, 3e-4, 1e-4]  # ACDC thresholds (on the mean absolute change of Q(stick) - Q(switch)), chosen on the selection half of the pairs [range: [0, inf)]
target_faithfulness: float = 0.9  # circuit size and ACDC threshold: the smallest reaching this on the selection half [range: (0, 1]]
n_sizes: int = 14  # circuit sizes on the faithfulness curves (log-spaced) [range: [1, inf)]
timing_repeats: int = 3  # repetitions of the fast methods when timing them (best of) [range: [1, inf)]
scrub_pool: int = 4000  # states in the causal-scrubbing data set (drawn in proportion to the reach probability) [range: [1, inf)]
scrub_ref: int = 1000  # reference states for causal scrubbing [range: [1, inf)]
n_boot: int = 1000  # bootstrap resamples for the scrubbing intervals [range: [1, inf)]
ig_n_steps: int = 1024  # integration steps of Captum integrated gradients [range: [1, inf)]
ig_method: str = "riemann_middle"  # Captum integration rule (midpoint: exact on every step without a ReLU switch) [choices: riemann_right, riemann_left, riemann_middle, riemann_trapezoid, gausslegendre]
gittins_grid: int = 4001  # grid points of the calibration pay-off for the Gittins index [range: [2, inf)]

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from scipy.stats import spearmanr

from rlinterp.models.qnet import QNetwork
from rlinterp.stats import best_time, bootstrap
from rlinterp.studies import coinflip as cf
from rlinterp.studies import coinflip_bayes as bayes
from rlinterp.interp import (
    Hypothesis, acdc, attribution_patching, cache_hook, causal_scrubbing, draw_circuit, eap, eap_ig, fit_probe,
    logit_diff_metric, patch_nodes, roc_auc,
)
from rlinterp.pipeline.report import claim, md, md_table

torch.set_num_threads(1)  # frugal, and the timings below are single-thread timings
torch.manual_seed(seed)
rng = np.random.default_rng(seed)
train = dict(total_steps=total_steps, num_games=num_games, batch_size=batch_size, d_hidden=d_hidden,
             eval_every=eval_every, seed=train_seed)
model, source = cf.agent_for_world(n_coins, n_flips, sigma, train=train, device=device)
cfg = model.cfg
claim(cf.world_of(cfg) == (n_coins, n_flips, float(sigma)), "the agent was trained for the requested game")
n, k = cfg.n_coins, cfg.n_flips
solution = bayes.solve(n, k, cfg.sigma, progress=False)
prior = solution.prior
G_index = bayes.gittins_index(prior, k, grid=gittins_grid)

# every state the agent reaches, with its exact reach probability (canonical coin order)
_, levels = bayes.evaluate_exact(model.policy_probs, n, k, cfg.sigma, return_levels=True)
states = np.concatenate([ht for ht, _, _ in levels])  # (S, n, 2)
left = np.concatenate([np.full(len(ht), k - m) for m, (ht, _, _) in enumerate(levels)])  # (S,)
reach = np.concatenate([r for _, r, _ in levels])  # (S,), sums to 1 per level
obs = model.canonical_obs(states, left)
with torch.no_grad():
    q_agent = model(obs).cpu().numpy()  # (S, n)
feats = bayes.coin_features(prior, states, left, G_index)
q_star = solution.q_values(states, left)  # canonical input -> canonical order
p_visit = reach / reach.sum()


def draw_states(size: int, replace: bool) -> np.ndarray:
    """Indices of reached states drawn in proportion to their reach probability."""
    return rng.choice(len(states), size=min(size, len(states)) if not replace else size, replace=replace, p=p_visit)


md(f"The game: {n} coins, {k} flips, σ = {cfg.sigma:g}; the agent: "
   + ("the shipped checkpoint. " if source == "shipped" else
      f"trained for this game ({cfg.total_steps:,} steps of {cfg.num_games:,} games, seed {cfg.seed}). ")
   + f"The agent reaches {len(states):,} distinct canonical states (out of {solution.num_states:,} in the game); "
   f"an average game visits {k} of them, one per flip.")

# %% [markdown]
# ## What the layers represent: probes
#
# For each canonical coin position $j$ we probe the posterior mean and standard deviation of that coin's weight and
# its finite-horizon Gittins index (@sec-coinflip-index), and, once per state, the number of flips left. A ridge
# probe (closed form, standardised activations) is fitted on 70% of the states and scored by R² on the other 30%, at
# the observation (`hook_obs`, the $2n + 1$ raw inputs) and after each ReLU (`mlp.0.hook_post`, `mlp.1.hook_post`). Two
# controls calibrate the scores: the same probe fitted to shuffled labels, and the same hook of a randomly
# initialised network of the same shape. States are distinct reached states drawn in proportion to their reach
# probability, so no state appears on both sides of the split.

# %%
idx_probe = draw_states(n_probe_states, replace=False)
x_probe = obs[idx_probe]
random_net = QNetwork(cfg).to(device).eval()  # same shape, default (Kaiming-uniform) initialisation from `seed`
labels = {f"{name} (coin {j})": feats[key][idx_probe, j] for name, key in
          [("posterior mean", "mean"), ("posterior sd", "std"), ("Gittins index", "gittins")] for j in range(n)}
labels["flips left"] = left[idx_probe].astype(float)
hooks = ["hook_obs", "mlp.0.hook_post", "mlp.1.hook_post"]
probe_rows = []
for hook in hooks:
    acts = cache_hook(model, x_probe, hook)
    acts_rand = cache_hook(random_net, x_probe, hook)
    for name, y in labels.items():
        y_t = torch.as_tensor(y)
        r = fit_probe(acts, y_t, alpha=probe_alpha, control="shuffle", seed=seed)
        r_rand = fit_probe(acts_rand, y_t, alpha=probe_alpha, control="shuffle", seed=seed)
        probe_rows.append({"feature": name, "hook": hook, "R2": r.score, "R2 shuffled": r.control,
                           "R2 random net": r_rand.score})
probes = pd.DataFrame(probe_rows)
probe_summary = (probes.assign(family=probes.feature.str.replace(r" \(coin \d\)", "", regex=True))
                 .groupby(["family", "hook"], sort=False)[["R2", "R2 shuffled", "R2 random net"]].mean()
                 .reset_index())

# %%
#| label: tbl-probes
#| tbl-cap: "Held-out R² of ridge probes, averaged over the coin positions for the per-coin features; controls: the same probe on shuffled labels, and on the same hook of a randomly initialised network."
md_table(probe_summary.rename(columns={"family": "feature"}), digits=3)

# %%
#| label: fig-probes
#| fig-cap: "Held-out R² of every probe (rows) at every layer (columns) of the trained agent (left) and of a randomly initialised network of the same shape (right). Shuffled-label controls are all near zero (table above)."
fig, axes = plt.subplots(1, 2, figsize=(9, 5.2), sharey=True)
feat_names = list(labels)
for ax, col, title in [(axes[0], "R2", "trained agent"), (axes[1], "R2 random net", "random-init network")]:
    mat = probes.pivot(index="feature", columns="hook", values=col).loc[feat_names, hooks].to_numpy()
    im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(mat):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
    ax.set_xticks(range(len(hooks)), hooks, rotation=20, fontsize=8)
    ax.set_title(title, fontsize=10)
axes[0].set_yticks(range(len(feat_names)), feat_names, fontsize=8)
fig.colorbar(im, ax=axes, shrink=0.7, label="held-out R²")
plt.show()

# %%
#| echo: false
ps = probe_summary.set_index(["family", "hook"])
post = [("posterior mean", "mlp.1.hook_post"), ("posterior sd", "mlp.1.hook_post")]
n_beat = sum(ps.loc[i, "R2"] > ps.loc[i, "R2 random net"] for i in post)  # trained layer 2 beats the random net
fl_everywhere = bool(probes[probes.feature == "flips left"].R2.min() > 0.9)
md(("Flips left is linearly decodable everywhere" if fl_everywhere else "Flips left is decoded")
   + f" (R² {ps.loc[('flips left', 'mlp.0.hook_post'), 'R2']:.3f} after "
   f"layer 1 and {ps.loc[('flips left', 'mlp.1.hook_post'), 'R2']:.3f} after layer 2, against "
   f"{ps.loc[('flips left', 'mlp.1.hook_post'), 'R2 shuffled']:.3f} for shuffled labels). The posterior mean, a "
   f"non-linear function of the counts, is decoded with R² {ps.loc[('posterior mean', 'hook_obs'), 'R2']:.3f} from "
   f"the raw observation, {ps.loc[('posterior mean', 'mlp.0.hook_post'), 'R2']:.3f} after layer 1 and "
   f"{ps.loc[('posterior mean', 'mlp.1.hook_post'), 'R2']:.3f} after layer 2 (random network: "
   f"{ps.loc[('posterior mean', 'mlp.1.hook_post'), 'R2 random net']:.3f}); the posterior sd goes from "
   f"{ps.loc[('posterior sd', 'hook_obs'), 'R2']:.3f} to {ps.loc[('posterior sd', 'mlp.0.hook_post'), 'R2']:.3f} "
   f"and {ps.loc[('posterior sd', 'mlp.1.hook_post'), 'R2']:.3f} (random network "
   f"{ps.loc[('posterior sd', 'mlp.1.hook_post'), 'R2 random net']:.3f}), and the Gittins index from "
   f"{ps.loc[('Gittins index', 'hook_obs'), 'R2']:.3f} to {ps.loc[('Gittins index', 'mlp.1.hook_post'), 'R2']:.3f} "
   f"(random network {ps.loc[('Gittins index', 'mlp.1.hook_post'), 'R2 random net']:.3f}). "
   f"The random-network control is the criterion: decodability shows that training made a posterior summary more "
   f"linearly accessible only where the trained layer 2 decodes it better than random ReLU features of the same "
   f"{2 * n + 1} inputs, and it does so for {n_beat} of the two (posterior mean and sd, @fig-probes). Even then a probe shows "
   f"that the information is there, not that the agent uses it; no probe in this chapter is tested by intervention.")

# %% [markdown]
# ## The decision to stick or switch: circuit discovery
#
# **Clean and corrupted states.** A *clean* state is a reached state in which the agent flips the best-looking coin
# (highest posterior mean, flipped before) although an unflipped coin is available. Its *corrupted* partner is the
# minimally different state in which one of the incumbent's heads came out tails instead (same flips left, same other
# coins) and the agent *switches* to an unflipped coin, although the incumbent's posterior mean is still at least
# that of an unflipped coin (0.5). We keep pairs in which the incumbent and the unflipped coin the agent switches to
# sit at the same canonical positions $a$ and $b$ in both states, so one metric applies to both:
# $m = Q(s, a) - Q(s, b)$, averaged over pairs, positive on clean states and negative on corrupted ones.
#
# **Graph.** Neuron level (`QNetwork.graph()`): the $2n + 1$ inputs, the units of both hidden layers and the $n$
# outputs are nodes and every weight is an edge (the count is given below). Patching an edge replaces its source's
# contribution to the destination's pre-activation by the value it has on the corrupted state.
#
# **Methods.** Node-level *attribution patching* (first-order estimate of patching each unit) against exact node
# patching; *EAP* and *EAP-IG* edge scores (ranked by absolute value); *ACDC* at several thresholds τ with the
# distance $d(H) = \mathrm{mean}_i |m_i(H) - m_i(G)|$ to the full model. The *faithfulness* of a circuit $C$ is
# $(m(C) - m_{\text{corr}}) / (m_{\text{clean}} - m_{\text{corr}})$, where $m(C)$ is the metric when every edge
# outside $C$ carries its corrupted value: 1 means the circuit alone reproduces the clean decision.
#
# **Selection and test halves.** A circuit found on some pairs and scored on the same pairs is scored in-sample:
# ACDC prunes until the distance on *those* pairs is small, so its faithfulness there flatters it. We split the pairs
# at random into two halves. EAP, EAP-IG and ACDC run on the *selection* half, and the choices (the ACDC threshold
# and the size of the top-K EAP-IG circuit: the smallest reaching `target_faithfulness` on the selection half, else
# the most faithful) are made there; faithfulness is then reported on the *held-out* half with a 95% bootstrap
# interval over its pairs.

# %%
all_pairs = cf.stick_switch_pairs(model, prior, states, left, q_values=q_agent)
have_pairs = len(all_pairs) >= 4 and n_pairs >= 4  # two pairs per half at least
pairs = []
if have_pairs:
    w_pairs = reach[[p[0] for p in all_pairs]]
    pick = rng.choice(len(all_pairs), size=min(n_pairs, len(all_pairs)), replace=False, p=w_pairs / w_pairs.sum())
    pairs = [all_pairs[i] for i in sorted(pick)]
p_idx = np.array([p[0] for p in pairs], dtype=int)
graph = model.graph()


def pair_set(sel):
    """Tensors and metric of the pairs `sel` (indices into `pairs`)."""
    ps = [pairs[i] for i in sel]
    ix = np.array([p[0] for p in ps])
    d = {"clean": obs[ix], "corrupt": model.canonical_obs(np.stack([p[1] for p in ps]), left[ix]),
         "a": torch.tensor([p[2] for p in ps], device=device), "b": torch.tensor([p[3] for p in ps], device=device)}
    d["task"] = logit_diff_metric(d["a"], d["b"], pos=None)  # mean Q(a) - Q(b)
    d["diff"] = lambda q: (q.gather(1, d["a"][:, None]) - q.gather(1, d["b"][:, None]))[:, 0]  # per pair
    with torch.no_grad():
        d["m_clean"], d["m_corrupt"] = d["diff"](model(d["clean"])), d["diff"](model(d["corrupt"]))
    d["patch"] = dict(graph.cache(model, d["corrupt"]))
    return d


def faithfulness(keep: torch.Tensor, d, interval: bool = False):
    """Fraction of the clean-minus-corrupted metric the circuit `keep` recovers on the pairs `d` (with interval: a
    95% bootstrap Interval over the pairs)."""
    with torch.no_grad():
        m_c = d["diff"](graph.forward(model, d["clean"], d["patch"], graph.masks_from(keep, device=device)))
    rows_f = torch.stack([m_c, d["m_clean"], d["m_corrupt"]], 1).cpu().double().numpy()
    ratio = lambda a: (a[:, 0].mean() - a[:, 2].mean()) / (a[:, 1].mean() - a[:, 2].mean())  # noqa: E731
    return bootstrap(rows_f, ratio, n_boot=n_boot, seed=seed) if interval else float(ratio(rows_f))


def top_k(order, K):
    return torch.as_tensor(np.isin(np.arange(len(graph)), order[:K]))


def distance(q):  # ACDC's d(H) on the selection half: mean absolute change of the per-pair metric
    return (S["diff"](q) - S["m_clean"]).abs().mean()


claim(len(graph) == sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)),
      "the neuron-level graph has one edge per weight")
if have_pairs:
    half = rng.permutation(len(pairs))
    S, T = pair_set(np.sort(half[: len(pairs) // 2])), pair_set(np.sort(half[len(pairs) // 2:]))
    A = pair_set(np.arange(len(pairs)))  # all pairs: node-level patching (an estimator against the exact value)
    clean, corrupt, slot_a, slot_b, task = A["clean"], A["corrupt"], A["a"], A["b"], A["task"]
    m_clean, m_corrupt = float(A["m_clean"].mean()), float(A["m_corrupt"].mean())
msg_pairs = (f"Only {len(all_pairs)} reached state(s) have a valid corrupted partner (with n_pairs = {n_pairs}): "
             "fewer than the four pairs that a selection half and a held-out half need, so this agent's stick/switch "
             "decision is not analysed; the circuit-discovery and integrated-gradients sections are empty.")
md(msg_pairs if not have_pairs else f"{len(all_pairs)} reached states have a valid corrupted partner; we use {len(pairs)} of them, drawn in proportion "
   f"to their reach probability (flips left from {left[p_idx].min()} to {left[p_idx].max()}), {len(S['a'])} for "
   f"selection and {len(T['a'])} held out. The metric is {m_clean:+.4f} heads on the clean states and "
   f"{m_corrupt:+.4f} on the corrupted ones. The graph has {len(graph):,} edges, one per weight.")

# %%
if have_pairs:
    t_ap, ap_scores = best_time(lambda: attribution_patching(model, graph, clean, corrupt, task), timing_repeats)
    t_np, np_effects = best_time(lambda: patch_nodes(model, graph, clean, task, corrupted=corrupt, progress=False), 1)
    t_eap, s_eap = best_time(lambda: eap(model, graph, S["clean"], S["corrupt"], S["task"]), timing_repeats)
    t_ig, s_ig = best_time(lambda: eap_ig(model, graph, S["clean"], S["corrupt"], S["task"], steps=eap_ig_steps),
                           timing_repeats)
    taus = sorted(acdc_taus, reverse=True)
    acdc_runs = []
    for tau in taus:
        t_a, res = best_time(lambda: acdc(model, graph, S["clean"], S["corrupt"], distance=distance, threshold=tau,
                                          progress=False), 1)
        acdc_runs.append({"tau": tau, "seconds": t_a, "result": res, "edges": int(res.circuit.keep.sum())})

# %% [markdown]
# **Node level.** Attribution patching estimates, for every unit, the change of the metric when that unit alone takes
# its corrupted value; exact node patching measures it with one forward pass per unit (all pairs: nothing is chosen
# here).

# %%
if have_pairs:
    node_names = [nd.name for nd in graph.src_nodes]
    ap_v = np.array([ap_scores[nm] for nm in node_names])
    np_v = np.array([float(np_effects[nm]) for nm in node_names])
    rho_nodes = spearmanr(ap_v, np_v).statistic
    top = 10
    top_ap, top_np = set(np.argsort(-np.abs(ap_v))[:top]), set(np.argsort(-np.abs(np_v))[:top])
    nodes_tbl = pd.DataFrame({"node": node_names, "attribution patching": ap_v, "exact patching": np_v})
    nodes_tbl = nodes_tbl.reindex(nodes_tbl["exact patching"].abs().sort_values(ascending=False).index).head(top)

# %%
#| label: tbl-nodes
#| tbl-cap: "The ten units whose patching moves the stick-minus-switch metric most (exact node patching, corrupted value), with the attribution-patching estimate. Units: in.2j / in.2j+1 = heads / tails of coin j, in.2n = flips left (n coins); h0.i, h1.i = hidden units."
if have_pairs:
    display(md_table(nodes_tbl, digits=4))

# %%
#| echo: false
if have_pairs:
    r_lin = float(np.corrcoef(ap_v, np_v)[0, 1])
    i_top = int(np.argmax(np.abs(np_v)))
    frac_a0 = float((slot_a == 0).float().mean())
    display(md(f"Across all {len(node_names)} nodes, attribution patching and exact patching have Spearman rank correlation "
       f"{rho_nodes:.3f} (Pearson {r_lin:.3f}); {len(top_ap & top_np)} of the top {top} nodes agree. The largest effect "
       f"is {node_names[i_top]}: patching it alone changes the metric by {np_v[i_top]:+.4f}, against "
       f"{m_corrupt - m_clean:+.4f} for the whole corruption (in {frac_a0:.0%} of the pairs the incumbent is coin 0, "
       f"whose heads and tails are in.0 and in.1)."))

# %% [markdown]
# **Edge level.** @tbl-agreement compares the edge rankings of EAP and EAP-IG with each other and with the circuits
# ACDC finds, all on the selection half, and gives each circuit's faithfulness on both halves; @fig-faithfulness
# shows how faithful the circuits made of the top-ranked edges are as they grow.

# %%
if have_pairs:
    abs_eap, abs_ig = s_eap.abs().numpy(), s_ig.abs().numpy()
    order_ig = np.argsort(-abs_ig)
    acdc_score = np.zeros(len(graph))  # largest tau at which the edge survives ACDC (0 = never)
    for run in sorted(acdc_runs, key=lambda r: -r["tau"]):
        acdc_score[run["result"].circuit.keep.numpy() & (acdc_score == 0)] = run["tau"]
    rho_eap_ig = spearmanr(abs_eap, abs_ig).statistic
    rho_acdc_ig = spearmanr(acdc_score, abs_ig).statistic
    agree_rows = []
    for run in acdc_runs:
        keep = run["result"].circuit.keep
        K = int(keep.sum())
        kept = set(np.flatnonzero(keep.numpy()))
        f_held = faithfulness(keep, T, interval=True)
        run["faith_sel"], run["faith_held"] = faithfulness(keep, S), f_held
        agree_rows.append({
            "ACDC tau": run["tau"], "ACDC edges": K, "faithfulness ACDC (selection)": run["faith_sel"],
            "faithfulness ACDC (held-out)": f_held.mean, "held-out 95% CI": f"[{f_held.lo:.3f}, {f_held.hi:.3f}]",
            "overlap top-K EAP": len(kept & set(np.argsort(-abs_eap)[:K])) / max(K, 1),
            "overlap top-K EAP-IG": len(kept & set(order_ig[:K])) / max(K, 1),
            "AUC EAP": roc_auc(s_eap, keep), "AUC EAP-IG": roc_auc(s_ig, keep),
            "faithfulness top-K EAP-IG (held-out)": faithfulness(top_k(order_ig, K), T),
        })
    agreement = pd.DataFrame(agree_rows)

# %%
#| label: tbl-agreement
#| tbl-cap: "Agreement of ACDC with EAP and EAP-IG (all found on the selection half of the pairs). For each ACDC threshold: the number of edges kept, the faithfulness of ACDC's circuit on the selection half (in-sample) and on the held-out half (95% bootstrap interval over held-out pairs), the fraction of its edges among the top-K edges of EAP / EAP-IG (K = ACDC's size), the ROC AUC of the EAP / EAP-IG ranking at recovering the ACDC circuit, and the held-out faithfulness of the top-K EAP-IG circuit of the same size."
if have_pairs:
    display(md_table(agreement, digits=3))

# %%
if have_pairs:
    sizes = np.unique(np.geomspace(4, len(graph), n_sizes).astype(int))
    rng_edges = np.random.default_rng(seed).permutation(len(graph))
    orders = {"EAP": np.argsort(-abs_eap), "EAP-IG": order_ig, "random edges": rng_edges}
    curves = {half_: {name: [faithfulness(top_k(o, K), D) for K in sizes] for name, o in orders.items()}
              for half_, D in [("selection", S), ("held-out", T)]}

# %%
#| label: fig-faithfulness
#| fig-cap: "Faithfulness (fraction of the clean-minus-corrupted stick-switch metric recovered when only the circuit carries clean activations) against circuit size, on the held-out pairs (solid) and the selection pairs the rankings were computed on (thin, dotted). Lines: the top-K edges of EAP, EAP-IG and a random ranking; stars: ACDC at each threshold (held-out)."
if have_pairs:
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for (name, style), col in zip([("EAP", "o-"), ("EAP-IG", "s-"), ("random edges", ":")], ["C0", "C1", "C2"]):
        ax.plot(sizes, curves["held-out"][name], style, ms=3, color=col, label=f"{name} (held-out)")
        ax.plot(sizes, curves["selection"][name], ":", lw=0.8, color=col)
    ax.plot([r["edges"] for r in acdc_runs], [r["faith_held"].mean for r in acdc_runs], "k*", ms=11,
            label="ACDC (one point per τ, held-out)")
    ax.axhline(1, color="0.6", lw=0.8)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xscale="log", xlabel="edges in the circuit", ylabel="faithfulness")
    ax.legend(fontsize=8)
    plt.tight_layout()
    plt.show()

# %%
if have_pairs:
    timing = pd.DataFrame(
        [{"method": "attribution patching (nodes, all pairs)", "seconds": t_ap, "forward passes": 3, "backward passes": 1},
         {"method": "exact node patching (all pairs)", "seconds": t_np, "forward passes": len(node_names) + 2,
          "backward passes": 0},
         {"method": "EAP (edges, selection half)", "seconds": t_eap, "forward passes": 3, "backward passes": 1},
         {"method": f"EAP-IG, {eap_ig_steps} steps (edges, selection half)", "seconds": t_ig,
          "forward passes": 2 + eap_ig_steps, "backward passes": eap_ig_steps}]
        + [{"method": f"ACDC, tau {r['tau']:g} (edges, selection half)", "seconds": r["seconds"],
            "forward passes": r["result"].n_forward, "backward passes": 0} for r in acdc_runs])

# %%
#| label: tbl-time
#| tbl-cap: "Run time of each method on the agent's neuron-level graph and the stick-switch pairs (one CPU thread; the fast methods best of several repetitions)."
if have_pairs:
    display(md_table(timing, digits=4))

# %%
#| label: fig-circuit
#| fig-cap: "The stick-switch circuit found by ACDC at the chosen threshold (the smallest circuit reaching the target faithfulness on the selection half, else the most faithful there), edges coloured by EAP-IG score (red: the edge pushes towards sticking when clean; blue: towards switching) and drawn wider for larger scores (the 40 strongest edges)."
if have_pairs:
    reach_t = [r for r in acdc_runs if r["faith_sel"] >= target_faithfulness]
    chosen = (min(reach_t, key=lambda r: r["edges"]) if reach_t else max(acdc_runs, key=lambda r: r["faith_sel"]))
    draw_circuit(graph, chosen["result"].circuit.keep, scores=s_ig, max_edges=40,
                 title=f"ACDC, τ = {chosen['tau']:g}: {chosen['edges']} edges (40 strongest by EAP-IG shown)")
    plt.show()

# %%
#| echo: false
if have_pairs:
    sel_ig = curves["selection"]["EAP-IG"]
    k_ig = next((int(K) for K, f in zip(sizes, sel_ig) if f >= target_faithfulness), int(sizes[int(np.argmax(sel_ig))]))
    f_ig_held = faithfulness(top_k(order_ig, k_ig), T, interval=True)
    f_ig_sel = faithfulness(top_k(order_ig, k_ig), S)
    f_ac_held, f_ac_sel = chosen["faith_held"], chosen["faith_sel"]
    f_ig_same = faithfulness(top_k(order_ig, chosen["edges"]), T, interval=True)
    t_acdc_total = sum(r["seconds"] for r in acdc_runs)
    t_ratio = (min(r["seconds"] for r in acdc_runs) / t_eap, max(r["seconds"] for r in acdc_runs) / t_eap)
    in_nodes = sorted({e.split("->")[0] for e in chosen["result"].circuit.edges if e.startswith("in.")})
    held_ok = f_ac_held.lo >= target_faithfulness
    display(md(f"EAP and EAP-IG rank the edges with Spearman correlation {rho_eap_ig:.3f} over all {len(graph):,} edges"
       + (": the network is piecewise linear, so the gradient at the clean input and the gradient averaged along the "
          "path from the corrupted input differ only where units switch on or off between the two states. "
          if rho_eap_ig > 0.9 else ". ")
       + f"ACDC's ranking (the largest τ at which an edge survives) correlates with |EAP-IG| with Spearman "
       f"{rho_acdc_ig:.3f}; the EAP-IG ranking recovers the ACDC circuits with ROC AUC between "
       f"{agreement['AUC EAP-IG'].min():.3f} and {agreement['AUC EAP-IG'].max():.3f}, and between "
       f"{agreement['overlap top-K EAP-IG'].min():.0%} and {agreement['overlap top-K EAP-IG'].max():.0%} of ACDC's edges "
       f"are among the top-K edges of EAP-IG.\n\n"
       f"**Faithfulness, chosen on one half and measured on the other.** The ACDC threshold chosen on the selection half "
       f"is τ = {chosen['tau']:g} ({chosen['edges']:,} edges); its circuit recovers {f_ac_sel:.1%} of the metric on the "
       f"selection pairs it was pruned on and **{f_ac_held.mean:.1%}** on the held-out pairs (95% CI "
       f"[{f_ac_held.lo:.1%}, {f_ac_held.hi:.1%}]"
       + (f"), above the {target_faithfulness:.0%} target over the whole interval. " if held_ok else
          f"); the held-out interval does not lie above the {target_faithfulness:.0%} target. ")
       + f"The top-K EAP-IG circuit of the same size recovers {f_ig_same.mean:.1%} on the held-out pairs "
       f"([{f_ig_same.lo:.1%}, {f_ig_same.hi:.1%}]). Choosing the size of the EAP-IG circuit on the selection half "
       f"gives {k_ig:,} edges ({f_ig_sel:.1%} there) and {f_ig_held.mean:.1%} held out "
       f"([{f_ig_held.lo:.1%}, {f_ig_held.hi:.1%}]). "
       f"Run time: EAP takes {t_eap * 1e3:.1f} ms and EAP-IG {t_ig * 1e3:.1f} ms, ACDC "
       f"{min(r['seconds'] for r in acdc_runs):.1f} to {max(r['seconds'] for r in acdc_runs):.1f} s per threshold "
       f"({t_acdc_total:.1f} s for the {len(taus)} thresholds), i.e. one ACDC run costs "
       f"{t_ratio[0]:,.0f} to {t_ratio[1]:,.0f} times as much as EAP. The chosen circuit (@fig-circuit) reads the inputs "
       f"{', '.join(in_nodes) or 'none'}."))

# %% [markdown]
# ## A mechanistic hypothesis, tested by causal scrubbing
#
# Attribution patching tells us *where* the decision is computed, not *what* is computed there. An index policy
# would compute a score per coin from that coin's counts and the horizon, then compare the scores. We therefore group
# the first-layer units by the input they read — coin $j$ (its heads and tails) or the flips left, a unit's *reading*
# of an input being |weight| × the input's standard deviation over the agent's states — with the units that never
# fire on those states as a "dead" group, and state the hypothesis
#
# > **H1 (per-coin features).** Each first-layer group computes a feature of *its own coin and the flips left only*;
# > layer 2 combines the groups and the readout compares the coins.
#
# Which coin a unit belongs to needs a rule, and the obvious one fails to test the hypothesis. Giving every unit the
# input it reads most (*argmax* groups) puts most units on the first canonical coins, because canonical sorting puts
# the coins with the most heads first and their inputs vary most; later coins then get few units or none, and a coin
# without a group is never tested: its inputs only reach the decision through other coins' units, where they are
# resampled. The *every-coin* rule gives each unit the input it reads most *relative to the average unit* (its share
# of reading divided by that input's mean share over the live units), so every input that the layer reads gets the
# units most specialised in it, and the hypothesis makes a claim about every coin. H1 is tested with both rules; the
# weaker hypotheses use the every-coin groups:
#
# * **H2 (posterior mean and horizon)**: group $j$ depends on coin $j$ only through its posterior *mean*, plus flips
#   left (under the symmetric prior, coins with equal means are the coins with as many heads as tails, so an
#   unflipped coin becomes interchangeable with one that showed one head and one tail);
# * **H3 (posterior means only)**: group $j$ depends only on coin $j$'s posterior mean; the flips-left group carries
#   nothing (resampled freely). This is the hypothesis of a greedy player.
#
# Causal scrubbing recomputes each group's activations on a *different* reached state that agrees with the reference
# state on the group's feature — for group $j$ under H1, the same counts of coin $j$ and the same flips left, but
# arbitrary other coins — while layer 2 and the readout run on the reference state with the scrubbed groups as inputs
# (graph `QNetwork.graph(groups=...)`: input → unit (tagged with its group) → group → layer 2 → Q). Matching exact
# counts has a catch: when few pool states share a feature value, the "resample" is often the reference state itself
# and tests nothing; we report how often that happens. The loss is whether the scrubbed network's choice differs from
# the agent's (0/1), on all reference states and on the reference states where the agent *explores* (flips a coin
# whose posterior mean is below the best). % loss recovered is (L_random − L_scrubbed)/(L_random − L_orig), where
# L_random resamples every group freely; 95% bootstrap intervals over reference states.

# %%
pool_idx = draw_states(scrub_pool, replace=True)
pool = obs[pool_idx]
group_sets = {rule: cf.unit_groups(model, pool, how=rule) for rule in ("every_coin", "argmax")}
share = group_sets["every_coin"][1]  # [d_hidden, n + 1]: each unit's reading of coin 0..n-1 and flips left


def counts_of(x):  # [m, 2n+1] observations -> heads [m, n], tails [m, n], flips left [m] (integers)
    c = torch.round(x * k).long()
    return c[:, 0:2 * n:2], c[:, 1:2 * n:2], c[:, 2 * n]


def coin_feature(j, with_counts, with_left):
    def f(x):
        h, t, l = counts_of(x)
        m = torch.as_tensor(np.round(prior.posterior_mean(h[:, j].cpu().numpy(), t[:, j].cpu().numpy()), 9))
        cols = [h[:, j], t[:, j]] if with_counts else [m]
        return torch.stack([c.double().cpu() for c in cols + ([l] if with_left else [])], 1)
    return f


identity = lambda x: x  # noqa: E731
constant = lambda x: torch.zeros(len(x))  # noqa: E731


def hypothesis(groups, with_counts, with_left):
    feats_h = {"in": identity, "h1": identity}
    for g in groups:
        if g.startswith("coin"):
            feats_h[g] = coin_feature(int(g[4:]), with_counts, with_left)
        else:  # flips-left group (H3: carries nothing) and dead units (activation 0 whatever the input)
            feats_h[g] = (lambda x: counts_of(x)[2]) if (g == "left" and with_left) else constant
    return Hypothesis(feats_h)


def agent_choice_and_explore(x):
    """The agent's choice on states x and whether it explores (flips a coin with a lower posterior mean)."""
    with torch.no_grad():
        ch = model(x).argmax(1)
    h, t, _ = counts_of(x)
    mean = torch.as_tensor(prior.posterior_mean(h.cpu().numpy(), t.cpu().numpy()))
    explore = mean.gather(1, ch.cpu()[:, None])[:, 0] < mean.max(1).values - 1e-12
    return ch, explore


def loss_all(out, x):
    ch, _ = agent_choice_and_explore(x)
    return (out.argmax(1) != ch).double()


def loss_explore(out, x):
    ch, explore = agent_choice_and_explore(x)
    return ((out.argmax(1) != ch).cpu() & explore).double()


pool_keys = torch.round(pool * k).long().cpu().numpy()  # the state itself


def self_draw(groups, hyp):
    """Mean over pool states (the reference states are a uniform subsample) and over live groups of the
    probability that the group's resample is the reference state itself."""
    live = [g for g in groups if g != "dead"]
    per = [cf.identical_draw_prob(hyp.features[g](pool).reshape(len(pool), -1).cpu().numpy(), pool_keys)
           for g in live]
    return float(np.mean(per)) if per else float("nan")


hyps = [("H1: per-coin counts + flips left", "every_coin", True, True),
        ("H1: per-coin counts + flips left (argmax groups)", "argmax", True, True),
        ("H2: per-coin posterior mean + flips left", "every_coin", False, True),
        ("H3: per-coin posterior mean only", "every_coin", False, False)]
scrub_rows = []
for name, rule, with_counts, with_left in hyps:
    groups = group_sets[rule][0]
    sgraph = model.graph(groups=groups)
    hyp = hypothesis(groups, with_counts, with_left)
    p_self = self_draw(groups, hyp)
    for loss_name, loss in [("all decisions", loss_all), ("exploring decisions", loss_explore)]:
        r = causal_scrubbing(model, sgraph, hyp, pool, loss, n_ref=scrub_ref, n_boot=n_boot, seed=seed)
        scrub_rows.append({"hypothesis": name, "loss on": loss_name, "P(resample = reference)": p_self,
                           "L_orig": r.loss_orig, "L_scrubbed": r.loss_scrubbed, "L_random": r.loss_random,
                           "recovered": r.recovered, "95% CI low": r.ci[0], "95% CI high": r.ci[1]})
scrub = pd.DataFrame(scrub_rows)
group_rows = []
for rule, (groups, _) in group_sets.items():
    for g, units in groups.items():
        own = share[units, int(g[4:])] if g.startswith("coin") else share[units, n] if g == "left" else None
        group_rows.append({"rule": rule.replace("_", "-"), "group": g, "units": len(units),
                           "own input's share of reading": float(own.mean()) if own is not None else np.nan,
                           "with flips left": float((own + share[units, n]).mean()) if g.startswith("coin") else
                           (float(own.mean()) if own is not None else np.nan)})
group_tbl = pd.DataFrame(group_rows)

# %%
#| label: tbl-groups
#| tbl-cap: "First-layer unit groups under the two rules. Own input's share: mean over the group's units of the fraction of a unit's reading (|weight| × input sd) that comes from the group's own coin (or the flips left); with flips left: the same plus the flips-left input, the part of the unit's input that H1 claims matters. Dead units never fire on the agent's states."
md_table(group_tbl, digits=3)

# %%
#| label: tbl-scrub
#| tbl-cap: "Causal scrubbing of hypotheses about the first layer's unit groups. P(resample = reference): how often a group's resample is the reference state itself (mean over live groups and pool states). Loss: the scrubbed network chooses a different coin than the agent (0/1), on all reference states or counting only the states where the agent explores. Recovered = (L_random − L_scrubbed)/(L_random − L_orig) with a 95% bootstrap interval."
md_table(scrub, digits=3)

# %%
#| echo: false
sc = scrub.set_index(["hypothesis", "loss on"])
H1, H1x = "H1: per-coin counts + flips left", "H1: per-coin counts + flips left (argmax groups)"
h1a, h1e = sc.loc[(H1, "all decisions")], sc.loc[(H1, "exploring decisions")]
h1xa = sc.loc[(H1x, "all decisions")]
h2a, h2e = (sc.loc[("H2: per-coin posterior mean + flips left", "all decisions")],
            sc.loc[("H2: per-coin posterior mean + flips left", "exploring decisions")])
h3a, h3e = sc.loc[("H3: per-coin posterior mean only", "all decisions")], sc.loc[("H3: per-coin posterior mean only", "exploring decisions")]
g_every, g_arg = group_sets["every_coin"][0], group_sets["argmax"][0]
sizes_every = ", ".join(f"{g} {len(v)}" for g, v in g_every.items())
sizes_arg = ", ".join(f"{g} {len(v)}" for g, v in g_arg.items())
missing_arg = [f"coin {j}" for j in range(n) if f"coin{j}" not in g_arg]
missing_every = [f"coin {j}" for j in range(n) if f"coin{j}" not in g_every]
own_every = group_tbl[(group_tbl.rule == "every-coin") & group_tbl.group.str.startswith("coin")]
pct = lambda x: f"{x:.1%}" if np.isfinite(x) else "an undefined fraction (L_random = L_orig)"  # noqa: E731
fmt_ci = lambda r: (f"{pct(r.recovered)} (95% CI [{r['95% CI low']:.1%}, {r['95% CI high']:.1%}])"  # noqa: E731
                    if np.isfinite(r.recovered) else pct(r.recovered))
md(f"Argmax groups: {sizes_arg}"
   + (f" — no unit reads {', '.join(missing_arg)} most, so the earlier form of the hypothesis said nothing testable "
      "about " + ("that coin" if len(missing_arg) == 1 else "those coins") + ". " if missing_arg else ". ")
   + f"Every-coin groups: {sizes_every}"
   + (f" ({', '.join(missing_every)} still without units: no live unit reads it at all)" if missing_every else
      ", a group for every coin")
   + f". The hypothesis is a strong one: a coin group's units take on average "
   f"{float(own_every['with flips left'].mean()):.0%} of their reading from their own coin and the flips left, so H1 "
   f"claims the other {1 - float(own_every['with flips left'].mean()):.0%} do not matter.\n\n"
   f"With a group for every coin, H1 recovers {fmt_ci(h1a)} of the decision loss and {fmt_ci(h1e)} of the loss on "
   f"exploring decisions; with argmax groups {fmt_ci(h1xa)}. A resample is the reference state itself with "
   f"probability {h1a['P(resample = reference)']:.1%} under H1 with every-coin groups and "
   f"{h1xa['P(resample = reference)']:.1%} with argmax groups ({h3a['P(resample = reference)']:.1%} under H3): that "
   "part of the recovered loss is recovered by construction, so the recovered fractions are upper bounds on what the "
   f"hypothesis explains. Posterior means and the horizon (H2) recover {fmt_ci(h2a)} of all decisions and "
   f"{pct(h2e.recovered)} of the exploring ones, posterior means alone (H3) {fmt_ci(h3a)} and {pct(h3e.recovered)}.")

# %% [markdown]
# ## The agent's implicit index {#sec-coinflip-index}
#
# Index policies score each coin separately and flip the highest score. Three classical indices:
#
# * **Gittins index** (finite horizon, `bayes.gittins_index`): the pay-off per flip of a known coin that makes the
#   player indifferent between that known coin for all remaining flips and trying this coin first with the option
#   to retire to the known coin later. Computed exactly by one backward induction per calibration pay-off.
# * **Bayes-UCB** [@kaufmann2012bayesian]: the posterior quantile at level 1 − 1/(t+1).
# * **Posterior mean + c × posterior sd**, with the bonus weight $c$ fitted per flips left.
#
# We measure how much of the agent's Q-value variation each index explains, in two views, both weighted by reach
# probability and fitted by least squares with one slope per flips-left value: (i) *all coins*: the Q-values centred
# per state (Q minus its mean over the coins), which is dominated by the obviously bad coins, whose values the
# agent never needs to get right; and (ii) the *stick-switch contrast*: in every reached state with an unflipped coin
# and a flipped best-looking coin, Q(best-looking coin) − Q(unflipped coin), the quantity that decides exploration.
# The bonus weight $c$ of "mean + c × sd" is fitted on the contrast, per flips left. We also evaluate each index as a
# policy, exactly, and count how often it picks the same kind of coin as the agent (identical coins count as one).
# Finally, the *exploration bonus* of an unflipped coin, in heads: how much more a set of Q-values prefers the
# unflipped coin over the best-looking one than they would if there were nothing left to learn. With nothing left to
# learn (one flip left) a flip is worth its immediate expected head, the posterior mean $\bar p$, so
# $b(s) = [Q(s, \text{unflipped}) - Q(s, \text{best})] - [\bar p_{\text{unflipped}} - \bar p_{\text{best}}]$.
# For Q\* this is the value of the information the unflipped coin yields, and it is exactly 0 at the last flip.
# For the agent, averaged over states, $b$ mostly measures the error of its Q-values, and a DQN's values are only
# trained for the actions it takes: in a state where it always sticks, the value of switching is an extrapolation.
# We therefore measure the bonus *at the decision boundary*, from decisions rather than from values: at each number of
# flips left, the deficit $\theta$ in posterior mean, $\bar p_{\text{best}} - \bar p_{\text{unflipped}}$, below
# which the policy flips the unflipped coin and above which it sticks (`cf.switch_threshold`: the threshold that
# best separates its switch and stick decisions, by reach weight, on the agent's states). At the boundary the two
# actions are worth the same to the policy, so $b = \theta$ there. With nothing left to learn the Bayes-optimal
# policy never pays for information, so its $\theta$ is 0 at the last flip; a positive $\theta$ there is
# exploration that cannot pay off.

# %%
centre = lambda a: a - a.mean(1, keepdims=True)  # noqa: E731
rows_ = np.arange(len(states))
ucb_level = np.broadcast_to((1 - 1 / (k - left + 2))[:, None], states.shape[:2])
scores = {"Bayes-optimal Q*": q_star, "Gittins index": feats["gittins"],
          "Bayes-UCB quantile": prior.posterior_quantile(states[..., 0], states[..., 1], ucb_level),
          "posterior mean": feats["mean"]}
# the stick-switch contrast: best-looking flipped coin vs an unflipped coin
mean_, flips_ = feats["mean"], feats["flips"]
best_ = (mean_ >= mean_.max(1, keepdims=True) - 1e-12).argmax(1)
has = (flips_ == 0).any(1) & (flips_[rows_, best_] > 0)
unfl = (flips_ == 0).argmax(1)
contrast = lambda a: (a[rows_, best_] - a[rows_, unfl])[has]  # noqa: E731


y_all, y_con, w_con, l_con = centre(q_agent), contrast(q_agent), reach[has], left[has]
_, coef_c = cf.fit_per_left(y_con, [contrast(feats["mean"]), contrast(feats["std"])], w_con, l_con)
c_agent = {l: b[1] / b[0] for l, b in coef_c.items()}
c_arr = np.array([c_agent.get(int(l), 0.0) for l in left])[:, None]
scores["posterior mean + c sd (agent's c)"] = feats["mean"] + c_arr * feats["std"]


def same_coin(choice):  # reach-weighted probability that `choice` flips the same kind of coin as the agent
    return float((reach * (states[rows_, choice] == states[rows_, q_agent.argmax(1)]).all(1)).sum() / reach.sum())


def index_probs(name):
    if name == "Bayes-optimal Q*":
        return solution.probs
    if name == "Gittins index":
        return bayes.gittins_probs(prior, k, gittins_grid)
    if name == "Bayes-UCB quantile":
        return bayes.bayes_ucb_probs(prior, k)
    if name == "posterior mean":
        return bayes.greedy_probs(prior)
    return bayes.mean_plus_c_sd_probs(prior, c_agent)  # with the agent's c per flips left


index_rows = []
for name, sc_ in scores.items():
    index_rows.append({
        "index": name,
        "R2 all coins": cf.fit_per_left(y_all, [centre(sc_)], reach, left)[0],
        "R2 stick-switch": cf.fit_per_left(y_con, [contrast(sc_)], w_con, l_con)[0],
        "same choice as agent": same_coin((sc_ - 1e-9 * flips_).argmax(1)),
        "policy value (exact)": float(bayes.evaluate_exact(index_probs(name), n, k, cfg.sigma)),
    })
agent_value = float(bayes.evaluate_exact(model.policy_probs, n, k, cfg.sigma))
index_tbl = pd.DataFrame(index_rows)

# %%
#| label: tbl-index
#| tbl-cap: "How well each index explains the agent. R² all coins: fraction of the reach-weighted variance of the agent's Q-values across coins (centred per state) explained with one slope per flips-left value; R² stick-switch: the same for Q(best-looking flipped coin) − Q(unflipped coin), with one slope and intercept per flips-left value. Same choice: reach-weighted probability that the index's argmax flips the same kind of coin as the agent. Policy value: exact expected heads of the index policy."
md_table(index_tbl, digits=4)

# %%
agent_choice = q_agent.argmax(1)
g_choice = (feats["gittins"] - 1e-9 * flips_).argmax(1)
disagree = ~(states[rows_, g_choice] == states[rows_, agent_choice]).all(1)
regret_agent = q_star.max(1) - q_star[rows_, agent_choice]
regret_g = q_star.max(1) - q_star[rows_, g_choice]
agent_explores = mean_[rows_, agent_choice] < mean_.max(1) - 1e-12
g_explores = mean_[rows_, g_choice] < mean_.max(1) - 1e-12
by_l = pd.DataFrame({"flips left": left, "w": reach, "dis": reach * disagree, "ea": reach * agent_explores,
                     "eg": reach * g_explores}).groupby("flips left").sum()
ex_more = float((reach * disagree * agent_explores * ~g_explores).sum())
gap_con = contrast(mean_)  # posterior mean of the best-looking coin minus that of the unflipped coin
bonus, bonus_near = {}, {}  # value-based mean over contrast states; decision-boundary threshold theta
for name, qv in [("DQN agent", q_agent), ("Bayes-optimal Q*", q_star)]:
    b_ = gap_con - contrast(qv)  # [Q(unfl) - Q(best)] - [mean(unfl) - mean(best)]
    bonus[name] = pd.DataFrame({"l": l_con, "w": w_con, "wb": w_con * b_}).groupby("l").sum().eval("wb / w")
    ch_ = qv.argmax(1)
    switch_ = (qv[rows_, unfl] > qv[rows_, best_] + 1e-12)[has]  # prefers the unflipped coin to the best-looking
    sticks_ = (states[rows_, ch_] == states[rows_, best_]).all(1)[has]  # chooses (a coin like) the best-looking
    two_way = switch_ | sticks_  # decisions between exactly these two kinds of coin
    bt = cf.switch_threshold(gap_con[two_way], switch_[two_way], w_con[two_way], l_con[two_way])
    bonus_near[name] = bt["theta"]
    bonus_near[name + " misclassified"] = bt["misclassified"]
ex_less = float((reach * disagree * ~agent_explores * g_explores).sum())

# %%
#| label: fig-index
#| fig-cap: "Left: the exploration bonus of an unflipped coin by flips left, for the agent and for the Bayes-optimal policy. Solid: at the decision boundary, the posterior-mean deficit θ below which the policy flips the unflipped coin rather than the best-looking one (0 when nothing is left to learn); thin: the value-based bonus [Q(unflipped) − Q(best)] − [posterior mean(unflipped) − posterior mean(best)], reach-weighted mean over all the agent's states with an unflipped coin and a flipped best-looking coin, which for the agent includes the error of values it never acts on. Right: how often the agent and the Gittins-index policy choose different coins (on the agent's states, reach-weighted), and how often each explores."
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for name, style, col in zip(bonus, ["o-", "s--"], ["C0", "C1"]):
    b_ = bonus_near[name]
    axes[0].plot(b_.index, b_.to_numpy(), style, ms=3, color=col, label=f"{name}: θ at the decision boundary")
    axes[0].plot(bonus[name].index, bonus[name].to_numpy(), ":", lw=0.9, color=col, label=f"{name}: value-based mean")
axes[0].axhline(0, color="0.6", lw=0.8)
axes[0].set(xlabel="flips left", ylabel="exploration bonus (heads)")
axes[0].invert_xaxis()
axes[0].legend(fontsize=8)
ax = axes[1]
ax.plot(by_l.index, by_l.dis / by_l.w, "o-", ms=3, label="agent ≠ Gittins")
ax.plot(by_l.index, by_l.ea / by_l.w, "^:", ms=3, label="P(explore), agent")
ax.plot(by_l.index, by_l.eg / by_l.w, "v:", ms=3, label="P(explore), Gittins")
ax.set(xlabel="flips left", ylabel="probability per decision")
ax.invert_xaxis()
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
#| echo: false
it = index_tbl.set_index("index")
p_dis_g = float((reach * disagree).sum())
c_name = "posterior mean + c sd (agent's c)"
ba, bs = bonus["DQN agent"], bonus["Bayes-optimal Q*"]
na, ns = bonus_near["DQN agent"], bonus_near["Bayes-optimal Q*"]
l_hi = int(max(ba.index))  # the first decision (k flips left) has no flipped coin to contrast
l_mid = int(min(ba.index, key=lambda l: abs(l - k // 2)))


def fb(series, l):  # a bonus at l flips left, or "n/a" where no state of that kind is reached
    v = series.get(l, np.nan)
    return f"{v:+.3f}" if np.isfinite(v) else "n/a"


claim(bool(np.allclose(bs.get(1, 0.0), 0.0, atol=1e-9)), "Q*'s value-based exploration bonus is 0 with one flip left")
claim(bool(ns.get(1, 0.0) == 0.0), "the Bayes-optimal policy pays nothing for information at the last flip (theta = 0)")
g_val = it.loc["Gittins index", "policy value (exact)"]
c_fits_plays_worse = bool(it.loc[c_name, "R2 stick-switch"] > it.loc["posterior mean", "R2 stick-switch"]
                          and it.loc[c_name, "policy value (exact)"] < it.loc["posterior mean", "policy value (exact)"])
md(f"Over all coins, the agent's centred Q-values are explained to R² {it.loc['Bayes-optimal Q*', 'R2 all coins']:.3f} "
   f"by Q\\*, {it.loc['Gittins index', 'R2 all coins']:.3f} by the Gittins index, "
   f"{it.loc['Bayes-UCB quantile', 'R2 all coins']:.3f} by Bayes-UCB and {it.loc['posterior mean', 'R2 all coins']:.3f} "
   f"by the posterior mean: this view mostly measures how the agent orders good and bad coins. On the stick-switch "
   f"contrast, the decision that matters for exploration, Q\\* explains {it.loc['Bayes-optimal Q*', 'R2 stick-switch']:.3f}, "
   f"the Gittins index {it.loc['Gittins index', 'R2 stick-switch']:.3f}, Bayes-UCB "
   f"{it.loc['Bayes-UCB quantile', 'R2 stick-switch']:.3f}, the posterior mean "
   f"{it.loc['posterior mean', 'R2 stick-switch']:.3f} and mean + c × sd {it.loc[c_name, 'R2 stick-switch']:.3f}. "
   f"The Gittins-index policy is itself "
   + ("nearly optimal" if g_val >= 0.99 * solution.value else "not within 1% of optimal")
   + f" ({g_val:.4f} expected heads, {100 * it.loc['Gittins index', 'policy value (exact)'] / solution.value:.2f}% of the optimum, "
   f"against {agent_value:.4f} for the agent) and picks the agent's coin with probability "
   f"{it.loc['Gittins index', 'same choice as agent']:.3f} per decision; over a game the two disagree "
   f"{p_dis_g:.2f} times on average, {ex_more:.2f} times because the agent explores where the index exploits and "
   f"{ex_less:.2f} times the other way round. At those decisions the agent loses "
   f"{(reach * regret_agent * disagree).sum():.4f} heads per game against Q\\*, the Gittins choice "
   f"{(reach * regret_g * disagree).sum():.4f}. On the decision level the indices separate clearly: Q\\* and the "
   f"Gittins index make the agent's choice with probability {it.loc['Bayes-optimal Q*', 'same choice as agent']:.3f} "
   f"and {it.loc['Gittins index', 'same choice as agent']:.3f}, the posterior mean (greedy) "
   f"{it.loc['posterior mean', 'same choice as agent']:.3f}, Bayes-UCB "
   f"{it.loc['Bayes-UCB quantile', 'same choice as agent']:.3f}; the R² values are closer because most of the "
   f"contrast is the difference of posterior means, which every index contains. Mean + c × sd with c fitted to "
   f"the agent's contrast explains the contrast with R² {it.loc[c_name, 'R2 stick-switch']:.3f} and plays "
   f"{it.loc[c_name, 'policy value (exact)']:.4f} (greedy: {it.loc['posterior mean', 'policy value (exact)']:.4f})"
   + (": fitting values is not fitting decisions. " if c_fits_plays_worse else ". ")
   + f"At the decision boundary, the exploration bonus (@fig-index, left, solid: the posterior-mean deficit a "
   f"policy accepts to flip an unflipped coin) is {fb(na, l_hi)} heads at {l_hi} flips left, {fb(na, l_mid)} at "
   f"{l_mid} and {fb(na, 1)} at the last flip for the agent, against {fb(ns, l_hi)}, {fb(ns, l_mid)} and "
   f"{fb(ns, 1)} for the Bayes-optimal policy (thresholds misclassify at most "
   f"{float(np.nanmax(bonus_near['DQN agent misclassified'])):.1%} of a flips-left group's reach weight for the "
   f"agent and {float(np.nanmax(bonus_near['Bayes-optimal Q* misclassified'])):.1%} for Q\\*)"
   + (". The agent's positive bonus at the last flip is exploration that cannot pay off, the late over-exploration "
      "of the agent chapter. " if na.get(1, 0.0) > 0 else ". ")
   + f"The value-based bonus averaged over all contrast states is {fb(ba, l_hi)}, {fb(ba, l_mid)} and {fb(ba, 1)} "
   f"for the agent (Q\\*: {fb(bs, l_hi)}, {fb(bs, l_mid)}, {fb(bs, 1)}): at the last flip, where correct values "
   "give 0, that average measures the error of the agent's values for a switch it rarely makes, not a bonus.")

# %% [markdown]
# ## Integrated gradients on the stick/switch decision
#
# Integrated gradients (Captum) attribute $Q(s, a) - Q(s, b)$ on each clean and corrupted state to the $2n + 1$
# inputs, relative to a baseline input. Two baselines answer two questions: *no coin flipped with the same flips
# left* (the main one) asks what the counts contribute at this point of the game, and gives the flips left exactly
# zero attribution; the *all-zero input* (no coin flipped and no flips left, the usual default) also credits the
# horizon. Completeness requires the attributions to sum to the difference between the state and the baseline; the
# ReLU network's gradient jumps where units switch, so the integration rule matters (`ig_method`, `ig_n_steps`). We
# group the attributions by role: the incumbent's heads and tails, the other flipped coins' heads and tails, and the
# flips left (the unflipped coin's inputs are zero, like both baselines', so they receive nothing).

# %%
if have_pairs:
    ig = {}
    for base in ("same_left", "zero"):
        rc, dc = cf.ig_roles(model, clean, slot_a, slot_b, ig_n_steps, ig_method, baseline=base)
        rr, dr = cf.ig_roles(model, corrupt, slot_a, slot_b, ig_n_steps, ig_method, baseline=base)
        ig[base] = {"clean": rc, "corrupt": rr, "error": float(torch.cat([dc, dr]).abs().max())}
    ig_completeness = max(v["error"] for v in ig.values())
    base_name = {"same_left": "same flips left", "zero": "all-zero"}
    ig_tbl = pd.DataFrame([{"input": r, **{f"{col} ({base_name[b]})": float(np.mean(fn(ig[b])))
                                           for b in ig for col, fn in [
                                               ("clean", lambda v, r=r: v["clean"][r]),
                                               ("corrupted", lambda v, r=r: v["corrupt"][r]),
                                               ("difference", lambda v, r=r: v["clean"][r] - v["corrupt"][r])]}}
                           for r in ig["same_left"]["clean"]])

# %%
#| label: tbl-ig
#| tbl-cap: "Integrated-gradients attribution of Q(stick) − Q(switch) to the inputs, grouped by role, mean over pairs, with the two baselines: no coin flipped with the same flips left, and the all-zero input. Clean states stick, corrupted states switch; positive values push towards sticking with the incumbent."
if have_pairs:
    display(md_table(ig_tbl, digits=4))

# %%
#| echo: false
if have_pairs:
    it_ = ig_tbl.set_index("input")
    C, Z = "clean (same flips left)", "clean (all-zero)"
    other_clean = float(it_.loc[["other coins' heads", "other coins' tails"], C].sum())
    other_zero = float(it_.loc[["other coins' heads", "other coins' tails"], Z].sum())
    ig_tolerance = 1e-3
    claim(ig_completeness < ig_tolerance, f"integrated-gradients completeness error below the {ig_tolerance:g} tolerance")
    claim(bool(np.abs(it_.loc["flips left", [C, "corrupted (same flips left)"]]).max() < 1e-9),
          "with the same-flips-left baseline the flips left get no attribution")
    display(md(f"The largest completeness error over all {2 * len(pairs)} states and both baselines is {ig_completeness:.2e} "
       f"({ig_method}, {ig_n_steps} steps), below the {ig_tolerance:g} tolerance. "
       f"With the same-flips-left baseline, on the clean states the incumbent's heads push towards sticking by "
       f"{it_.loc['incumbent heads', C]:+.3f} on average and its tails by {it_.loc['incumbent tails', C]:+.3f}, the other "
       f"flipped coins by {other_clean:+.3f}. Turning one of the incumbent's heads into a tail moves the attribution of "
       f"its heads by {-it_.loc['incumbent heads', 'difference (same flips left)']:+.3f} and of its tails by "
       f"{-it_.loc['incumbent tails', 'difference (same flips left)']:+.3f}. From the all-zero input the incumbent's "
       f"heads and tails get {it_.loc['incumbent heads', Z]:+.3f} and {it_.loc['incumbent tails', Z]:+.3f}, the other "
       f"coins {other_zero:+.3f} and the flips left {it_.loc['flips left', Z]:+.3f}: the two baselines differ by what "
       "the horizon contributes, and by how that contribution is shared with the counts along the path."))

# %% [markdown]
# ## Discussion

# %%
#| echo: false
p_g = it.loc["Gittins index", "same choice as agent"]
fl_min = float(probes[probes.feature == "flips left"].R2.min())
ig_dominates = have_pairs and bool(min(abs(it_.loc["incumbent heads", C]), abs(it_.loc["incumbent tails", C]))
                                   > abs(other_clean))
h3_less = bool(h3a.recovered < h1a.recovered and h3e.recovered < h1e.recovered)
display(md(f"**How the DQN trades exploration against exploitation.** At the level of decisions, a finite-horizon Gittins "
   f"index picks the agent's coin with probability {p_g:.3f} (Q\\*: "
   f"{it.loc['Bayes-optimal Q*', 'same choice as agent']:.3f}; greedy on the posterior mean: "
   f"{it.loc['posterior mean', 'same choice as agent']:.3f})"
   + (", so the agent is close to an index policy" if p_g >= 0.95 else "")
   + f"; the two disagree {p_dis_g:.2f} times per game, {ex_more:.2f} times because the agent explores where the "
   f"index exploits and {ex_less:.2f} times the other way round, at a cost to the agent of "
   f"{(reach * regret_agent * disagree).sum():.4f} heads per game. Measured at its decision boundary, the agent "
   f"pays up to {fb(na, l_hi)} heads of posterior mean for a flip of an untried coin with {l_hi} flips left, "
   f"{fb(na, l_mid)} with {l_mid} and {fb(na, 1)} at the last flip, where the optimal policy pays {fb(ns, 1)} "
   f"(optimal: {fb(ns, l_hi)} and {fb(ns, l_mid)} at {l_hi} and {l_mid}); averaged over all reached states, where the "
   f"agent mostly never switches, its value-based bonus is {fb(ba, l_hi)} and {fb(ba, 1)}, which measures the error "
   "of values it never acts on rather than exploration. "
   f"Inside the network, flips left is linearly decodable from every layer (R² ≥ {fl_min:.3f}) and the posterior "
   f"summaries of every coin from both hidden layers (R² ≥ "
   f"{probe_summary[probe_summary.hook != 'hook_obs'].R2.min():.3f}); the trained layer 2 beats random ReLU features "
   f"of the same inputs on {n_beat} of the two posterior summaries, and a probe is correlational: it does not show "
   "that the decision uses what it decodes. "
   f"Causal scrubbing is an intervention. With a unit group for every coin, letting each group see only its own coin "
   f"and the flips left (H1) recovers {pct(h1a.recovered)} of the agent's decisions and {pct(h1e.recovered)} of its "
   f"exploring decisions (argmax groups, which leave "
   + (f"{', '.join(missing_arg)} without a group: {pct(h1xa.recovered)}); " if missing_arg else
      f"no coin without a group here: {pct(h1xa.recovered)}); ")
   + f"posterior means plus flips left (H2) {pct(h2a.recovered)} and {pct(h2e.recovered)}, posterior means alone (H3) "
   f"{pct(h3a.recovered)} and {pct(h3e.recovered)}; between {min(scrub['P(resample = reference)']):.0%} and "
   f"{max(scrub['P(resample = reference)']):.0%} of the resamples are the reference state itself, so these "
   f"fractions overstate what each hypothesis explains. The per-coin hypothesis leaves "
   f"{pct(1 - h1a.recovered)} of the decision loss unexplained"
   + (", and dropping the counts and the horizon (H3) loses more on both losses: the exploring decisions depend on how "
      "often a coin was flipped and how many flips are left, not only on posterior means. " if h3_less else
      "; dropping the counts and the horizon (H3) does not lose more on both losses. ")
   + (("On the stick-or-switch decision "
       + ("the incumbent's own heads and tails dominate the integrated-gradients attributions" if ig_dominates else
          "the integrated-gradients attributions are not dominated by the incumbent's own heads and tails")
       + f" ({it_.loc['incumbent heads', C]:+.3f} and {it_.loc['incumbent tails', C]:+.3f} against {other_clean:+.3f} "
       f"for the other coins, from the same-flips-left baseline), and {node_names[i_top]} is the single node whose "
       "patching moves the decision most.") if have_pairs else msg_pairs)))
if have_pairs:
    display(md(f"**Attribution patching or ACDC?** EAP and EAP-IG agree with each other (Spearman {rho_eap_ig:.3f}) and rank "
       f"ACDC's circuits with ROC AUC {agreement['AUC EAP-IG'].min():.3f}–{agreement['AUC EAP-IG'].max():.3f} "
       f"({agreement['overlap top-K EAP-IG'].min():.0%}–{agreement['overlap top-K EAP-IG'].max():.0%} of ACDC's edges "
       f"are among the top-K of EAP-IG), and node-level attribution patching matches exact node patching with Spearman "
       f"{rho_nodes:.3f}. Chosen on half of the pairs and scored on the other half, ACDC's circuit "
       f"({chosen['edges']:,} edges) recovers {f_ac_held.mean:.1%} of the metric (95% CI [{f_ac_held.lo:.1%}, "
       f"{f_ac_held.hi:.1%}]; {f_ac_sel:.1%} on the pairs it was pruned on) and the top-K EAP-IG circuit of the same "
       f"size {f_ig_same.mean:.1%} ([{f_ig_same.lo:.1%}, {f_ig_same.hi:.1%}])"
       + (": the intervals overlap, so on this decision neither method is shown to find the more faithful circuit. "
          if max(f_ac_held.lo, f_ig_same.lo) <= min(f_ac_held.hi, f_ig_same.hi) else
          f": {'ACDC' if f_ac_held.mean > f_ig_same.mean else 'EAP-IG'} finds the more faithful circuit at this size. ")
       + f"One ACDC run costs {t_ratio[0]:,.0f}–{t_ratio[1]:,.0f}× the time of EAP ({t_acdc_total:.1f} s for "
       f"{len(taus)} thresholds against {t_eap * 1e3:.1f} ms for EAP and {t_ig * 1e3:.1f} ms for EAP-IG), so attribution "
       "patching is the tool to rank and explore, and ACDC, or exact patching of a proposed circuit as in the "
       "faithfulness curves, the check of how much a set of edges really carries. The EAP-IG circuit chosen on the "
       f"selection half needs {k_ig:,} of the {len(graph):,} edges ({k_ig / len(graph):.0%}) for "
       f"{f_ig_held.mean:.1%} held-out faithfulness"
       + (" — the decision is distributed." if k_ig / len(graph) > 0.01 else ".")))
