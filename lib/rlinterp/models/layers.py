"""The one hooked MLP building block of the project's networks.

* :class:`Dense` -- ``post = ReLU(pre)``, ``pre = linear(x)``; hook points ``hook_pre`` and ``hook_post``
  (TransformerLens' MLP pre-/post-activation names), weights in ``linear`` (an ``nn.Linear``).
* :class:`MLP` -- a stack of :class:`Dense` layers registered as submodules ``0``, ``1``, ... plus ``hook_out`` on
  the result (hooks ``{i}.hook_pre``, ``{i}.hook_post``, ``hook_out``).

Initialisation is left to the network that uses them (PyTorch's default unless the network re-initialises).
"""
from __future__ import annotations

import warnings

import torch.nn.functional as F
from torch import Tensor, nn

with warnings.catch_warnings():  # TransformerLens 3.x warns about this (project-standard) import path
    warnings.simplefilter("ignore", DeprecationWarning)
    from transformer_lens.hook_points import HookPoint

__all__ = ["Dense", "MLP"]


class Dense(nn.Module):
    """``post = relu(pre)``, ``pre = linear(x)``, with both hooked: [..., d_in] -> [..., d_out]."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.hook_pre = HookPoint()  # [..., d_out]
        self.hook_post = HookPoint()  # [..., d_out]

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_post(F.relu(self.hook_pre(self.linear(x))))


class MLP(nn.Module):
    """A stack of hooked ReLU layers named ``0``, ``1``, ... and a ``hook_out`` on the result."""

    def __init__(self, d_in: int, layers: list[int]):
        super().__init__()
        sizes = [d_in, *layers]
        self.n_layers = len(layers)
        for i in range(self.n_layers):
            self.add_module(str(i), Dense(sizes[i], sizes[i + 1]))
        self.hook_out = HookPoint()

    def forward(self, x: Tensor) -> Tensor:  # [..., d_in] -> [..., layers[-1]]
        for i in range(self.n_layers):
            x = getattr(self, str(i))(x)
        return self.hook_out(x)
