"""Linear probes on cached activations at any hook, with held-out scores and a control baseline.

A probe asks whether a feature is *linearly decodable* from an activation (Alain & Bengio 2016, arXiv 1610.01644).
Decodability alone is weak evidence, so every score comes with a control (Hewitt & Liang 2019, arXiv 1909.03368):
the same probe trained on shuffled labels (``control="shuffle"``), or on the activations of a control model (e.g. a
random-init network, :func:`probe_hook` with ``control_model``). Ridge regression (closed form) for continuous
features reports held-out R²; multinomial logistic regression (L-BFGS, L2) for discrete ones reports held-out
accuracy next to the majority-class rate (chance).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class ProbeResult:
    kind: str  # "ridge" or "logistic"
    score: float  # held-out R² (ridge) or accuracy (logistic)
    control: float  # the same on the control
    chance: float  # 0 for R²; majority-class rate for accuracy
    weight: Tensor  # [d, k] probe direction(s) in the (standardised) activation space
    train_score: float


def _split(n: int, test_frac: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=g)
    n_test = max(1, int(round(n * test_frac)))
    return perm[n_test:], perm[:n_test]


def _standardise(X: Tensor, tr: Tensor) -> Tensor:
    mu, sd = X[tr].mean(0), X[tr].std(0).clamp_min(1e-6)
    return (X - mu) / sd


def _ridge(X: Tensor, y: Tensor, tr: Tensor, te: Tensor, alpha: float) -> tuple[float, float, Tensor]:
    Xs = torch.cat([_standardise(X, tr), torch.ones(len(X), 1, dtype=X.dtype)], 1)  # [n, d+1]
    A = Xs[tr].T @ Xs[tr] + alpha * torch.eye(Xs.shape[1], dtype=X.dtype)
    A[-1, -1] -= alpha  # no penalty on the intercept
    W = torch.linalg.solve(A, Xs[tr].T @ y[tr])  # [d+1, k]

    def r2(idx: Tensor) -> float:
        res = ((y[idx] - Xs[idx] @ W) ** 2).sum()
        tot = ((y[idx] - y[tr].mean(0)) ** 2).sum().clamp_min(1e-12)
        return float(1 - res / tot)

    return r2(te), r2(tr), W[:-1]


def _logistic(X: Tensor, y: Tensor, tr: Tensor, te: Tensor, alpha: float, steps: int) -> tuple[float, float, Tensor]:
    Xs = _standardise(X, tr)
    k = int(y.max()) + 1
    W = torch.zeros(Xs.shape[1], k, dtype=X.dtype, requires_grad=True)
    b = torch.zeros(k, dtype=X.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(Xs[tr] @ W + b, y[tr]) + alpha * (W**2).sum() / len(tr)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)

    def acc(idx: Tensor) -> float:
        return float(((Xs[idx] @ W + b).argmax(-1) == y[idx]).double().mean())

    return acc(te), acc(tr), W.detach()


def fit_probe(
    acts: Tensor, labels: Tensor, kind: str = "ridge", alpha: float = 1.0, test_frac: float = 0.3,
    control: str | Tensor = "shuffle", seed: int = 0, steps: int = 200,
) -> ProbeResult:
    """Fit a probe ``acts [n, ...] → labels [n] / [n, k]`` (ridge) or ``[n]`` int classes (logistic).

    ``control="shuffle"`` refits on permuted labels; a tensor is taken as control activations (same labels).
    """
    if kind not in ("ridge", "logistic"):
        raise ValueError(f"fit_probe: kind must be 'ridge' or 'logistic', got {kind!r}")
    X = acts.detach().reshape(len(acts), -1).double().cpu()
    g = torch.Generator().manual_seed(seed)
    tr, te = _split(len(X), test_frac, g)
    if kind == "ridge":
        y = labels.detach().double().cpu().reshape(len(X), -1)
        fit = lambda X_, y_: _ridge(X_, y_, tr, te, alpha)  # noqa: E731
        chance = 0.0
    else:
        y = labels.detach().long().cpu().reshape(-1)
        if (y < 0).any():
            raise ValueError("fit_probe: logistic labels must be class indices >= 0")
        fit = lambda X_, y_: _logistic(X_, y_, tr, te, alpha, steps)  # noqa: E731
        chance = float(torch.bincount(y[te]).max() / len(te))
    score, train, W = fit(X, y)
    if isinstance(control, Tensor):
        ctrl, _, _ = fit(control.detach().reshape(len(X), -1).double().cpu(), y)
    elif control == "shuffle":
        ctrl, _, _ = fit(X, y[torch.randperm(len(y), generator=g)])
    else:
        raise ValueError(f"fit_probe: control must be 'shuffle' or a tensor of control activations, got {control!r}")
    return ProbeResult(kind, score, ctrl, chance, W, train)


def cache_hook(model: nn.Module, inputs: Any, hook: str, batch_size: int = 4096) -> Tensor:
    """Activation at ``hook`` for ``inputs`` (batched, no grad). [n, ...]"""
    outs = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            _, cache = model.run_with_cache(inputs[i:i + batch_size], names_filter=hook)
            outs.append(cache[hook])
    return torch.cat(outs)


def probe_hook(
    model: nn.Module, inputs: Any, hook: str, labels: Tensor, kind: str = "ridge",
    control_model: nn.Module | None = None, **kw,
) -> ProbeResult:
    """Cache ``hook`` on ``inputs`` and fit :func:`fit_probe`; the control is ``control_model``'s activations at the
    same hook when given (e.g. a randomly initialised copy), else shuffled labels."""
    acts = cache_hook(model, inputs, hook)
    control = cache_hook(control_model, inputs, hook) if control_model is not None else kw.pop("control", "shuffle")
    return fit_probe(acts, labels, kind, control=control, **kw)
