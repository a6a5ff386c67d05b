"""Computational graphs of hooked models: nodes, edges and edge-level interventions.

A *graph* lists the **source nodes** (component outputs: embeddings, attention heads, MLP layers, neurons) and the
**destination nodes** (component inputs: a head's query/key/value input, an MLP's input, the readout; a neuron's
pre-activation) of a TransformerLens hooked model, and the edges between them. Every destination input is a sum of
per-source *contributions* (the residual stream is literally a sum; a pre-activation ``W a + b`` is a sum over the
upstream neurons), so intervening on one edge u→v means

    input_v ← input_v + (1 − m_uv) · (c_uv(z_u^corrupt) − c_uv(z_u^current)),

where ``c_uv`` is u's contribution to v's input (identity in the residual stream, ``W_vu a_u`` through a weight matrix)
and ``m_uv ∈ [0, 1]`` an edge mask (1 = keep). This is the mask-based edge patching of auto-circuit
(Miller et al. 2024, UFO-101/auto-circuit) and the edge definition of ACDC (Conmy et al. 2023, arXiv 2304.14997) and
EAP (Syed et al. 2023, arXiv 2310.10348). Downstream of a patched edge the model runs on, so later nodes see the
patched values ("current" activations), exactly as ACDC's iterative pruning requires.

Edges are stored in *groups*: all edges from one source hook to one destination hook share one ``[n_src, n_dst]``
mask, so a masked forward pass is a handful of einsums. Builders:

* :func:`transformer_graph` — a ``HookedTransformer`` (embeddings, heads, MLPs → q/k/v inputs, MLP inputs, readout);
* :func:`mlp_graph` — any MLP ``HookedRootModule`` from a list of ``(source hook, nn.Linear, destination hook)``
  triples (neurons or whole layers as nodes; weight-matrix edges between consecutive layers);
* :func:`get_graph` — ``model.graph()`` when the model declares one, else :func:`transformer_graph`.

Hook names are checked against the model (:func:`check_hooks`): a typo raises a ``ValueError`` naming the close
matches, when the graph is built with the model (``mlp_graph(..., model=m)``) and again whenever a graph is run on a
model. :func:`transformer_graph` switches TransformerLens flags on; it says which with a :class:`ModelFlagWarning`.
"""
from __future__ import annotations

import difflib
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


class ModelFlagWarning(UserWarning):
    """A graph builder changed a setting of the model (e.g. TransformerLens ``use_attn_result``)."""


def check_hooks(model: nn.Module, hooks: Iterable[str], where: str = "graph") -> None:
    """Raise a ``ValueError`` naming close matches when a hook name is not a hook point of ``model``."""
    hook_dict = getattr(model, "hook_dict", None)
    if not isinstance(hook_dict, dict):
        raise TypeError(f"{where}: {type(model).__name__} is not a TransformerLens HookedRootModule (no hook_dict); "
                        "call model.setup() after defining its HookPoints")
    missing = sorted({h for h in hooks if h not in hook_dict})
    if missing:
        lines = []
        for h in missing:
            close = difflib.get_close_matches(h, list(hook_dict), n=3, cutoff=0.6)
            lines.append(f"{h!r} (did you mean {', '.join(map(repr, close))}?)" if close else repr(h))
        raise ValueError(f"{where}: {type(model).__name__} has no hook point " + "; ".join(lines)
                         + f". It has {len(hook_dict)} hook points, e.g. {sorted(hook_dict)[:6]}")


@dataclass(frozen=True)
class Node:
    """A source (component output) or destination (component input) in the computational graph.

    ``index`` selects the node's part of its hook activation, counted from the end after ``trailing`` whole axes:
    ``index=(h,), trailing=1`` is ``act[..., h, :]`` (head ``h`` of ``[batch, pos, head, d_model]``); ``index=(i,)`` is
    ``act[..., i]`` (neuron ``i``); ``()`` is the whole activation.
    ``layer`` orders the graph topologically (inputs are 0); ``component`` ties a component's output to its inputs
    (head ``A1.0`` has the source ``A1.0`` and the destinations ``A1.0.q/k/v``).
    """

    name: str
    hook: str
    index: tuple[int, ...] = ()
    layer: int = 0
    component: str = ""
    trailing: int = 0

    def select(self, act: Tensor) -> Tensor:
        return act[(Ellipsis, *self.index) + (slice(None),) * self.trailing] if self.index else act


