"""Draw a circuit (a subgraph of a :class:`~rlinterp.interp.graph.Graph`) with matplotlib, laid out by layer.

Nodes are model *components* (a head, an MLP, a neuron, an input; a head's q/k/v inputs are drawn as the edge's
label), placed in columns by topological layer (inputs left, output right) and spread evenly within a column. Edge
width and colour encode the score (blue negative, red positive) when scores are given — the usual ACDC/EAP figure,
without graphviz.
"""
from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
import numpy as np
from torch import Tensor

from rlinterp.interp.graph import Graph


def draw_circuit(
    graph: Graph, keep: Tensor | Iterable[str] | None = None, scores: Tensor | None = None, ax=None,
    title: str | None = None, max_edges: int = 200, show_all_nodes: bool = False, label_slots: bool = True,
):
    """Plot the kept edges (bool vector over ``graph.edges`` or edge names; default all) with optional per-edge
    ``scores``. Returns the axes."""
    if keep is None:
        keep_v = np.ones(len(graph.edges), bool)
    elif isinstance(keep, Tensor):
        keep_v = keep.bool().cpu().numpy()
    else:
        keep_v = graph.labels(keep).numpy()
    s = None if scores is None else scores.detach().float().cpu().numpy()
    idx = np.flatnonzero(keep_v)
    if s is not None and len(idx) > max_edges:
        idx = idx[np.argsort(-np.abs(s[idx]))[:max_edges]]
    edges = [graph.edges[i] for i in idx]
    # component layer = the smallest layer among its nodes
    layer: dict[str, int] = {}
    for n in [*graph.src_nodes, *graph.dst_nodes]:
        layer[n.component] = min(layer.get(n.component, n.layer), n.layer)
    shown = set(layer) if show_all_nodes else {c for e in edges for c in (e.src.component, e.dst.component)}
    cols: dict[int, list[str]] = {}
    for c in sorted(shown, key=lambda c: (layer[c], _natural(c))):
        cols.setdefault(layer[c], []).append(c)
    pos = {}
    for xi, (l, comps) in enumerate(sorted(cols.items())):
        for yi, c in enumerate(comps):
            pos[c] = (xi, (len(comps) - 1) / 2 - yi)
    if ax is None:
        _, ax = plt.subplots(figsize=figure_size(len(cols), max((len(v) for v in cols.values()), default=1)))
    ax.set_xlim(-0.5, len(cols) - 0.5)
    ys = [p[1] for p in pos.values()] or [0]
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7 + 0.25 * max(len(cols) - 2, 0))
    # a tall column is squeezed to fit the page: when a row has no room for a 26 pt circle, nodes become rounded
    # labels as tall as the row allows (the label stays legible; a shrunken circle would shrink its text)
    y0, y1 = ax.get_ylim()
    pitch = ax.get_window_extent().height * 72 / ax.figure.dpi / max(abs(y1 - y0), 1e-9)  # points per row
    squeezed = 0.85 * pitch < NODE_DIAMETER
    node_font = min(7.0, max(4.5, 0.42 * pitch)) if squeezed else 7.0
    to_disp, to_data = ax.transData.transform, ax.transData.inverted().transform
    smax = max((abs(s[i]) for i in idx), default=1.0) if s is not None else 1.0
    smax = smax or 1.0
    for i, e in zip(idx, edges):
        (x0, y0), (x1, y1) = pos[e.src.component], pos[e.dst.component]
        w = 0.6 + 3.4 * (abs(s[i]) / smax if s is not None else 0.5)
        color = "0.4" if s is None else ("tab:red" if s[i] > 0 else "tab:blue")
        rad = -0.25 * (x1 - x0 - 1)  # edges that skip columns arc over the nodes in between
        ax.annotate("", (x1 - 0.06, y1), (x0 + 0.06, y0),
                    arrowprops=dict(arrowstyle="-|>", lw=w, color=color, alpha=0.75, shrinkA=6, shrinkB=6,
                                    connectionstyle=f"arc3,rad={rad}"))
        slot = e.dst.name[len(e.dst.component) + 1:] if e.dst.name.startswith(e.dst.component + ".") else ""
        if label_slots and slot:  # label the destination slot (q/k/v) on the curve, 80% of the way
            (a0, b0), (a1, b1) = to_disp((x0, y0)), to_disp((x1, y1))
            t = 0.8  # quadratic Bezier with control point mid + rad * (dy, -dx) (matplotlib's arc3)
            cx, cy = (a0 + a1) / 2 + rad * (b1 - b0), (b0 + b1) / 2 - rad * (a1 - a0)
            px = (1 - t) ** 2 * a0 + 2 * t * (1 - t) * cx + t**2 * a1
            py = (1 - t) ** 2 * b0 + 2 * t * (1 - t) * cy + t**2 * b1
            ax.text(*to_data((px, py + 3)), slot, fontsize=7, color=color, ha="center", va="bottom")
    for c, (x, y) in pos.items():
        if squeezed:
            ax.text(x, y, c, ha="center", va="center", fontsize=node_font, zorder=4,
                    bbox=dict(boxstyle="round,pad=0.25", facecolor="white", edgecolor="black", lw=0.8))
        else:
            ax.scatter([x], [y], s=NODE_DIAMETER**2, color="white", edgecolor="black", zorder=3)
            ax.text(x, y, c, ha="center", va="center", fontsize=node_font, zorder=4)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


NODE_DIAMETER = 26.0  #: points: a node circle when the rows leave room for it
#: the tallest figure relative to its width: 7.5 in at the 6.5 in text width of the PDF, so the figure and its caption
#: fit one page
MAX_ASPECT = 7.5 / 6.5


def figure_size(n_columns: int, n_rows: int) -> tuple[float, float]:
    """Figure size (inches) of a circuit with ``n_columns`` layers and at most ``n_rows`` nodes in one layer: 1.6 in
    per column, 0.45 in per row, but never taller than :data:`MAX_ASPECT` times its width (tall layers are
    squeezed and their nodes drawn smaller)."""
    if n_columns < 1 or n_rows < 1:
        raise ValueError(f"a circuit figure needs at least one column and one row, got {n_columns} x {n_rows}")
    width = 1.8 + 1.6 * n_columns
    return width, min(1.2 + 0.45 * n_rows, MAX_ASPECT * width)


def _natural(name: str) -> tuple:
    parts = name.replace("->", ".").split(".")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
