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
