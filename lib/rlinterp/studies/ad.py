"""The Algorithm Distillation study's analyses: rollouts and evaluation of the AD/ED transformer on Dark Room, and the
context-editing analyses that chapter 3, the explorer (:mod:`rlinterp.explore.ad`) and ``rli bench ad`` call.

Rollouts: :func:`rollout_darkroom`, :func:`evaluate_darkroom` (batched over goals x sampling seeds, one forward
pass per step through the key-value cache; each rollout samples from its own seeded stream,
:func:`sampling_uniforms`). Contexts ((E, T) arrays of obs / actions / rewards of whole past episodes + the actions
of the current episode): :func:`make_context`, :func:`edit_rewards`,
:func:`walk`, :func:`context_tokens`; the model's response: :func:`analyse`, :func:`attention_on_grid`; batches of
edited contexts: :func:`set_token_rewards`, :func:`play_after`; probes fitted on the model's own rollouts:
:func:`fit_probes`, :func:`probe_readout`; drawing: :func:`draw_context`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from rlinterp.progress import tqdm

from rlinterp.envs import darkroom as dr
from rlinterp.envs.darkroom import BatchedDarkRoom
from rlinterp.interp.probes import fit_probe
from rlinterp.learners import sources
from rlinterp.models import ad_transformer as adt
from rlinterp.models.ad_transformer import ADTransformer, step_token
from rlinterp.validation import check_int

SIZE, T = 9, 20
CENTRE = np.array([SIZE // 2, SIZE // 2])


# ----------------------------------------------------------------------------------------------------------------
# Rollouts and evaluation


def sampling_uniforms(keys, n: int) -> np.ndarray:
    """(B, n) uniforms in [0, 1): row ``b`` from its own generator ``numpy.random.default_rng(keys[b])``.

    Each rollout draws its actions from its own stream, so a rollout is the same whichever other rollouts share its
    batch (batching is only a speed-up) and reproducible from its key alone.
    """
    return np.stack([np.random.default_rng([int(k) for k in np.atleast_1d(key)]).random(n) for key in keys])


def _choose(logits: torch.Tensor, temperature: float, u: np.ndarray) -> np.ndarray:
    """Actions (B,): argmax (``temperature <= 0``) or the inverse-CDF draw of ``softmax(logits / temperature)``
    at the uniforms ``u`` (B,)."""
    if temperature <= 0:
        return logits.argmax(-1).cpu().numpy()
    p = torch.softmax(logits.double() / temperature, -1).cpu().numpy()
    c = np.cumsum(p, -1)
    return np.minimum((c < u[:, None] * c[:, -1:]).sum(-1), p.shape[-1] - 1)


def _check_seeds(seeds, B: int) -> np.ndarray:
    s = np.asarray(seeds)
    if s.ndim == 0:
        s = int(check_int("seed", int(s), 0)) + np.arange(B)
    if s.shape != (B,) or not np.issubdtype(s.dtype, np.integer) or (s < 0).any():
        raise ValueError(f"seeds must be an int or {B} non-negative integer sampling seeds (one per rollout), "
                         f"got shape {s.shape}")
    return s.astype(np.int64)


def room_size(model: ADTransformer) -> int:
    """The room a Dark Room model was trained for, as its config records it: ``grid_size`` (the x/y embeddings),
    which must agree with ``n_obs = grid_size**2`` (one observation per cell)."""
    cfg = model.ad_cfg
    size = cfg.grid_size if cfg.grid_size is not None else int(round(np.sqrt(cfg.n_obs)))
    if size * size != cfg.n_obs or cfg.episode_len is None:
        raise ValueError(f"not a Dark Room model: its config has n_obs={cfg.n_obs}, grid_size={cfg.grid_size}, "
                         f"episode_len={cfg.episode_len}")
    return int(size)


def check_room(model: ADTransformer, size: int | None) -> int:
    """``size`` (None: the model's own room), refused with a ``ValueError`` unless it is the room the model was
    trained for (:func:`room_size`): a model knows the cells of its own room only."""
    own = room_size(model)
    if size is None:
        return own
    size = dr.check_size(size)
    if size != own:
        raise ValueError(f"this model was trained for a {own}x{own} Dark Room (its config: grid_size={own}, "
                         f"n_obs={own * own}) and cannot be evaluated in a {size}x{size} room; train one for that "
                         f"room (DarkroomFit(room_size={size}) or `rli run ad/01_incontext -p room_size={size}`)")
    return size


@torch.no_grad()
def rollout_darkroom(model: ADTransformer, goals: np.ndarray, n_episodes: int = 20, temperature: float = 1.0,
                     seeds=0, size: int | None = None, progress: bool = False) -> dict[str, np.ndarray]:
    """Let the model play ``n_episodes`` consecutive episodes on each goal (B, 2), conditioning on its own history.

    ``temperature=0`` is greedy decoding, otherwise sampling from ``softmax(logits / temperature)``. ``seeds``: one
    sampling seed per rollout (B,) (an int ``s`` means ``s, s + 1, ...``); rollout ``b`` samples from the stream
    ``default_rng([seeds[b], goal cell])`` (:func:`sampling_uniforms`), so it does not depend on the batch. ``size``:
    the room (None: the model's own; another room than the model's is refused, :func:`check_room`). The
    context at step ``t`` of episode ``e`` holds episodes ``max(0, e-K+1) .. e`` up to ``t``; all rollouts advance
    together, one batched forward pass per step over the new token only (:class:`~rlinterp.models.ad_transformer.
    KVContext`), the window being recomputed when it slides (at the start of episodes ``K, K + 1, ...``).
    Returns the history dict (``obs, actions, rewards: (B, n_episodes, T)``, ``returns: (B, n_episodes)``,
    ``tokens: (B, n_episodes * T)``, ``logits: (B, n_episodes, T, A)`` the logits each action was drawn from).
    """
    cfg = model.ad_cfg
    T, K, A = cfg.episode_len, cfg.n_ctx_episodes, cfg.n_actions
    n_episodes = check_int("n_episodes", n_episodes, 1)
    size = check_room(model, size)
    env = BatchedDarkRoom(goals, size, T)
    B = env.B
    seeds = _check_seeds(seeds, B)
    u = sampling_uniforms(np.stack([seeds, env.goals[:, 1] * size + env.goals[:, 0]], 1), n_episodes * T)
    obs = np.zeros((B, n_episodes, T), np.int64)
    act, rew = np.zeros_like(obs), np.zeros((B, n_episodes, T), np.float32)
    logits = np.zeros((B, n_episodes, T, A), np.float32)
    tokens = np.zeros((B, n_episodes * T), np.int64)
    ctx = adt.KVContext(model)
    for e in tqdm(range(n_episodes), desc="rollout", disable=not progress):
        s = env.reset()
        for t in range(T):
            pa = act[:, e, t - 1] if t > 0 else np.full(B, A)
            pr = rew[:, e, t - 1].astype(np.int64) if t > 0 else np.zeros(B, np.int64)
            i = e * T + t
            tokens[:, i] = step_token(s, pa, pr, A)
            if i == 0 or (t == 0 and e >= K):  # first step, or the window slid by one episode: a new cache
                lg = ctx.start(tokens[:, max(0, e - K + 1) * T:i + 1])
            else:
                lg = ctx.extend(tokens[:, i:i + 1])
            a = _choose(lg, temperature, u[:, i])
            s2, r, _ = env.step(a)
            obs[:, e, t], act[:, e, t], rew[:, e, t], logits[:, e, t] = s, a, r, lg.float().cpu().numpy()
            s = s2
    return {"obs": obs, "actions": act, "rewards": rew, "returns": rew.sum(-1), "tokens": tokens, "logits": logits}


def evaluate_darkroom(model: ADTransformer, goals: np.ndarray, n_episodes: int = 20, seeds=(0,),
                      temperature: float = 1.0, size: int | None = None) -> np.ndarray:
    """In-context return curves (len(goals) * len(seeds), n_episodes): every goal played once per sampling seed
    (rows goal-major, like ``np.repeat(goals, len(seeds), 0)``), all rollouts in one batch, in the room ``size``
    (None: the model's own; any other is refused, :func:`check_room`). Take ``seeds`` from
    ``rlinterp.seeds.split("ad")``: validation seeds to choose, test seeds to report."""
    size = check_room(model, size)
    seeds = np.atleast_1d(np.asarray(seeds))
    if seeds.ndim != 1 or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty 1-d array of sampling seeds, got shape {seeds.shape}")
    goals = np.asarray(goals)
    if temperature <= 0:  # greedy rollouts do not depend on the seed: play each goal once and repeat its curve
        once = rollout_darkroom(model, goals, n_episodes=n_episodes, temperature=0.0, seeds=0, size=size)["returns"]
        return np.repeat(once, len(seeds), 0)
    return rollout_darkroom(model, np.repeat(goals, len(seeds), 0), n_episodes=n_episodes, temperature=temperature,
                            seeds=np.tile(seeds, len(goals)), size=size)["returns"]


# ----------------------------------------------------------------------------------------------------------------
# Contexts, the model's response, probes, drawing


@dataclass
class Context:
    """Past episodes ``obs, actions, rewards: (E, T)`` and the room's goal (x, y) for the current episode."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    goal: np.ndarray

    @property
    def n_episodes(self) -> int:
        return len(self.obs)


def _check_goal(goal) -> np.ndarray:
    g = np.asarray(goal, dtype=np.int64).reshape(-1)
    if g.shape != (2,) or (g < 0).any() or (g >= SIZE).any():
        raise ValueError(f"goal must be (x, y) with 0 <= x, y < {SIZE}, got {goal!r}")
    return g


def make_context(goal, kind: str = "source", upto: int = 40, n_episodes: int = 3, stride: int = 4,
                 seed: int = 0, source: str = "psrl") -> Context:
    """A context of ``n_episodes`` past episodes for ``goal``.

    ``kind="source"``: the history of the learner ``source`` (``"psrl"`` or ``"q_learning"``) on this goal, episodes
    ``upto - (n-1) * stride, ..., upto`` (1-based, as AD's training windows); ``"expert"``, ``"random"``: fresh
    expert / random episodes; ``"empty"``: none.
    """
    g = _check_goal(goal)
    if kind not in ("source", "expert", "random", "empty"):
        raise ValueError(f"kind must be 'source', 'expert', 'random' or 'empty', got {kind!r}")
    if kind == "empty" or n_episodes == 0:
        z = np.zeros((0, T), np.int64)
        return Context(z, z.copy(), np.zeros((0, T), np.float32), g)
    if kind == "source":
        first = upto - (n_episodes - 1) * stride
        if first < 1:
            raise ValueError(f"upto must be >= {(n_episodes - 1) * stride + 1} for {n_episodes} episodes at stride "
                             f"{stride}, got {upto}")
        if source not in sources.DARKROOM_LEARNERS:
            raise ValueError(f"source must be one of {sorted(sources.DARKROOM_LEARNERS)}, got {source!r}")
        h = sources.DARKROOM_LEARNERS[source](g[None], upto, seed=seed)
        idx = np.arange(first - 1, upto, stride)
    else:
        fn = sources.darkroom_expert if kind == "expert" else sources.darkroom_random
        h = fn(g[None], n_episodes, seed=seed)
        idx = np.arange(n_episodes)
    return Context(h["obs"][0, idx], h["actions"][0, idx], h["rewards"][0, idx].astype(np.float32), g)


def _next_cells(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The cell each step ends in, (E, T)."""
    x, y = obs % SIZE, obs // SIZE
    d = dr.DELTAS[actions]
    return np.clip(y + d[..., 1], 0, SIZE - 1) * SIZE + np.clip(x + d[..., 0], 0, SIZE - 1)


def edit_rewards(ctx: Context, mode: str = "keep", cells=(), toggles=(), drop=()) -> Context:
    """Edited copy of ``ctx``.

    ``mode``: ``"keep"`` the rewards, ``"erase"`` them all, or ``"cells"``: reward exactly the steps that end on one
    of ``cells`` ((x, y) pairs). ``toggles``: (episode, step) pairs whose reward is flipped afterwards. ``drop``:
    episode indices removed. The room's goal is unchanged (set ``ctx.goal`` to move it).
    """
    if mode not in ("keep", "erase", "cells"):
        raise ValueError(f"mode must be 'keep', 'erase' or 'cells', got {mode!r}")
    r = ctx.rewards.copy()
    if mode == "erase":
        r[:] = 0
    elif mode == "cells":
        ends = _next_cells(ctx.obs, ctx.actions)
        ids = [int(_check_goal(c)[1] * SIZE + _check_goal(c)[0]) for c in cells]
        r = np.isin(ends, ids).astype(np.float32)
    for e, t in toggles:
        if not (0 <= e < ctx.n_episodes and 0 <= t < T):
            raise ValueError(f"toggle (episode, step) must lie in [0, {ctx.n_episodes - 1}] x [0, {T - 1}], got {(e, t)}")
        r[e, t] = 1 - r[e, t]
    keep = [e for e in range(ctx.n_episodes) if e not in set(drop)]
    return Context(ctx.obs[keep], ctx.actions[keep], r[keep], ctx.goal.copy())


def walk(goal, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The current episode so far: play ``actions`` from the centre in a room with ``goal``.

    Returns (obs (n+1,) including the cell the agent is in now, rewards (n,), positions (n+1, 2)).
    """
    g = _check_goal(goal)
    actions = [int(a) for a in actions]
    if len(actions) >= T:
        raise ValueError(f"the current episode has at most {T - 1} steps before the query step, got {len(actions)}")
    env = dr.BatchedDarkRoom(g[None], SIZE, T)
    obs, rew, pos = [int(env.reset()[0])], [], [env.pos[0].copy()]
    for a in actions:
        s, r, _ = env.step(np.array([a]))
        obs.append(int(s[0]))
        rew.append(float(r[0]))
        pos.append(env.pos[0].copy())
    return np.array(obs), np.array(rew, np.float32), np.array(pos)


def context_tokens(ctx: Context, current_actions, n_ctx_episodes: int = 4) -> np.ndarray:
    """Token ids (1, L): the last ``K - 1`` past episodes, then the current episode up to the query step (last)."""
    obs, rew, _ = walk(ctx.goal, current_actions)
    cur_a = np.array(list(current_actions) + [0], np.int64)  # the query step's own action is not in its token
    cur_r = np.concatenate([rew, [0.0]])
    past = slice(max(0, ctx.n_episodes - (n_ctx_episodes - 1)), ctx.n_episodes)
    o = np.concatenate([ctx.obs[past].reshape(-1), obs])
    a = np.concatenate([ctx.actions[past].reshape(-1), cur_a])
    r = np.concatenate([ctx.rewards[past].reshape(-1), cur_r])
    return adt.pack_tokens(o[None], a[None], r[None], SIZE * SIZE, len(dr.ACTIONS), T)


@torch.no_grad()
def analyse(model: adt.ADTransformer, tokens: np.ndarray) -> dict:
    """Forward pass with cache. Returns ``probs`` (A,) at the last position, ``patterns`` (L, H, pos) of the last
    position's attention, ``resid`` (L, d_model) residual stream after each block at the last position, ``obs``,
    ``prev_reward`` (pos,) of the tokens."""
    tok = torch.from_numpy(np.asarray(tokens)).to(model.cfg.device)
    logits, cache = model.run_with_cache(tok)
    L = model.cfg.n_layers
    obs, _, pr = adt.unpack_tokens(tok[0].cpu(), model.ad_cfg.n_actions)
    return {"probs": torch.softmax(logits[0, -1].float(), -1).cpu().numpy(),
            "patterns": torch.stack([cache[f"blocks.{l}.attn.hook_pattern"][0, :, -1] for l in range(L)]).cpu().numpy(),
            "resid": torch.stack([cache[f"blocks.{l}.hook_resid_post"][0, -1] for l in range(L)]).cpu().numpy(),
            "obs": obs.numpy(), "prev_reward": pr.numpy()}


def attention_on_grid(pattern: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Attention (pos,) summed per grid cell of the attended tokens, (SIZE, SIZE) indexed [y, x]."""
    grid = np.zeros(SIZE * SIZE)
    np.add.at(grid, obs, pattern)
    return grid.reshape(SIZE, SIZE)


def set_token_rewards(tokens: np.ndarray, rewarded: np.ndarray, n_actions: int = 5, episode_len: int = T) -> np.ndarray:
    """Copy of context ``tokens`` (n, L) whose previous-reward flag is 1 exactly at the tokens (not episode starts)
    whose cell is rewarded; ``rewarded``: (n, n_cells) bool. Cells and actions are unchanged."""
    tokens = np.asarray(tokens, np.int64)
    rewarded = np.asarray(rewarded, bool)
    if rewarded.ndim != 2 or len(rewarded) != len(tokens):
        raise ValueError(f"rewarded must be (n, n_cells) bool with n = {len(tokens)} contexts, got {rewarded.shape}")
    obs, pa, _ = (t.numpy() for t in adt.unpack_tokens(torch.from_numpy(tokens), n_actions))
    start = (np.arange(tokens.shape[1]) % episode_len == 0)[None]
    pr = (rewarded[np.arange(len(tokens))[:, None], obs] & ~start).astype(np.int64)
    return adt.step_token(obs, pa, pr, n_actions)


@torch.no_grad()
def play_after(model: adt.ADTransformer, prefix: np.ndarray, goals, n_plays: int = 1, temperature: float = 1.0,
               seed: int = 0) -> dict[str, np.ndarray]:
    """The model plays one episode after the fixed context ``prefix`` (m, E * T tokens of E whole episodes, of which
    the last ``K - 1`` are kept; fewer is fine: it is then the start of a history) in rooms whose goals are ``goals``
    (m, 2), ``n_plays`` sampled plays per context, all in one batch (one forward pass over the prefixes, then one token
    per step through the key-value cache). Play ``j`` of context ``i`` samples from the stream ``default_rng([seed, i, j])``.

    Returns ``cells`` (m, n_plays, T): the cell each step ends in; ``rewards`` (m, n_plays, T); ``p0`` (m, A): the
    action probabilities at the first step (the same for every play).
    """
    cfg = model.ad_cfg
    K, Te, A = cfg.n_ctx_episodes, cfg.episode_len, cfg.n_actions
    prefix = np.asarray(prefix, np.int64)
    if prefix.ndim != 2 or prefix.shape[1] % Te:
        raise ValueError(f"prefix must be (m, E * {Te}) tokens of E whole episodes, got {prefix.shape}")
    n_plays = check_int("n_plays", n_plays, 1)
    seed = check_int("seed", seed, 0)
    m = len(prefix)
    pre = np.repeat(prefix[:, max(0, prefix.shape[1] - (K - 1) * Te):], n_plays, 0)
    env = dr.BatchedDarkRoom(np.repeat(np.asarray(goals), n_plays, 0), cfg.grid_size, Te)
    if env.B != len(pre):
        raise ValueError(f"goals must be (m, 2) with m = {m} (one per context), got {np.asarray(goals).shape}")
    ij = np.stack(np.meshgrid(np.arange(m), np.arange(n_plays), indexing="ij"), -1).reshape(-1, 2)
    u = sampling_uniforms(np.concatenate([np.full((len(ij), 1), seed), ij], 1), Te)
    ctx = adt.KVContext(model)
    cells, rew = np.zeros((len(pre), Te), np.int64), np.zeros((len(pre), Te), np.float32)
    s, pa, pr = env.reset(), np.full(len(pre), A), np.zeros(len(pre), np.int64)
    for t in range(Te):
        tok = adt.step_token(s, pa, pr, A)[:, None]
        lg = ctx.start(np.concatenate([pre, tok], 1)) if t == 0 else ctx.extend(tok)
        if t == 0:
            p0 = torch.softmax(lg.float(), -1).cpu().numpy()
        a = _choose(lg, temperature, u[:, t])
        s, r, _ = env.step(a)
        cells[:, t], rew[:, t] = s, r
        pa, pr = a, r.astype(np.int64)
    return {"cells": cells.reshape(m, n_plays, Te), "rewards": rew.reshape(m, n_plays, Te),
            "p0": p0.reshape(m, n_plays, A)[:, 0]}


@torch.no_grad()
def fit_probes(model: adt.ADTransformer, n_episodes: int | None = None, steps: int = 50, seed: int = 0) -> dict:
    """Per layer, probes at the residual stream after each block: ``found`` (a reward at or before this position,
    2 classes) and, where found, ``goal_x``/``goal_y`` (9 classes). Data: the model's sampled rollouts on all 81 goals,
    windows of K episodes, positions of the last episode; a quarter of the rows held out. Returns
    {"found": [ProbeResult per layer], "goal_x": ..., "goal_y": ...} (logistic :func:`rlinterp.interp.probes.fit_probe`
    fits, no control)."""
    check_room(model, SIZE)  # the probes' goal classes are the cells of the 9 x 9 room
    K = model.ad_cfg.n_ctx_episodes
    n_episodes = K if n_episodes is None else n_episodes
    if n_episodes < K:
        raise ValueError(f"n_episodes must be >= {K} (the context length in episodes), got {n_episodes}")
    cells = np.stack(np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="xy"), -1).reshape(-1, 2)
    hist = rollout_darkroom(model, cells, n_episodes=n_episodes, temperature=1.0, seeds=np.full(len(cells), seed))
    toks = np.concatenate([hist["tokens"][:, s * T:(s + K) * T] for s in range(n_episodes - K + 1)])
    gl = np.concatenate([cells for _ in range(n_episodes - K + 1)])
    tok = torch.from_numpy(toks).to(model.cfg.device)
    _, cache = model.run_with_cache(tok, names_filter=lambda n: n.endswith("hook_resid_post"))
    _, _, pr = adt.unpack_tokens(tok.cpu(), model.ad_cfg.n_actions)
    cur = slice((K - 1) * T, K * T)
    found = (pr.cumsum(1) > 0)[:, cur].reshape(-1)
    gx = torch.from_numpy(np.repeat(gl[:, 0], T))
    gy = torch.from_numpy(np.repeat(gl[:, 1], T))
    out = {"found": [], "goal_x": [], "goal_y": []}
    for l in range(model.cfg.n_layers):
        X = cache[f"blocks.{l}.hook_resid_post"][:, cur].reshape(-1, model.cfg.d_model).float().cpu()
        for name, rows, y, k in (("found", slice(None), found.long(), 2), ("goal_x", found, gx, SIZE),
                                 ("goal_y", found, gy, SIZE)):
            out[name].append(fit_probe(X[rows], y[rows], kind="logistic", alpha=1.0, test_frac=0.25, control=None,
                                       seed=seed, steps=steps, n_classes=k))
    return out


def probe_readout(probes: dict, resid: np.ndarray) -> list[dict]:
    """Per layer: P(goal found), the probes' goal (x, y), and the goal-location map (SIZE, SIZE) [y, x]."""
    rows = []
    for l, r in enumerate(resid):
        r = torch.as_tensor(np.asarray(r)).reshape(1, -1)
        px, py = (probes[f][l].predict_proba(r)[0].numpy() for f in ("goal_x", "goal_y"))
        rows.append({"layer": l, "P(found)": float(probes["found"][l].predict_proba(r)[0, 1]),
                     "goal x": int(px.argmax()), "goal y": int(py.argmax()),
                     "found acc": probes["found"][l].score, "x acc": probes["goal_x"][l].score,
                     "y acc": probes["goal_y"][l].score, "map": np.outer(py, px)})
    return rows


def draw_context(ctx: Context, cur_pos: np.ndarray, attention_grid: np.ndarray | None = None):
    """Grid figure: visits of the past episodes (grey), rewarded cells (red), the room's goal (gold star), the current
    path (blue) and, optionally, attention summed per cell (contours)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.8, 3.8))
    visits = np.zeros(SIZE * SIZE)
    np.add.at(visits, _next_cells(ctx.obs, ctx.actions).reshape(-1), 1)
    ax.imshow(visits.reshape(SIZE, SIZE) if attention_grid is None else attention_grid, cmap="Greys" if
              attention_grid is None else "viridis", origin="upper")
    ends = _next_cells(ctx.obs, ctx.actions)[ctx.rewards > 0]
    for c in np.unique(ends):
        ax.add_patch(plt.Rectangle((c % SIZE - 0.5, c // SIZE - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.plot(ctx.goal[0], ctx.goal[1], "*", color="gold", ms=14, mec="k")
    ax.plot(cur_pos[:, 0], cur_pos[:, 1], "-o", color="tab:blue", ms=3)
    ax.plot(cur_pos[-1, 0], cur_pos[-1, 1], "o", color="tab:blue", ms=10, mfc="none", mew=2)
    ax.set_xticks(range(SIZE))
    ax.set_yticks(range(SIZE))
    ax.set_title("context" if attention_grid is None else "attention per cell", fontsize=9)
    fig.tight_layout()
    return fig
