"""The Culture study's GPT: Fleuret's MyGPT (``mygpt.py``) in plain PyTorch, and its exact TransformerLens twin.

**MyGPT** (:class:`MyGPT`, the "original"): token embedding + sinusoidal positional encoding
``PE[t, 2i] = sin(t / L^(2i/D))``, ``PE[t, 2i+1] = cos(t / L^(2i/D))`` (``L = len_max = 1e5``); pre-LayerNorm blocks
``x + attn(LN(x))``, ``x + MLP(LN(x))`` with bias-free q/k/v/o projections and a ReLU MLP (with biases); **no final
LayerNorm**: the readout (a linear layer with bias) reads the trunk directly. The input is shifted right by one with a
0 token in front (``F.pad(x, (1, -1))``), so the logits at position ``t`` predict quiz token ``t`` from tokens
``< t``. Fleuret uses ``dim_keys`` for q/k and ``d_model / n_heads`` for v; here both are ``d_head = d_model / n_heads``
(as in Fleuret's 37M model: 512 / 8 = 64), which TransformerLens needs.

**Default size** (:class:`GPTConfig`): ``d_model 128``, 4 layers, 4 heads of 32, ``d_mlp 512`` (0.8M parameters): the
largest of the sizes measured on this project's 2 CPU cores (``shared/reference/culture.md``) that trains on several
hundred thousand ``6 x 6`` quizzes in 45 min; Fleuret's 37M (512, 12 blocks, 8 heads) is ~45x bigger.

**TransformerLens** (:func:`to_hooked_transformer`): a :class:`HookedMyGPT`, i.e. a ``HookedTransformer`` built from a
``HookedTransformerConfig`` (``normalization_type="LN"``, ``act_fn="relu"``, ``positional_embedding_type="standard"``,
``n_ctx = seq_len``) whose ``W_pos`` holds the sinusoidal table (frozen), whose attention biases are zero and whose
``ln_final`` is :class:`HookedIdentity` (the missing final LayerNorm, with a ``ln_final.hook_normalized`` hook point),
set up in the constructor like ``models/ad_transformer.py`` does with its embedding. No TransformerLens code is
patched. The hooked model reads the *shifted* sequence (:func:`with_bos`: a 0 "BOS" token then the quiz): its logits
at position ``t`` predict quiz token ``t``, so ``hooked(with_bos(x)[:, :-1]) == mygpt(x)`` and TransformerLens'
forward pass with a KV cache works unchanged.

:func:`generate` fills the masked positions of token sequences greedily or by sampling (Fleuret's
``one_batch_masked_inplace_autoregression``), with either model, with or without the KV cache. Use it rather than
``HookedTransformer.generate(use_past_kv_cache=True)``: in TransformerLens 3.9 (no tokenizer) that method recomputes
the whole sequence's embeddings at ``pos_offset = cache length`` after the first step, so absolute positions are
wrong (its output differs from ``use_past_kv_cache=False``, checked 2026-12-01) and it fails once ``2 x prompt``
exceeds ``n_ctx``; :func:`generate` feeds only the new tokens through ``forward(..., past_kv_cache=...)``.

"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.hook_points import HookPoint
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from rlinterp.validation import check_float, check_int


@dataclass
class GPTConfig:
    """Everything needed to rebuild a :class:`MyGPT` (stored in checkpoints)."""

    vocab_size: int = 15
    n_ctx: int = 148  # quiz length (6 x 6 grids)
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_mlp: int = 512
    len_max: float = 1e5
    dropout: float = 0.0
    seed: int = 0

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def validate(self) -> "GPTConfig":
        for name in ("vocab_size", "n_ctx", "d_model", "n_layers", "n_heads", "d_mlp"):
            check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0)
        check_float("len_max", self.len_max, 1.0)
        check_float("dropout", self.dropout, 0.0, 0.99)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.d_model % 2:
            raise ValueError(f"d_model must be even for the sinusoidal encoding, got {self.d_model}")
        return self


def sinusoidal_table(n_ctx: int, d_model: int, len_max: float = 1e5) -> torch.Tensor:
    """Fleuret's positional encoding (n_ctx, d_model): ``sin(t / len_max^((j - j%2)/D) + pi/2 * (j%2))``."""
    t = torch.arange(n_ctx, dtype=torch.float64)[:, None]
    j = torch.arange(d_model, dtype=torch.float64)[None, :]
    k = j % 2
    return torch.sin(t / (len_max ** ((j - k) / d_model)) + math.pi / 2 * k).float()


