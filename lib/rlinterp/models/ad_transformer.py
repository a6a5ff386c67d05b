"""Algorithm Distillation (AD) and expert distillation (ED) with a TransformerLens ``HookedTransformer``.

AD (Laskin et al. 2022) trains a causal transformer to predict a source RL algorithm's next action from its
*learning history* across episodes; run on a new task, the transformer then improves its own behaviour in context,
with frozen weights. ED is the same model trained on expert trajectories only.

**Tokens.** One token per environment step ``t``: the observation ``o_t`` together with the previous action and
reward ``(a_{t-1}, r_{t-1})`` (a "start" action and reward 0 at the first step of each episode), packed into one
integer ``((o_t * (A + 1)) + a_{t-1}) * 2 + r_{t-1}``. In Dark Room ``r_{t-1} = 1`` says "the cell ``o_t`` is the
goal". The logits at token ``t`` predict ``a_t`` (``d_vocab_out = A``).

**Model.** :class:`ADTransformer` *is* a ``HookedTransformer`` (built from a ``HookedTransformerConfig``, standard
learned positional embedding, LayerNorm, GELU MLPs) whose ``embed`` is replaced by :class:`ADEmbed`, the sum of an
observation, an action and a reward embedding with hook points ``embed.hook_obs``, ``embed.hook_action``,
``embed.hook_reward``. All TransformerLens hooks (``hook_embed``, ``hook_pos_embed``, ``blocks.L.attn.hook_pattern``,
``blocks.L.hook_resid_post``, ...) work with ``run_with_cache``/``run_with_hooks``; no TransformerLens code is patched.

**Context.** ``n_ctx = K * T``: ``K`` whole episodes. Training windows are ``K`` episodes of one history taken with a
``stride`` (episodes ``e, e + stride, ...``), as AD subsamples its histories so that the context spans more learning
progress than ``K`` consecutive episodes; evaluation keeps the current episode plus the ``K - 1`` previous ones
(sliding window aligned to episode starts, exactly the contexts seen in training).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.hook_points import HookPoint

from rlinterp.envs.darkroom import BatchedBandit, BatchedDarkRoom, _check_int

# ----------------------------------------------------------------------------------------------------------------
# Tokens


def step_token(obs, prev_action, prev_reward, n_actions: int):
    """The token id of one step: ``((o_t * (A+1)) + a_{t-1}) * 2 + r_{t-1}`` (arrays or ints, numpy or torch)."""
    return (obs * (n_actions + 1) + prev_action) * 2 + prev_reward


def pack_tokens(obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, n_obs: int, n_actions: int,
                episode_len: int | None) -> np.ndarray:
    """Token ids (..., L) of steps (..., L): ``((o_t * (A+1)) + a_{t-1}) * 2 + r_{t-1}``.

    The previous action/reward are reset to (``A`` = "start", 0) at every multiple of ``episode_len`` (Dark Room)
    and at position 0; ``episode_len=None`` never resets (bandits, where an episode is one pull).
    """
    obs, actions = np.asarray(obs, np.int64), np.asarray(actions, np.int64)
    rewards = np.asarray(rewards)
    if not np.isin(rewards, (0, 1)).all():
        raise ValueError("pack_tokens: rewards must be 0 or 1 (binary-reward tasks)")
    if obs.min(initial=0) < 0 or obs.max(initial=0) >= n_obs or actions.min(initial=0) < 0 or \
            actions.max(initial=0) >= n_actions:
        raise ValueError(f"pack_tokens: observations must lie in [0, {n_obs}) and actions in [0, {n_actions})")
    pa = np.concatenate([np.full(actions.shape[:-1] + (1,), n_actions), actions[..., :-1]], -1)
    pr = np.concatenate([np.zeros(rewards.shape[:-1] + (1,)), rewards[..., :-1]], -1).astype(np.int64)
    if episode_len is not None:
        start = (np.arange(obs.shape[-1]) % episode_len) == 0
        pa = np.where(start, n_actions, pa)
        pr = np.where(start, 0, pr)
    return step_token(obs, pa, pr, n_actions)


def unpack_tokens(tokens: torch.Tensor, n_actions: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pack_tokens`: (obs, previous action, previous reward), each like ``tokens``."""
    pr = tokens % 2
    rest = tokens // 2
    return rest // (n_actions + 1), rest % (n_actions + 1), pr