@dataclass(frozen=True)
class Edge:
    src: Node
    dst: Node
    group: int  # index of its EdgeGroup
    s: int  # row of the group mask
    n: int  # column of the group mask

    @property
    def name(self) -> str:
        return f"{self.src.name}->{self.dst.name}"


@dataclass
class EdgeGroup:
    """All edges from one source hook to one destination hook.

    kind ``"resid"``: ``contrib(src_act) -> [..., S, D]`` (each source's vector in the destination's space);
    destination activation viewed as ``[..., N, D]`` (``dst_unsqueeze`` adds the N=1 axis to a ``[..., D]`` hook).
    kind ``"neuron"``: ``contrib(src_act) -> [..., S, N]`` (source s's contribution to scalar destination n);
    destination activation is ``[..., N]``.

    ``weight`` (kind ``"neuron"`` only, optional): a callable returning the ``[N, S]`` matrix ``W`` when the group is
    a linear map, ``contrib(a) == a.unsqueeze(-1) * W.T`` with ``a`` the whole ``[..., S]`` source activation.
    :meth:`patch_delta` then computes ``(a' − a) @ (W.T · (1 − keep))`` without materialising the ``[..., S, N]``
    contributions (the hot spot of ACDC on a wide MLP). :func:`mlp_graph` sets it.
    """

    src_hook: str
    dst_hook: str
    src: list[Node]
    dst: list[Node]
    contrib: Callable[[Tensor], Tensor]
    kind: str = "resid"
    dst_unsqueeze: bool = False
    present: Tensor | None = None  # bool [S, N]; None = all pairs are edges
    weight: Callable[[], Tensor] | None = None  # neuron kind: [N, S] matrix W with contrib(a) = a[..., None] * W.T

    def __post_init__(self) -> None:
        if self.kind not in ("resid", "neuron"):
            raise ValueError(f"EdgeGroup.kind must be 'resid' or 'neuron', got {self.kind!r}")
        if self.weight is not None and self.kind != "neuron":
            raise ValueError("EdgeGroup.weight is only for kind 'neuron' (contrib(a) = a.unsqueeze(-1) * W.T)")
        if self.present is None:
            self.present = torch.ones(len(self.src), len(self.dst), dtype=torch.bool)

    def delta(self, z_patch: Tensor, z_cur: Tensor, keep: Tensor, dst_shape: torch.Size) -> Tensor:
        """Change of the destination activation when edges with ``keep < 1`` carry ``z_patch`` instead of ``z_cur``.

        ``keep`` is ``[S, N]``, or ``[K, S, N]`` for K mask settings at once: then the batch axis of ``z_cur`` (and
        ``dst_shape``) holds K stacked copies of the batch, copy k patched with ``keep[k]``."""
        dz = z_patch - z_cur
        w = ((1 - keep) * self.present.to(keep.device, keep.dtype)).to(dz.device, dz.dtype)  # [(K,) S, N]
        if keep.dim() == 3:
            K = keep.shape[0]
            dzk = dz.reshape(K, -1, *dz.shape[1:])  # [K, B, ..., S, D|N]
            if self.kind == "resid":
                d = torch.einsum("k...sd,ksn->k...nd", dzk, w)
                d = d.squeeze(-2) if self.dst_unsqueeze else d
            else:
                d = torch.einsum("k...sn,ksn->k...n", dzk, w)
            d = d.reshape(-1, *d.shape[2:])
        elif self.kind == "resid":
            d = torch.einsum("...sd,sn->...nd", dz, w)
            d = d.squeeze(-2) if self.dst_unsqueeze else d
        else:
            d = torch.einsum("...sn,sn->...n", dz, w)
        return d.expand(dst_shape) if d.shape != dst_shape else d

    def patch_delta(self, a_patch: Tensor, a_cur: Tensor, keep: Tensor, dst_shape: torch.Size) -> Tensor:
        """:meth:`delta` from source activations (``a_patch`` instead of ``a_cur`` on the edges with ``keep < 1``).

        With ``weight`` set this is one matrix product per mask setting; otherwise the contributions are computed with
        ``contrib`` and passed to :meth:`delta`."""
        if self.weight is None:
            return self.delta(self.contrib(a_patch), self.contrib(a_cur), keep, dst_shape)
        W = self.weight().detach()  # [N, S]
        dz = a_patch - a_cur  # [..., S]
        w = ((1 - keep) * self.present.to(keep.device, keep.dtype)).to(dz.device, dz.dtype)
        wt = W.T.to(dz.device, dz.dtype) * w  # [(K,) S, N]
        if keep.dim() == 3:
            K = keep.shape[0]
            d = torch.bmm(dz.reshape(K, -1, dz.shape[-1]), wt)  # [K, B*..., N]
            d = d.reshape(*dz.shape[:-1], wt.shape[-1])
        else:
            d = dz @ wt
        return d.expand(dst_shape) if d.shape != dst_shape else d

    def score(self, dz: Tensor, grad: Tensor) -> Tensor:
        """First-order effect ``Δc_uv · ∂L/∂input_v`` of every edge, summed over batch/position. [S, N]"""
        if self.kind == "resid":
            g = grad.unsqueeze(-2) if self.dst_unsqueeze else grad
            dz = dz.expand(*g.shape[:-2], *dz.shape[-2:])
            return torch.einsum("...sd,...nd->sn", dz, g) * self.present.to(g.device)
        dz = dz.expand(*grad.shape[:-1], *dz.shape[-2:])
        return torch.einsum("...sn,...n->sn", dz, grad) * self.present.to(grad.device)


