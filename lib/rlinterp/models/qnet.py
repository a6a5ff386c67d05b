"""The coin-flip Q-network: ``obs (2n+1) -> Dense -> Dense -> head -> n Q-values`` (one per canonical coin slot).

The observation is the per-coin (heads, tails) counts divided by ``k`` and the number of flips left divided by ``k``
(:func:`rlinterp.envs.coinflip.encode_obs`), with the coins in canonical order
(:func:`rlinterp.envs.coinflip.canonicalize`). A TransformerLens ``HookedRootModule``; hook names:

* ``hook_obs`` [batch, 2n+1]
* ``mlp.{0,1}.hook_pre`` / ``mlp.{0,1}.hook_post`` [batch, d_hidden] (the :class:`~rlinterp.models.layers.Dense`
  blocks; weights ``mlp.{0,1}.linear``)
* ``hook_q_values`` [batch, n] (readout layer ``head``)

Config fields that define the network (read from ``cfg``, e.g. a :class:`rlinterp.learners.dqn.DQNConfig`):
``n_coins`` (outputs), ``n_flips`` (observation scale), ``d_hidden`` (width of both hidden layers).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from rlinterp.envs.coinflip import canonicalize, encode_obs
from rlinterp.models.layers import Dense

#: the config fields that define a :class:`QNetwork`
NETWORK_FIELDS = ("n_coins", "n_flips", "d_hidden")


class QNetwork(HookedRootModule):
    """The 2-hidden-layer Q-network: ``obs [batch, 2n+1] -> q [batch, n]`` (one Q-value per canonical coin slot).

    Hook points: ``hook_obs`` [batch, 2n+1], ``mlp.0.hook_pre``/``mlp.0.hook_post`` [batch, d_hidden],
    ``mlp.1.hook_pre``/``mlp.1.hook_post`` [batch, d_hidden], ``hook_q_values`` [batch, n].
    """

    def __init__(self, cfg: Any):
        super().__init__()
        missing = [f for f in NETWORK_FIELDS if not hasattr(cfg, f)]
        if missing:
            raise ValueError(f"QNetwork config lacks field(s) {missing}; it needs {list(NETWORK_FIELDS)}")
        self.cfg = cfg
        self.hook_obs = HookPoint()
        self.mlp = nn.ModuleList([Dense(2 * cfg.n_coins + 1, cfg.d_hidden), Dense(cfg.d_hidden, cfg.d_hidden)])
        self.head = nn.Linear(cfg.d_hidden, cfg.n_coins)
        self.hook_q_values = HookPoint()
        self.setup()

    def forward(self, obs: Tensor) -> Tensor:
        x = self.hook_obs(obs)  # [batch, 2n+1]
        for layer in self.mlp:
            x = layer(x)  # [batch, d_hidden]
        return self.hook_q_values(self.head(x))  # [batch, n]

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def graph(self, level: str = "neuron", groups: dict[str, Any] | None = None):
        """The computational graph for circuit discovery and causal scrubbing (:mod:`rlinterp.interp.graph`).

        ``level="neuron"`` (:func:`~rlinterp.interp.graph.mlp_graph`): sources ``in.i`` (observation entries:
        ``in.{2j}``/``in.{2j+1}`` = heads/tails of canonical coin j, ``in.{2n}`` = flips left), ``h0.i``/``h1.i``
        (hidden units after the ReLU); destinations ``h0.i``/``h1.i`` (pre-activations) and ``out.j`` (Q-value of
        canonical slot j); every weight is an edge (``(2n+1) d + d^2 + d n`` edges). ``level="layer"``: one node per
        layer (``in -> h0 -> h1 -> out``).

        ``groups`` ({name: first-layer unit indices}, a partition of the ``d_hidden`` units) builds the graph used to
        scrub hypotheses about *groups* of first-layer units: ``in -> (each unit, component = its group) -> group ->
        h1 -> out``; the edge group->h1 carries the group's contribution ``W1[:, group] a[group]`` to layer 2's
        pre-activation. Edge-level methods (:meth:`Graph.forward`, scrubbing, ACDC, EAP) work on it; node-level
        patching does not (a group is not a single index of its hook).
        """
        from rlinterp.interp.graph import EdgeGroup, Graph, Node, mlp_graph

        layers = [("hook_obs", self.mlp[0].linear, "mlp.0.hook_pre"), ("mlp.0.hook_post", self.mlp[1].linear, "mlp.1.hook_pre"),
                  ("mlp.1.hook_post", self.head, "hook_q_values")]
        if groups is None:
            return mlp_graph(layers, level=level)
        d = self.cfg.d_hidden
        members = {str(g): [int(i) for i in idx] for g, idx in groups.items()}
        flat = sorted(i for idx in members.values() for i in idx)
        if flat != list(range(d)):
            raise ValueError(f"groups must partition the {d} first-layer units 0..{d - 1} (each exactly once)")
        if {"in", "h1", "out"} & set(members):
            raise ValueError("group names 'in', 'h1' and 'out' are reserved")
        comp = {i: g for g, idx in members.items() for i in idx}
        W0, W1, Wu = self.mlp[0].linear.weight, self.mlp[1].linear.weight, self.head.weight
        x_in = Node("in", "hook_obs", (), 0, "in")
        units = [Node(f"{comp[i]}.{i}", "mlp.0.hook_pre", (i,), 1, comp[i]) for i in range(d)]
        gsrc = [Node(g, "mlp.0.hook_post", (), 1, g) for g in members]
        h1_dst, h1_src = Node("h1.in", "mlp.1.hook_pre", (), 2, "h1"), Node("h1", "mlp.1.hook_post", (), 2, "h1")
        out = Node("out", "hook_q_values", (), 3, "out")
        idx = [torch.tensor(members[g]) for g in members]
        return Graph([
            EdgeGroup("hook_obs", "mlp.0.hook_pre", [x_in], units,
                      lambda a: (a @ W0.detach().T).unsqueeze(-2), "neuron"),  # [..., 1, d]
            EdgeGroup("mlp.0.hook_post", "mlp.1.hook_pre", gsrc, [h1_dst],  # [..., G, d]
                      lambda a: torch.stack([a[..., i.to(a.device)] @ W1.detach()[:, i.to(a.device)].T for i in idx],
                                            -2), "resid", dst_unsqueeze=True),
            EdgeGroup("mlp.1.hook_post", "hook_q_values", [h1_src], [out], lambda a: (a @ Wu.detach().T).unsqueeze(-2),
                      "resid", dst_unsqueeze=True),
        ])

    # -- acting ------------------------------------------------------------------------------------------------------
    def canonical_obs(self, sorted_counts: np.ndarray, flips_left: np.ndarray) -> Tensor:
        """Encode already-canonical counts [batch, n, 2] and flips_left [batch] as a float tensor [batch, 2n+1]."""
        obs = encode_obs(np.asarray(sorted_counts), np.asarray(flips_left), self.cfg.n_flips)
        return torch.as_tensor(obs, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def q_values(self, counts: np.ndarray, flips_left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Q-values in *canonical* order and the permutation: (q [batch, n], perm [batch, n]).

        ``q[b, j]`` is the value of flipping the coin in canonical slot ``j``, i.e. the original coin ``perm[b, j]``.
        """
        counts = np.asarray(counts)
        self._check_state(counts, flips_left)
        sorted_counts, perm = canonicalize(counts)
        q = self(self.canonical_obs(sorted_counts, flips_left)).cpu().numpy()
        return q, perm

    def act(self, counts: np.ndarray, flips_left: np.ndarray) -> np.ndarray:
        """Greedy action (original coin index) [batch] for raw per-coin counts [batch, n, 2] and flips_left [batch].

        The state is canonicalised first, so permuting the coins permutes the chosen coin (ties between identical
        coins are broken towards the first canonical slot)."""
        q, perm = self.q_values(counts, flips_left)
        slot = q.argmax(axis=1)
        return perm[np.arange(len(slot)), slot]

    def policy(self, counts: np.ndarray, flips_left: np.ndarray, rng: np.random.Generator | None = None
               ) -> np.ndarray:
        """The agent as a baseline-style policy ``policy(counts, flips_left, rng) -> actions`` (rng unused)."""
        return self.act(counts, flips_left)

    @torch.no_grad()
    def policy_probs(self, sorted_counts: np.ndarray, flips_left: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
        """Action probabilities over canonical slots [S, n] for canonical states (for ``coinflip_bayes.evaluate_exact``).

        The greedy policy is deterministic, so each row is one-hot at the argmax."""
        sorted_counts, flips_left = np.asarray(sorted_counts), np.asarray(flips_left)
        slots = np.empty(len(flips_left), dtype=np.int64)
        for i in range(0, len(flips_left), chunk):
            q = self(self.canonical_obs(sorted_counts[i:i + chunk], flips_left[i:i + chunk]))
            slots[i:i + chunk] = q.argmax(dim=1).cpu().numpy()
        probs = np.zeros((len(slots), self.cfg.n_coins))
        probs[np.arange(len(slots)), slots] = 1.0
        return probs

    def _check_state(self, counts: np.ndarray, flips_left: Any) -> None:
        n = self.cfg.n_coins
        if counts.ndim != 3 or counts.shape[1:] != (n, 2):
            raise ValueError(f"counts must have shape (batch, {n}, 2) for a {n}-coin agent, got {counts.shape}")
        if np.shape(flips_left) != (counts.shape[0],):
            raise ValueError(f"flips_left must have shape ({counts.shape[0]},), got {np.shape(flips_left)}")
