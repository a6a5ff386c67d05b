"""Feature visualisation: inputs that maximally activate a unit (Erhan et al. 2009; Olah, Mordvintsev & Schubert
2017, "Feature visualization", Distill).

* :func:`maximize_continuous` — projected gradient ascent on the input inside a box ``[low, high]`` with random
  restarts (and an optional L2 penalty), for float observations.
* :func:`maximize_discrete` — for discrete inputs, where gradients through relaxations mislead: exhaustive search
  over given candidates, or an evolutionary search with a caller-given ``sampler(n, generator)`` and
  ``mutate(x, generator)`` that only produce valid inputs.

The unit is ``(hook, index)``: the activation at ``hook`` indexed by ``index`` after the batch axis (an int, a tuple
or ``None`` for the sum), or any ``objective(activation) -> [batch]``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from rlinterp.progress import tqdm


@dataclass
class FeatVisResult:
    inputs: Tensor  # [k, ...] best inputs, best first
    values: Tensor  # [k] their activation


def _objective(hook: str, index, objective) -> Callable[[Tensor], Tensor]:
    if objective is not None:
        return objective
    if index is None:
        return lambda a: a.flatten(1).sum(-1)
    idx = index if isinstance(index, tuple) else (index,)
    return lambda a: a[(slice(None), *idx)].reshape(len(a), -1).sum(-1)


def _activation(model: nn.Module, x: Tensor, hook: str, obj: Callable[[Tensor], Tensor]) -> Tensor:
    out = {}

    def grab(act: Tensor, hook) -> None:
        out["a"] = act

    model.run_with_hooks(x, fwd_hooks=[(hook, grab)])
    return obj(out["a"])


def maximize_continuous(
    model: nn.Module, hook: str, shape: tuple[int, ...], index=None, objective: Callable[[Tensor], Tensor] | None = None,
    low: float | Tensor = 0.0, high: float | Tensor = 1.0, restarts: int = 16, steps: int = 200, lr: float = 0.05,
    l2: float = 0.0, seed: int = 0, device: str = "cpu", progress: bool = False,
) -> FeatVisResult:
    """Gradient ascent on ``restarts`` random inputs of ``shape`` (one batch), clamped to ``[low, high]`` after every
    Adam step; returns all restarts sorted by final activation."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.as_tensor(low, dtype=torch.float32).to(device)
    hi = torch.as_tensor(high, dtype=torch.float32).to(device)
    x = (lo + (hi - lo) * torch.rand(restarts, *shape, generator=g).to(device)).requires_grad_(True)
    obj = _objective(hook, index, objective)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in tqdm(range(steps), desc="feature visualisation", disable=not progress):
        opt.zero_grad()
        with torch.enable_grad():
            loss = -_activation(model, x, hook, obj).sum() + l2 * (x**2).sum()
            loss.backward()
        opt.step()
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))
    with torch.no_grad():
        v = _activation(model, x, hook, obj)
    order = v.argsort(descending=True)
    return FeatVisResult(x.detach()[order], v[order])


def maximize_discrete(
    model: nn.Module, hook: str, index=None, objective: Callable[[Tensor], Tensor] | None = None,
    candidates: Tensor | None = None, sampler: Callable[[int, torch.Generator], Tensor] | None = None,
    mutate: Callable[[Tensor, torch.Generator], Tensor] | None = None, population: int = 64, generations: int = 30,
    elite: int = 8, top: int = 8, seed: int = 0, progress: bool = False,
) -> FeatVisResult:
    """Best ``top`` valid inputs: all ``candidates`` scored (exhaustive), or ``generations`` of (μ+λ) evolution
    from ``sampler`` with ``mutate`` (keeps the ``elite`` best, refills by mutating them)."""
    obj = _objective(hook, index, objective)
    with torch.no_grad():
        if candidates is not None:
            v = torch.cat([_activation(model, candidates[i:i + 4096], hook, obj) for i in range(0, len(candidates), 4096)])
            order = v.argsort(descending=True)[:top]
            return FeatVisResult(candidates[order], v[order])
        if sampler is None or mutate is None:
            raise ValueError("maximize_discrete: give `candidates` (exhaustive) or both `sampler` and `mutate`")
        g = torch.Generator().manual_seed(seed)
        pop = sampler(population, g)
        for _ in tqdm(range(generations), desc="evolutionary search", disable=not progress):
            v = _activation(model, pop, hook, obj)
            best = pop[v.argsort(descending=True)[:elite]]
            kids = mutate(best[torch.randint(0, len(best), (population - elite,), generator=g)], g)
            pop = torch.cat([best, kids])
        v = _activation(model, pop, hook, obj)
        order = v.argsort(descending=True)[:top]
        return FeatVisResult(pop[order], v[order])
