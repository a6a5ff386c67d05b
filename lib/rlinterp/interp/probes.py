"""Linear probes on cached activations at any hook, with held-out scores and a control baseline.

A probe asks whether a feature is *linearly decodable* from an activation (Alain & Bengio 2016, arXiv 1610.01644).
Decodability alone is weak evidence, so every score comes with a control (Hewitt & Liang 2019, arXiv 1909.03368):
the same probe trained on shuffled labels (``control="shuffle"``), or on the activations of a control model (e.g. a
random-init network, :func:`probe_hook` with ``control_model``). Ridge regression (closed form) for continuous
features reports held-out R²; multinomial logistic regression (L-BFGS, L2) for discrete ones reports held-out
accuracy next to the majority-class rate (chance).

A fitted probe is a :class:`ProbeResult`: besides the scores it keeps the standardisation (``mean``, ``std``), the
weights and bias and the train/test split, so ``predict(X)`` (and ``predict_proba(X)`` for a logistic probe) reads
new activations the way the probe was fitted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlinterp.validation import check_choice, check_float, check_int


@dataclass
class ProbeResult:
    """A fitted linear probe and its scores.

    The probe reads ``z = ((x - mean) / std) @ weight + bias`` from a flattened activation ``x`` [d]; a ridge probe
    predicts ``z`` (reshaped to ``target_shape``), a logistic probe ``softmax(z)`` over ``k`` classes.
    ``train_idx`` / ``test_idx`` are the rows of the fitted ``acts`` that trained and scored it.
    """

    kind: str  # "ridge" or "logistic"
    score: float  # held-out R² (ridge) or accuracy (logistic)
    control: float  # the same on the control (nan when fitted with control=None)
    chance: float  # 0 for R²; majority-class rate for accuracy
    weight: Tensor  # [d, k] probe direction(s) in the (standardised) activation space
    train_score: float
    bias: Tensor  # [k]
    mean: Tensor  # [d] training-set mean of the activations
    std: Tensor  # [d] training-set standard deviation (clamped at 1e-6)
    train_idx: Tensor  # [n_train] rows used for fitting
    test_idx: Tensor  # [n_test] rows used for the held-out score
    target_shape: tuple[int, ...] = ()  # ridge: trailing shape of the labels; logistic: ()

    def logits(self, X: Any) -> Tensor:
        """``((X - mean) / std) @ weight + bias`` for activations ``X`` [n, ...] (flattened to [n, d]). [n, k]"""
        X = torch.as_tensor(X).detach().cpu().to(self.weight.dtype)
        d = len(self.mean)
        if X.ndim < 2 or X.numel() != len(X) * d:
            raise ValueError(f"ProbeResult: activations must be [n, ...] with {d} features per row, "
                             f"got shape {tuple(X.shape)}")
        return ((X.reshape(len(X), d) - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, X: Any) -> Tensor:
        """Class indices [n] (logistic) or predicted values [n, *target_shape] (ridge) for activations ``X``."""
        z = self.logits(X)
        if self.kind == "logistic":
            return z.argmax(-1)
        return z.reshape(len(z), *self.target_shape)

    def predict_proba(self, X: Any) -> Tensor:
        """Class probabilities [n, k] of a logistic probe for activations ``X``."""
        if self.kind != "logistic":
            raise ValueError(f"ProbeResult.predict_proba: only a logistic probe has class probabilities, "
                             f"this one is {self.kind!r}")
        return torch.softmax(self.logits(X), -1)


def _split(n: int, test_frac: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=g)
    n_test = max(1, int(round(n * test_frac)))
    return perm[n_test:], perm[:n_test]


def _moments(X: Tensor, tr: Tensor) -> tuple[Tensor, Tensor]:
    return X[tr].mean(0), X[tr].std(0).clamp_min(1e-6)


def _ridge(X: Tensor, y: Tensor, tr: Tensor, te: Tensor, alpha: float):
    mu, sd = _moments(X, tr)
    Xs = torch.cat([(X - mu) / sd, torch.ones(len(X), 1, dtype=X.dtype)], 1)  # [n, d+1]
    A = Xs[tr].T @ Xs[tr] + alpha * torch.eye(Xs.shape[1], dtype=X.dtype)
    A[-1, -1] -= alpha  # no penalty on the intercept
    W = torch.linalg.solve(A, Xs[tr].T @ y[tr])  # [d+1, k]

    def r2(idx: Tensor) -> float:
        res = ((y[idx] - Xs[idx] @ W) ** 2).sum()
        tot = ((y[idx] - y[tr].mean(0)) ** 2).sum().clamp_min(1e-12)
        return float(1 - res / tot)

    return r2(te), r2(tr), W[:-1], W[-1], mu, sd


def _logistic(X: Tensor, y: Tensor, tr: Tensor, te: Tensor, alpha: float, steps: int, k: int):
    mu, sd = _moments(X, tr)
    Xs = (X - mu) / sd
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

    return acc(te), acc(tr), W.detach(), b.detach(), mu, sd


def fit_probe(
    acts: Tensor, labels: Tensor, kind: str = "ridge", alpha: float = 1.0, test_frac: float = 0.3,
    control: str | Tensor | None = "shuffle", seed: int = 0, steps: int = 200, n_classes: int | None = None,
) -> ProbeResult:
    """Fit a probe ``acts [n, ...] → labels [n] / [n, k]`` (ridge) or ``[n]`` int classes (logistic).

    ``alpha`` is the L2 penalty (ridge: on ``W`` in the normal equations; logistic: ``alpha * |W|² / n_train`` added
    to the mean cross-entropy); a random ``test_frac`` of the rows (seeded by ``seed``) is held out for ``score``.
    ``control="shuffle"`` refits on permuted labels; a tensor is taken as control activations (same labels);
    ``None`` skips the control (``control`` is then nan). ``steps``: L-BFGS iterations (logistic). ``n_classes``
    (logistic): number of classes, default ``max(label) + 1``.
    """
    check_choice("fit_probe: kind", kind, ("ridge", "logistic"))
    alpha = check_float("fit_probe: alpha", alpha, 0.0)
    test_frac = check_float("fit_probe: test_frac", test_frac, 0.0, 1.0)
    seed = check_int("fit_probe: seed", seed)
    steps = check_int("fit_probe: steps", steps, 1)
    if not isinstance(acts, Tensor) or not isinstance(labels, Tensor):
        raise ValueError(f"fit_probe: acts and labels must be tensors, got {type(acts).__name__} and "
                         f"{type(labels).__name__}")
    if acts.ndim < 1 or len(acts) < 2 or len(labels) != len(acts):
        raise ValueError(f"fit_probe: acts [n, ...] and labels [n, ...] need the same n >= 2, got shapes "
                         f"{tuple(acts.shape)} and {tuple(labels.shape)}")
    n_test = max(1, int(round(len(acts) * test_frac)))
    if n_test >= len(acts):
        raise ValueError(f"fit_probe: test_frac={test_frac} leaves no training rows out of {len(acts)}")
    X = acts.detach().reshape(len(acts), -1).double().cpu()
    g = torch.Generator().manual_seed(seed)
    tr, te = _split(len(X), test_frac, g)
    target_shape: tuple[int, ...] = ()
    if kind == "ridge":
        target_shape = tuple(labels.shape[1:])
        y = labels.detach().double().cpu().reshape(len(X), -1)
        fit = lambda X_, y_: _ridge(X_, y_, tr, te, alpha)  # noqa: E731
        chance = 0.0
    else:
        if labels.numel() != len(acts) or (labels.is_floating_point() and not torch.equal(labels, labels.round())):
            raise ValueError("fit_probe: logistic labels must be one class index per row")
        y = labels.detach().long().cpu().reshape(-1)
        if (y < 0).any():
            raise ValueError("fit_probe: logistic labels must be class indices >= 0")
        k = int(y.max()) + 1
        if n_classes is not None:
            n_classes = check_int("fit_probe: n_classes", n_classes, 2)
            if n_classes < k:
                raise ValueError(f"fit_probe: n_classes={n_classes} but the labels go up to {k - 1}")
            k = n_classes
        fit = lambda X_, y_: _logistic(X_, y_, tr, te, alpha, steps, k)  # noqa: E731
        chance = float(torch.bincount(y[te]).max() / len(te))
    score, train, W, b, mu, sd = fit(X, y)
    if isinstance(control, Tensor):
        if len(control) != len(X):
            raise ValueError(f"fit_probe: control activations need {len(X)} rows, got {len(control)}")
        ctrl = fit(control.detach().reshape(len(X), -1).double().cpu(), y)[0]
    elif control is None:
        ctrl = float("nan")
    elif control == "shuffle":
        ctrl = fit(X, y[torch.randperm(len(y), generator=g)])[0]
    else:
        raise ValueError(f"fit_probe: control must be 'shuffle', a tensor of control activations or None, "
                         f"got {control!r}")
    return ProbeResult(kind, score, ctrl, chance, W, train, b, mu, sd, tr, te, target_shape)


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
