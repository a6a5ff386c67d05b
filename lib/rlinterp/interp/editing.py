"""Editing hooked models: ablations, attention masks and steering vectors, as TransformerLens forward hooks.

Every function here builds a ``(hook_name, hook_fn)`` pair for ``model.run_with_hooks(x, fwd_hooks=[...])`` or for
the :func:`edited` context manager, which keeps the edits on for every forward pass inside the ``with`` block (e.g. a
whole closed-loop evaluation) and removes them on exit, even after an exception:

* :func:`ablate` — zero, mean or constant ablation of a unit: a neuron (``index=(i,)`` on a ``[..., d]`` hook), a head
  (``index=(h,)`` with ``trailing=1`` on a ``[..., head, d]`` hook) or the whole activation (``index=()``);
* :func:`mask_attention` — remove keys from an attention pattern by setting their *pre-softmax* scores to a large
  negative value (``mask``: fixed bool ``[..., n_keys]`` or a function of the scores), so the remaining weights are
  renormalised exactly as for absent tokens;
* :func:`steer` — activation addition (Turner et al. 2023, "Activation addition: steering language models without
  optimization", arXiv 2308.10248): ``act ← act + α · direction``;
* :func:`steer_at` — spatial editing of a conv map ``[batch, c, h, w]``: add a channel vector at chosen positions,
  or clamp chosen channels there (Mini et al. 2023 retargeted a maze agent by clamping "cheese" channels at the
  target square);
* :func:`mean_difference` — the usual steering direction, the difference of mean activations of two sets of inputs.

Conventions: edits never modify activations in place (they return a patched copy), and the batch axis is first.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

HookFn = Callable[[Tensor, object], Tensor]
FwdHook = tuple[str, HookFn]
MODES = ("zero", "mean", "value")
MASK_VALUE = -1e9


def _check_hook(model: nn.Module | None, name: str) -> None:
    if model is not None and name not in model.hook_dict:
        near = [h for h in model.hook_dict if name.split(".")[-1] in h][:5]
        raise ValueError(f"unknown hook {name!r}; hooks with a similar name: {near or sorted(model.hook_dict)[:8]}")


def _index(index: Sequence[int] | int | None, trailing: int) -> tuple:
    idx = () if index is None else (index,) if isinstance(index, int) else tuple(index)
    return (Ellipsis, *idx) + (slice(None),) * trailing


def ablate(
    hook: str, index: Sequence[int] | int | None = None, mode: str = "zero", reference: Tensor | None = None,
    value: Tensor | float | None = None, trailing: int = 0, model: nn.Module | None = None,
) -> FwdHook:
    """Ablate ``act[..., *index, (:,) * trailing]`` at ``hook``.

    mode ``"zero"``: set to 0; ``"mean"``: set to the mean of ``reference`` (activations at this hook on a reference
    batch, ``[n, ...]``) over its batch axis; ``"value"``: set to ``value`` (broadcast). ``model`` (optional) checks
    that the hook exists.
    """
    if mode not in MODES:
        raise ValueError(f"ablate: mode must be one of {MODES}, got {mode!r}")
    if mode == "mean" and reference is None:
        raise ValueError("ablate: mode='mean' needs `reference` activations [n, ...] at the hook "
                         "(e.g. from run_with_cache)")
    if mode == "value" and value is None:
        raise ValueError("ablate: mode='value' needs `value`")
    _check_hook(model, hook)
    sel = _index(index, trailing)
    fill = None if mode == "zero" else reference.mean(0)[sel] if mode == "mean" else torch.as_tensor(value)

    def fn(act: Tensor, hook=None) -> Tensor:
        act = act.clone()
        act[sel] = 0.0 if fill is None else fill.to(act.device, act.dtype)
        return act

    return hook, fn


def mask_attention(
    hook: str, mask: Tensor | Callable[[Tensor], Tensor], heads: Sequence[int] | None = None,
    head_axis: int = -2, model: nn.Module | None = None, mask_value: float = MASK_VALUE,
) -> FwdHook:
    """Remove keys from attention by setting their scores (pre-softmax, hook ``[batch, ..., n_keys]``) to
    ``mask_value``. ``mask``: bool, True = remove, broadcastable to the scores (e.g. ``[n_keys]`` or
    ``[batch, n_keys]``; a ``[batch, n_keys]`` mask is applied to every head), or a function ``scores -> mask``.
    ``heads`` restricts the edit to those heads (indices along ``head_axis`` of the scores)."""
    _check_hook(model, hook)

    def fn(scores: Tensor, hook=None) -> Tensor:
        m = mask(scores) if callable(mask) else mask
        m = m.to(scores.device).bool()
        if m.dim() == 2 and scores.dim() == 3 and m.shape[0] == scores.shape[0]:
            m = m[:, None, :]  # [batch, keys] -> every head
        m = m.expand_as(scores)
        if heads is not None:
            keep = torch.zeros(scores.shape[head_axis], dtype=torch.bool, device=scores.device)
            keep[list(heads)] = True
            shape = [1] * scores.dim()
            shape[head_axis] = -1
            m = m & keep.view(shape)
        return scores.masked_fill(m, mask_value)

    return hook, fn


def steer(hook: str, direction: Tensor, alpha: float = 1.0, model: nn.Module | None = None) -> FwdHook:
    """Activation addition ``act ← act + alpha · direction`` at ``hook`` (direction broadcasts over the batch)."""
    _check_hook(model, hook)
    d = direction.detach()

    def fn(act: Tensor, hook=None) -> Tensor:
        return act + alpha * d.to(act.device, act.dtype)

    return hook, fn


def steer_at(hook: str, mask: Tensor, direction: Tensor, alpha: float = 1.0, mode: str = "add",
             channels: Sequence[int] | None = None, model: nn.Module | None = None) -> FwdHook:
    """Edit a ``[batch, c, h, w]`` activation at the positions where ``mask`` (bool ``[batch, h, w]`` or ``[h, w]``)
    is true: ``mode="add"`` adds ``alpha · direction`` (``direction`` [c]); ``mode="set"`` sets the ``channels``
    (default all) to ``alpha · direction[channels]`` there. Other positions are untouched."""
    _check_hook(model, hook)
    if mode not in ("add", "set"):
        raise ValueError(f"steer_at: mode must be 'add' or 'set', got {mode!r}")
    m = torch.as_tensor(mask).detach().bool()
    if m.ndim not in (2, 3):
        raise ValueError(f"steer_at: mask must be [batch, h, w] or [h, w], got shape {tuple(m.shape)}")
    d = direction.detach().reshape(-1)
    ch = list(range(len(d))) if channels is None else list(channels)

    def fn(act: Tensor, hook=None) -> Tensor:
        if act.ndim != 4 or act.shape[1] != len(d) or tuple(act.shape[-2:]) != tuple(m.shape[-2:]):
            raise ValueError(f"steer_at: activation {tuple(act.shape)} does not match direction ({len(d)} channels) "
                             f"and mask {tuple(m.shape)}")
        if m.ndim == 3 and len(m) != len(act):
            raise ValueError(f"steer_at: mask batch {len(m)} != activation batch {len(act)}")
        mm = m.to(act.device)[:, None] if m.ndim == 3 else m.to(act.device)[None, None]  # [b|1, 1, h, w]
        dd = (alpha * d.to(act.device, act.dtype))[None, :, None, None]  # [1, c, 1, 1]
        if mode == "add":
            return act + mm * dd
        out = act.clone()
        sel = torch.zeros(len(d), dtype=torch.bool, device=act.device)
        sel[ch] = True
        where = mm & sel[None, :, None, None]
        return torch.where(where, dd.expand_as(act), out)

    return hook, fn


def mean_difference(acts_a: Tensor, acts_b: Tensor, normalize: bool = False) -> Tensor:
    """``mean(acts_a) − mean(acts_b)`` over the batch axis (a steering direction from set b towards set a);
    ``normalize`` scales it to unit norm."""
    if len(acts_a) == 0 or len(acts_b) == 0:
        raise ValueError(f"mean_difference: both sets need at least one activation (got {len(acts_a)}, {len(acts_b)})")
    d = acts_a.float().mean(0) - acts_b.float().mean(0)
    return d / d.norm().clamp_min(1e-12) if normalize else d


@contextmanager
def edited(model: nn.Module, fwd_hooks: Sequence[FwdHook]) -> Iterator[nn.Module]:
    """``with edited(model, [ablate(...), steer(...)]) as m:`` — every forward pass of ``model`` in the block runs
    with the edits; they are removed on exit (TransformerLens ``HookedRootModule.hooks``)."""
    for name, _ in fwd_hooks:
        _check_hook(model, name)
    with model.hooks(fwd_hooks=list(fwd_hooks)):
        yield model


def run_edited(model: nn.Module, x: Tensor, fwd_hooks: Sequence[FwdHook]) -> Tensor:
    """``model(x)`` with the edits, without gradients."""
    with torch.no_grad(), edited(model, fwd_hooks):
        return model(x)
