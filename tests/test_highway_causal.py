"""Editing hooks (rlinterp.interp.editing) on planted/small hooked models and on the shipped ego-attention agent."""
import numpy as np
import pytest
import torch
from rlinterp.models.ego_attention import EgoAttentionNetwork
from rlinterp.models.planted import PlantedMLP
from rlinterp.interp.editing import (
    ablate,
    edited,
    mask_attention,
    mean_difference,
    run_edited,
    steer,
)


@pytest.fixture(scope="module")
def planted():
    model = PlantedMLP(d_in=8, width=(8, 8), n_relevant=4, leak=0.3, seed=0)
    x = model.sample(256, seed=1)
    with torch.no_grad():
        y, cache = model.run_with_cache(x)
    return model, x, y, cache


def test_zero_and_mean_ablation_of_a_neuron_are_analytic(planted):
    model, x, y, cache = planted
    b = cache["mlp.1.hook_post"]  # [n, 8]
    w = model.head.weight[0].detach()  # [8]
    for k in range(b.shape[1]):
        zero = run_edited(model, x, [ablate("mlp.1.hook_post", k, "zero", model=model)])
        torch.testing.assert_close(zero[:, 0], y[:, 0] - w[k] * b[:, k])
        mean = run_edited(model, x, [ablate("mlp.1.hook_post", k, "mean", reference=b)])
        torch.testing.assert_close(mean[:, 0], y[:, 0] - w[k] * (b[:, k] - b[:, k].mean()))
    several = run_edited(model, x, [ablate("mlp.1.hook_post", [[0, 2]], "value", value=1.0)])
    torch.testing.assert_close(several[:, 0], y[:, 0] + w[0] * (1 - b[:, 0]) + w[2] * (1 - b[:, 2]))


def test_hooks_are_removed_after_the_context_manager(planted):
    model, x, y, _ = planted
    with edited(model, [ablate("mlp.1.hook_post", None, "zero")]) as m, torch.no_grad():
        inside = m(x)
    torch.testing.assert_close(inside, model.head.bias.detach().expand_as(inside))
    with pytest.raises(RuntimeError), edited(model, [steer("mlp.1.hook_post", torch.ones(8), 5.0)]):
        raise RuntimeError("boom")
    assert all(len(hp._forward_hooks) == 0 for hp in model.hook_dict.values())
    with torch.no_grad():
        torch.testing.assert_close(model(x), y)


def test_steering_changes_the_output_as_predicted(planted):
    model, x, y, cache = planted
    b = cache["mlp.1.hook_post"]
    d = mean_difference(b[y[:, 0] > 0], b[y[:, 0] <= 0])
    w = model.head.weight[0].detach()
    for alpha in (-1.0, 0.5, 2.0):
        out = run_edited(model, x, [steer("mlp.1.hook_post", d, alpha)])
        torch.testing.assert_close(out[:, 0], y[:, 0] + alpha * (w @ d))
    assert float(w @ d) > 0  # the direction from low- to high-output inputs raises the output
    torch.testing.assert_close(mean_difference(b, b, normalize=False), torch.zeros(8))
    assert float(mean_difference(b[:5], b[5:], normalize=True).norm()) == pytest.approx(1.0)


def test_head_ablation_on_an_ego_attention_network():
    torch.manual_seed(0)
    net = EgoAttentionNetwork()
    x = torch.rand(16, 15, 7) * 2 - 1
    x[..., 0] = (torch.rand(16, 15) > 0.3).float()
    x[:, 0, 0] = 1.0
    with torch.no_grad():
        _, cache = net.run_with_cache(x)
        for h in range(net.attn.n_heads):
            out = run_edited(net, x, [ablate("attn.hook_result", h, "zero", trailing=1, model=net)])
            resid = (cache["attn.hook_combine"] - cache["attn.hook_result"][:, h] + cache["ego_embed.hook_out"]) / 2
            torch.testing.assert_close(out, net.head(net.mlp(resid)))


def test_bad_parameters_raise_value_errors(planted):
    model, *_ = planted
    with pytest.raises(ValueError, match="mode"):
        ablate("mlp.1.hook_post", 0, "median")
    with pytest.raises(ValueError, match="reference"):
        ablate("mlp.1.hook_post", 0, "mean")
    with pytest.raises(ValueError, match="unknown hook"):
        ablate("mlp.7.hook_post", 0, model=model)
    with pytest.raises(ValueError, match="at least one"):
        mean_difference(torch.zeros(0, 3), torch.zeros(2, 3))


def test_masking_all_other_vehicles_leaves_only_ego_attention():
    from rlinterp import artifacts
    from rlinterp.learners import ddqn
    from rlinterp.envs import highway as hw
    from rlinterp.studies import highway as hws

    model = artifacts.load("highway/ego_attention")
    env = hw.make_env(123)
    ep = hws.run_episode(env, ddqn.greedy_policy(model), 123, max_steps=5)
    env.close()
    x = torch.tensor(np.array(ep["obs"]), dtype=torch.float32)
    assert int((x[:, 1:, 0] > 0.5).sum()) > 0  # there are other vehicles to mask
    others = torch.ones(15, dtype=torch.bool)
    others[0] = False
    with torch.no_grad(), edited(model, [mask_attention("attn.hook_attn_scores", others, model=model)]):
        _, cache = model.run_with_cache(x)
    pattern = cache["attn.hook_pattern"]  # [B, H, 15]
    onehot = torch.zeros_like(pattern)
    onehot[..., 0] = 1.0
    torch.testing.assert_close(pattern, onehot)
    # restricted to head 1: head 0 keeps its normal pattern
    with torch.no_grad():
        _, clean = model.run_with_cache(x)
        with edited(model, [mask_attention("attn.hook_attn_scores", others, heads=[1])]):
            _, c1 = model.run_with_cache(x)
    torch.testing.assert_close(c1["attn.hook_pattern"][:, 0], clean["attn.hook_pattern"][:, 0])
    torch.testing.assert_close(c1["attn.hook_pattern"][:, 1], onehot[:, 1])
