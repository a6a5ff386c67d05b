"""Training of the Algorithm Distillation (AD) and expert distillation (ED) transformers on Dark Room.

:class:`WindowSampler` cuts training windows of ``K`` episodes (at a ``stride``) out of learning histories;
:func:`train` is the next-action cross-entropy loop (AdamW, warm-up, cosine decay); :func:`fit_darkroom` generates the
source histories (:mod:`rlinterp.learners.sources`) and trains a model end to end. The model and its token encoding
are in :mod:`rlinterp.models.ad_transformer`.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from rlinterp.progress import tqdm

from rlinterp.envs.darkroom import check_size, darkroom_goal_split
from rlinterp.learners.sources import DARKROOM_LEARNERS, darkroom_expert
from rlinterp.models.ad_transformer import ADConfig, ADTransformer, pack_tokens
from rlinterp.validation import check_int


class WindowSampler:
    """Samples training windows from histories ``obs, actions, rewards: (H, E, T)`` (dark room).

    A window is ``K`` episodes ``e0, e0 + stride, ..., e0 + (K-1) * stride`` of one history (``e0`` uniform), as
    (tokens (n, K*T), target actions (n, K*T)). ``stride=1`` and ``E == K`` gives whole expert histories (ED).
    """

    def __init__(self, hist: dict[str, np.ndarray], ad_cfg: ADConfig, stride: int = 1, seed: int = 0):
        obs, actions = hist["obs"], hist["actions"]
        H, E, T = obs.shape
        self.K, self.T, self.stride = ad_cfg.n_ctx_episodes, T, check_int("stride", stride, 1)
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


def train(model: ADTransformer, sample: Callable[[int], tuple[torch.Tensor, torch.Tensor]], n_steps: int = 3000,
          batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.01, warmup: int = 100, seed: int = 0,
          progress: bool = True) -> dict:
    """Next-action cross-entropy at every position; AdamW with linear warm-up and cosine decay.

    Returns ``{"loss": per-step losses, "wall_s": seconds}``.
    """
    n_steps = check_int("n_steps", n_steps, 1)
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


def fit_darkroom(kind: str = "ad", train_goals: np.ndarray | None = None, histories_per_goal: int = 10,
                 n_source_episodes: int = 120, stride: int = 4, n_steps: int = 3000, batch_size: int = 32,
                 lr: float = 1e-3, seed: int = 0, device: str = "cpu", progress: bool = True,
                 source: str = "q_learning", size: int = 9, **model_kw) -> tuple[ADTransformer, dict]:
    """Generate the data (``kind="ad"``: learning histories of ``source``; ``"ed"``: expert episodes) and train a model.

    ``source`` is ``"q_learning"`` (rlinterp.learners.sources.darkroom_q_learning`) or ``"psrl"``
    (rlinterp.learners.sources.darkroom_psrl`). ``size``: the room (``size x size``, odd); the model's config
    records it (``grid_size``, ``n_obs = size**2``). ``train_goals`` (n, 2) defaults to the training split of
    :func:`~rlinterp.envs.darkroom.darkroom_goal_split` of that room. ``model_kw`` are the other :class:`ADConfig`
    fields (``d_model``, ``n_layers``, ``n_ctx_episodes``, ``cell_embedding``, ...). Returns the model and a log dict
    (losses, wall time, data settings).
    """

    if kind not in ("ad", "ed"):
        raise ValueError(f"kind must be 'ad' (algorithm distillation) or 'ed' (expert distillation), got {kind!r}")
    if source not in DARKROOM_LEARNERS:
        raise ValueError(f"source must be one of {sorted(DARKROOM_LEARNERS)}, got {source!r}")
    size = check_size(size)
    if clash := {"n_obs", "grid_size"} & set(model_kw):
        raise ValueError(f"fit_darkroom: the room sets {sorted(clash)}; pass the room as size")
    if train_goals is None:
        train_goals = darkroom_goal_split(size)[0]
    cfg = ADConfig(seed=seed, n_obs=size * size, grid_size=size, **model_kw).validate()
    goals = np.repeat(np.asarray(train_goals), check_int("histories_per_goal", histories_per_goal, 1), 0)
    if kind == "ad":
        hist = DARKROOM_LEARNERS[source](goals, n_source_episodes, seed=seed + 1000, progress=progress, size=size)
        sampler = WindowSampler(hist, cfg, stride=stride, seed=seed)
    else:
        hist = darkroom_expert(goals, cfg.n_ctx_episodes, seed=seed + 1000, size=size)
        sampler = WindowSampler(hist, cfg, stride=1, seed=seed)
    model = ADTransformer(cfg, device=device)
    log = train(model, sampler.sample, n_steps=n_steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
    log.update(kind=kind, source=source if kind == "ad" else "expert", n_train_goals=len(train_goals), histories_per_goal=histories_per_goal,
               n_source_episodes=n_source_episodes, stride=stride if kind == "ad" else 1, n_steps=n_steps,
               batch_size=batch_size, lr=lr)
    return model, log
