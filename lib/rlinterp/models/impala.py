"""The Heist agents: the seed's LPPool CNN ("impala") and its bilinear variant ("bimpala"), as hooked actor-critics.

**Network** (the seed's, block for block; Sturgeon & Shock's heist agent, not the IMPALA residual CNN despite the
name used by the study): five conv blocks, 'same' padding::

    blocks.0  Conv(C->16, 7x7) -> act -> LPPool(2, stride 2)
    blocks.1  Conv(16->32, 5x5) -> act
    blocks.2  Conv(32->32, 5x5) -> act -> LPPool
    blocks.3  Conv(32->32, 5x5) -> act -> LPPool
    blocks.4  Conv(32->32, 5x5) -> act -> LPPool
    flatten -> mlp.0 Linear(->256) -> act -> mlp.1 Linear(256->512) -> act -> policy head (512->9), value head (512->1)

(the seed's "Conv(16->32) -> ReLU -> Conv(32->32) -> ReLU -> LPPool" block is split into ``blocks.1`` and
``blocks.2`` so that every conv has its own block). ``act`` is ReLU in ``kind="impala"``; in ``kind="bimpala"``
(Bimpala-style, Oozeer et al. 2024) each conv + ReLU becomes the gated product of two convs ``conv_a(x) * conv_b(x)``
and each Linear + ReLU the product of two Linears ``linear_a(x) * linear_b(x)`` (no residual: the seed's blocks
change width), so every layer is a bilinear form of its input. In ``bimpala`` the input of every bilinear layer
but the first is RMS-normalised per sample (:class:`RMSNorm`: over the whole map, so its spatial pattern is kept):
a stack of seven products has no scale of its own -- without the normalisation the logits of a freshly initialised
network had a standard deviation of 5e-13 and DAgger's first three rounds did not move its accuracy off chance
(0.15, against 0.58 for the ReLU network). Each layer stays an exact bilinear form of its (normalised) input.

**Input**: images ``[batch, H, W, C]`` channel-last as the environment returns them (uint8 0..255, scaled by 1/255
inside, or float already in [0, 1]). A 32x32 image gives maps 32 -> 16 -> 16 -> 8 -> 4 -> 2 and a 128-wide
flatten (see :mod:`rlinterp.envs.heist` for the choice of 32).

**Hook names** (TransformerLens style; shapes for a 32x32 input):

* ``hook_obs`` [batch, C, H, W] (scaled input)
* ``blocks.{i}.conv.hook_out`` [batch, c_i, h, w] -- the conv output (pre-activation); bimpala: the gated product,
  with its branches at ``blocks.{i}.conv.hook_a`` / ``hook_b``
* ``blocks.{i}.hook_post`` [batch, c_i, h, w] -- after the activation (bimpala: the same tensor as ``conv.hook_out``,
  since the product *is* the nonlinearity)
* ``blocks.{0,2,3,4}.pool.hook_out`` [batch, c_i, h/2, w/2]
* bimpala only: ``blocks.{1..4}.norm.hook_scale`` [batch, 1, 1, 1] and ``blocks.{i}.norm.hook_normalized`` (the
  block's input divided by its RMS), ``mlp.{0,1}.norm.hook_scale`` [batch, 1] / ``mlp.{j}.norm.hook_normalized``
* ``hook_flatten`` [batch, 128]
* ``mlp.{0,1}.hook_pre`` / ``mlp.{0,1}.hook_post`` [batch, 256 / 512] (impala: the
  :class:`~rlinterp.models.layers.Dense` blocks; bimpala: both carry the product, branches at ``mlp.{j}.hook_a`` /
  ``hook_b``)
* ``hook_logits`` [batch, 9] (readout ``policy_head``), ``hook_value`` [batch] (readout ``value_head``)

``forward(obs)`` returns ``(logits, value)``. Initialisation as CleanRL's PPO: orthogonal weights (gain sqrt 2,
policy head 0.01, value head 1), zero biases; bilinear branches gain 1.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor
from transformer_lens import HookedRootModule

from rlinterp.models.layers import Dense
from rlinterp.validation import check_choice, check_int

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from transformer_lens.hook_points import HookPoint

#: network kinds
NETWORKS = ("impala", "bimpala")
#: (out channels, kernel, pooled) per conv block: the seed's network
BLOCKS = ((16, 7, True), (32, 5, False), (32, 5, True), (32, 5, True), (32, 5, True))


@dataclass(frozen=True)
class ImpalaConfig:
    """What defines an agent network (stored in checkpoints as a dict)."""

    kind: str = "impala"  # "impala" (ReLU) or "bimpala" (bilinear gating)
    image_size: int = 32  # square input side in pixels (>= 16: four halvings)
    in_channels: int = 3  # image channels
    n_actions: int = 9  # policy outputs
    d_mlp: tuple[int, int] = (256, 512)  # widths of the two hidden Linear layers

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, NETWORKS)
        check_int("image_size", self.image_size, 16)
        check_int("in_channels", self.in_channels, 1)
        check_int("n_actions", self.n_actions, 1)
        if len(self.d_mlp) != 2:
            raise ValueError(f"d_mlp must be two widths, got {self.d_mlp!r}")
        for w in self.d_mlp:
            check_int("d_mlp[i]", w, 1)
        object.__setattr__(self, "d_mlp", tuple(int(w) for w in self.d_mlp))

    @property
    def flat_dim(self) -> int:
        side = self.image_size
        for _, _, pooled in BLOCKS:
            side = side // 2 if pooled else side
        return BLOCKS[-1][0] * side * side

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["d_mlp"] = list(self.d_mlp)
        return d


def _init(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class Conv(nn.Module):
    """A 'same' convolution with ``hook_out`` on its output (the ReLU network's pre-activation)."""

    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__()
        self.conv = _init(nn.Conv2d(c_in, c_out, k, padding=k // 2), math.sqrt(2))
        self.hook_out = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_out(self.conv(x))


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x²) + eps)`` per sample, over every non-batch dimension (a conv map's channels *and*
    positions, so the map's spatial pattern is kept; a vector's features), no learned gain. Hooks as
    TransformerLens's ``LayerNormPre``: ``hook_scale`` [batch, 1, ...] and ``hook_normalized`` (same shape as x)."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.hook_scale, self.hook_normalized = HookPoint(), HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        dims = tuple(range(1, x.ndim))
        scale = self.hook_scale((x.pow(2).mean(dims, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale)


class BilinearConv(nn.Module):
    """``conv_a(x) * conv_b(x)`` ('same' convs); hooks ``hook_a``, ``hook_b`` (branches), ``hook_out`` (product)."""

    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__()
        self.conv_a = _init(nn.Conv2d(c_in, c_out, k, padding=k // 2), 1.0)
        self.conv_b = _init(nn.Conv2d(c_in, c_out, k, padding=k // 2), 1.0)
        self.hook_a, self.hook_b, self.hook_out = HookPoint(), HookPoint(), HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_out(self.hook_a(self.conv_a(x)) * self.hook_b(self.conv_b(x)))


class Pool(nn.Module):
    """LPPool(2, kernel 2, stride 2) with ``hook_out``."""

    def __init__(self):
        super().__init__()
        self.pool = nn.LPPool2d(2, 2, 2)
        self.hook_out = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_out(self.pool(x))


class ConvBlock(nn.Module):
    """conv -> activation (``hook_post``) -> optional pool."""

    def __init__(self, c_in: int, c_out: int, k: int, pooled: bool, bilinear: bool, normed: bool = False):
        super().__init__()
        self.bilinear = bilinear
        self.norm = RMSNorm() if normed else None
        self.conv = BilinearConv(c_in, c_out, k) if bilinear else Conv(c_in, c_out, k)
        self.hook_post = HookPoint()
        self.pool = Pool() if pooled else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(self.norm(x) if self.norm is not None else x)
        x = self.hook_post(h if self.bilinear else torch.relu(h))
        return self.pool(x) if self.pool is not None else x


class BilinearDense(nn.Module):
    """``linear_a(x̂) * linear_b(x̂)`` of the RMS-normalised input ``x̂`` (``norm``); hooks ``hook_a``, ``hook_b``
    (branches), ``hook_pre`` = ``hook_post`` (product)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.norm = RMSNorm()
        self.linear_a = _init(nn.Linear(d_in, d_out), 1.0)
        self.linear_b = _init(nn.Linear(d_in, d_out), 1.0)
        self.hook_a, self.hook_b, self.hook_pre, self.hook_post = HookPoint(), HookPoint(), HookPoint(), HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(x)
        return self.hook_post(self.hook_pre(self.hook_a(self.linear_a(x)) * self.hook_b(self.linear_b(x))))


class ImpalaAgent(HookedRootModule):
    """The actor-critic: ``obs [batch, H, W, C] -> (logits [batch, n_actions], value [batch])``; hooks in the module
    docstring. ``config``: an :class:`ImpalaConfig` or its dict."""

    def __init__(self, config: ImpalaConfig | dict | None = None):
        super().__init__()
        cfg = ImpalaConfig(**config) if isinstance(config, dict) else (config or ImpalaConfig())
        self.cfg = cfg
        self.config = cfg.to_dict()  # plain dict for checkpoints
        bil = cfg.kind == "bimpala"
        self.hook_obs = HookPoint()
        blocks, c_in = [], cfg.in_channels
        for c_out, k, pooled in BLOCKS:
            blocks.append(ConvBlock(c_in, c_out, k, pooled, bil, normed=bil and bool(blocks)))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.hook_flatten = HookPoint()
        d0, d1 = cfg.d_mlp
        if bil:
            self.mlp = nn.ModuleList([BilinearDense(cfg.flat_dim, d0), BilinearDense(d0, d1)])
        else:
            self.mlp = nn.ModuleList([Dense(cfg.flat_dim, d0), Dense(d0, d1)])
            for layer in self.mlp:
                _init(layer.linear, math.sqrt(2))
        self.policy_head = _init(nn.Linear(d1, cfg.n_actions), 0.01)
        self.value_head = _init(nn.Linear(d1, 1), 1.0)
        self.hook_logits, self.hook_value = HookPoint(), HookPoint()
        self.setup()

    @property
    def device(self) -> torch.device:
        return self.policy_head.weight.device

    def prepare(self, obs: Any) -> Tensor:
        """Images [batch, H, W, C] (numpy or tensor; uint8 or float in [0, 1]) -> float [batch, C, H, W]."""
        x = torch.as_tensor(obs, device=self.device)
        if x.ndim != 4 or x.shape[1:] != (self.cfg.image_size, self.cfg.image_size, self.cfg.in_channels):
            raise ValueError(f"obs must be [batch, {self.cfg.image_size}, {self.cfg.image_size}, "
                             f"{self.cfg.in_channels}], got {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2)
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    def forward(self, obs: Any) -> tuple[Tensor, Tensor]:
        x = self.hook_obs(self.prepare(obs))  # [batch, C, H, W]
        for block in self.blocks:
            x = block(x)
        x = self.hook_flatten(x.flatten(1))  # [batch, flat_dim]
        for layer in self.mlp:
            x = layer(x)
        logits = self.hook_logits(self.policy_head(x))  # [batch, n_actions]
        value = self.hook_value(self.value_head(x).squeeze(-1))  # [batch]
        return logits, value


def build_network(config: ImpalaConfig | dict | None = None, device: str | torch.device = "cpu") -> ImpalaAgent:
    """An :class:`ImpalaAgent` on ``device``."""
    return ImpalaAgent(config).to(device)


def block_input_hook(i: int, kind: str = "impala") -> str:
    """The hook whose activation is what conv block ``i``'s convolution(s) read: ``hook_obs`` for block 0; else, for
    ``kind="impala"`` the previous block's pooled map or its ``hook_post``, for ``"bimpala"`` the normalised map
    ``blocks.{i}.norm.hook_normalized``."""
    i = check_int("block", i, 0, len(BLOCKS) - 1)
    check_choice("kind", kind, NETWORKS)
    if i == 0:
        return "hook_obs"
    if kind == "bimpala":
        return f"blocks.{i}.norm.hook_normalized"
    return f"blocks.{i - 1}.pool.hook_out" if BLOCKS[i - 1][2] else f"blocks.{i - 1}.hook_post"


def hook_names(model: ImpalaAgent) -> list[str]:
    """All hook point names of ``model`` (registration order)."""
    return [n for n, m in model.named_modules() if isinstance(m, HookPoint)]
