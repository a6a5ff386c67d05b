"""Eigenfilters of bilinear layers (rlinterp.interp.bilinear)."""
import pytest
import torch

from rlinterp.interp import bilinear as B
from rlinterp.models.impala import BilinearConv, BilinearDense


def _rand(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    for p in layer.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.5
    return layer


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_quadratic_form_reproduces_the_readout(kind):
    layer = _rand(BilinearConv(3, 5, 3) if kind == "conv" else BilinearDense(7, 5))
    u = torch.randn(5, generator=torch.Generator().manual_seed(1))
    x = torch.randn((4, 3, 6, 6) if kind == "conv" else (4, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = layer(x).double()
        if kind == "dense":  # BilinearDense normalises its input first: the form is one of what its maps read
            x = layer.norm(x)
    readout = torch.einsum("nohw,o->nhw", y, u.double()) if kind == "conv" else y @ u.double()
    Q = B.interaction_matrix(layer, u)
    assert torch.allclose(Q, Q.T)
    P = B.input_patches(layer, x)
    quad = torch.einsum("...i,ij,...j->...", P, Q, P)
    assert torch.allclose(quad, readout, atol=1e-6)
    eig = B.eigenfilters(layer, u)
    total = B.eigen_contributions(layer, x, eig).sum(1)
    assert torch.allclose(total, readout, atol=1e-6)
    # sorted by |λ|, unit vectors, reconstruction of Q
    assert (eig.values.abs()[:-1] >= eig.values.abs()[1:] - 1e-12).all()
    assert torch.allclose(eig.vectors.norm(dim=1), torch.ones(len(eig.values), dtype=torch.float64))
    assert torch.allclose(eig.vectors.T @ torch.diag(eig.values) @ eig.vectors, Q, atol=1e-9)
    d = 3 * 3 * 3 if kind == "conv" else 7
    assert eig.vectors.shape == (d + 1, d + 1)
    assert eig.filters.shape == ((d + 1, 3, 3, 3) if kind == "conv" else (d + 1, 7))
    top = B.eigenfilters(layer, u, top=2)
    assert torch.equal(top.values, eig.values[:2])
    part = B.eigen_contributions(layer, x, eig, which=[0, 1]).sum(1)
    assert torch.allclose(part, B.eigen_contributions(layer, x, top).sum(1))


def test_planted_eigenfilter():
    """One output y_0 = (x_1)(x_1): along u = e_0 the form is x_1², a single eigenfilter e_1 with λ = 1."""
    layer = BilinearDense(3, 2)
    with torch.no_grad():
        for lin in (layer.linear_a, layer.linear_b):
            lin.weight.zero_(), lin.bias.zero_()
            lin.weight[0, 1] = 1.0
            lin.weight[1, 2] = 5.0  # another output, ignored by u
    eig = B.eigenfilters(layer, [1.0, 0.0], top=1)
    assert eig.values.item() == pytest.approx(1.0)
    assert torch.allclose(eig.vectors[0], torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    assert eig.bias[0].item() == 0.0
    assert B.eigenfilters(layer, [0.0, 1.0], top=1).values.item() == pytest.approx(25.0)


def test_validation():
    layer = BilinearDense(3, 2)
    with pytest.raises(ValueError, match="one entry per output"):
        B.interaction_matrix(layer, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        B.interaction_matrix(layer, [float("nan"), 1.0])
    with pytest.raises(TypeError, match="conv_a"):
        B.interaction_matrix(torch.nn.Linear(2, 2), [1.0, 1.0])
    with pytest.raises(ValueError, match="top"):
        B.eigenfilters(layer, [1.0, 0.0], top=0)
    with pytest.raises(ValueError, match="expected"):
        B.input_patches(layer, torch.ones(2, 4))
    with pytest.raises(ValueError, match="expected"):
        B.input_patches(BilinearConv(3, 2, 3), torch.ones(2, 4, 5, 5))


def test_contributions_refuse_bad_indices_and_shapes():
    layer = _rand(BilinearConv(3, 4, 3))
    eig = B.eigenfilters(layer, torch.ones(4))
    with pytest.raises(ValueError, match="indices"):
        B.eigen_contributions(layer, torch.ones(1, 3, 5, 5), eig, which=[len(eig.values)])
    with pytest.raises(ValueError, match="expected"):
        B.eigen_contributions(layer, torch.ones(1, 2, 5, 5), eig)


def _bimpala(seed=0):
    from rlinterp.models.impala import ImpalaConfig, build_network

    torch.manual_seed(seed)
    net = build_network(ImpalaConfig(kind="bimpala", image_size=16))
    for p in net.parameters():  # larger weights than the init, so products are far from zero
        p.data.mul_(1.5)
    return net.eval()


@pytest.mark.parametrize("block", [0, 1, 2])
def test_remove_components_edits_only_the_readout(block):
    from rlinterp.models.impala import block_input_hook

    net = _bimpala()
    layer = net.blocks[block].conv
    c_out = layer.conv_a.weight.shape[0]
    u = torch.randn(c_out, generator=torch.Generator().manual_seed(3))
    eig = B.eigenfilters(layer, u)
    obs = torch.rand(5, 16, 16, 3, generator=torch.Generator().manual_seed(4))
    inp, out = block_input_hook(block, "bimpala"), f"blocks.{block}.hook_post"
    _, cache = net.run_with_cache(obs, names_filter=[inp, out])
    y, x = cache[out].double(), cache[inp]
    which = [0, 2, 5]
    base = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    hooks = B.remove_components(layer, eig, u, which, inp, out, baseline=base)
    got = {}
    with net.hooks(fwd_hooks=hooks + [(out, lambda a, hook: got.__setitem__("y", a.detach().double()))]):
        net(obs)
    c = B.eigen_contributions(layer, x, eig, which)
    ud = u.double()
    want_readout = torch.einsum("nchw,c->nhw", y, ud) - (c - base[None, :, None, None]).sum(1)
    assert torch.allclose(torch.einsum("nchw,c->nhw", got["y"], ud), want_readout, atol=1e-4)
    # directions orthogonal to u are untouched
    P = torch.eye(c_out, dtype=torch.float64) - torch.outer(ud, ud) / ud.dot(ud)
    assert torch.allclose(torch.einsum("nchw,dc->ndhw", got["y"], P), torch.einsum("nchw,dc->ndhw", y, P), atol=1e-4)
    # removing every component with a zero baseline leaves nothing along u; removing none changes nothing
    all_hooks = B.remove_components(layer, eig, u, range(len(eig.values)), inp, out)
    with net.hooks(fwd_hooks=all_hooks + [(out, lambda a, hook: got.__setitem__("y", a.detach().double()))]):
        net(obs)
    assert torch.einsum("nchw,c->nhw", got["y"], ud).abs().max() < 1e-3 * y.abs().max()
    with net.hooks(fwd_hooks=B.remove_components(layer, eig, u, [], inp, out)
                   + [(out, lambda a, hook: got.__setitem__("y", a.detach().double()))]):
        net(obs)
    assert torch.allclose(got["y"], y)


def test_remove_components_validation():
    layer = _rand(BilinearDense(3, 2))
    eig = B.eigenfilters(layer, [1.0, 0.0])
    with pytest.raises(ValueError, match="zero"):
        B.remove_components(layer, eig, [0.0, 0.0], [0], "a", "b")
    with pytest.raises(ValueError, match="baseline"):
        B.remove_components(layer, eig, [1.0, 0.0], [0, 1], "a", "b", baseline=[0.0])
    _, edit = B.remove_components(layer, eig, [1.0, 0.0], [0], "a", "b")
    with pytest.raises(RuntimeError, match="did not run"):
        edit[1](torch.ones(2, 2))


def test_block_input_hooks():
    from rlinterp.models.impala import block_input_hook, hook_names

    names = hook_names(_bimpala())
    assert [block_input_hook(i) for i in range(5)] == ["hook_obs", "blocks.0.pool.hook_out", "blocks.1.hook_post",
                                                      "blocks.2.pool.hook_out", "blocks.3.pool.hook_out"]
    assert [block_input_hook(i, "bimpala") for i in range(5)] == ["hook_obs"] + [
        f"blocks.{i}.norm.hook_normalized" for i in range(1, 5)]
    assert all(block_input_hook(i, "bimpala") in names for i in range(5))
    with pytest.raises(ValueError, match="kind"):
        block_input_hook(1, "resnet")
    with pytest.raises(ValueError, match="block"):
        block_input_hook(5)
