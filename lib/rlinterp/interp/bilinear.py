"""Eigendecomposition of bilinear layers along a chosen output direction ("eigenfilters").

A bilinear layer computes ``y_o = (a_o . x + α_o)(b_o . x + β_o)`` for each output ``o`` (a linear layer's input
vector, or a convolution's input patch at one position: ``x`` = the ``c_in x k x k`` patch). With the input extended
by a constant 1, ``x̃ = [x, 1]`` and ``ã_o = [a_o, α_o]``, ``b̃_o = [b_o, β_o]``, any read-out ``u . y`` of the
outputs is a quadratic form of the input (Pearce et al. 2024; for convolutions, Oozeer et al. 2024):

    u . y = x̃ᵀ Q x̃,    Q = Σ_o u_o (ã_o b̃_oᵀ + b̃_o ã_oᵀ) / 2   (symmetric, (d+1) x (d+1)).

Its eigendecomposition ``Q = Σ_i λ_i v_i v_iᵀ`` splits the read-out into independent terms ``λ_i (v_i . x̃)²``: each
eigenvector is an input pattern (for a conv layer, a ``c_in x k x k`` filter -- an *eigenfilter* -- plus a bias
component) that pushes the read-out up (``λ > 0``) or down (``λ < 0``) in proportion to the square of its match.
With ``u`` a probe direction (e.g. "the current goal is here"), the top eigenfilters are the input patterns through
which the layer writes that feature; :func:`eigen_contributions` gives each term per input and position, so
removing terms (an ablation that leaves the rest of the layer intact) tests whether they carry the probe's signal.

``x`` is what the two maps read: for a layer that normalises its input first (``BilinearDense.norm``, the
``norm`` of a bilinear conv block), the normalised input. Works with any module that has ``conv_a``/``conv_b`` (``nn.Conv2d``, stride 1, 'same' padding) or
``linear_a``/``linear_b`` (``nn.Linear``), such as :class:`rlinterp.models.impala.BilinearConv` and
:class:`~rlinterp.models.impala.BilinearDense`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Eigenfilters", "interaction_matrix", "eigenfilters", "input_patches", "eigen_contributions",
           "remove_components"]


def _weights(layer: nn.Module) -> tuple[Tensor, Tensor, Tensor, Tensor, tuple[int, ...], bool]:
    """(a [o, d], α [o], b [o, d], β [o], input shape of one sample (c_in, kh, kw) or (d,), is_conv)."""
    if hasattr(layer, "conv_a") and hasattr(layer, "conv_b"):
        ca, cb = layer.conv_a, layer.conv_b
        if ca.stride != (1, 1) or ca.dilation != (1, 1) or ca.groups != 1 or ca.weight.shape != cb.weight.shape:
            raise ValueError("bilinear: conv_a/conv_b must be equal-shaped stride-1, undilated, ungrouped convs")
        o = ca.weight.shape[0]
        za = torch.zeros(o, device=ca.weight.device)
        return (ca.weight.reshape(o, -1), ca.bias if ca.bias is not None else za, cb.weight.reshape(o, -1),
                cb.bias if cb.bias is not None else za, tuple(ca.weight.shape[1:]), True)
    if hasattr(layer, "linear_a") and hasattr(layer, "linear_b"):
        la, lb = layer.linear_a, layer.linear_b
        if la.weight.shape != lb.weight.shape:
            raise ValueError("bilinear: linear_a and linear_b must have the same shape")
        o = la.weight.shape[0]
        za = torch.zeros(o, device=la.weight.device)
        return (la.weight, la.bias if la.bias is not None else za, lb.weight,
                lb.bias if lb.bias is not None else za, (la.weight.shape[1],), False)
    raise TypeError(f"bilinear: {type(layer).__name__} has neither conv_a/conv_b nor linear_a/linear_b")


def _direction(direction: Any, n_out: int) -> Tensor:
    u = torch.as_tensor(direction, dtype=torch.float64).detach().cpu()
    if u.shape != (n_out,):
        raise ValueError(f"bilinear: the direction must have one entry per output channel ({n_out}), "
                         f"got shape {tuple(u.shape)}")
    if not torch.isfinite(u).all():
        raise ValueError("bilinear: the direction contains NaN or inf")
    return u


def interaction_matrix(layer: nn.Module, direction: Any) -> Tensor:
    """``Q`` [(d+1), (d+1)] (float64, symmetric) with ``direction . y = x̃ᵀ Q x̃``; the last index is the bias."""
    a, al, b, be, _, _ = _weights(layer)
    u = _direction(direction, a.shape[0])
    A = torch.cat([a, al[:, None]], 1).detach().double().cpu()  # [o, d+1]
    B = torch.cat([b, be[:, None]], 1).detach().double().cpu()
    M = (A * u[:, None]).T @ B  # Σ_o u_o ã_o b̃_oᵀ
    return (M + M.T) / 2


@dataclass
class Eigenfilters:
    """The eigendecomposition of :func:`interaction_matrix`, sorted by ``|λ|`` (largest first)."""

    values: Tensor  # [m] eigenvalues λ_i
    vectors: Tensor  # [m, d+1] unit eigenvectors v_i (rows), over the extended input
    shape: tuple[int, ...]  # one input sample: (c_in, kh, kw) for a conv, (d,) for a linear layer

    @property
    def filters(self) -> Tensor:
        """The eigenvectors without their bias component, in input shape: [m, c_in, kh, kw] or [m, d]."""
        return self.vectors[:, :-1].reshape(len(self.vectors), *self.shape)

    @property
    def bias(self) -> Tensor:
        """The bias (constant-input) component of each eigenvector [m]."""
        return self.vectors[:, -1]


def eigenfilters(layer: nn.Module, direction: Any, top: int | None = None) -> Eigenfilters:
    """Eigenvalues/eigenvectors of the layer's quadratic form along ``direction``, largest ``|λ|`` first (the first
    ``top`` of them when given). Eigenvector signs are fixed so that the largest-magnitude entry is positive."""
    _, _, _, _, shape, _ = _weights(layer)
    Q = interaction_matrix(layer, direction)
    lam, V = torch.linalg.eigh(Q)
    order = lam.abs().argsort(descending=True)
    lam, V = lam[order], V[:, order].T.contiguous()  # rows are eigenvectors
    sign = torch.sign(V.gather(1, V.abs().argmax(1, keepdim=True)))
    V = V * sign
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ValueError(f"eigenfilters: top must be an integer >= 1, got {top!r}")
        lam, V = lam[:top], V[:top]
    return Eigenfilters(lam, V, shape)


def input_patches(layer: nn.Module, x: Tensor) -> Tensor:
    """The extended inputs ``x̃`` the layer reads: [n, h, w, d+1] for a conv ('same' padding, one patch per output
    position, in the layout of ``F.unfold``), [n, d+1] for a linear layer."""
    _, _, _, _, shape, is_conv = _weights(layer)
    x = x.detach().double()
    if is_conv:
        conv = layer.conv_a
        if x.ndim != 4 or x.shape[1] != shape[0]:
            raise ValueError(f"input_patches: expected [n, {shape[0]}, h, w], got {tuple(x.shape)}")
        n, _, h, w = x.shape
        cols = F.unfold(x, shape[1:], padding=conv.padding)  # [n, d, h*w]
        if cols.shape[-1] != h * w:
            raise ValueError("input_patches: the conv must keep the spatial size ('same' padding)")
        cols = cols.transpose(1, 2).reshape(n, h, w, -1)
    else:
        if x.ndim != 2 or x.shape[1] != shape[0]:
            raise ValueError(f"input_patches: expected [n, {shape[0]}], got {tuple(x.shape)}")
        cols = x
    return torch.cat([cols, torch.ones(*cols.shape[:-1], 1, dtype=cols.dtype)], -1)


def eigen_contributions(layer: nn.Module, x: Tensor, eig: Eigenfilters,
                        which: Sequence[int] | None = None) -> Tensor:
    """``λ_i (v_i . x̃)²`` for the eigencomponents ``which`` (default all of ``eig``): [n, m, h, w] for a conv,
    [n, m] for a linear layer. Summed over *all* components of :func:`eigenfilters` it equals ``direction . y``.
    For a conv, ``v_i . x̃`` at every position is one convolution of ``x`` with the eigenfilter (plus its bias
    component), so no patch matrix is built."""
    _, _, _, _, shape, is_conv = _weights(layer)
    idx = list(range(len(eig.values))) if which is None else [int(i) for i in which]
    if any(i < 0 or i >= len(eig.values) for i in idx):
        raise ValueError(f"eigen_contributions: component indices must lie in [0, {len(eig.values)}), got {idx}")
    V = eig.vectors[idx].double()
    lam = eig.values[idx].double().to(x.device)
    x = x.detach().double()
    if is_conv:
        if x.ndim != 4 or x.shape[1] != shape[0]:
            raise ValueError(f"eigen_contributions: expected [n, {shape[0]}, h, w], got {tuple(x.shape)}")
        w = V[:, :-1].reshape(len(idx), *shape).to(x.device)
        proj = F.conv2d(x, w, V[:, -1].to(x.device), padding=layer.conv_a.padding)  # [n, m, h, w]
        if proj.shape[-2:] != x.shape[-2:]:
            raise ValueError("eigen_contributions: the conv must keep the spatial size ('same' padding)")
        return lam[None, :, None, None] * proj**2
    if x.ndim != 2 or x.shape[1] != shape[0]:
        raise ValueError(f"eigen_contributions: expected [n, {shape[0]}], got {tuple(x.shape)}")
    proj = x @ V[:, :-1].T.to(x.device) + V[:, -1].to(x.device)
    return lam * proj**2


def remove_components(layer: nn.Module, eig: Eigenfilters, direction: Any, which: Sequence[int],
                      input_hook: str, output_hook: str, baseline: Any = None) -> list[tuple[str, Any]]:
    """Forward hooks (TransformerLens ``fwd_hooks``) that remove eigencomponents ``which`` of ``eig`` (computed along
    ``direction``) from the layer's output, and nothing else.

    ``input_hook`` is the hook whose activation is the layer's input (it is read, not changed) and ``output_hook`` the
    hook of the layer's output ``y``. The edit is ``y <- y - Σ_i (c_i - baseline_i) u / |u|²`` with ``c_i`` the
    components' contributions (:func:`eigen_contributions`): the read-out ``u . y`` loses exactly those terms (replaced
    by ``baseline_i``, e.g. their mean over a dataset -- a mean ablation -- or 0), and every direction of the output
    orthogonal to ``u`` is unchanged. ``baseline``: None (0) or one value per component of ``which``.
    """
    idx = [int(i) for i in which]
    u = _direction(direction, _weights(layer)[0].shape[0])
    if not float(u.norm()) > 0:
        raise ValueError("remove_components: the direction must not be zero")
    base = torch.zeros(len(idx), dtype=torch.float64) if baseline is None else \
        torch.as_tensor(baseline, dtype=torch.float64).detach().cpu()
    if base.shape != (len(idx),):
        raise ValueError(f"remove_components: baseline must have one value per component ({len(idx)}), "
                         f"got shape {tuple(base.shape)}")
    store: dict[str, Tensor] = {}

    def read(act: Tensor, hook: Any = None) -> None:
        store["x"] = act

    def edit(act: Tensor, hook: Any = None) -> Tensor:
        if "x" not in store:
            raise RuntimeError(f"remove_components: {input_hook!r} did not run before {output_hook!r}")
        if not idx:
            return act
        c = eigen_contributions(layer, store.pop("x"), eig, idx)  # [n, m, (h, w)]
        b = base.to(c.device).reshape(1, -1, *([1] * (c.ndim - 2)))
        delta = (c - b).sum(1)  # [n, (h, w)]
        uu = (u / u.dot(u)).to(act.device)
        shift = delta.unsqueeze(1) * uu.reshape(1, -1, *([1] * (act.ndim - 2)))
        return act - shift.to(act.dtype)

    return [(input_hook, read), (output_hook, edit)]
