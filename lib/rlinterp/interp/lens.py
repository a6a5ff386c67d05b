"""Logit lens: read intermediate activations with the model's final readout (nostalgebraist 2020, "interpreting GPT:
the logit lens"; the tuned lens of Belrose et al. 2023, arXiv 2303.08112, learns one affine map per layer instead).

Generic: the caller passes ``readout(act) -> output`` (e.g. the Q-head of a DQN applied to a hidden layer of matching
width, or a ``HookedTransformer``'s ``unembed(ln_final(resid))``, the default for HookedTransformers).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn


def transformer_readout(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """``unembed(ln_final(resid))`` of a ``HookedTransformer``. [..., d_model] -> [..., d_vocab]"""
    ln = getattr(model, "ln_final", None)
    return lambda r: model.unembed(ln(r) if ln is not None else r)


def logit_lens(
    model: nn.Module, inputs: Any, hooks: Sequence[str] | None = None,
    readout: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """``readout(activation)`` at every hook in ``hooks`` (default for HookedTransformers: every
    ``blocks.{l}.hook_resid_post`` and ``blocks.0.hook_resid_pre``). Returns hook → lens output."""
    if readout is None:
        if not hasattr(model, "unembed"):
            raise ValueError("logit_lens: pass readout=... for models without an unembedding")
        readout = transformer_readout(model)
    if hooks is None:
        if not hasattr(model, "cfg"):
            raise ValueError("logit_lens: pass the hooks to read for models that are not HookedTransformers")
        hooks = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers)]
    names = set(hooks)
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs, names_filter=lambda n: n in names)
        return {h: readout(cache[h]) for h in hooks}
