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

**Incremental inference.** :class:`KVContext` feeds a growing context to the model one step at a time with
TransformerLens's key-value cache (``past_kv_cache=`` in ``forward``): each new token attends to the cached keys and
values of the earlier ones and gets the next absolute position, so the logits equal those of a full forward pass
over the whole context (tested to float tolerance). The positional embedding is absolute, so when the evaluation
window slides (its first token changes position), the cache is rebuilt from the new window by :meth:`KVContext.start`.

Training (windows, loop, :func:`~rlinterp.learners.ad.fit_darkroom`) is in :mod:`rlinterp.learners.ad`; rollouts,
evaluation and the analyses in :mod:`rlinterp.studies.ad`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import TransformerLensKeyValueCache as HookedTransformerKeyValueCache
from transformer_lens.hook_points import HookPoint

from rlinterp.validation import check_int

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
            check_int(name, getattr(self, name), 1)
        if self.episode_len is not None:
            check_int("episode_len", self.episode_len, 1)
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


class KVContext:
    """Next-action logits of a batch of growing contexts, reusing the keys and values of earlier tokens.

    ``start(tokens)`` runs a window ``(B, L)`` in one forward pass into a fresh TransformerLens key-value cache;
    ``extend(tokens)`` runs only the new tokens ``(B, n)`` against it, at positions ``length .. length + n - 1``. Both
    return the logits at the last position, ``(B, A)``, equal (to float tolerance) to ``model(window)[:, -1]`` over
    the whole window. Positions are absolute: a context that drops its first tokens (a sliding window) must be
    ``start``-ed again, and a context may not outgrow ``n_ctx``. Hooks run as usual, on the new tokens only.
    """

    def __init__(self, model: ADTransformer):
        self.model = model
        self.cache: HookedTransformerKeyValueCache | None = None
        self.batch = 0

    @property
    def length(self) -> int:
        """Tokens in the cache (0 before :meth:`start`)."""
        return 0 if self.cache is None else int(self.cache.previous_attention_mask.shape[1])

    def _run(self, tokens) -> torch.Tensor:
        tok = torch.as_tensor(np.asarray(tokens), dtype=torch.long, device=self.model.cfg.device)
        if tok.ndim != 2 or tok.shape[1] == 0 or tok.shape[0] != self.batch:
            raise ValueError(f"tokens must be (batch={self.batch}, n >= 1), got {tuple(tok.shape)}")
        if self.length + tok.shape[1] > self.model.cfg.n_ctx:
            raise ValueError(f"the context would hold {self.length + tok.shape[1]} tokens, more than n_ctx = "
                             f"{self.model.cfg.n_ctx}; start() a new window instead")
        with torch.no_grad():
            # the mask only extends the cache's own (all-ones) mask: no padding, positions continue from the cache
            return self.model(tok, past_kv_cache=self.cache, attention_mask=torch.ones_like(tok))[:, -1]

    def start(self, tokens) -> torch.Tensor:
        """A fresh cache holding ``tokens`` (B, L); the logits at the last position (B, A)."""
        self.batch = int(np.shape(tokens)[0])
        self.cache = HookedTransformerKeyValueCache.init_cache(self.model.cfg, self.model.cfg.device, self.batch)
        return self._run(tokens)

    def extend(self, tokens) -> torch.Tensor:
        """Append ``tokens`` (B, n) to the cached context; the logits at the last new position (B, A)."""
        if self.cache is None:
            raise ValueError("extend() before start()")
        return self._run(tokens)
