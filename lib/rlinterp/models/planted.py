"""Ground-truth models: hooked networks whose circuit is known by construction.

Interpretability methods are validated on them before they are trusted on trained agents (the "toy model with a
planted circuit" check of Conmy et al. 2023 §4 and of auto-circuit's synthetic benchmarks).

* :class:`PlantedMLP` — a 2-hidden-layer ReLU MLP on binary inputs, hooked like the coin-flip DQN
  (``hook_obs``, ``mlp.{0,1}.hook_pre/post``, ``hook_out``), with hand-set weights: circuit neurons compute ANDs of
  relevant input pairs, then ORs (counts) of those, read out with nonzero weights. Distractors: irrelevant inputs,
  a constant "bias" input (every weight from it is nonzero but it never changes), layer-0 neurons that are active but
  only feed unread layer-1 neurons, unread layer-1 neurons that also read circuit neurons, and "dead" layer-1 neurons
  (always below threshold, yet read out with weight 1).
* :func:`planted_transformer` — a 2-layer attention-only ``HookedTransformer`` solving "copy the token after the
  marker": head A0.0 is a previous-token head moving "previous token is the marker" forward, head A1.0 uses it as its
  key (K-composition) and copies the marked token to the output subspace read by the unembedding. Every other head is
  a distractor that reads the same residual stream and writes to dimensions nobody reads.

Ground truth (``true_edges``) is defined for the task's corruption (an independent random input): an edge is in the
circuit iff it carries a signal that changes between inputs *and* reaches the output.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from rlinterp.interp.graph import Graph, mlp_graph
from rlinterp.models.layers import Dense


class LinearReadout(HookedRootModule):
    """``y = Σ_i w_i x_i`` in float64: sources ``in.i``, one destination ``out.0`` (the output), one edge per input.

    The smallest graph on which edge effects add exactly (removing edge i changes y by ``w_i (x'_i - x_i)``), so
    ACDC's decisions, ROC curves and scrubbing's resampling can be computed by hand in tests."""

    def __init__(self, w):
        super().__init__()
        self.hook_in = HookPoint()
        self.lin = nn.Linear(len(w), 1, bias=False)
        self.hook_out = HookPoint()
        self.setup()
        self.double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([w], dtype=torch.float64))

    def forward(self, x):
        return self.hook_out(self.lin(self.hook_in(x)))

    def graph(self) -> Graph:
        return mlp_graph([("hook_in", self.lin, "hook_out")], model=self)


class HandMLP(HookedRootModule):
    """A 2-hidden-layer ReLU MLP with hand-set weights, hooked like the coin-flip DQN (``hook_obs``,
    ``mlp.{0,1}.hook_pre/post``, ``hook_out``). Inputs ``[batch, d_in]`` floats in {0, 1}, the last coordinate
    constant 1 (use :meth:`sample`). Output ``[batch, 1]``. Subclasses build the weights and call :meth:`_load`."""

    def _load(self, W0: Tensor, b0: Tensor, W1: Tensor, b1: Tensor, Wh: Tensor, bh: Tensor, device: str) -> None:
        self.d_in = W0.shape[1]
        self.hook_obs = HookPoint()  # [batch, d_in]
        self.mlp = nn.ModuleList([Dense(W0.shape[1], W0.shape[0]), Dense(W1.shape[1], W1.shape[0])])
        self.head = nn.Linear(Wh.shape[1], 1)
        self.hook_out = HookPoint()  # [batch, 1]
        with torch.no_grad():
            for lin, W, b in ((self.mlp[0].linear, W0, b0), (self.mlp[1].linear, W1, b1), (self.head, Wh, bh)):
                lin.weight.copy_(W)
                lin.bias.copy_(b)
        self.setup()
        self.to(device)

    def forward(self, obs: Tensor) -> Tensor:
        h = self.hook_obs(obs)  # [batch, d_in]
        for layer in self.mlp:
            h = layer(h)  # [batch, width]
        return self.hook_out(self.head(h))  # [batch, 1]

    def sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` random inputs ``[n, d_in]``: i.i.d. fair bits, last coordinate 1."""
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"sample: n must be a positive int, got {n!r}")
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 2, (n, self.d_in), generator=g).float()
        x[:, -1] = 1.0
        return x.to(self.head.weight.device)

    def graph(self, level: str = "neuron") -> Graph:
        return mlp_graph(
            [("hook_obs", self.mlp[0].linear, "mlp.0.hook_pre"), ("mlp.0.hook_post", self.mlp[1].linear, "mlp.1.hook_pre"),
             ("mlp.1.hook_post", self.head, "hook_out")],
            level=level, model=self,
        )

    def weight_edges(self, W0: Tensor, W1: Tensor, Wh: Tensor) -> set[str]:
        """Neuron-graph edge names of the nonzero entries of the given (masked) weight matrices."""
        edges = set()
        for (W, a, b) in ((W0, "in", "h0"), (W1, "h0", "h1"), (Wh, "h1", "out")):
            for j, i in (W.abs() > 1e-9).nonzero().tolist():
                edges.add(f"{a}.{i}->{b}.{j}")
        return edges


