"""Linear probes on cached activations at any hook, with held-out scores and a control baseline.

A probe asks whether a feature is *linearly decodable* from an activation (Alain & Bengio 2016, arXiv 1610.01644).
Decodability alone is weak evidence, so every score comes with a control (Hewitt & Liang 2019, arXiv 1909.03368):
the same probe trained on shuffled labels (``control="shuffle"``), or on the activations of a control model (e.g. a
random-init network, :func:`probe_hook` with ``control_model``). Ridge regression (closed form) for continuous
features reports held-out R²; multinomial logistic regression (L-BFGS, L2) for discrete ones reports held-out
accuracy next to the majority-class rate (chance).

For *where* questions on a convolutional map (which cell of a grid world holds the goal?), :func:`fit_spatial_probe`
fits one linear read-out shared by every position of a ``[n, c, h, w]`` activation -- a 1x1 convolution giving a
logit per position -- and a softmax over the cells of the world grid (positions are mapped to the cells they cover,
so a map finer or coarser than the grid is read at the grid's resolution). It reports the held-out rate of exact
cells and of cells within one (Chebyshev distance <= 1), with the same controls, and splits train/test by *group*
(e.g. level) so that states of one level are never on both sides.

A fitted probe is a :class:`ProbeResult`: besides the scores it keeps the standardisation (``mean``, ``std``), the
weights and bias and the train/test split, so ``predict(X)`` (and ``predict_proba(X)`` for a logistic probe) reads
new activations the way the probe was fitted.
"""
from __future__ import annotations

import math
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


