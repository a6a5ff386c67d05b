"""Captum attribution methods addressed by hook name instead of module.

Every hooked model's activations live in ``HookPoint`` modules (identity modules), so Captum's *layer* methods can
attach to them directly: ``model.hook_dict[name]`` is the layer. Thin wrappers, no re-implementation:

* :func:`integrated_gradients` — IG (Sundararajan, Taly & Yan 2017, arXiv 1703.01365) w.r.t. the input or, with
  ``hook``, a hook activation (Captum ``IntegratedGradients`` / ``LayerIntegratedGradients``). Returns the
  convergence delta = ``Σ attributions − (F(x) − F(baseline))``, i.e. the completeness error.
* :func:`layer_conductance` — conductance of every unit of a hook (Dhamdhere, Sundararajan & Yan 2018,
  arXiv 1805.12233; Captum ``LayerConductance``).
* :func:`neuron_conductance` — input attributions through one unit of a hook (Captum ``NeuronConductance``).
* :func:`feature_ablation` — ablation attributions of input features or hook units (Captum ``FeatureAblation`` /
  ``LayerFeatureAblation``).

``fn(output) -> [batch]`` or ``[batch, k]`` picks what to explain (e.g. ``lambda q: q`` for Q-values with ``target``
the action, ``lambda logits: logits[:, -1]`` with ``target`` the answer tokens); ``target`` is passed to Captum.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import captum.attr as ca
from torch import Tensor, nn


def _forward(model: nn.Module, fn: Callable[[Tensor], Tensor] | None) -> Callable[..., Tensor]:
    return lambda x: (fn or (lambda y: y))(model(x))


def _layer(model: nn.Module, hook: str) -> nn.Module:
    if hook not in model.hook_dict:
        raise ValueError(f"unknown hook {hook!r}; hooks of {type(model).__name__}: {list(model.hook_dict)[:8]}...")
    return model.hook_dict[hook]


def integrated_gradients(
    model: nn.Module, inputs: Tensor, fn: Callable[[Tensor], Tensor] | None = None, target: Any = None,
    hook: str | None = None, baselines: Any = None, n_steps: int = 64, method: str = "gausslegendre",
    internal_batch_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """``(attributions, completeness error [batch])``. Without ``hook`` attributions have the input's shape (float
    inputs); with ``hook`` they have the hook activation's shape (baselines are then *input* baselines, e.g. pad
    tokens, whose activation at the hook is the baseline)."""
    f = _forward(model, fn)
    ig = ca.IntegratedGradients(f) if hook is None else ca.LayerIntegratedGradients(f, _layer(model, hook))
    attr, delta = ig.attribute(inputs, baselines=baselines, target=target, n_steps=n_steps, method=method,
                               internal_batch_size=internal_batch_size, return_convergence_delta=True)
    return attr, delta


def layer_conductance(
    model: nn.Module, inputs: Tensor, hook: str, fn: Callable[[Tensor], Tensor] | None = None, target: Any = None,
    baselines: Any = None, n_steps: int = 64, internal_batch_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Conductance of every unit at ``hook`` ``[batch, *hook_shape]`` and the completeness error ``[batch]``."""
    lc = ca.LayerConductance(_forward(model, fn), _layer(model, hook))
    return lc.attribute(inputs, baselines=baselines, target=target, n_steps=n_steps,
                        internal_batch_size=internal_batch_size, return_convergence_delta=True)


def neuron_conductance(
    model: nn.Module, inputs: Tensor, hook: str, neuron: int | tuple, fn: Callable[[Tensor], Tensor] | None = None,
    target: Any = None, baselines: Any = None, n_steps: int = 64, internal_batch_size: int | None = None,
) -> Tensor:
    """Attribution of each input feature to the output *through* unit ``neuron`` of ``hook``. [batch, *input]"""
    if not inputs.is_floating_point():
        raise ValueError("neuron_conductance interpolates inputs: pass float inputs (e.g. embeddings), not token ids")
    nc = ca.NeuronConductance(_forward(model, fn), _layer(model, hook))
    return nc.attribute(inputs, neuron_selector=neuron, baselines=baselines, target=target, n_steps=n_steps,
                        internal_batch_size=internal_batch_size)


def feature_ablation(
    model: nn.Module, inputs: Tensor, fn: Callable[[Tensor], Tensor] | None = None, target: Any = None,
    hook: str | None = None, baselines: Any = None, feature_mask: Tensor | None = None,
) -> Tensor:
    """Output change when each input feature (or each unit of ``hook``) is set to its baseline (default 0)."""
    f = _forward(model, fn)
    if hook is None:
        return ca.FeatureAblation(f).attribute(inputs, baselines=baselines, target=target, feature_mask=feature_mask)
    return ca.LayerFeatureAblation(f, _layer(model, hook)).attribute(
        inputs, layer_baselines=baselines, target=target, layer_mask=feature_mask)
