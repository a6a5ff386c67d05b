"""Attribution patching: gradient approximations of activation patching, for every node or edge at once.

* :func:`attribution_patching` — node level (Nanda 2023, "Attribution patching"; Kramár et al. 2024, AtP):
  ``L(do(z_u = z_u')) − L ≈ (z_u' − z_u) · ∂L/∂z_u``; two forward passes and one backward pass score every node.
* :func:`eap` — edge attribution patching (Syed, Rager & Conmy 2023, arXiv 2310.10348): the edge u→v scores
  ``(c_uv(z_u') − c_uv(z_u)) · ∂L/∂input_v`` — the source's change in contribution times the gradient at the
  destination's input.
* :func:`eap_ig` — EAP with integrated gradients (Hanna, Pezzelle & Belinkov 2024, arXiv 2403.17806): the gradient at
  each destination is averaged over ``steps`` points on the straight line from the corrupted to the clean *input*
  (interpolated at the graph's input hooks — token/position embeddings or the observation), which avoids the
  zero-gradient failures of EAP (saturated softmax/ReLU, a metric at its optimum).

Scores approximate ``metric(patched) − metric(clean)``; rank edges by ``abs``. The metric must have a non-zero
gradient at the clean input (e.g. a logit difference or :func:`~rlinterp.interp.patching.restored_metric`, not a KL
to the clean output, which is at its minimum there).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from rlinterp.progress import tqdm

from rlinterp.interp.graph import Graph


def _grads(
    model: nn.Module, x: Any, metric: Callable[[Tensor], Tensor], hooks: list[str],
    replace: dict[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """``∂metric/∂activation`` at ``hooks`` (zero-leaf trick, no parameter grads), optionally replacing activations."""
    leaves: dict[str, Tensor] = {}

    def sub(act: Tensor, hook) -> Tensor:
        return replace[hook.name].expand_as(act).to(act.dtype)

    def leaf(act: Tensor, hook) -> Tensor:
        z = torch.zeros_like(act, requires_grad=True)
        leaves[hook.name] = z
        return act + z

    fwd = [(h, sub) for h in (replace or {})] + [(h, leaf) for h in hooks]
    with torch.enable_grad():
        m = metric(model.run_with_hooks(x, fwd_hooks=fwd))
        gs = torch.autograd.grad(m, [leaves[h] for h in hooks], allow_unused=True)
    return {h: (g if g is not None else torch.zeros_like(leaves[h])) for h, g in zip(hooks, gs)}


def attribution_patching(
    model: nn.Module, graph: Graph, clean: Any, corrupted: Any, metric: Callable[[Tensor], Tensor]
) -> dict[str, float]:
    """Node-level attribution patching: first-order ``metric(z_u ← z_u') − metric`` for every source node."""
    hooks = graph.src_hooks
    zc, zx = graph.cache(model, clean), graph.cache(model, corrupted)
    g = _grads(model, clean, metric, hooks)
    return {n.name: float(n.select((zx[n.hook] - zc[n.hook]).expand_as(g[n.hook]) * g[n.hook]).sum())
            for n in graph.src_nodes}


def eap_ig(
    model: nn.Module, graph: Graph, clean: Any, corrupted: Any, metric: Callable[[Tensor], Tensor], steps: int = 5,
    progress: bool = False,
) -> Tensor:
    """EAP-IG edge scores ``[n_edges]`` (aligned with ``graph.edges``): ``Δc_uv · mean_k ∂L/∂input_v`` at inputs
    ``x_k = x' + (k/steps)(x − x')``, k = 1..steps, interpolated at ``graph.input_hooks``. ``steps=1`` is EAP."""
    if steps < 1:
        raise ValueError(f"eap_ig: steps must be >= 1, got {steps}")
    zc, zx = graph.cache(model, clean), graph.cache(model, corrupted)
    dsts = graph.dst_hooks
    grad = {h: 0.0 for h in dsts}
    for k in tqdm(range(1, steps + 1), desc="EAP-IG", disable=not progress):
        a = k / steps
        replace = None if k == steps else {h: zx[h] + a * (zc[h] - zx[h]) for h in graph.input_hooks}
        g = _grads(model, clean, metric, dsts, replace)
        grad = {h: grad[h] + g[h] / steps for h in dsts}
    per_group = [grp.score(grp.contrib(zx[grp.src_hook]) - grp.contrib(zc[grp.src_hook]), grad[grp.dst_hook])
                 for grp in graph.groups]
    return graph.to_vector(per_group).detach()


def eap(model: nn.Module, graph: Graph, clean: Any, corrupted: Any, metric: Callable[[Tensor], Tensor]) -> Tensor:
    """EAP edge scores ``[n_edges]``: one clean forward/backward, one corrupted forward (= :func:`eap_ig`, 1 step)."""
    return eap_ig(model, graph, clean, corrupted, metric, steps=1)
