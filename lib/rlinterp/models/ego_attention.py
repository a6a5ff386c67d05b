"""Q-networks for ``intersection-v0``: the ego-attention network of Leurent & Mercat (2019) and an MLP baseline.

Both are TransformerLens ``HookedRootModule``s with a ``HookPoint`` on every activation, so ``run_with_cache`` and
``run_with_hooks`` work on them like on any other network of this project.

Ego-attention network (rl-agents ``EgoAttentionNetwork`` with the intersection config ``ego_attention_2h.json``)::

    obs [B, 15, 7] ── row 0 ──> ego_embed   7→64→64 (ReLU, ReLU) ─> e_ego    [B, 64]   ──┐ query (ego only)
                   └ rows 1: ─> others_embed 7→64→64 (ReLU, ReLU) ─> e_others [B, 14, 64] │ keys/values over
                                                                                        │ [ego, others] (15)
    attn: q = W_Q e_ego, k = W_K e_all, v = W_V e_all (no biases), split into 2 heads of d_head = 32;
          scores = q·k / √d_head, masked where presence < 0.5; pattern = softmax over the 15 vehicles;
          z_h = Σ_j pattern_hj v_hj; combine = W_O [z_1; z_2] (no bias)
    resid = (combine + e_ego) / 2  ─>  mlp 64→64→64 (ReLU, ReLU)  ─>  head 64→3  ─>  Q(SLOWER, IDLE, FASTER)

34,243 parameters (the paper's 3.4e4). The MLP baseline flattens the observation (105 inputs) into a
[128, 128] ReLU MLP and a linear head: 30,467 parameters (the paper's 3.0e4 for its FCN).

Hook points (names as in ``model.hook_dict``):

* ``hook_obs`` [B, 15, 7]
* ``ego_embed.{0,1}.hook_pre|hook_post`` [B, 64], ``ego_embed.hook_out`` [B, 64]
* ``others_embed.{0,1}.hook_pre|hook_post`` [B, 14, 64], ``others_embed.hook_out`` [B, 14, 64]
* ``attn.hook_q`` [B, H, d_head], ``attn.hook_k`` / ``attn.hook_v`` [B, 15, H, d_head]
* ``attn.hook_attn_scores`` [B, H, 15] (scaled and masked: absent vehicles at -1e9), ``attn.hook_pattern`` [B, H, 15]
* ``attn.hook_z`` [B, H, d_head] (per-head weighted values), ``attn.hook_result`` [B, H, 64] (each head's
  contribution to the combine output; their sum over heads is ``attn.hook_combine`` [B, 64])
* ``hook_resid`` [B, 64] = (combine + ego embedding) / 2
* ``mlp.{0,1}.hook_pre|hook_post`` [B, 64], ``hook_q_values`` [B, 3]

MLP baseline: ``hook_obs`` [B, 15, 7], ``mlp.{0,1}.hook_pre|hook_post`` [B, 128], ``hook_q_values`` [B, 3].

Vehicle index 0 is always the ego vehicle (key/value position 0 in the attention).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn

with warnings.catch_warnings():  # TransformerLens 3.x warns about this (project-standard) import path
    warnings.simplefilter("ignore", DeprecationWarning)
    from transformer_lens.hook_points import HookedRootModule, HookPoint

from rlinterp.models.layers import MLP

N_VEHICLES, N_FEATURES, N_ACTIONS = 15, 7, 3
MASK_VALUE = -1e9  # score of an absent vehicle (finite, as in rl-agents, so an all-masked row stays defined)


def _init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases (rl-agents' default ``reset_type: XAVIER``)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class EgoAttention(nn.Module):
    """Multi-head attention with a single query (the ego vehicle) over all vehicles, ego included."""

    def __init__(self, d_model: int = 64, n_heads: int = 2):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.W_Q = nn.Linear(d_model, d_model, bias=False)  # rl-agents: query_ego
        self.W_K = nn.Linear(d_model, d_model, bias=False)  # key_all
        self.W_V = nn.Linear(d_model, d_model, bias=False)  # value_all
        self.W_O = nn.Linear(d_model, d_model, bias=False)  # attention_combine
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_attn_scores, self.hook_pattern, self.hook_z = HookPoint(), HookPoint(), HookPoint()
        self.hook_result, self.hook_combine = HookPoint(), HookPoint()

    def forward(self, ego: Tensor, all_: Tensor, present: Tensor) -> Tensor:
        """ego [B, D], all_ [B, N, D] (ego first), present [B, N] bool -> combine [B, D]."""
        B, N, _ = all_.shape
        H, dh = self.n_heads, self.d_head
        q = self.hook_q(self.W_Q(ego).view(B, H, dh))  # [B, H, dh]
        k = self.hook_k(self.W_K(all_).view(B, N, H, dh))  # [B, N, H, dh]
        v = self.hook_v(self.W_V(all_).view(B, N, H, dh))  # [B, N, H, dh]
        scores = torch.einsum("bhd,bnhd->bhn", q, k) / math.sqrt(dh)  # [B, H, N]
        scores = scores.masked_fill(~present[:, None, :], MASK_VALUE)
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(scores.softmax(dim=-1))  # [B, H, N]
        z = self.hook_z(torch.einsum("bhn,bnhd->bhd", pattern, v))  # [B, H, dh]
        W_O = self.W_O.weight.view(self.d_model, H, dh)  # [D_out, H, dh]
        head_out = self.hook_result(torch.einsum("bhd,ohd->bho", z, W_O))  # [B, H, D]
        return self.hook_combine(head_out.sum(dim=1))  # [B, D]


class EgoAttentionNetwork(HookedRootModule):
    """Ego-attention Q-network: obs [B, 15, 7] -> Q-values [B, 3] (see the module docstring)."""

    def __init__(self, d_model: int = 64, n_heads: int = 2, embed_layers: tuple[int, ...] = (64, 64),
                 mlp_layers: tuple[int, ...] = (64, 64), n_features: int = N_FEATURES, n_actions: int = N_ACTIONS,
                 device: str = "cpu"):
        super().__init__()
        if embed_layers[-1] != d_model:
            raise ValueError(f"the embedding output {embed_layers[-1]} must equal d_model={d_model}")
        self.config = dict(kind="ego_attention", d_model=d_model, n_heads=n_heads, embed_layers=list(embed_layers),
                           mlp_layers=list(mlp_layers), n_features=n_features, n_actions=n_actions)
        self.hook_obs = HookPoint()
        self.ego_embed = MLP(n_features, list(embed_layers))
        self.others_embed = MLP(n_features, list(embed_layers))
        self.attn = EgoAttention(d_model, n_heads)
        self.hook_resid = HookPoint()
        self.mlp = MLP(d_model, list(mlp_layers))
        self.head = nn.Linear(mlp_layers[-1], n_actions)
        self.hook_q_values = HookPoint()
        self.apply(_init)
        self.setup()
        self.to(device)

    def forward(self, obs: Tensor) -> Tensor:
        """obs [B, 15, 7] (or [15, 7]) -> Q-values [B, 3] (or [3])."""
        single = obs.dim() == 2
        obs = self.hook_obs(obs[None] if single else obs)  # [B, N, F]
        present = obs[..., 0] >= 0.5  # [B, N]; presence < 0.5 is masked
        e_ego = self.ego_embed(obs[:, 0])  # [B, D]
        e_others = self.others_embed(obs[:, 1:])  # [B, N-1, D]
        e_all = torch.cat([e_ego[:, None], e_others], dim=1)  # [B, N, D]
        combine = self.attn(e_ego, e_all, present)  # [B, D]
        resid = self.hook_resid((combine + e_ego) / 2)  # [B, D]
        q_values = self.hook_q_values(self.head(self.mlp(resid)))  # [B, A]
        return q_values[0] if single else q_values

    def graph(self, resid_to_q: bool = False, neurons: bool = True):
        """The computational graph for circuit discovery and causal scrubbing (:mod:`rlinterp.interp.graph`).

        Sources: the ego embedding E and each head's output A<h> (what flows into the residual R = (combine + E)/2);
        then R → output-MLP neurons → Q-values (``neurons``; else one node per MLP layer), or R → Q through the whole
        output MLP (``resid_to_q``). The heads are sources, not edges: their q/k/v inputs are split per head and pass
        through a softmax, so they are not sums of per-source contributions (attention to single vehicles is tested
        by masking instead, :func:`rlinterp.interp.editing.mask_attention`).
        """
        from rlinterp.envs.highway import ACTIONS
        from rlinterp.interp.graph import EdgeGroup, Graph, Node

        H = self.attn.n_heads
        E = [Node("E", "ego_embed.hook_out", (), 0, "E")]
        heads = [Node(f"A{h}", "attn.hook_result", (h,), 0, f"A{h}", 1) for h in range(H)]
        R = [Node("R", "hook_resid", (), 1, "R")]
        groups = [EdgeGroup("ego_embed.hook_out", "hook_resid", E, R, lambda a: a.unsqueeze(-2) / 2, dst_unsqueeze=True),
                  EdgeGroup("attn.hook_result", "hook_resid", heads, R, lambda a: a / 2, dst_unsqueeze=True)]
        if resid_to_q:
            Qn = [Node("Q", "hook_q_values", (), 2, "Q")]
            readout = lambda a: self.head(self.mlp(a)).unsqueeze(-2)
            return Graph(groups + [EdgeGroup("hook_resid", "hook_q_values", R, Qn, readout, dst_unsqueeze=True)])
        W0, W1 = self.mlp.get_submodule("0").linear.weight.detach(), self.mlp.get_submodule("1").linear.weight.detach()
        Wh = self.head.weight.detach()
        if not neurons:
            M0, M1 = Node("M0", "mlp.0.hook_pre", (), 2, "M0"), Node("M1", "mlp.1.hook_pre", (), 3, "M1")
            M0o, M1o = Node("M0", "mlp.0.hook_post", (), 2, "M0"), Node("M1", "mlp.1.hook_post", (), 3, "M1")
            lin = lambda W: lambda a: (a @ W.T).unsqueeze(-2)
            return Graph(groups + [
                EdgeGroup("hook_resid", "mlp.0.hook_pre", R, [M0], lin(W0), dst_unsqueeze=True),
                EdgeGroup("mlp.0.hook_post", "mlp.1.hook_pre", [M0o], [M1], lin(W1), dst_unsqueeze=True),
                EdgeGroup("mlp.1.hook_post", "hook_q_values", [M1o], [Node("Q", "hook_q_values", (), 4, "Q")], lin(Wh),
                          dst_unsqueeze=True)])
        m0 = [Node(f"M0.{j}", "mlp.0.hook_pre", (j,), 2, f"M0.{j}") for j in range(W0.shape[0])]
        m0_out = [Node(f"M0.{j}", "mlp.0.hook_post", (j,), 2, f"M0.{j}") for j in range(W0.shape[0])]
        m1 = [Node(f"M1.{j}", "mlp.1.hook_pre", (j,), 3, f"M1.{j}") for j in range(W1.shape[0])]
        m1_out = [Node(f"M1.{j}", "mlp.1.hook_post", (j,), 3, f"M1.{j}") for j in range(W1.shape[0])]
        q = [Node(f"Q.{a}", "hook_q_values", (i,), 4, f"Q.{a}") for i, a in enumerate(ACTIONS)]
        groups += [EdgeGroup("hook_resid", "mlp.0.hook_pre", R, m0, lambda a: (a @ W0.T).unsqueeze(-2), "neuron"),
                   EdgeGroup("mlp.0.hook_post", "mlp.1.hook_pre", m0_out, m1, lambda a: a.unsqueeze(-1) * W1.T, "neuron"),
                   EdgeGroup("mlp.1.hook_post", "hook_q_values", m1_out, q, lambda a: a.unsqueeze(-1) * Wh.T, "neuron")]
        return Graph(groups)


class MLPNetwork(HookedRootModule):
    """MLP baseline Q-network: flattened obs [B, 105] -> [128, 128] ReLU -> Q-values [B, 3]."""

    def __init__(self, layers: tuple[int, ...] = (128, 128), n_vehicles: int = N_VEHICLES,
                 n_features: int = N_FEATURES, n_actions: int = N_ACTIONS, device: str = "cpu"):
        super().__init__()
        self.config = dict(kind="mlp", layers=list(layers), n_vehicles=n_vehicles, n_features=n_features,
                           n_actions=n_actions)
        self.hook_obs = HookPoint()
        self.mlp = MLP(n_vehicles * n_features, list(layers))
        self.head = nn.Linear(layers[-1], n_actions)
        self.hook_q_values = HookPoint()
        self.apply(_init)
        self.setup()
        self.to(device)

    def forward(self, obs: Tensor) -> Tensor:
        """obs [B, 15, 7] (or [15, 7]) -> Q-values [B, 3] (or [3])."""
        single = obs.dim() == 2
        obs = self.hook_obs(obs[None] if single else obs)  # [B, N, F]
        q_values = self.hook_q_values(self.head(self.mlp(obs.flatten(1))))  # [B, A]
        return q_values[0] if single else q_values


NETWORKS = {"ego_attention": EgoAttentionNetwork, "mlp": MLPNetwork}


def build_network(config: dict[str, Any], device: str = "cpu") -> HookedRootModule:
    """A network from its ``config`` dict (``network.config``; ``kind`` picks the class)."""
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in NETWORKS:
        raise ValueError(f"unknown network kind {kind!r}; choose one of {sorted(NETWORKS)}")
    for key in ("embed_layers", "mlp_layers", "layers"):
        if key in config:
            config[key] = tuple(config[key])
    return NETWORKS[kind](**config, device=device)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