# ----------------------------------------------------------------------------------------------------------------
# Model


@dataclass
class ADConfig:
    """Everything needed to rebuild an :class:`ADTransformer` (stored in checkpoints)."""

    n_obs: int = 81
    n_actions: int = 5
    grid_size: int | None = 9  # obs = y * grid_size + x: add x and y embeddings (None for bandits)
    cell_embedding: bool = True  # a learned vector per cell on top of x/y (False: the cell is only its x, y)
    episode_len: int | None = 20  # None: never reset the previous action/reward (bandits)
    n_ctx_episodes: int = 4  # K: whole episodes in the context (n_ctx = K * episode_len, or K for bandits)
    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 4
    d_mlp: int = 256
    seed: int = 0

    @property
    def n_ctx(self) -> int:
        return self.n_ctx_episodes * (self.episode_len or 1)

    def validate(self) -> "ADConfig":
        for name in ("n_obs", "n_actions", "n_ctx_episodes", "d_model", "n_layers", "n_heads", "d_mlp"):
            _check_int(name, getattr(self, name), 1)
        if self.episode_len is not None:
            _check_int("episode_len", self.episode_len, 1)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        return self


class ADEmbed(nn.Module):
    """Token ids (batch, pos) -> observation + previous-action + previous-reward embeddings (batch, pos, d_model).

    With ``grid_size`` the observation embedding is ``W_obs[cell] + W_x[x] + W_y[y]``: the coordinate embeddings let
    what is learned about navigating to training-goal cells transfer to held-out goal cells.
    """

    def __init__(self, n_obs: int, n_actions: int, d_model: int, grid_size: int | None = None,
                 cell_embedding: bool = True):
        super().__init__()
        if not cell_embedding and grid_size is None:
            raise ValueError("cell_embedding=False needs grid_size (the cell is then embedded only by its x and y)")
        self.n_actions, self.grid_size = n_actions, grid_size
        # without a per-cell vector, W_obs is a fixed zero buffer: every cell is the sum of its x and y embeddings
        if cell_embedding:
            self.W_obs = nn.Parameter(torch.randn(n_obs, d_model) * 0.02)
        else:
            self.register_buffer("W_obs", torch.zeros(n_obs, d_model))
        if grid_size is not None:
            self.W_x = nn.Parameter(torch.randn(grid_size, d_model) * 0.02)
            self.W_y = nn.Parameter(torch.randn(grid_size, d_model) * 0.02)
        self.W_action = nn.Parameter(torch.randn(n_actions + 1, d_model) * 0.02)  # last row: "start of episode"
        self.W_reward = nn.Parameter(torch.randn(2, d_model) * 0.02)
        self.hook_obs = HookPoint()  # (batch, pos, d_model)
        self.hook_action = HookPoint()
        self.hook_reward = HookPoint()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        obs, pa, pr = unpack_tokens(tokens, self.n_actions)
        e_obs = self.W_obs[obs]
        if self.grid_size is not None:
            e_obs = e_obs + self.W_x[obs % self.grid_size] + self.W_y[obs // self.grid_size]
        return self.hook_obs(e_obs) + self.hook_action(self.W_action[pa]) + self.hook_reward(self.W_reward[pr])


class ADTransformer(HookedTransformer):
    """A ``HookedTransformer`` over packed (o, a_prev, r_prev) tokens whose logits are next-action logits."""

    def __init__(self, ad_cfg: ADConfig, device: str = "cpu"):
        ad_cfg.validate()
        cfg = HookedTransformerConfig(
            n_layers=ad_cfg.n_layers, d_model=ad_cfg.d_model, n_heads=ad_cfg.n_heads,
            d_head=ad_cfg.d_model // ad_cfg.n_heads, d_mlp=ad_cfg.d_mlp, n_ctx=ad_cfg.n_ctx,
            d_vocab=ad_cfg.n_obs * (ad_cfg.n_actions + 1) * 2, d_vocab_out=ad_cfg.n_actions, act_fn="gelu",
            normalization_type="LN", positional_embedding_type="standard", seed=ad_cfg.seed, device=device,
            default_prepend_bos=False)
        super().__init__(cfg)
        self.ad_cfg = ad_cfg
        torch.manual_seed(ad_cfg.seed)
        self.embed = ADEmbed(ad_cfg.n_obs, ad_cfg.n_actions, ad_cfg.d_model, ad_cfg.grid_size,
                             ad_cfg.cell_embedding).to(device)
        self.setup()  # register the new embed.hook_* points

    def checkpoint(self, **extra) -> dict:
        return {"ad_cfg": asdict(self.ad_cfg), "state_dict": self.state_dict(), **extra}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "ADTransformer":
        model = cls(ADConfig(**ckpt["ad_cfg"]), device=device)
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# Training data: windows of K episodes from learning histories


class WindowSampler:
    """Samples training windows from histories ``obs, actions, rewards: (H, E, T)`` (dark room).

    A window is ``K`` episodes ``e0, e0 + stride, ..., e0 + (K-1) * stride`` of one history (``e0`` uniform), as
    (tokens (n, K*T), target actions (n, K*T)). ``stride=1`` and ``E == K`` gives whole expert histories (ED).
    """

    def __init__(self, hist: dict[str, np.ndarray], ad_cfg: ADConfig, stride: int = 1, seed: int = 0):
        obs, actions = hist["obs"], hist["actions"]
        H, E, T = obs.shape
        self.K, self.T, self.stride = ad_cfg.n_ctx_episodes, T, _check_int("stride", stride, 1)
        if T != ad_cfg.episode_len:
            raise ValueError(f"histories have {T}-step episodes but the model expects episode_len={ad_cfg.episode_len}")
        self.span = (self.K - 1) * self.stride + 1
        if self.span > E:
            raise ValueError(f"a window of {self.K} episodes at stride {stride} spans {self.span} episodes, but the "
                             f"histories only have {E}; lower stride or n_ctx_episodes, or generate more episodes")
        self.tokens = pack_tokens(obs, actions, hist["rewards"], ad_cfg.n_obs, ad_cfg.n_actions, T)  # (H, E, T)
        self.actions = actions
        self.H, self.E = H, E
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.rng.integers(0, self.H, n)
        e0 = self.rng.integers(0, self.E - self.span + 1, n)
        eps = e0[:, None] + self.stride * np.arange(self.K)[None]  # (n, K)
        tok = self.tokens[h[:, None], eps].reshape(n, -1)
        act = self.actions[h[:, None], eps].reshape(n, -1)
        return torch.from_numpy(tok), torch.from_numpy(act)


class BanditSampler:
    """Windows of ``K`` consecutive trials from bandit histories ``actions, rewards: (H, N)``."""

    def __init__(self, hist: dict[str, np.ndarray], ad_cfg: ADConfig, seed: int = 0):
        self.K = ad_cfg.n_ctx_episodes
        H, N = hist["actions"].shape
        if N < self.K:
            raise ValueError(f"bandit histories have {N} trials, fewer than the context of {self.K}")
        self.tokens = pack_tokens(np.zeros_like(hist["actions"]), hist["actions"], hist["rewards"], 1,
                                  ad_cfg.n_actions, None)
        self.actions, self.H, self.N = hist["actions"], H, N
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.rng.integers(0, self.H, n)
        t0 = self.rng.integers(0, self.N - self.K + 1, n)
        idx = t0[:, None] + np.arange(self.K)[None]
        return torch.from_numpy(self.tokens[h[:, None], idx]), torch.from_numpy(self.actions[h[:, None], idx])


def train(model: ADTransformer, sample: Callable[[int], tuple[torch.Tensor, torch.Tensor]], n_steps: int = 3000,
          batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.01, warmup: int = 100, seed: int = 0,
          progress: bool = True) -> dict:
    """Next-action cross-entropy at every position; AdamW with linear warm-up and cosine decay.

    Returns ``{"loss": per-step losses, "wall_s": seconds}``.
    """
    n_steps = _check_int("n_steps", n_steps, 1)
    torch.manual_seed(seed)
    device = model.cfg.device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, n_steps) / n_steps)))
    losses = []
    t0 = time.time()
    model.train()
    bar = tqdm(range(n_steps), desc="train", disable=not progress, mininterval=2)
    for step in bar:
        tok, act = sample(batch_size)
        logits = model(tok.to(device))  # (batch, pos, A)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), act.to(device).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-100:]):.3f}")
    model.eval()
    return {"loss": np.array(losses), "wall_s": time.time() - t0}