class Graph:
    """Nodes and edges of a hooked model, with edge masks and masked forward passes."""

    def __init__(self, groups: Sequence[EdgeGroup]):
        self.groups = list(groups)
        self.edges: list[Edge] = []
        for gi, g in enumerate(self.groups):
            for s in range(len(g.src)):
                for n in range(len(g.dst)):
                    if g.present[s, n]:
                        self.edges.append(Edge(g.src[s], g.dst[n], gi, s, n))
        self.edge_id = {e.name: i for i, e in enumerate(self.edges)}
        srcs = {n.name: n for g in self.groups for n in g.src}
        dsts = {n.name: n for g in self.groups for n in g.dst}
        self.src_nodes = sorted(srcs.values(), key=lambda n: (n.layer, n.name))
        self.dst_nodes = sorted(dsts.values(), key=lambda n: (n.layer, n.name))
        self.src_hooks = sorted({g.src_hook for g in self.groups})
        self.dst_hooks = sorted({g.dst_hook for g in self.groups})
        self.input_nodes = [n for n in self.src_nodes if n.layer == min(m.layer for m in self.src_nodes)]
        self.input_hooks = sorted({n.hook for n in self.input_nodes})
        self.output_nodes = [n for n in self.dst_nodes if n.layer == max(m.layer for m in self.dst_nodes)]
        self.groups_into: dict[str, list[int]] = {}
        for gi, g in enumerate(self.groups):
            self.groups_into.setdefault(g.dst_hook, []).append(gi)

    def __len__(self) -> int:
        return len(self.edges)

    def __repr__(self) -> str:
        return f"Graph({len(self.src_nodes)} sources, {len(self.dst_nodes)} destinations, {len(self.edges)} edges)"

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.edges]

    @property
    def hooks(self) -> list[str]:
        """Every hook point the graph reads or patches."""
        return sorted(set(self.src_hooks) | set(self.dst_hooks))

    def check(self, model: nn.Module) -> None:
        """Raise a clear ``ValueError`` when a hook of this graph is not a hook point of ``model``."""
        checked = getattr(self, "_checked", None)
        if checked is not None and checked() is model:
            return
        check_hooks(model, self.hooks, "Graph")
        self._checked = weakref.ref(model)

    # ---- masks and per-edge vectors -------------------------------------------------------------------------------
    def ones(self, value: float = 1.0, device: str | torch.device = "cpu") -> list[Tensor]:
        """One mask per group, filled with ``value`` (1 = every edge clean)."""
        return [torch.full((len(g.src), len(g.dst)), value, device=device) for g in self.groups]

    def masks_from(self, keep: Tensor | Iterable[str], device: str | torch.device = "cpu") -> list[Tensor]:
        """Masks from a bool vector over ``self.edges`` (True = keep) or a collection of kept edge names."""
        if not isinstance(keep, Tensor):
            names = set(keep)
            unknown = names - set(self.edge_id)
            if unknown:
                raise ValueError(f"unknown edge names {sorted(unknown)[:5]}; see Graph.names")
            keep = torch.tensor([e.name in names for e in self.edges])
        masks, i = self.ones(0.0, device), 0
        keep = keep.to(device).float()
        for m, g in zip(masks, self.groups):  # edges are listed group by group, row-major over present pairs
            k = int(g.present.sum())
            m[g.present.to(device)] = keep[i:i + k]
            i += k
        return masks

    def to_vector(self, per_group: Sequence[Tensor]) -> Tensor:
        """Flatten per-group ``[S, N]`` tensors (scores or masks) to a vector aligned with ``self.edges``."""
        return torch.cat([t[g.present.to(t.device)] for t, g in zip(per_group, self.groups)])

    def labels(self, true_edges: Iterable[str]) -> Tensor:
        """Bool vector over ``self.edges``: is the edge in the reference circuit?"""
        names = set(true_edges)
        unknown = names - set(self.edge_id)
        if unknown:
            raise ValueError(f"reference circuit names unknown edges {sorted(unknown)[:5]}; see Graph.names")
        return torch.tensor([e.name in names for e in self.edges])

    # ---- activations ----------------------------------------------------------------------------------------------
    def cache(self, model: nn.Module, x: Any, hooks: Sequence[str] | None = None, **kw) -> dict[str, Tensor]:
        """Activations of the source hooks (or ``hooks``) on input ``x``."""
        names = set(hooks or self.src_hooks)
        self.check(model)
        check_hooks(model, names, "Graph.cache")
        with torch.no_grad():
            _, cache = model.run_with_cache(x, names_filter=lambda n: n in names, **kw)
        return {k: cache[k] for k in names}

    def forward(
        self,
        model: nn.Module,
        x: Any,
        patch: dict[str, Tensor],
        masks: Sequence[Tensor],
        fwd_hooks: Sequence[tuple[str, Callable]] = (),
        **kw,
    ) -> Tensor:
        """Run ``model(x)`` with every edge of mask value < 1 carrying its source's ``patch`` activation.

        ``patch`` maps source hooks to activations (a corrupted run, a mean, zeros — see
        :func:`rlinterp.interp.patching.ablation_cache`); they broadcast against the clean batch. Masks may require
        grad (gradients w.r.t. masks are edge attributions, auto-circuit style).

        Several mask settings in one pass: masks of shape ``[K, S, N]`` (any of the groups, all with the same K; a
        ``[S, N]`` mask applies to every copy) with ``x`` and every batch-sized ``patch`` activation stacked K times
        along the batch axis (copy k is run with mask setting k); the output is the K stacked outputs. ACDC uses this to test many candidate removals in one forward pass.
        """
        self.check(model)
        current: dict[str, Tensor] = {}
        active = [gi for gi, m in enumerate(masks) if m.requires_grad or bool((m < 1).any())]
        by_dst: dict[str, list[int]] = {}
        for gi in active:
            by_dst.setdefault(self.groups[gi].dst_hook, []).append(gi)

        def save(act: Tensor, hook) -> None:
            current[hook.name] = act

        def patch_dst(act: Tensor, hook) -> Tensor:
            for gi in by_dst[hook.name]:
                g = self.groups[gi]
                if g.src_hook not in patch:
                    raise ValueError(f"patch has no activation for source hook {g.src_hook!r}")
                act = act + g.patch_delta(patch[g.src_hook], current[g.src_hook], masks[gi], act.shape)
            return act

        hooks = [(h, patch_dst) for h in by_dst] + [(h, save) for h in self.src_hooks] + list(fwd_hooks)
        return model.run_with_hooks(x, fwd_hooks=hooks, **kw)

    def forward_edge_values(
        self, model: nn.Module, x: Any, values: dict[Edge, Tensor], read: str | None = None, **kw
    ) -> Tensor:
        """Run ``model(x)`` with each listed edge carrying its own source activation ``values[edge]``.

        Used by causal scrubbing, where every edge may come from a different (resampled) input. Returns the model
        output, or the activation at hook ``read`` when given.
        """
        self.check(model)
        if read is not None:
            check_hooks(model, [read], "Graph.forward_edge_values(read=...)")
        current: dict[str, Tensor] = {}
        by_dst: dict[str, list[Edge]] = {}
        for e in values:
            by_dst.setdefault(e.dst.hook, []).append(e)
        out: dict[str, Tensor] = {}

        def save(act: Tensor, hook) -> None:
            current[hook.name] = act
            if hook.name == read:
                out["read"] = act

        def patch_dst(act: Tensor, hook) -> Tensor:
            for e in by_dst[hook.name]:
                g = self.groups[e.group]
                keep = torch.ones(len(g.src), len(g.dst), dtype=act.dtype, device=act.device)
                keep[e.s, e.n] = 0
                act = act + g.patch_delta(values[e], current[g.src_hook], keep, act.shape)
            if hook.name == read:
                out["read"] = act
            return act

        hooks = [(h, patch_dst) for h in by_dst] + [(h, save) for h in self.src_hooks]
        if read is not None and read not in by_dst and read not in self.src_hooks:
            hooks.append((read, save))
        y = model.run_with_hooks(x, fwd_hooks=hooks, **kw)
        return out["read"] if read is not None else y