def with_bos(tokens: torch.Tensor) -> torch.Tensor:
    """``tokens`` (batch, L) with a 0 token in front (batch, L + 1): the hooked model's input for positions < L+1."""
    return F.pad(tokens, (1, 0), value=0)


# ----------------------------------------------------------------------------------------------------------------
# The original


class _Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        H, dh, D = cfg.n_heads, cfg.d_head, cfg.d_model

        def randw(*d):  # Fleuret's init: N(0, 1/fan_in)
            return nn.Parameter(torch.randn(*d) / math.sqrt(d[-1]))

        self.w_q, self.w_k, self.w_v = randw(H, dh, D), randw(H, dh, D), randw(H, dh, D)
        self.w_o = randw(H * dh, D)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.einsum("ntc,hdc->nhtd", x, self.w_q)
        k = torch.einsum("ntc,hdc->nhtd", x, self.w_k)
        v = torch.einsum("ntc,hdc->nhtd", x, self.w_v)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return y.transpose(1, 2).flatten(2) @ self.w_o


class _Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.d_model), _Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_mlp), nn.ReLU(), nn.Linear(cfg.d_mlp, cfg.d_model),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class MyGPT(nn.Module):
    """Fleuret's MyGPT: ``forward(tokens (batch, L)) -> logits (batch, L, vocab)``, logits[t] predicting token t."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg.validate()
        torch.manual_seed(cfg.seed)
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.register_buffer("pe", sinusoidal_table(cfg.n_ctx, cfg.d_model, cfg.len_max), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([_Block(cfg) for _ in range(cfg.n_layers)])
        self.readout = nn.Linear(cfg.d_model, cfg.vocab_size)
        with torch.no_grad():
            self.embedding.weight.normal_(0, 2e-2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[-1] > self.cfg.n_ctx:
            raise ValueError(f"sequences of {tokens.shape[-1]} tokens exceed n_ctx={self.cfg.n_ctx}")
        x = F.pad(tokens, (1, -1))  # a 0 in front, the last token dropped
        x = self.drop(self.embedding(x)) + self.pe[: x.shape[1]]
        for b in self.blocks:
            x = b(x)
        return self.readout(x)  # no final LayerNorm

    def checkpoint(self, **extra) -> dict:
        return {"gpt_cfg": asdict(self.cfg), "state_dict": self.state_dict(), **extra}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "MyGPT":
        model = cls(GPTConfig(**ckpt["gpt_cfg"])).to(device)
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# TransformerLens twin


class HookedIdentity(nn.Module):
    """Stands in for the final LayerNorm MyGPT does not have: returns its input, through ``hook_normalized``."""

    def __init__(self):
        super().__init__()
        self.hook_normalized = HookPoint()  # (batch, pos, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_normalized(x)


def hooked_config(cfg: GPTConfig, device: str = "cpu") -> HookedTransformerConfig:
    """The ``HookedTransformerConfig`` of a :class:`MyGPT` config."""
    return HookedTransformerConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.d_head, d_mlp=cfg.d_mlp,
        n_ctx=cfg.n_ctx, d_vocab=cfg.vocab_size, act_fn="relu", normalization_type="LN", eps=1e-5,
        positional_embedding_type="standard", default_prepend_bos=False, seed=cfg.seed, device=device)


class HookedMyGPT(HookedTransformer):
    """A ``HookedTransformer`` with MyGPT's architecture: no final LayerNorm (``ln_final`` is a hooked identity)."""

    def __init__(self, cfg: GPTConfig, device: str = "cpu"):
        super().__init__(hooked_config(cfg.validate(), device))
        self.gpt_cfg = cfg
        self.ln_final = HookedIdentity().to(device)
        self.setup()


