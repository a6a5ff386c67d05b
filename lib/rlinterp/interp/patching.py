"""Activation patching: resample, mean and zero ablation of nodes, edges and positions.

Run the model on clean inputs, replace one activation by an *ablated* value and measure a metric (Vig et al. 2020;
Meng et al. 2022; Heimersheim & Nanda 2024, "How to use and interpret activation patching", arXiv 2404.15255):

* ``resample`` — the activation on a corrupted / resampled input (``corrupted``, same batch shape);
* ``mean`` — its mean over a reference batch (``reference``, default the clean batch), per position when there is one;
* ``zero`` — zeros (simple but off-distribution).

Nodes and edges come from a :class:`~rlinterp.interp.graph.Graph`. For ``HookedTransformer`` token models
``transformer_lens.patching`` (``get_act_patch_resid_pre``, ``get_act_patch_attn_head_out_by_pos``, ...) gives the same
per-layer/per-position sweeps; these functions work on any hooked model and any float or token input.

Metrics: any ``metric(output) -> scalar``; helpers below build the usual ones (KL to the clean output, logit
difference, MSE to the clean output, fraction of the clean–corrupted difference restored).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from rlinterp.progress import tqdm

from rlinterp.interp.graph import Graph, Node

MODES = ("resample", "mean", "zero")


def ablation_cache(
    model: nn.Module, hooks: Sequence[str], clean: Any, mode: str = "resample", corrupted: Any = None,
    reference: Any = None,
) -> dict[str, Tensor]:
    """Ablated activations at ``hooks`` for a clean batch: ``resample`` → run on ``corrupted``; ``mean`` → mean over
    ``reference`` (default ``clean``) along the batch axis, shape ``[1, ...]``; ``zero`` → zeros ``[1, ...]``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "resample" and corrupted is None:
        raise ValueError("mode='resample' needs `corrupted` inputs (same batch size as clean)")
    src = {"resample": corrupted, "mean": clean if reference is None else reference, "zero": clean}[mode]
    names = set(hooks)
    with torch.no_grad():
        _, cache = model.run_with_cache(src, names_filter=lambda n: n in names)
    out = {}
    for h in names:
        a = cache[h]
        out[h] = a if mode == "resample" else a.mean(0, keepdim=True) if mode == "mean" else torch.zeros_like(a[:1])
    return out


def patch_nodes(
    model: nn.Module, graph: Graph, clean: Any, metric: Callable[[Tensor], Tensor], mode: str = "resample",
    corrupted: Any = None, reference: Any = None, nodes: Sequence[Node] | None = None, per_position: bool = False,
    progress: bool = True,
) -> dict[str, Tensor]:
    """Effect ``metric(patched) − metric(clean)`` of ablating each source node (its output everywhere downstream).

    ``per_position=True`` (activations ``[batch, pos, ...]``): one value per position, a tensor ``[pos]`` per node.
    """
    nodes = list(nodes or graph.src_nodes)
    cache = ablation_cache(model, sorted({n.hook for n in nodes}), clean, mode, corrupted, reference)
    with torch.no_grad():
        base = metric(model(clean))
    out: dict[str, Tensor] = {}
    for node in tqdm(nodes, desc=f"{mode}-patching nodes", disable=not progress):
        patch = cache[node.hook]
        if not per_position:
            out[node.name] = _run_node(model, clean, metric, node, patch, None) - base
        else:
            if patch.dim() < 3:
                raise ValueError(f"per_position needs [batch, pos, ...] activations; {node.hook} is {tuple(patch.shape)}")
            n_pos = patch.shape[1]  # mean/zero caches keep the position axis
            out[node.name] = torch.stack([_run_node(model, clean, metric, node, patch, p) - base for p in range(n_pos)])
    return out


def _run_node(model, clean, metric, node: Node, patch: Tensor, pos: int | None) -> Tensor:
    def hook(act: Tensor, hook) -> Tensor:
        act = act.clone()
        p = patch.expand_as(act)
        if pos is None:
            node_view = node.select(act)
            node_view[...] = node.select(p)
        else:
            a, b = act[:, pos], p[:, pos]
            node.select(a)[...] = node.select(b)
        return act

    with torch.no_grad():
        return metric(model.run_with_hooks(clean, fwd_hooks=[(node.hook, hook)]))


def patch_edges(
    model: nn.Module, graph: Graph, clean: Any, metric: Callable[[Tensor], Tensor], mode: str = "resample",
    corrupted: Any = None, reference: Any = None, progress: bool = True,
) -> Tensor:
    """Effect ``metric(patched) − metric(clean)`` of ablating each edge alone (its source's contribution to its
    destination's input only). Returns ``[n_edges]`` aligned with ``graph.edges``."""
    patch = ablation_cache(model, graph.src_hooks, clean, mode, corrupted, reference)
    with torch.no_grad():
        base = metric(model(clean))
        out = []
        for e in tqdm(graph.edges, desc=f"{mode}-patching edges", disable=not progress):
            masks = graph.ones()
            masks[e.group][e.s, e.n] = 0.0
            out.append(metric(graph.forward(model, clean, patch, masks)) - base)
    return torch.stack(out)


# ---- metrics ------------------------------------------------------------------------------------------------------
def kl_metric(clean_logits: Tensor, pos: int | None = -1) -> Callable[[Tensor], Tensor]:
    """``KL(clean ‖ patched)`` of the output distribution (at position ``pos`` for ``[batch, pos, vocab]``), batch mean."""
    ref = F.log_softmax((clean_logits[:, pos] if pos is not None else clean_logits).detach(), -1)

    def metric(logits: Tensor) -> Tensor:
        lp = F.log_softmax(logits[:, pos] if pos is not None else logits, -1)
        return (ref.exp() * (ref - lp)).sum(-1).mean()

    return metric


def mse_metric(clean_out: Tensor) -> Callable[[Tensor], Tensor]:
    """Mean squared distance to the clean model's output (the regression analogue of the KL metric)."""
    ref = clean_out.detach()
    return lambda out: ((out - ref) ** 2).flatten(1).sum(-1).mean()


def logit_diff_metric(good: Tensor, bad: Tensor, pos: int | None = -1) -> Callable[[Tensor], Tensor]:
    """Mean ``logit[good] − logit[bad]`` (e.g. clean answer vs corrupted answer), per example then batch mean."""

    def metric(logits: Tensor) -> Tensor:
        lg = logits[:, pos] if pos is not None else logits
        return (lg.gather(-1, good[:, None]) - lg.gather(-1, bad[:, None])).mean()

    return metric


def restored_metric(clean_out: Tensor, corrupt_out: Tensor) -> Callable[[Tensor], Tensor]:
    """Fraction of the clean−corrupted output difference present: 1 at the clean output, 0 at the corrupted one
    (per example projection onto ``clean − corrupted``, then batch mean). Linear, so gradients are informative."""
    d = (clean_out - corrupt_out).detach().flatten(1)
    c = corrupt_out.detach().flatten(1)
    norm = (d**2).sum(-1).mean().clamp_min(1e-12)
    return lambda out: ((out.flatten(1) - c) * d).sum(-1).mean() / norm