# ---- builders -----------------------------------------------------------------------------------------------------
def _unsq(act: Tensor) -> Tensor:
    return act.unsqueeze(-2)


def transformer_graph(model: nn.Module) -> Graph:
    """Residual graph of a ``HookedTransformer``: token/position embeddings, every head, every MLP → every later
    head's q/k/v input, every later MLP input and the final residual stream (``Resid End``).

    Turns on ``use_attn_result``, ``use_split_qkv_input`` and ``use_hook_mlp_in`` (needed for per-head outputs and
    per-head inputs; more memory per forward pass) and says which it switched with a :class:`ModelFlagWarning`.
    Positions are aggregated: an edge is patched at every position.
    """
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(model, "blocks"):
        raise TypeError(f"transformer_graph: needs a TransformerLens HookedTransformer, got {type(model).__name__}; "
                        "for other hooked models build the graph with mlp_graph(...) or the model's graph()")
    if getattr(cfg, "n_key_value_heads", None) not in (None, cfg.n_heads):
        raise ValueError("transformer_graph: grouped-query attention is not supported; ungroup the heads first")
    flags = [("use_attn_result", model.set_use_attn_result), ("use_split_qkv_input", model.set_use_split_qkv_input)]
    if not cfg.attn_only:
        flags.append(("use_hook_mlp_in", model.set_use_hook_mlp_in))
    switched = [name for name, _ in flags if not getattr(cfg, name)]
    for _, setter in flags:
        setter(True)
    if switched:
        warnings.warn(f"transformer_graph switched on {', '.join(switched)} in the model's config (per-head outputs "
                      "and inputs as hook points; forward passes use more memory). Set them back with "
                      "model.set_use_attn_result(False) etc. when done", ModelFlagWarning, stacklevel=2)
    L, H = cfg.n_layers, cfg.n_heads
    # sources: (hook, nodes, contrib)
    sources = [("hook_embed", [Node("embed", "hook_embed", (), 0, "embed")], _unsq)]
    if cfg.positional_embedding_type == "standard":
        sources.append(("hook_pos_embed", [Node("pos", "hook_pos_embed", (), 0, "pos")], _unsq))
    dests: list[tuple[str, list[Node], bool]] = []
    for l in range(L):
        a = f"blocks.{l}.attn.hook_result"
        heads = [Node(f"A{l}.{h}", a, (h,), 2 * l + 1, f"A{l}.{h}", 1) for h in range(H)]
        for qkv in "qkv":
            hk = f"blocks.{l}.hook_{qkv}_input"
            dests.append((hk, [Node(f"A{l}.{h}.{qkv}", hk, (h,), 2 * l + 1, f"A{l}.{h}", 1) for h in range(H)], False))
        sources.append((a, heads, lambda act: act))
        if not cfg.attn_only:
            dests.append((f"blocks.{l}.hook_mlp_in", [Node(f"M{l}.in", f"blocks.{l}.hook_mlp_in", (), 2 * l + 2, f"M{l}")], True))
            sources.append((f"blocks.{l}.hook_mlp_out", [Node(f"M{l}", f"blocks.{l}.hook_mlp_out", (), 2 * l + 2, f"M{l}")], _unsq))
    end = f"blocks.{L - 1}.hook_resid_post"
    dests.append((end, [Node("end", end, (), 2 * L + 1, "end")], True))
    groups = []
    for dhook, dnodes, unsq in dests:
        for shook, snodes, contrib in sources:
            if snodes[0].layer < dnodes[0].layer:
                groups.append(EdgeGroup(shook, dhook, snodes, dnodes, contrib, "resid", dst_unsqueeze=unsq))
    graph = Graph(groups)
    graph.check(model)
    return graph


