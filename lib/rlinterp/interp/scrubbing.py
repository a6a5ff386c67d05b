"""Causal scrubbing (Chan, Garriga-Alonso, Goldowsky-Dill, Greenblatt, Nitishinskaya, Radhakrishnan, Shlegeris & Thomas
2022, "Causal scrubbing: a method for rigorously testing interpretability hypotheses", Redwood Research).

A hypothesis maps model components to *features* of an interpretation — functions of the input — and names the
edges it claims carry them. The test replaces every activation by one that the hypothesis says is equivalent:

* the output is computed on a reference input x;
* for every edge u→v the hypothesis contains, u's activation is recomputed (recursively, with its own inputs
  scrubbed) on a fresh input x_u drawn from the data set with ``f_u(x_u) = f_u(x_v)`` — it agrees with the input of
  the node it feeds on u's feature;
* every edge the hypothesis leaves out carries u's activation on an unconditionally resampled input.

This is the treeified form of the paper: each path gets its own resampled input. The scrubbed loss is compared with
the original loss and with the loss when everything is resampled (the empty hypothesis):
``recovered = (L_random − L_scrubbed) / (L_random − L_orig)``, with a bootstrap interval over reference inputs.
Pitfall (Scheurer et al. 2023): errors that cancel can make a wrong hypothesis look good — test alternatives too.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from rlinterp.progress import tqdm

from rlinterp.interp.graph import Edge, Graph

Feature = Callable[[Tensor], Tensor]  # inputs [n, ...] -> feature values [n] or [n, k] (discrete)


@dataclass
class Hypothesis:
    """``features``: component name (or ``"src->dst"`` edge name for a path-specific feature) → feature function;
    ``edges``: edge names that carry the features (None = every graph edge between two components with features,
    plus their edges into the output)."""

    features: dict[str, Feature]
    edges: set[str] | None = None


@dataclass
class ScrubResult:
    loss_orig: float
    loss_scrubbed: float
    loss_random: float
    recovered: float
    ci: tuple[float, float]
    per_example: dict[str, np.ndarray] = field(repr=False, default_factory=dict)


def _t(idx: np.ndarray, pool: Tensor) -> Tensor:
    return torch.as_tensor(idx, device=pool.device)


class _Sampler:
    """Draws pool indices that agree with given indices on a feature."""

    def __init__(self, pool: Tensor, rng: np.random.Generator):
        self.pool, self.rng, self.groups = pool, rng, {}

    def keys(self, f: Feature) -> np.ndarray:
        v = f(self.pool).detach().reshape(len(self.pool), -1).cpu().numpy()
        _, k = np.unique(v, axis=0, return_inverse=True)
        return k.reshape(-1)

    def agree(self, name: str, f: Feature, idx: np.ndarray) -> np.ndarray:
        if name not in self.groups:
            k = self.keys(f)
            order = np.argsort(k, kind="stable")
            starts = np.searchsorted(k[order], np.arange(k.max() + 1))
            counts = np.bincount(k, minlength=k.max() + 1)
            self.groups[name] = (k, order, starts, counts)
        k, order, starts, counts = self.groups[name]
        kk = k[idx]
        return order[starts[kk] + (self.rng.random(len(idx)) * counts[kk]).astype(int)]

    def random(self, n: int) -> np.ndarray:
        return self.rng.integers(0, len(self.pool), n)


def causal_scrubbing(
    model: nn.Module, graph: Graph, hypothesis: Hypothesis, pool: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor],
    n_ref: int | None = None, n_boot: int = 1000, seed: int = 0, progress: bool = False,
) -> ScrubResult:
    """Scrub ``hypothesis`` on reference inputs drawn from ``pool`` (``[n, ...]``, the data distribution).

    ``loss_fn(output, inputs) -> [batch]`` per-example loss (labels are a function of the input). Returns original,
    scrubbed and fully-resampled losses and the fraction of loss recovered with a 95% bootstrap interval.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    n = len(pool)
    ref = rng.choice(n, size=min(n_ref or n, n), replace=False)
    names = set(graph.names)
    edges = set(hypothesis.edges) if hypothesis.edges is not None else {
        e.name for e in graph.edges
        if e.src.component in hypothesis.features and (e.dst.component in hypothesis.features or e.dst in graph.output_nodes)
    }
    unknown = edges - names
    if unknown:
        raise ValueError(f"hypothesis names edges not in the graph: {sorted(unknown)[:5]}; see Graph.names")
    with torch.no_grad():
        x_ref = pool[_t(ref, pool)]
        l_orig = loss_fn(model(x_ref), x_ref).cpu().numpy()
        l_scrub = loss_fn(_scrub_output(model, graph, hypothesis, edges, pool, ref, rng, progress), x_ref).cpu().numpy()
        l_rand = loss_fn(_scrub_output(model, graph, Hypothesis({}), set(), pool, ref, rng, False), x_ref).cpu().numpy()

    def rec(i: np.ndarray) -> float:
        lr, ls, lo = l_rand[i].mean(), l_scrub[i].mean(), l_orig[i].mean()
        return float((lr - ls) / (lr - lo)) if lr != lo else float("nan")

    boot = [rec(rng.integers(0, len(ref), len(ref))) for _ in range(n_boot)]
    lo, hi = np.nanpercentile(boot, [2.5, 97.5]) if n_boot else (np.nan, np.nan)
    return ScrubResult(float(l_orig.mean()), float(l_scrub.mean()), float(l_rand.mean()), rec(np.arange(len(ref))),
                       (float(lo), float(hi)), {"orig": l_orig, "scrubbed": l_scrub, "random": l_rand})


