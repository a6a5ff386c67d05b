"""Captum wrappers by hook name: completeness of integrated gradients on the planted models, known answers."""
import pytest
import torch

from rlinterp.models.planted import PlantedMLP, marker_task, planted_transformer
from rlinterp.interp.captum import feature_ablation, integrated_gradients, layer_conductance, neuron_conductance



def test_ig_completeness_planted_mlp():
    m = PlantedMLP()
    x = m.sample(16, seed=1)
    # ReLU kinks: the midpoint rule integrates the piecewise-constant gradient exactly between kinks
    attr, delta = integrated_gradients(m, x, fn=lambda y: y[:, 0], n_steps=256, method="riemann_middle")
    assert attr.shape == x.shape
    assert delta.abs().max() < 1e-3
    with torch.no_grad():
        torch.testing.assert_close(attr.sum(-1), m(x)[:, 0] - m(torch.zeros_like(x))[:, 0], atol=1e-3, rtol=0)


def test_ig_completeness_planted_transformer_at_hook():
    m = planted_transformer()
    toks, ans = marker_task(16, seed=1)
    attr, delta = integrated_gradients(m, toks, fn=lambda lg: lg[:, -1], target=ans, hook="hook_embed",
                                       baselines=torch.zeros_like(toks), n_steps=32)
    assert attr.shape == (16, toks.shape[1], m.cfg.d_model)
    assert delta.abs().max() < 1e-3
    # the answer logit is attributed to the marker and the marked token, the two positions the circuit reads
    # (unless the answer is the baseline token 0 itself)
    mp = (toks == m.planted["marker"]).int().argmax(-1)
    top2 = attr.sum(-1).topk(2, dim=-1).indices.sort(-1).values
    ok = ans != 0
    assert ok.sum() > 8
    assert torch.equal(top2[ok], torch.stack([mp, mp + 1], -1)[ok])


def test_conductance_and_ablation_known_answers():
    m = PlantedMLP()
    x = m.sample(32, seed=2)
    cond, delta = layer_conductance(m, x, "mlp.1.hook_post", fn=lambda y: y[:, 0], n_steps=256)
    assert cond.shape == (32, m.width[1])
    dead = m.dead[0]
    assert torch.all(cond[:, dead] == 0)  # a neuron that never fires conducts nothing
    nc = neuron_conductance(m, x, "mlp.0.hook_post", m.c0[0], fn=lambda y: y[:, 0], n_steps=64)
    p, q = m.and_pairs[m.c0[0]]
    others = [i for i in range(m.d_in) if i not in (p, q, m.d_in - 1)]
    assert torch.all(nc[:, others] == 0)  # an AND neuron only conducts through its two inputs (and the bias input)
    # feature ablation of the output layer of a linear readout: out = Σ_k w_k b_k, ablating b_k removes w_k b_k
    fa = feature_ablation(m, x, fn=lambda y: y[:, 0], hook="mlp.1.hook_post")
    with torch.no_grad():
        _, cache = m.run_with_cache(x)
    torch.testing.assert_close(fa, cache["mlp.1.hook_post"] * m.head.weight[0].detach(), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown hook"):
        layer_conductance(m, x, "mlp.9.hook_post")
    with pytest.raises(ValueError, match="float"):
        neuron_conductance(planted_transformer(), marker_task(4)[0], "hook_embed", 0)