# ----------------------------------------------------------------------------------------------------------------
# In-context evaluation


def _choose(logits: torch.Tensor, temperature: float, gen: torch.Generator) -> np.ndarray:
    if temperature <= 0:
        return logits.argmax(-1).cpu().numpy()
    probs = torch.softmax(logits.float() / temperature, -1).cpu()
    return torch.multinomial(probs, 1, generator=gen)[:, 0].numpy()


@torch.no_grad()
def rollout_darkroom(model: ADTransformer, goals: np.ndarray, n_episodes: int = 20, temperature: float = 1.0,
                     seed: int = 0, size: int = 9, progress: bool = False) -> dict[str, np.ndarray]:
    """Let the model play ``n_episodes`` consecutive episodes on each goal (B, 2), conditioning on its own history.

    ``temperature=0`` is greedy decoding, otherwise sampling from ``softmax(logits / temperature)``. The context at
    step ``t`` of episode ``e`` holds episodes ``max(0, e-K+1) .. e`` up to ``t``. Returns the history dict
    (``obs, actions, rewards: (B, n_episodes, T)``, ``returns: (B, n_episodes)``, ``tokens``).
    """
    cfg = model.ad_cfg
    T, K = cfg.episode_len, cfg.n_ctx_episodes
    env = BatchedDarkRoom(goals, size, T)
    B = env.B
    gen = torch.Generator().manual_seed(seed)
    obs = np.zeros((B, n_episodes, T), np.int64)
    act, rew = np.zeros_like(obs), np.zeros((B, n_episodes, T), np.float32)
    tokens = np.zeros((B, n_episodes * T), np.int64)
    device = model.cfg.device
    for e in tqdm(range(n_episodes), desc="rollout", disable=not progress):
        s = env.reset()
        for t in range(T):
            pa = act[:, e, t - 1] if t > 0 else np.full(B, cfg.n_actions)
            pr = rew[:, e, t - 1].astype(np.int64) if t > 0 else np.zeros(B, np.int64)
            tokens[:, e * T + t] = step_token(s, pa, pr, cfg.n_actions)
            start = max(0, e - K + 1) * T
            ctx = torch.from_numpy(tokens[:, start:e * T + t + 1]).to(device)
            a = _choose(model(ctx)[:, -1], temperature, gen)
            s2, r, _ = env.step(a)
            obs[:, e, t], act[:, e, t], rew[:, e, t] = s, a, r
            s = s2
    return {"obs": obs, "actions": act, "rewards": rew, "returns": rew.sum(-1), "tokens": tokens}


