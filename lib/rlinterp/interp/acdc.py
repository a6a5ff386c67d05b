"""ACDC: automatic circuit discovery by iterative edge pruning (Conmy et al. 2023, arXiv 2304.14997).

Start from the full graph H = G. Visit destination nodes in reverse topological order (output first); for each of
its incoming edges (latest source first) replace the edge by its corrupted value (:meth:`Graph.forward` with that
mask entry 0) and keep it removed for good when the metric barely moves:

    d(H \\ {e}) − d(H) < τ   →   H ← H \\ {e}.

``d`` is a distance to the clean model's behaviour, ``KL(G ‖ H)`` for logits (:func:`~rlinterp.interp.patching.kl_metric`)
or the MSE to the clean output for regression heads (:func:`~rlinterp.interp.patching.mse_metric`): lower = closer,
0 on the clean model. It is passed as the keyword ``distance=`` — unlike the *task metric* (higher = better, e.g. a
logit difference) that :func:`~rlinterp.interp.attribution_patching.eap` takes — and checked: ``d(G)`` must be within
``clean_tol`` of 0 and no pruned graph may have a distance below ``−clean_tol``. A task metric passed as a distance
is refused: ACDC would minimise it and return the edges that *destroy* the behaviour (on a planted model with a
cancelling pair, only that pair). To prune with a task metric ``m``, pass
``distance=lambda out: (m(out) - m_clean).abs()``. As in the paper,
a component whose outputs have all been removed is disconnected and its incoming edges are removed without a test.
One forward pass per tested edge — this is what attribution patching (:mod:`rlinterp.interp.attribution_patching`)
approximates in two. ``ACDCResult.n_forward`` counts these edge tests (plus the one pass on the unpruned graph): the
number of forward passes of the algorithm as published, whatever the batching below.

**Batched edge tests.** The tests of one destination's incoming edges are evaluated speculatively, up to
``max_batch`` at once in one forward pass over ``max_batch`` stacked copies of the batch (:meth:`Graph.forward` with
``[K, S, N]`` masks): candidate j removes edge j on top of the *predicted* decisions for edges 0..j−1 (the last
decision repeated). The decisions are then taken in order exactly as in the sequential algorithm; at the first
misprediction the remaining candidates are discarded and the next batch starts from the true state. The kept set
and distances are those of the sequential algorithm (up to float rounding of the stacked batch); ``max_batch=1``
runs it one test per pass. ``ACDCResult.n_model_calls`` counts the batched passes actually run. :func:`acdc_sweep` sweeps τ and :func:`roc_auc` turns scores or sweep points into a ROC AUC
against a reference circuit (the paper's Fig. 3 protocol).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from rlinterp.progress import tqdm

from rlinterp.interp.graph import Circuit, Graph
from rlinterp.interp.patching import ablation_cache


@dataclass
class ACDCResult:
    circuit: Circuit
    threshold: float
    metric: float  # d(H) of the final circuit
    n_forward: int  # forward passes of the algorithm: 1 (unpruned graph) + one per tested edge
    n_model_calls: int = 0  # forward passes actually run (several edge tests share one when batched)


def _check_distance(value: float, clean_tol: float, what: str) -> None:
    if not math.isfinite(value):
        raise ValueError(f"acdc: the distance is {value} {what}; it must be a finite number")
    bad = abs(value) > clean_tol if what == "on the clean model" else value < -clean_tol
    if bad:
        raise ValueError(
            f"acdc: `distance` must be a distance to the clean model's output (0 on the clean model, never negative), "
            f"but it is {value:.6g} {what} (tolerance clean_tol={clean_tol:g}). This looks like a task metric "
            "(higher = better, e.g. a logit difference), which EAP takes; ACDC would minimise it and keep the edges "
            "that destroy the behaviour. Pass a distance such as kl_metric(clean_logits) or mse_metric(clean_out), or "
            "wrap the metric: distance=lambda out: (metric(out) - metric_clean).abs()")


_MAX_ROWS = 8192  # stacked batch rows per batched forward pass (memory bound of the batched edge tests)


def _stack(x: Any, k: int) -> Any:
    """``k`` copies of a batch along axis 0."""
    return x.repeat(k, *([1] * (x.dim() - 1))) if k > 1 else x


def acdc(
    model: nn.Module, graph: Graph, clean: Any, corrupted: Any, *, distance: Callable[[Tensor], Tensor],
    threshold: float, mode: str = "resample", progress: bool = True, clean_tol: float = 1e-6, max_batch: int = 64,
) -> ACDCResult:
    """Prune ``graph`` with threshold ``threshold`` (τ). ``distance(output)`` is a distance to the clean behaviour
    (lower = closer, 0 on the clean model; keyword-only so that a task metric is not passed by position). Raises a
    ``ValueError`` when the distance of the unpruned graph is not within ``clean_tol`` of 0, or a pruned graph's is
    below ``−clean_tol``. ``max_batch``: the most edge tests evaluated in one forward pass (1 = one pass per test;
    inputs that are not a batched tensor are always run one test per pass; at most 8192 stacked rows). Returns the kept edges as a
    :class:`Circuit`."""
    if not callable(distance):
        raise TypeError(f"acdc: distance must be a callable output -> scalar, got {type(distance).__name__}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise TypeError(f"acdc: threshold must be a finite number, got {threshold!r}")
    if threshold < 0:
        raise ValueError(f"acdc: threshold must be >= 0, got {threshold}")
    if isinstance(clean_tol, bool) or not isinstance(clean_tol, (int, float)) or not clean_tol >= 0:
        raise ValueError(f"acdc: clean_tol must be a number >= 0, got {clean_tol!r}")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"acdc: max_batch must be an int >= 1, got {max_batch!r}")
    graph.check(model)
    patch = ablation_cache(model, graph.src_hooks, clean, mode, corrupted)
    masks = graph.ones()
    with torch.no_grad():
        cur = float(distance(graph.forward(model, clean, patch, masks)))
    _check_distance(cur, clean_tol, "on the clean model")
    n_fwd = n_calls = 1
    batched = isinstance(clean, Tensor) and clean.dim() >= 1 and max_batch > 1
    B = len(clean) if batched else 1
    max_batch = max(1, min(max_batch, _MAX_ROWS // B))
    stacked: dict[int, tuple[Any, dict[str, Tensor]]] = {}  # k -> (clean, patch) stacked k times

    def run(cands: dict[int, list[Tensor]], k: int) -> list[Tensor]:
        """Outputs of the model with each of ``k`` candidate mask settings (one forward pass): group ``gi`` takes the
        masks ``cands[gi]`` (one per candidate), every other group its current mask."""
        if k == 1:
            return [graph.forward(model, clean, patch, [cands[gi][0] if gi in cands else m for gi, m in enumerate(masks)])]
        if k not in stacked:
            stacked[k] = (_stack(clean, k), {h: _stack(p, k) if len(p) == B else p for h, p in patch.items()})
        x_k, patch_k = stacked[k]
        out = graph.forward(model, x_k, patch_k,
                            [torch.stack(cands[gi]) if gi in cands else m for gi, m in enumerate(masks)])
        if not isinstance(out, Tensor) or len(out) != k * B:
            raise ValueError(f"acdc: batched edge tests need a model output stacked along the batch axis "
                             f"({k * B} rows), got {type(out).__name__}; pass max_batch=1")
        return list(out.reshape(k, B, *out.shape[1:]))

    out_components = {n.component for n in graph.output_nodes}
    incoming: dict[str, list] = {}
    outgoing: dict[str, list] = {}
    for e in graph.edges:
        incoming.setdefault(e.dst.name, []).append(e)
        outgoing.setdefault(e.src.component, []).append(e)
    order = sorted(graph.dst_nodes, key=lambda n: (-n.layer, n.name))
    bar = tqdm(total=len(graph.edges), desc=f"ACDC τ={threshold:.3g}", disable=not progress)
    width = min(8, max_batch)  # speculation width, adapted to the length of the correctly predicted runs
    removed_last = True  # the prediction: the next decision repeats the last one
    with torch.no_grad():
        for dst in order:
            edges = sorted(incoming.get(dst.name, []), key=lambda e: (-e.src.layer, e.src.name))
            alive = dst.component in out_components or any(
                masks[e.group][e.s, e.n] > 0 for e in outgoing.get(dst.component, [])
            )
            if not alive:
                for e in edges:
                    bar.update(1)
                    masks[e.group][e.s, e.n] = 0.0
                continue
            i = 0
            while i < len(edges):
                k = min(width if batched else 1, len(edges) - i)
                chunk = edges[i:i + k]
                # candidate j: edge j removed on top of the predicted decisions for the chunk's earlier edges; only
                # the groups holding the chunk's edges differ between candidates
                spec = {gi: masks[gi].clone() for gi in {e.group for e in chunk}}
                cands: dict[int, list[Tensor]] = {gi: [] for gi in spec}
                for e in chunk:
                    spec[e.group][e.s, e.n] = 0.0
                    for gi, m in spec.items():
                        cands[gi].append(m.clone())
                    if not removed_last:
                        spec[e.group][e.s, e.n] = 1.0
                outs = run(cands, k)
                n_calls += 1
                used = 0
                for e, out in zip(chunk, outs):
                    bar.update(1)
                    used += 1
                    new = float(distance(out))
                    _check_distance(new, clean_tol, f"with {e.name} and earlier edges removed")
                    n_fwd += 1
                    removed = new - cur < threshold
                    if removed:
                        cur = new
                        masks[e.group][e.s, e.n] = 0.0
                    if removed != removed_last:
                        removed_last = removed
                        break
                i += used
                width = min(max_batch, 2 * width) if used == k else min(max_batch, max(2, 2 * used))
    bar.close()
    keep = graph.to_vector(masks) > 0.5
    return ACDCResult(Circuit(graph, keep, meta={"threshold": threshold}), threshold, cur, n_fwd, n_calls)


def acdc_sweep(
    model: nn.Module, graph: Graph, clean: Any, corrupted: Any, *, distance: Callable[[Tensor], Tensor],
    thresholds: Sequence[float], truth: Tensor | None = None, mode: str = "resample", progress: bool = True,
    clean_tol: float = 1e-6, max_batch: int = 64,
) -> list[dict]:
    """Run :func:`acdc` for each τ (``distance`` and ``max_batch`` as there). Rows: threshold, n_edges kept, forward passes, and with
    ``truth`` (bool per edge) the true/false positive rates of the kept set."""
    rows = []
    for t in tqdm(list(thresholds), desc="ACDC sweep", disable=not progress):
        r = acdc(model, graph, clean, corrupted, distance=distance, threshold=float(t), mode=mode, progress=False,
                 clean_tol=clean_tol, max_batch=max_batch)
        row = {"threshold": float(t), "n_edges": int(r.circuit.keep.sum()), "n_forward": r.n_forward, "metric": r.metric}
        if truth is not None:
            row.update(_rates(r.circuit.keep, truth))
        rows.append(row)
    return rows


def _rates(pred: Tensor, truth: Tensor) -> dict:
    pred, truth = pred.bool(), truth.bool()
    tp = int((pred & truth).sum()); fp = int((pred & ~truth).sum())
    return {"tpr": tp / max(int(truth.sum()), 1), "fpr": fp / max(int((~truth).sum()), 1)}


def roc_points(scores: Tensor, truth: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr)`` of ranking edges by ``|scores|`` (ties are one step)."""
    s = scores.detach().abs().double().cpu().numpy()
    y = truth.bool().cpu().numpy()
    thr = np.unique(s)[::-1]
    P, N = max(y.sum(), 1), max((~y).sum(), 1)
    fpr = [0.0] + [float(((s >= t) & ~y).sum() / N) for t in thr]
    tpr = [0.0] + [float(((s >= t) & y).sum() / P) for t in thr]
    return np.array(fpr + [1.0]), np.array(tpr + [1.0])


def roc_auc(scores: Tensor | None = None, truth: Tensor | None = None, sweep: Sequence[dict] | None = None) -> float:
    """Area under the ROC curve: of an edge ranking (``scores``, ``truth``) or of ACDC sweep points (``sweep`` rows
    with ``fpr``/``tpr``; the curve is closed with (0, 0) and (1, 1), trapezoid rule, as in Conmy et al.)."""
    if sweep is not None:
        pts = sorted({(0.0, 0.0), (1.0, 1.0), *((r["fpr"], r["tpr"]) for r in sweep)})
        # for equal fpr keep the monotone envelope
        fpr = np.array([p[0] for p in pts]); tpr = np.maximum.accumulate(np.array([p[1] for p in pts]))
    else:
        if scores is None or truth is None:
            raise ValueError("roc_auc: pass (scores, truth) or sweep=[...]")
        fpr, tpr = roc_points(scores, truth)
    return float(np.trapezoid(tpr, fpr))