def to_hooked_transformer(model: MyGPT, device: str | None = None) -> HookedMyGPT:
    """The TransformerLens twin of ``model`` (same function on ``with_bos(x)[:, :-1]``), weights copied."""
    cfg = model.cfg
    device = device or str(next(model.parameters()).device)
    hooked = HookedMyGPT(cfg, device=device)
    H, dh, D = cfg.n_heads, cfg.d_head, cfg.d_model
    sd = {"embed.W_E": model.embedding.weight, "pos_embed.W_pos": sinusoidal_table(cfg.n_ctx, D, cfg.len_max),
          "unembed.W_U": model.readout.weight.T, "unembed.b_U": model.readout.bias}
    for layer, b in enumerate(model.blocks):
        p = f"blocks.{layer}."
        sd.update({
            p + "ln1.w": b.ln1.weight, p + "ln1.b": b.ln1.bias, p + "ln2.w": b.ln2.weight, p + "ln2.b": b.ln2.bias,
            p + "attn.W_Q": b.attn.w_q.transpose(1, 2), p + "attn.W_K": b.attn.w_k.transpose(1, 2),
            p + "attn.W_V": b.attn.w_v.transpose(1, 2), p + "attn.W_O": b.attn.w_o.reshape(H, dh, D),
            p + "attn.b_Q": torch.zeros(H, dh), p + "attn.b_K": torch.zeros(H, dh), p + "attn.b_V": torch.zeros(H, dh),
            p + "attn.b_O": torch.zeros(D),
            p + "mlp.W_in": b.mlp[0].weight.T, p + "mlp.b_in": b.mlp[0].bias,
            p + "mlp.W_out": b.mlp[2].weight.T, p + "mlp.b_out": b.mlp[2].bias})
    own = hooked.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith(("IGNORE", "mask"))]
    if missing:
        raise RuntimeError(f"to_hooked_transformer: no value for {missing}")
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v.detach().to(own[k].device))
    hooked.pos_embed.W_pos.requires_grad_(False)
    return hooked.eval()


# ----------------------------------------------------------------------------------------------------------------
# Generation


@torch.no_grad()
def generate(model: MyGPT | HookedTransformer, tokens: torch.Tensor, ar_mask: torch.Tensor,
             temperature: float | None = None, generator: torch.Generator | None = None,
             use_past_kv_cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill the positions flagged in ``ar_mask`` (L,) or (batch, L) of ``tokens`` (batch, L) left to right, each from
    the model's prediction given everything before it; the other positions keep their tokens.

    ``temperature=None`` is greedy (argmax); otherwise sample at that temperature with ``generator``. A
    :class:`MyGPT` recomputes the whole prefix at every step; a ``HookedTransformer`` (e.g. from
    :func:`to_hooked_transformer`) reads ``with_bos`` sequences and, with ``use_past_kv_cache``, feeds one token per
    step through TransformerLens' KV cache. Returns ``(tokens filled, log-probability (batch,) of the generated
    tokens)`` (at temperature 1 for greedy decoding).
    """
    tokens = tokens.clone()
    B, L = tokens.shape
    ar_mask = ar_mask.to(tokens.device).bool().expand(B, L)
    if temperature is not None:
        check_float("temperature", temperature, 1e-6)
    todo = torch.nonzero(ar_mask.any(0)).flatten().tolist()
    logp = torch.zeros(B, device=tokens.device)
    if not todo:
        return tokens, logp
    hooked = isinstance(model, HookedTransformer)
    cache = None
    if hooked and use_past_kv_cache:
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, B)
        fed = 0  # positions of with_bos(tokens) already in the cache
    for s in range(todo[0], todo[-1] + 1):
        if not hooked:
            logits = model(tokens[:, : s + 1])[:, s]
        elif cache is None:
            logits = model(with_bos(tokens)[:, : s + 1])[:, s]
        else:
            chunk = with_bos(tokens)[:, fed: s + 1]
            # an explicit all-ones attention mask: TransformerLens derives it from a tokenizer otherwise
            logits = model(chunk, past_kv_cache=cache, attention_mask=torch.ones_like(chunk))[:, -1]
            fed = s + 1
        logits = logits.float()
        if temperature is None:
            nxt = logits.argmax(-1)
        else:
            nxt = torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=generator).squeeze(1)
        lp = F.log_softmax(logits if temperature is None else logits / temperature, -1)
        m = ar_mask[:, s]
        logp += torch.where(m, lp.gather(1, nxt[:, None]).squeeze(1), torch.zeros_like(logp))
        tokens[:, s] = torch.where(m, nxt, tokens[:, s])
    return tokens, logp