@dataclass
class SpatialProbeResult:
    """A fitted spatial ("where") probe: ``logit[cell] = logsumexp over the cell's pixels of (w . x[:, pos] + b)``.

    ``accuracy`` / ``within1`` are held-out rates (exact cell / Chebyshev distance <= 1); ``control_*`` the same for
    the control fit; ``chance`` the held-out rate of always answering the most frequent training cell.
    """

    accuracy: float
    within1: float
    control_accuracy: float
    control_within1: float
    chance: float
    train_accuracy: float
    weight: Tensor  # [c] the read-out direction over channels (standardised)
    bias: Tensor  # [] (does not change the argmax; kept for logits)
    mean: Tensor  # [c] per-channel mean over training samples and positions
    std: Tensor  # [c]
    grid: tuple[int, int]  # world cells (rows, cols)
    train_idx: Tensor
    test_idx: Tensor

    @property
    def direction(self) -> Tensor:
        """The read-out in activation units [c]: a position's score is ``direction . x + const`` (``weight / std``),
        so editing ``x`` along it moves the score, and a model's own layer can be read along it."""
        return self.weight / self.std

    def cell_logits(self, acts: Any) -> Tensor:
        """Logits over the grid's cells [n, rows * cols] for activations ``acts`` [n, c, h, w]."""
        X = torch.as_tensor(acts).detach().cpu().double()
        return _cell_logits(X, self.weight, self.bias, self.mean, self.std, self.grid)

    def predict(self, acts: Any) -> Tensor:
        """Predicted cells [n, 2] (row, col)."""
        idx = self.cell_logits(acts).argmax(-1)
        return torch.stack([idx // self.grid[1], idx % self.grid[1]], -1)


def _cell_logits(X: Tensor, w: Tensor, b: Tensor, mu: Tensor, sd: Tensor, grid: tuple[int, int]) -> Tensor:
    """Position logits of a [n, c, h, w] map, spread to a common resolution and pooled per grid cell (logsumexp)."""
    z = torch.einsum("nchw,c->nhw", (X - mu[:, None, None]) / sd[:, None, None], w) + b  # [n, h, w]
    n, h, wd = z.shape
    R, C = grid
    fh, fw = math.lcm(h, R) // h, math.lcm(wd, C) // wd  # nearest-neighbour upsampling to a multiple of the grid
    z = z.repeat_interleave(fh, 1).repeat_interleave(fw, 2)  # [n, H, W] with H = lcm(h, R)
    H, W = z.shape[1:]
    z = z.reshape(n, R, H // R, C, W // C).permute(0, 1, 3, 2, 4).reshape(n, R * C, -1)
    return torch.logsumexp(z, -1)  # [n, R * C]


def _group_split(groups: Tensor, test_frac: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    uniq = torch.unique(groups)
    if len(uniq) < 2:
        raise ValueError("fit_spatial_probe: need at least 2 groups to split train/test by group")
    perm = uniq[torch.randperm(len(uniq), generator=g)]
    n_test = min(len(uniq) - 1, max(1, int(round(len(uniq) * test_frac))))
    test = torch.isin(groups, perm[:n_test])
    return torch.nonzero(~test).squeeze(1), torch.nonzero(test).squeeze(1)


def fit_spatial_probe(
    acts: Tensor, cells: Tensor, grid: tuple[int, int], groups: Tensor | None = None, test_frac: float = 0.3,
    control: str | Tensor | None = "shuffle", alpha: float = 1e-3, steps: int = 200, seed: int = 0,
) -> SpatialProbeResult:
    """Fit a "where" probe ``acts [n, c, h, w] -> cells [n, 2]`` (row, col of a ``grid = (rows, cols)`` world).

    The map must cover the world (its image is the world: position ``(i, j)`` of an ``h x w`` map covers the cells
    ``[i R / h, (i + 1) R / h) x [j C / w, (j + 1) C / w)``). One read-out ``w`` [c] scores every position; a cell's
    logit pools the scores of the positions covering it (a coarse map gives all cells of a position the same logit,
    so its exact-cell accuracy is limited and ``within1`` is the fairer score). Cross-entropy over cells with an L2
    penalty ``alpha |w|²``, L-BFGS. ``groups`` [n] (e.g. level seeds) keeps each group on one side of the split (else
    rows are split at random). ``control``: "shuffle" (cells permuted across rows), activations of a control model
    (same shape), or None.
    """
    test_frac = check_float("fit_spatial_probe: test_frac", test_frac, 0.0, 1.0)
    alpha = check_float("fit_spatial_probe: alpha", alpha, 0.0)
    steps = check_int("fit_spatial_probe: steps", steps, 1)
    seed = check_int("fit_spatial_probe: seed", seed)
    if not isinstance(acts, Tensor) or acts.ndim != 4:
        raise ValueError(f"fit_spatial_probe: acts must be a [n, c, h, w] tensor, got "
                         f"{tuple(acts.shape) if isinstance(acts, Tensor) else type(acts).__name__}")
    R, C = (check_int("fit_spatial_probe: grid rows", grid[0], 1), check_int("fit_spatial_probe: grid cols", grid[1], 1))
    cells = torch.as_tensor(cells).long().cpu()
    if cells.shape != (len(acts), 2):
        raise ValueError(f"fit_spatial_probe: cells must be [n, 2] (row, col) with n = {len(acts)}, "
                         f"got {tuple(cells.shape)}")
    if (cells < 0).any() or (cells[:, 0] >= R).any() or (cells[:, 1] >= C).any():
        raise ValueError(f"fit_spatial_probe: cells must lie in the {R}x{C} grid")
    g = torch.Generator().manual_seed(seed)
    if groups is None:
        tr, te = _split(len(acts), test_frac, g)
    else:
        groups = torch.as_tensor(groups).cpu()
        if groups.shape != (len(acts),):
            raise ValueError(f"fit_spatial_probe: groups must be [n], got {tuple(groups.shape)}")
        tr, te = _group_split(groups, test_frac, g)
    y = cells[:, 0] * C + cells[:, 1]

    def fit(X: Tensor, y: Tensor):
        X = X.detach().double().cpu()
        mu = X[tr].mean((0, 2, 3))
        sd = X[tr].std((0, 2, 3)).clamp_min(1e-6)
        Xs = ((X - mu[:, None, None]) / sd[:, None, None]).float()  # standardised once
        one, zero = torch.ones_like(mu).float(), torch.zeros_like(mu).float()
        w = torch.zeros(X.shape[1], requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")
        Xtr, ytr = Xs[tr], y[tr]

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(_cell_logits(Xtr, w, b, zero, one, (R, C)), ytr) + alpha * (w**2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        w, b = w.detach().double(), b.detach().double()

        def rates(idx: Tensor) -> tuple[float, float]:
            pred = _cell_logits(X[idx], w, b, mu, sd, (R, C)).argmax(-1)
            dr = (pred // C - y[idx] // C).abs()
            dc = (pred % C - y[idx] % C).abs()
            return float((pred == y[idx]).double().mean()), float((torch.maximum(dr, dc) <= 1).double().mean())

        return rates(te), rates(tr)[0], w, b, mu, sd

    (acc, w1), train_acc, w, b, mu, sd = fit(acts, y)
    if isinstance(control, Tensor):
        if control.shape[0] != len(acts) or control.ndim != 4:
            raise ValueError(f"fit_spatial_probe: control activations must be [{len(acts)}, c, h, w], "
                             f"got {tuple(control.shape)}")
        (cacc, cw1), *_ = fit(control, y)
    elif control is None:
        cacc = cw1 = float("nan")
    elif control == "shuffle":
        (cacc, cw1), *_ = fit(acts, y[torch.randperm(len(y), generator=g)])
    else:
        raise ValueError(f"fit_spatial_probe: control must be 'shuffle', a tensor of control activations or None, "
                         f"got {control!r}")
    chance = float((y[te] == torch.bincount(y[tr], minlength=R * C).argmax()).double().mean())
    return SpatialProbeResult(acc, w1, cacc, cw1, chance, train_acc, w, b, mu, sd, (R, C), tr, te)


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