def mlp_graph(
    layers: Sequence[tuple[str, nn.Linear | Tensor, str]],
    level: str = "neuron",
    names: Sequence[str] | None = None,
    drop_zero: bool = False,
    model: nn.Module | None = None,
) -> Graph:
    """Graph of an MLP from ``[(source hook, linear, destination hook), ...]`` in forward order.

    ``dst = linear(src)`` for each triple, e.g. for the coin-flip DQN
    ``[("hook_obs", net.mlp[0].linear, "mlp.0.hook_pre"), ("mlp.0.hook_post", net.mlp[1].linear, "mlp.1.hook_pre"),
    ("mlp.1.hook_post", net.head, "hook_q_values")]``. Triple k's destination and triple k+1's source belong to the same
    component (a hidden layer: pre-activation in, post-activation out). ``level="neuron"``: every unit is a node and
    every weight ``W[j, i]`` an edge i→j; ``level="layer"``: one node per layer. Component names default to
    ``in, h0, h1, ..., out`` (neurons: ``h0.3``). ``drop_zero`` leaves out exactly-zero weights. With ``model`` the
    hook names are checked against it now (a typo raises a ``ValueError`` naming close matches); otherwise they are
    checked when the graph is first run on a model.
    """
    if level not in ("neuron", "layer"):
        raise ValueError(f"mlp_graph: level must be 'neuron' or 'layer', got {level!r}")
    if not layers:
        raise ValueError("mlp_graph: give at least one (source hook, linear, destination hook) triple")
    K = len(layers)
    names = list(names or ["in", *[f"h{k}" for k in range(K - 1)], "out"])
    if len(names) != K + 1:
        raise ValueError(f"mlp_graph: need {K + 1} layer names for {K} linear maps, got {len(names)}")

    def weight(lin) -> Tensor:
        return (lin.weight if isinstance(lin, nn.Module) else lin).detach()

    groups = []
    for k, (shook, lin, dhook) in enumerate(layers):
        W = weight(lin)  # [N_out, N_in]
        n_out, n_in = W.shape
        if level == "neuron":
            src = [Node(f"{names[k]}.{i}", shook, (i,), k, f"{names[k]}.{i}") for i in range(n_in)]
            dst = [Node(f"{names[k + 1]}.{j}", dhook, (j,), k + 1, f"{names[k + 1]}.{j}") for j in range(n_out)]
            contrib = (lambda lin: lambda a: a.unsqueeze(-1) * weight(lin).T)(lin)  # [..., S, N]
            present = (W != 0).T if drop_zero else None
            groups.append(EdgeGroup(shook, dhook, src, dst, contrib, "neuron", present=present,
                                    weight=(lambda lin: lambda: weight(lin))(lin)))
        else:
            src = [Node(names[k], shook, (), k, names[k])]
            dst = [Node(names[k + 1], dhook, (), k + 1, names[k + 1])]
            contrib = (lambda lin: lambda a: (a @ weight(lin).T).unsqueeze(-2))(lin)  # [..., 1, N_out]
            groups.append(EdgeGroup(shook, dhook, src, dst, contrib, "resid", dst_unsqueeze=True))
    graph = Graph(groups)
    if model is not None:
        graph.check(model)
    return graph


def get_graph(model: nn.Module, **kw) -> Graph:
    """The model's own ``graph(**kw)`` when it declares one, else :func:`transformer_graph` for HookedTransformers."""
    if hasattr(model, "graph") and callable(model.graph):
        return model.graph(**kw)
    if hasattr(model, "cfg") and hasattr(model, "blocks"):
        return transformer_graph(model)
    raise ValueError(
        f"{type(model).__name__} declares no graph: add a `graph()` method returning "
        "rlinterp.interp.graph.mlp_graph([...]) (or build one yourself) and pass it explicitly"
    )


@dataclass
class Circuit:
    """A subgraph: kept edges (bool over ``graph.edges``) and optional per-edge scores."""

    graph: Graph
    keep: Tensor
    scores: Tensor | None = None
    meta: dict = field(default_factory=dict)

    @property
    def edges(self) -> list[str]:
        return [e.name for e, k in zip(self.graph.edges, self.keep.tolist()) if k]