class PlantedMLP(HandMLP):
    """Boolean circuit in a ReLU MLP; see the module docstring. Inputs: ``[batch, d_in]`` floats in {0, 1}, the last
    coordinate constant 1 (use :meth:`sample`). Output ``[batch, 1]``.

    Circuit: ``a_j = AND(x_p, x_q) = relu(2 x_p + 2 x_q − 3·x_const)`` for circuit neurons j of layer 0 (pairs of the
    first ``n_relevant`` inputs); ``b_k = relu(2 a_j + 2 a_j' − 1) ∈ {0, 1, 3}`` for circuit neurons k of layer 1;
    ``y = Σ_k c_k b_k``. ``leak > 0`` reads the distractor neurons out with weight ±leak: their paths then have small
    real effects that a method must rank below the planted ones (the planted edges stay the reference circuit).

    ``cancel > 0`` adds a *self-cancelling pair*: two more neurons in each hidden layer copy the relevant input
    ``x_p`` (``p = cancel_input``, read by the first AND) to the output with weights ``+cancel`` and ``−cancel``.
    Each of its edges alone has a large effect; together they have none, so the pair is not in the reference
    circuit (``pair_edges`` lists its 6 edges). Widths become ``(w0 + 2, w1 + 2)``.
    """

    def __init__(self, d_in: int = 8, width: tuple[int, int] = (8, 8), n_relevant: int = 4, leak: float = 0.0,
                 cancel: float = 0.0, seed: int = 0, device: str = "cpu"):
        super().__init__()
        w0, w1 = width
        if d_in < n_relevant + 2 or n_relevant < 2:
            raise ValueError(f"PlantedMLP: need n_relevant >= 2 and d_in >= n_relevant + 2 (got {d_in}, {n_relevant})")
        if w0 < 3 or w1 < 3:
            raise ValueError(f"PlantedMLP: widths must be >= 3 (got {width})")
        if not cancel >= 0:
            raise ValueError(f"PlantedMLP: cancel must be >= 0 (got {cancel})")
        rng = np.random.default_rng(seed)
        self.d_in, self.width, self.n_relevant = d_in, (w0, w1), n_relevant
        const = d_in - 1
        W0, b0 = torch.zeros(w0, d_in), torch.zeros(w0)
        W1, b1 = torch.zeros(w1, w0), torch.zeros(w1)
        Wh = torch.zeros(1, w1)
        n_c0 = max(2, w0 // 2)
        n_dead = 1
        n_c1 = max(1, min((w1 - n_dead) // 2, n_c0))
        self.c0 = list(range(n_c0))  # circuit neurons of layer 0
        self.c1 = list(range(n_c1))  # circuit neurons of layer 1
        self.and_pairs: dict[int, tuple[int, int]] = {}
        for j in self.c0:
            p, q = rng.choice(n_relevant, 2, replace=False)
            self.and_pairs[j] = (int(p), int(q))
            W0[j, p], W0[j, q], W0[j, const] = 2.0, 2.0, -3.0
        for j in range(n_c0, w0):  # distractors: OR of any two non-constant inputs, feed only unread neurons
            p, q = rng.choice(d_in - 1, 2, replace=False)
            W0[j, p], W0[j, q], b0[j] = 2.0, 2.0, -1.0
        # every circuit neuron of layer 0 is read by some circuit neuron of layer 1
        order = list(rng.permutation(self.c0))
        self.or_pairs: dict[int, tuple[int, int]] = {}
        for k in self.c1:
            a = order.pop() if order else int(rng.choice(self.c0))
            b = order.pop() if order else int(rng.choice([j for j in self.c0 if j != a]))
            self.or_pairs[k] = (int(a), int(b))
            W1[k, a], W1[k, b], b1[k] = 2.0, 2.0, -1.0
            Wh[0, k] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5))
        self.unused_c0 = list(order)  # circuit-like neurons no one reads (possible when n_c0 > 2 n_c1)
        self.dead = [w1 - 1]
        for k in range(n_c1, w1):
            if k in self.dead:  # reads circuit neurons, never fires, read out with weight 1
                W1[k, self.c0[0]], W1[k, self.c0[1]], b1[k] = 1.0, 1.0, -10.0
                Wh[0, k] = 1.0
            else:  # unread (read out with weight `leak`): reads a distractor and a circuit neuron
                W1[k, int(rng.integers(n_c0, w0))], W1[k, int(rng.choice(self.c0))], b1[k] = 1.5, 1.0, -0.5
                Wh[0, k] = leak * float(rng.choice([-1.0, 1.0]))
        self.cancel, self.pair_edges = float(cancel), set()
        if cancel > 0:  # the self-cancelling pair: x_p -> a -> A -> +cancel, x_p -> b -> B -> -cancel
            p = self.cancel_input = self.and_pairs[self.c0[0]][0]
            W0, b0 = torch.cat([W0, torch.zeros(2, d_in)]), torch.cat([b0, torch.zeros(2)])
            W0[w0, p] = W0[w0 + 1, p] = 1.0
            W1 = torch.cat([torch.cat([W1, torch.zeros(w1, 2)], 1), torch.zeros(2, w0 + 2)])
            b1 = torch.cat([b1, torch.zeros(2)])
            W1[w1, w0] = W1[w1 + 1, w0 + 1] = 1.0
            Wh = torch.cat([Wh, torch.tensor([[cancel, -cancel]])], 1)
            self.width = (w0 + 2, w1 + 2)
            self.pair_edges = {f"in.{p}->h0.{w0}", f"h0.{w0}->h1.{w1}", f"h1.{w1}->out.0",
                               f"in.{p}->h0.{w0 + 1}", f"h0.{w0 + 1}->h1.{w1 + 1}", f"h1.{w1 + 1}->out.0"}
            self.pair_nodes = (f"h0.{w0}", f"h0.{w0 + 1}", f"h1.{w1}", f"h1.{w1 + 1}")
        self._load(W0, b0, W1, b1, Wh, torch.zeros(1), device)

    # ---- ground truth ---------------------------------------------------------------------------------------------
    def true_edges(self) -> set[str]:
        """Neuron-graph edges of the planted circuit (inputs → ANDs → ORs → output; not the constant input)."""
        edges = set()
        for k, (a, b) in self.or_pairs.items():
            edges.add(f"h1.{k}->out.0")
            for j in (a, b):
                edges.add(f"h0.{j}->h1.{k}")
                p, q = self.and_pairs[j]
                edges |= {f"in.{p}->h0.{j}", f"in.{q}->h0.{j}"}
        return edges

    def and_value(self, j: int) -> Callable[[Tensor], Tensor]:
        p, q = self.and_pairs[j]
        return lambda x: x[:, p] * x[:, q]

    def or_value(self, k: int) -> Callable[[Tensor], Tensor]:
        a, b = self.or_pairs[k]
        fa, fb = self.and_value(a), self.and_value(b)
        return lambda x: fa(x) + fb(x)

    def target(self, x: Tensor) -> Tensor:
        """What the network computes, from the interpretation alone. [batch, 1]"""
        y = torch.zeros(x.shape[0], device=x.device)
        for k in self.c1:
            s = self.or_value(k)(x)
            y = y + self.head.weight[0, k].detach() * torch.where(s > 0, 2 * s - 1, torch.zeros_like(s))
        return y[:, None]

    def hypothesis(self, wrong: bool = False, pair: bool = False):
        """Causal-scrubbing hypothesis: features of every circuit node and the circuit edges.

        ``wrong=True`` claims each OR neuron reads the *other* layer-0 neurons (the parents are rotated), a plausible
        but false story. ``pair=True`` (with ``cancel > 0``) adds the self-cancelling pair, its four neurons carrying
        the feature ``x_p``: both halves are then recomputed on inputs that agree on ``x_p`` and cancel again.
        """
        from rlinterp.interp.scrubbing import Hypothesis

        feats: dict[str, Callable] = {}
        edges = set()
        pairs = dict(self.or_pairs)
        if wrong:
            c0 = self.c0
            pairs = {k: tuple(c0[(c0.index(j) + 1) % len(c0)] for j in ab) for k, ab in pairs.items()}
        for k, (a, b) in pairs.items():
            fa, fb = self.and_value(a), self.and_value(b)
            feats[f"h1.{k}"] = (lambda fa, fb: lambda x: fa(x) + fb(x))(fa, fb)
            edges.add(f"h1.{k}->out.0")
            for j in (a, b):
                feats[f"h0.{j}"] = self.and_value(j)
                edges.add(f"h0.{j}->h1.{k}")
                for p in self.and_pairs[j]:
                    feats[f"in.{p}"] = (lambda p: lambda x: x[:, p])(p)
                    edges.add(f"in.{p}->h0.{j}")
        if pair:
            if not self.pair_edges:
                raise ValueError("PlantedMLP.hypothesis(pair=True) needs a model built with cancel > 0")
            p = self.cancel_input
            for n in (*self.pair_nodes, f"in.{p}"):
                feats[n] = (lambda p: lambda x: x[:, p])(p)
            edges |= self.pair_edges
        return Hypothesis(feats, edges)


class OrGateMLP(HandMLP):
    """Redundant paths: ``y = OR(x_0, x_1)``, one branch per input. Layer 0 copies each branch input
    (``h0.0 = x_0 + ½``, ``h0.1 = x_1 + ½``, always active); layer-1 neuron ``h1.0 = relu(2 − h0.0 − h0.1)`` is their
    NOR; ``y = 1 − h1.0``.
    Distractors: inputs ``x_2..`` feed layer-0 neurons that only reach unread layer-1 neurons (one of which also reads
    branch A), and the constant input. Reference circuit: both branches (``branches`` lists each one's edges) and
    ``h1.0→out.0``. On :meth:`contrast` inputs (clean: both branches on; corrupted: both off) either branch alone
    keeps the output at 1, so patching one branch has no effect, the gradient at the clean input is 0 (the NOR
    neuron is off), and ACDC, removing edges one at a time, drops the first branch it tests and keeps the other.
    """

    def __init__(self, d_in: int = 6, width: tuple[int, int] = (4, 3), seed: int = 0, device: str = "cpu"):
        super().__init__()
        w0, w1 = width
        if d_in < 4 or w0 < 3 or w1 < 2:
            raise ValueError(f"OrGateMLP: need d_in >= 4, width >= (3, 2) (got {d_in}, {width})")
        rng = np.random.default_rng(seed)
        W0, b0, W1, b1 = torch.zeros(w0, d_in), torch.zeros(w0), torch.zeros(w1, w0), torch.zeros(w1)
        Wh, bh = torch.zeros(1, w1), torch.ones(1)
        W0[0, 0] = W0[1, 1] = 1.0
        b0[:2] = 0.5
        for j in range(2, w0):  # distractors: sums of irrelevant inputs
            p, q = rng.choice(np.arange(2, d_in - 1), 2, replace=d_in - 3 < 2)
            W0[j, p] += 1.0
            W0[j, q] += 1.0
        W1[0, 0] = W1[0, 1] = -1.0
        b1[0] = 2.0
        Wh[0, 0] = -1.0
        for k in range(1, w1):  # unread: a distractor and branch A
            W1[k, int(rng.integers(2, w0))], W1[k, 0], b1[k] = 1.0, 1.0, -0.5
        self.branches = ({"in.0->h0.0", "h0.0->h1.0"}, {"in.1->h0.1", "h0.1->h1.0"})
        self._load(W0, b0, W1, b1, Wh, bh, device)

    def true_edges(self) -> set[str]:
        return self.branches[0] | self.branches[1] | {"h1.0->out.0"}

    def contrast(self, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Clean inputs with both branches on and corrupted inputs with both off (other inputs random)."""
        x, xc = self.sample(n, seed), self.sample(n, seed + 1)
        x[:, :2], xc[:, :2] = 1.0, 0.0
        return x, xc

    def target(self, x: Tensor) -> Tensor:
        return torch.maximum(x[:, 0], x[:, 1])[:, None]


class DenseMLP(HandMLP):
    """A *distributed* planted circuit: every circuit neuron of layer 0 reads every relevant input, every circuit
    neuron of layer 1 reads every circuit neuron of layer 0, with Gaussian weights, and the readout weights of the
    layer-1 circuit neurons span a decade (log-uniform in [0.1, 1]). Biases put each circuit neuron at the median
    of its pre-activation over all relevant-input patterns, so it is active on about half of them. Distractors as in
    :class:`PlantedMLP`: irrelevant inputs, layer-0 neurons reading every input but only unread layer-1 neurons, and
    unread layer-1 neurons (read out with ±``leak``). Reference circuit: every weight on a path input → circuit
    neuron → circuit neuron → output (``true_edges``); many of them carry small effects, comparable to the leak.
    """

    def __init__(self, d_in: int = 10, width: tuple[int, int] = (12, 10), n_relevant: int = 6, leak: float = 0.05,
                 seed: int = 0, device: str = "cpu"):
        super().__init__()
        w0, w1 = width
        if d_in < n_relevant + 2 or n_relevant < 2 or n_relevant > 12:
            raise ValueError(f"DenseMLP: need 2 <= n_relevant <= 12 and d_in >= n_relevant + 2 (got {d_in}, {n_relevant})")
        if w0 < 4 or w1 < 4:
            raise ValueError(f"DenseMLP: widths must be >= 4 (got {width})")
        if not leak >= 0:
            raise ValueError(f"DenseMLP: leak must be >= 0 (got {leak})")
        g = torch.Generator().manual_seed(seed)
        n0, n1 = w0 // 2, w1 // 2
        self.c0, self.c1 = list(range(n0)), list(range(n1))
        pats = torch.tensor(list(np.ndindex(*(2,) * n_relevant)), dtype=torch.float32)  # every relevant pattern
        W0, b0 = torch.zeros(w0, d_in), torch.zeros(w0)
        W0[:n0, :n_relevant] = torch.randn(n0, n_relevant, generator=g)
        b0[:n0] = -(pats @ W0[:n0, :n_relevant].T).median(0).values
        W0[n0:, :d_in - 1] = torch.randn(w0 - n0, d_in - 1, generator=g) / 2
        b0[n0:] = -0.5
        a0 = torch.relu(pats @ W0[:n0, :n_relevant].T + b0[:n0])  # circuit activations on every pattern
        W1, b1 = torch.zeros(w1, w0), torch.zeros(w1)
        W1[:n1, :n0] = torch.randn(n1, n0, generator=g)
        b1[:n1] = -(a0 @ W1[:n1, :n0].T).median(0).values
        W1[n1:, :] = torch.randn(w1 - n1, w0, generator=g) / 2
        W1[n1:, :n0] *= 0.5
        b1[n1:] = -0.5
        Wh = torch.zeros(1, w1)
        sign = torch.where(torch.rand(n1, generator=g) < 0.5, -1.0, 1.0)
        Wh[0, :n1] = sign * torch.exp(torch.empty(n1).uniform_(math.log(0.1), 0.0, generator=g))
        Wh[0, n1:] = leak * torch.where(torch.rand(w1 - n1, generator=g) < 0.5, -1.0, 1.0)
        self._true = self.weight_edges(
            torch.cat([W0[:n0], torch.zeros(w0 - n0, d_in)]),
            torch.cat([torch.cat([W1[:n1, :n0], torch.zeros(n1, w0 - n0)], 1), torch.zeros(w1 - n1, w0)]),
            torch.cat([Wh[:, :n1], torch.zeros(1, w1 - n1)], 1))
        self.n_relevant = n_relevant
        self._load(W0, b0, W1, b1, Wh, torch.zeros(1), device)

    def true_edges(self) -> set[str]:
        return set(self._true)


class RotatedMLP(HandMLP):
    """A *low-rank* planted circuit, written in a rotated basis of the first hidden layer.

    Features ``z = [f; d]``: ``f_j = x_p + x_q`` for pairs of the first ``n_relevant`` inputs (circuit) and
    ``d_j = x_r + x_s`` for pairs of irrelevant inputs (distractor), one per layer-0 neuron. Layer 0 stores
    ``h0 = R z + b`` with a random rotation ``R`` (``rotate=True``) or ``R = I``, and a bias large enough that every
    neuron is always active (the layer is linear). Layer 1 undoes the rotation: its circuit neurons compute
    ``relu(f_a + f_b − 2)``, its distractor neurons ``relu(d_a + d_b − 1)`` (unread), and one dead neuron reads the
    circuit features. With ``R = I`` the circuit is sparse in the neuron basis; rotated, every layer-0 neuron carries a
    mix of circuit and distractor features, every input→layer-0 edge from an irrelevant input has an effect of its
    own and the effects cancel only in sum. Reference circuit: the nonzero weights on the planted path in the
    neuron basis (``true_edges``: with ``rotate=True``, every edge from a relevant input and every edge into a
    circuit neuron of layer 1).
    """

    def __init__(self, d_in: int = 10, n_relevant: int = 4, n_features: int = 4, rotate: bool = True,
                 seed: int = 0, device: str = "cpu"):
        super().__init__()
        n_irr = d_in - 1 - n_relevant
        if n_relevant < 2 or n_irr < 2 or n_features < 2:
            raise ValueError(f"RotatedMLP: need n_relevant >= 2, d_in >= n_relevant + 3, n_features >= 2 "
                             f"(got {n_relevant}, {d_in}, {n_features})")
        rng = np.random.default_rng(seed)
        g = torch.Generator().manual_seed(seed)
        F_, w0 = n_features, 2 * n_features
        A = torch.zeros(w0, d_in)  # z = A x
        for j in range(F_):
            p, q = rng.choice(n_relevant, 2, replace=False)
            A[j, p] += 1.0
            A[j, q] += 1.0
            r, t = rng.choice(np.arange(n_relevant, n_relevant + n_irr), 2, replace=False)
            A[F_ + j, r] += 1.0
            A[F_ + j, t] += 1.0
        R = torch.linalg.qr(torch.randn(w0, w0, generator=g))[0] if rotate else torch.eye(w0)
        W0 = R @ A
        b0 = W0.clamp(max=0).sum(1).neg() + 0.5  # pre-activation >= 0.5 on every binary input: ReLU is the identity
        n1 = F_ // 2
        w1 = 2 * n1 + 1
        M, c = torch.zeros(w1, w0), torch.zeros(w1)  # layer-1 pre-activation = M z + c
        for k in range(n1):
            M[k, 2 * k] = M[k, 2 * k + 1] = 1.0
            c[k] = -2.0
            M[n1 + k, F_ + 2 * k] = M[n1 + k, F_ + 2 * k + 1] = 1.0
            c[n1 + k] = -1.0
        M[w1 - 1, 0] = M[w1 - 1, 1] = 1.0  # dead: reads circuit features, never fires, read out with weight 1
        c[w1 - 1] = -10.0
        W1 = M @ R.T  # z = R^T (h0 - b0)
        b1 = c - W1 @ b0
        Wh = torch.zeros(1, w1)
        Wh[0, :n1] = torch.tensor(rng.choice([-1.0, 1.0], n1) * rng.uniform(0.5, 1.5, n1), dtype=torch.float32)
        Wh[0, w1 - 1] = 1.0
        self.rotate, self.n_relevant, self.c1 = rotate, n_relevant, list(range(n1))
        circ = torch.zeros(w0, 1)
        circ[:F_] = 1.0
        W0c = R @ (A * circ)  # rows of R restricted to circuit features
        W1c = torch.zeros_like(W1)
        W1c[:n1] = (M[:n1] * circ.T) @ R.T
        self._true = self.weight_edges(W0c, W1c, Wh * (torch.arange(w1) < n1))
        self._load(W0, b0, W1, b1, Wh, torch.zeros(1), device)

    def true_edges(self) -> set[str]:
        return set(self._true)


# ---- attention-based ground truth ---------------------------------------------------------------------------------
def planted_transformer(
    d_vocab: int = 6, n_ctx: int = 8, n_heads: int = 2, beta: float = 6.0, gain: float = 10.0, leak: float = 0.0,
    seed: int = 0, device: str = "cpu",
) -> HookedTransformer:
    """An attention-only 2-layer ``HookedTransformer`` that copies the token after the marker (token ``d_vocab-1``)
    to the last position. Circuit: ``embed→A0.0.v`` (marker identity), ``A0.0→A1.0.k`` (previous token was the
    marker; K-composition), ``embed→A1.0.v`` (the token to copy), ``A1.0→end`` (written to the unembedded subspace).
    Heads ``A*.1..`` are distractors with random q/k/v reads that write to private dimensions. ``beta`` is the
    attention sharpness (large values saturate the softmax: gradients vanish), ``gain`` the output logit scale;
    ``leak > 0`` lets the layer-1 distractor heads write ``leak``-sized random vectors into the output subspace (small
    real effects that a method must rank below the planted edges).

    Residual layout: ``[tokens (V) | positions (T) | prev-is-marker (1) | output (V) | distractor dims (2 per head)]``.
    """
    V, T, H = d_vocab, n_ctx, n_heads
    if V < 3 or T < 4 or H < 1:
        raise ValueError(f"planted_transformer: need d_vocab >= 3, n_ctx >= 4, n_heads >= 1 (got {V}, {T}, {H})")
    tok, pos, mark, out = 0, V, V + T, V + T + 1
    dist = out + V
    n_dist = 2 * (H - 1) * 2
    D, dh = dist + n_dist, max(T, V)
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=D, d_head=dh, n_heads=H, d_vocab=V, d_vocab_out=V, n_ctx=T, attn_only=True,
        normalization_type=None, act_fn="relu", positional_embedding_type="standard", seed=seed, device=device,
        default_prepend_bos=False,
    )
    model = HookedTransformer(cfg)
    g = torch.Generator().manual_seed(seed)
    scale = math.sqrt(dh)  # TransformerLens divides scores by sqrt(d_head)
    params = {k for k, _ in model.named_parameters()}
    sd = {k: (torch.zeros_like(v) if k in params else v.clone()) for k, v in model.state_dict().items()}
    sd["embed.W_E"][torch.arange(V), tok + torch.arange(V)] = 1.0
    sd["pos_embed.W_pos"][torch.arange(T), pos + torch.arange(T)] = 1.0
    # A0.0: previous-token head, moves [token == marker] to the next position's `mark` dimension
    sd["blocks.0.attn.W_Q"][0, pos + torch.arange(T), torch.arange(T)] = beta * scale
    sd["blocks.0.attn.W_K"][0, pos + torch.arange(T - 1), torch.arange(1, T)] = 1.0
    sd["blocks.0.attn.W_V"][0, tok + V - 1, 0] = 1.0
    sd["blocks.0.attn.W_O"][0, 0, mark] = 1.0
    # A1.0: constant query, key = `mark`; copies the token it attends to into the output subspace
    sd["blocks.1.attn.b_Q"][0, 0] = beta * scale
    sd["blocks.1.attn.W_K"][0, mark, 0] = 1.0
    sd["blocks.1.attn.W_V"][0, tok + torch.arange(V), torch.arange(V)] = 1.0
    sd["blocks.1.attn.W_O"][0, torch.arange(V), out + torch.arange(V)] = 1.0
    sd["unembed.W_U"][out + torch.arange(V), torch.arange(V)] = gain
    # distractors: read everything an honest head could read, write to private dimensions nobody reads
    readable = [torch.arange(0, out), torch.arange(0, dist + 2 * (H - 1))]  # layer 0 / layer 1 reads
    for l in range(2):
        for h in range(1, H):
            r = readable[l]
            for w in ("W_Q", "W_K", "W_V"):
                sd[f"blocks.{l}.attn.{w}"][h, r, :2] = torch.randn(len(r), 2, generator=g)
            d0 = dist + 2 * (H - 1) * l + 2 * (h - 1)
            sd[f"blocks.{l}.attn.W_O"][h, 0, d0] = 1.0
            sd[f"blocks.{l}.attn.W_O"][h, 1, d0 + 1] = 1.0
            if l == 1 and leak:
                sd[f"blocks.{l}.attn.W_O"][h, :2, out:out + V] = leak * torch.randn(2, V, generator=g)
    sd = {k: v.to(device) for k, v in sd.items()}
    model.load_state_dict(sd)
    model.planted = {"marker": V - 1, "true_edges": {"embed->A0.0.v", "A0.0->A1.0.k", "embed->A1.0.v", "A1.0->end"}}
    return model


def marker_task(n: int, d_vocab: int = 6, n_ctx: int = 8, seed: int = 0, device: str = "cpu") -> tuple[Tensor, Tensor]:
    """Inputs for :func:`planted_transformer`: ``tokens [n, n_ctx]`` with one marker (``d_vocab-1``) at a random
    position in ``[1, n_ctx-2]``, the other tokens uniform over non-markers, and ``answer [n]`` = the token after it."""
    g = torch.Generator().manual_seed(seed)
    toks = torch.randint(0, d_vocab - 1, (n, n_ctx), generator=g)
    m = torch.randint(1, n_ctx - 1, (n,), generator=g)
    toks[torch.arange(n), m] = d_vocab - 1
    return toks.to(device), toks[torch.arange(n), m + 1].to(device)


def marker_hypothesis(model: HookedTransformer, wrong: bool = False):
    """Causal-scrubbing hypothesis for :func:`planted_transformer`.

    True: A1.0's output is the answer; its key input comes from A0.0, which encodes the marker position; its value
    input is the embedding, which matters through (marker position, answer); A0.0's value input is the embedding,
    which matters through the marker position. ``wrong=True``: the same story but the value path only needs the
    answer token, not where it sits (a plausible, false simplification).
    """
    from rlinterp.interp.scrubbing import Hypothesis

    mk = model.planted["marker"]

    def mpos(t: Tensor) -> Tensor:
        return (t == mk).int().argmax(-1)

    def answer(t: Tensor) -> Tensor:
        return t[torch.arange(t.shape[0]), mpos(t) + 1]

    def pos_and_answer(t: Tensor) -> Tensor:
        return torch.stack([mpos(t), answer(t)], -1)

    feats = {"A1.0": answer, "A0.0": mpos, "embed->A0.0.v": mpos,
             "embed->A1.0.v": answer if wrong else pos_and_answer}
    return Hypothesis(feats, set(model.planted["true_edges"]))
