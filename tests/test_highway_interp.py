"""Interpretability helpers of the ego-attention network (chapters highway/02 and 03) on the shipped agent."""
import math

import pytest
import torch
from rlinterp import artifacts
from rlinterp.studies import highway as hws
from rlinterp.interp import captum as at
from rlinterp.interp.lens import logit_lens


@pytest.fixture(scope="module")
def model():
    return artifacts.load("highway/ego_attention")


@pytest.fixture(scope="module")
def data(model):
    return hws.collect_episodes(model, 2, progress=False)


def test_collect_episodes_shapes(data):
    T = len(data["obs"])
    assert data["obs"].shape == (T, 15, 7) and T >= 2
    assert data["episode"].shape == data["step"].shape == data["action"].shape == (T,)
    assert (data["obs"][:, 0, 0] == 1).all()  # the ego is always present
    assert len(data["returns"]) == 2
    with pytest.raises(ValueError):
        hws.collect_episodes(None, 0)


def test_local_affine_is_exact(model, data):
    x = data["obs"][:, 1:].reshape(-1, 7)
    J, c = hws.local_affine(model.others_embed, x)
    assert J.shape == (len(x), 64, 7) and c.shape == (len(x), 64)
    torch.testing.assert_close(torch.einsum("boi,bi->bo", J, x) + c, model.others_embed(x).detach(), atol=1e-5, rtol=0)
    # Jacobian equals autograd's
    x0 = data["obs"][0, 0]
    jac = torch.autograd.functional.jacobian(model.ego_embed, x0)
    torch.testing.assert_close(hws.local_affine(model.ego_embed, x0[None])[0][0], jac, atol=1e-5, rtol=0)


def test_qk_ov_shapes_and_scores(model, data):
    obs = data["obs"]
    H = model.attn.n_heads
    J = hws.embedding_maps(model, obs)
    R = hws.readout_map(model, obs)
    assert J["ego"].shape == J["others"].shape == (64, 7) and R.shape == (3, 64)
    assert hws.qk_circuit(model).shape == (H, 64, 64)
    assert hws.qk_circuit(model, J["ego"], J["others"]).shape == (H, 7, 7)
    assert hws.ov_circuit(model).shape == (H, 64, 64)
    assert hws.ov_circuit(model, J["others"], R).shape == (H, 3, 7)
    # the QK circuit reproduces the scores from the embeddings (exact: no nonlinearity between them)
    with torch.no_grad():
        _, cache = model.run_with_cache(obs)
        e_all = torch.cat([cache["ego_embed.hook_out"][:, None], cache["others_embed.hook_out"]], 1)
        scores = torch.einsum("bd,hde,bne->bhn", cache["ego_embed.hook_out"], hws.qk_circuit(model), e_all)
        present = (obs[..., 0] >= 0.5)[:, None].expand(-1, H, -1)
        torch.testing.assert_close(scores[present], cache["attn.hook_attn_scores"][present], atol=1e-4, rtol=1e-5)
        # the OV circuit reproduces each head's output from the pattern-weighted embeddings
        mixed = torch.einsum("bhn,bne->bhe", cache["attn.hook_pattern"], e_all)
        head_out = torch.einsum("hoe,bhe->bho", hws.ov_circuit(model), mixed)
        torch.testing.assert_close(head_out, cache["attn.hook_result"], atol=1e-4, rtol=1e-5)
        # the averaged readout is the exact Jacobian where every observation shares one ReLU pattern (one obs)
        r = cache["hook_resid"][:1]
        jac = torch.autograd.functional.jacobian(lambda v: model.head(model.mlp(v)), r[0])
    torch.testing.assert_close(hws.readout_map(model, obs[:1]), jac, atol=1e-5, rtol=0)


def test_logit_lens_final_layer_is_q(model, data):
    obs = data["obs"]
    lens = logit_lens(model, obs, hooks=["mlp.1.hook_post"], readout=model.head)
    torch.testing.assert_close(lens["mlp.1.hook_post"], model(obs).detach())


def test_ig_completeness(model, data):
    m64 = artifacts.load("highway/ego_attention").double()
    x = data["obs"][3:4].double()
    base = x.clone()
    base[..., 1:] = 0.0  # same vehicles present, kinematics at the origin: the path never crosses the mask
    attr, delta = at.integrated_gradients(m64, x, target=2, baselines=base, n_steps=16384,
                                          method="riemann_trapezoid", internal_batch_size=16384)
    assert attr.shape == x.shape
    assert delta.abs().max().item() < 1e-3
    with torch.no_grad():
        dq = (m64(x) - m64(base))[0, 2].item()
    assert math.isclose(attr.sum().item(), dq, abs_tol=1e-3)