def _scrub_output(model, graph: Graph, hyp: Hypothesis, edges: set[str], pool: Tensor, ref: np.ndarray,
                  rng: np.random.Generator, progress: bool) -> Tensor:
    sampler = _Sampler(pool, rng)
    incoming: dict[str, list[Edge]] = {}
    for e in graph.edges:
        incoming.setdefault(e.dst.component, []).append(e)
    bar = tqdm(desc="causal scrubbing (forward passes)", disable=not progress)

    def inputs_of(component: str, idx: np.ndarray) -> dict[Edge, Tensor]:
        """Source activation for every edge into ``component`` evaluated at inputs ``pool[idx]``."""
        values: dict[Edge, Tensor] = {}
        free = [e for e in incoming.get(component, []) if e.name not in edges]
        for e in incoming.get(component, []):
            if e.name in edges:
                key = e.name if e.name in hyp.features else e.src.component
                if key not in hyp.features:
                    raise ValueError(f"hypothesis edge {e.name} needs a feature for {e.src.component!r} (or the edge)")
                values[e] = value(e.src.component, e.src.hook, sampler.agree(key, hyp.features[key], idx))
        if free:  # unconditional resampling, one fresh input per edge, in one batched forward pass
            r = np.concatenate([sampler.random(len(idx)) for _ in free])
            cache = graph.cache(model, pool[_t(r, pool)], hooks=sorted({e.src.hook for e in free}))
            bar.update(1)
            for i, e in enumerate(free):
                values[e] = cache[e.src.hook][i * len(idx):(i + 1) * len(idx)]
        return values

    def value(component: str, hook: str, idx: np.ndarray) -> Tensor:
        """Activation at ``hook`` (the component's output) with the component's inputs scrubbed, on ``pool[idx]``."""
        bar.update(1)
        if component not in incoming:  # an input node: nothing upstream to scrub
            return graph.cache(model, pool[_t(idx, pool)], hooks=[hook])[hook]
        return graph.forward_edge_values(model, pool[_t(idx, pool)], inputs_of(component, idx), read=hook)

    vals: dict[Edge, Tensor] = {}
    for comp in sorted({n.component for n in graph.output_nodes}):
        vals.update(inputs_of(comp, ref))
    y = graph.forward_edge_values(model, pool[_t(ref, pool)], vals)
    bar.close()
    return y