@torch.no_grad()
def rollout_bandit(model: ADTransformer, means: np.ndarray, n_trials: int = 100, temperature: float = 1.0,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Let the model pull arms for ``n_trials`` trials on each bandit (B, n_arms); context = the last K trials."""
    cfg = model.ad_cfg
    rng = np.random.default_rng(seed)
    env = BatchedBandit(means, rng)
    gen = torch.Generator().manual_seed(seed)
    B = env.B
    actions, rewards = np.zeros((B, n_trials), np.int64), np.zeros((B, n_trials), np.float32)
    tokens = np.zeros((B, n_trials), np.int64)
    for t in range(n_trials):
        pa = actions[:, t - 1] if t > 0 else np.full(B, cfg.n_actions)
        pr = rewards[:, t - 1].astype(np.int64) if t > 0 else np.zeros(B, np.int64)
        tokens[:, t] = pa * 2 + pr
        ctx = torch.from_numpy(tokens[:, max(0, t - cfg.n_ctx_episodes + 1):t + 1]).to(model.cfg.device)
        a = _choose(model(ctx)[:, -1], temperature, gen)
        actions[:, t], rewards[:, t] = a, env.step(a)
    return {"actions": actions, "rewards": rewards, "tokens": tokens}


# ----------------------------------------------------------------------------------------------------------------
# End to end: data + model + training for Dark Room


def fit_darkroom(kind: str = "ad", train_goals: np.ndarray | None = None, histories_per_goal: int = 10,
                 n_source_episodes: int = 120, stride: int = 4, n_steps: int = 3000, batch_size: int = 32,
                 lr: float = 1e-3, seed: int = 0, device: str = "cpu", progress: bool = True,
                 source: str = "q_learning", **model_kw) -> tuple[ADTransformer, dict]:
    """Generate the data (``kind="ad"``: learning histories of ``source``; ``"ed"``: expert episodes) and train a model.

    ``source`` is ``"q_learning"`` (:func:`~rlinterp.agents.sources.darkroom_q_learning`) or ``"psrl"``
    (:func:`~rlinterp.agents.sources.darkroom_psrl`). ``train_goals`` (n, 2) defaults to the training split of
    :func:`~rlinterp.envs.darkroom.darkroom_goal_split`. ``model_kw`` are :class:`ADConfig` fields (``d_model``,
    ``n_layers``, ``n_ctx_episodes``, ``cell_embedding``, ...). Returns the model and a log dict (losses, wall time,
    data settings).
    """
    from rlinterp.agents.sources import DARKROOM_LEARNERS, darkroom_expert
    from rlinterp.envs.darkroom import darkroom_goal_split

    if kind not in ("ad", "ed"):
        raise ValueError(f"kind must be 'ad' (algorithm distillation) or 'ed' (expert distillation), got {kind!r}")
    if source not in DARKROOM_LEARNERS:
        raise ValueError(f"source must be one of {sorted(DARKROOM_LEARNERS)}, got {source!r}")
    if train_goals is None:
        train_goals = darkroom_goal_split()[0]
    cfg = ADConfig(seed=seed, **model_kw).validate()
    goals = np.repeat(np.asarray(train_goals), _check_int("histories_per_goal", histories_per_goal, 1), 0)
    if kind == "ad":
        hist = DARKROOM_LEARNERS[source](goals, n_source_episodes, seed=seed + 1000, progress=progress)
        sampler = WindowSampler(hist, cfg, stride=stride, seed=seed)
    else:
        hist = darkroom_expert(goals, cfg.n_ctx_episodes, seed=seed + 1000)
        sampler = WindowSampler(hist, cfg, stride=1, seed=seed)
    model = ADTransformer(cfg, device=device)
    log = train(model, sampler.sample, n_steps=n_steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
    log.update(kind=kind, source=source if kind == "ad" else "expert", n_train_goals=len(train_goals), histories_per_goal=histories_per_goal,
               n_source_episodes=n_source_episodes, stride=stride if kind == "ad" else 1, n_steps=n_steps,
               batch_size=batch_size, lr=lr)
    return model, log


def evaluate_darkroom(model: ADTransformer, goals: np.ndarray, n_episodes: int = 20, n_seeds: int = 5,
                      temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """Returns (n_seeds * len(goals), n_episodes): in-context return curves, ``n_seeds`` rollouts per goal."""
    goals = np.repeat(np.asarray(goals), _check_int("n_seeds", n_seeds, 1), 0)
    return rollout_darkroom(model, goals, n_episodes=n_episodes, temperature=temperature, seed=seed)["returns"]