def test_single_vehicle_scenes(data):
    ego = data["obs"][0, 0]
    rel = torch.tensor([[10.0, 0.0], [0.0, -20.0]])
    sc = hws.single_vehicle_scenes(ego, rel, torch.tensor([0.0, math.pi / 2]), torch.tensor([5.0, 8.0]))
    assert sc.shape == (2, 15, 7)
    assert (sc[:, 0] == ego).all() and (sc[:, 1, 0] == 1).all() and (sc[:, 2:] == 0).all()
    torch.testing.assert_close(sc[0, 1, 1:3], (ego[1:3] + torch.tensor([0.1, 0.0])).clamp(-1, 1))
    torch.testing.assert_close(sc[1, 1, 3:5], torch.tensor([0.0, 0.4]), atol=1e-6, rtol=0)
    torch.testing.assert_close(sc[:, 1, 5] ** 2 + sc[:, 1, 6] ** 2, torch.ones(2))
    with pytest.raises(ValueError):
        hws.single_vehicle_scenes(torch.zeros(7), rel, torch.zeros(2), torch.zeros(2))


def test_vehicle_table_geometry_and_weights():
    obs = torch.zeros(2, 15, 7)
    obs[:, 0] = torch.tensor([1.0, 0.0, 0.0, 0.25, 0.0, 1.0, 0.0])  # ego at the origin, 5 m/s along +x, heading +x
    obs[0, 1] = torch.tensor([1.0, 0.2, 0.0, 0.0, 0.0, 1.0, 0.0])  # 20 m ahead, standing: closing at 5 m/s
    obs[0, 3] = torch.tensor([1.0, 0.0, -0.1, 0.0, 0.5, 0.0, 1.0])  # 10 m to the right, driving towards the ego path at 10 m/s
    obs[1, 2] = torch.tensor([1.0, -0.3, 0.4, 0.0, 0.0, 1.0, 0.0])  # 50 m behind-left
    pattern = torch.softmax(torch.randn(2, 2, 15, generator=torch.Generator().manual_seed(0)), -1)
    V = hws.vehicle_table(obs, pattern)
    assert list(V.columns) == ["obs", "vehicle", "distance", "closing", "speed", "ahead", "nearest", "w0", "w1"]
    assert V[["obs", "vehicle"]].values.tolist() == [[0, 1], [0, 3], [1, 2]]
    assert V.distance.tolist() == pytest.approx([20.0, 10.0, 50.0], abs=1e-5)
    assert V.closing.tolist() == pytest.approx([5.0, 10.0, -5 * 0.6], abs=1e-5)
    assert V.speed.tolist() == pytest.approx([0.0, 10.0, 0.0], abs=1e-5)
    assert V.ahead.tolist() == [True, False, False] and V.nearest.tolist() == [False, True, True]
    assert V.w1.tolist() == pytest.approx([float(pattern[0, 1, 1]), float(pattern[0, 1, 3]), float(pattern[1, 1, 2])])
    with pytest.raises(ValueError, match="obs"):
        hws.vehicle_table(obs[:, :10], pattern)
    with pytest.raises(ValueError, match="pattern"):
        hws.vehicle_table(obs, pattern[:1])


def test_random_scenes_variables_match_the_scenes(data):
    import numpy as np
    obs = data["obs"]
    ego = obs[0, 0]
    scenes, var = hws.random_scenes(50, np.random.default_rng(3), ego=ego)
    assert scenes.shape == (50, 15, 7) and (scenes[:, 0] == ego).all() and (scenes[:, 2:] == 0).all()
    assert list(var.columns) == ["distance", "closing speed", "other speed", "ahead", "crossing", "ego speed"]
    assert var.distance.between(5, 60).all() and var["other speed"].between(0, 10).all()
    rel = (scenes[:, 1, 1:3] - scenes[:, 0, 1:3]).double().numpy() * 100  # exact where the position is not clipped
    inside = (scenes[:, 1, 1:3].abs() < 1).all(1).numpy()
    assert inside.sum() > 10
    np.testing.assert_allclose(np.linalg.norm(rel, axis=1)[inside], var.distance[inside], rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(scenes[:, 1, 3:5].double().numpy() * 20, axis=1), var["other speed"],
                               atol=1e-4)
    np.testing.assert_allclose(var["ego speed"], float(ego[3:5].norm() * 20), rtol=1e-6)
    assert var.crossing.between(0, 1 + 1e-9).all() and var.ahead.between(-1 - 1e-9, 1 + 1e-9).all()
    # the same generator state gives the same scenes; ego rows drawn from real observations
    s2, v2 = hws.random_scenes(50, np.random.default_rng(3), ego=ego)
    assert torch.equal(s2, scenes) and v2.equals(var)
    se, _ = hws.random_scenes(20, np.random.default_rng(4), obs=obs)
    assert all(any(torch.equal(row, o) for o in obs[:, 0]) for row in se[:, 0])
    for kw, msg in [({}, "exactly one"), ({"ego": ego, "obs": obs}, "exactly one"), ({"obs": obs[0]}, "obs")]:
        with pytest.raises(ValueError, match=msg):
            hws.random_scenes(5, np.random.default_rng(0), **kw)
    with pytest.raises(ValueError, match="n"):
        hws.random_scenes(0, np.random.default_rng(0), ego=ego)
