"""Probes recover a planted linear feature and stay at chance on controls; logit lens; feature visualisation."""
import itertools
import math

import pytest
import torch

from rlinterp.models.planted import PlantedMLP, marker_task, planted_transformer
from rlinterp.interp.featvis import maximize_continuous, maximize_discrete
from rlinterp.interp.lens import logit_lens
from rlinterp.interp.probes import fit_probe, probe_hook



def test_ridge_probe_planted_feature_and_controls():
    m = PlantedMLP()
    x = m.sample(2000, seed=1)
    p, q = m.and_pairs[m.c0[0]]
    feature = x[:, p] + x[:, q]  # planted linearly in the pre-activation of circuit neuron c0[0]
    r = probe_hook(m, x, "mlp.0.hook_pre", feature)
    assert r.score >= 0.95 and r.control < 0.05
    # control task: an input the layer does not read (inputs d_in-2 may be read by distractors; use a fresh label)
    noise = torch.randn(2000, generator=torch.Generator().manual_seed(0))
    assert probe_hook(m, x, "mlp.0.hook_pre", noise).score < 0.05


def test_logistic_probe_and_control_model():
    m = PlantedMLP()
    x = m.sample(2000, seed=1)
    j = m.c0[0]
    p, q = m.and_pairs[j]
    label = (x[:, p] * x[:, q]).long()
    r = probe_hook(m, x, "mlp.0.hook_post", label, kind="logistic")
    assert r.score >= 0.99 and r.control <= r.chance + 0.05
    rand = PlantedMLP()
    with torch.no_grad():
        for lin in (rand.mlp[0].linear, rand.mlp[1].linear):
            lin.weight.normal_(generator=torch.Generator().manual_seed(5))
    r2 = probe_hook(m, x, "mlp.1.hook_post", label, kind="logistic", control_model=rand)
    assert r2.score >= 0.95
    with pytest.raises(ValueError, match="kind"):
        fit_probe(torch.zeros(10, 2), torch.zeros(10), kind="svm")


def test_probe_result_predicts_like_its_fit():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(400, 3, 4, generator=g) * torch.linspace(0.5, 3, 12).reshape(3, 4) + 2.0
    w = torch.randn(12, generator=g)
    # logistic: 3 classes from a noisy linear score; predict on the held-out rows reproduces the reported accuracy
    s = X.reshape(400, -1) @ w + 0.5 * torch.randn(400, generator=g)
    y = torch.bucketize(s, s.quantile(torch.tensor([1 / 3, 2 / 3])))
    r = fit_probe(X, y, kind="logistic", seed=3, test_frac=0.25, n_classes=4)
    assert r.weight.shape == (12, 4) and r.bias.shape == (4,) and r.mean.shape == (12,) and r.std.shape == (12,)
    assert len(r.test_idx) == 100 and len(r.train_idx) == 300
    assert float((r.predict(X[r.test_idx]) == y[r.test_idx]).double().mean()) == r.score
    assert float((r.predict(X[r.train_idx]) == y[r.train_idx]).double().mean()) == r.train_score
    assert 0.6 < r.score <= 1 and r.chance < 0.45
    # new data: the stored standardisation, weights and bias by hand
    Xn = torch.randn(7, 3, 4, generator=g)
    mu, sd = X[r.train_idx].reshape(300, -1).double().mean(0), X[r.train_idx].reshape(300, -1).double().std(0)
    z = ((Xn.reshape(7, -1).double() - mu) / sd) @ r.weight + r.bias
    torch.testing.assert_close(r.predict_proba(Xn), torch.softmax(z, -1))
    assert torch.equal(r.predict(Xn), z.argmax(-1))
    assert r.predict_proba(Xn).shape == (7, 4)  # n_classes beyond the labels' max
    # ridge: values with the labels' trailing shape; held-out R² from predict matches
    Y = torch.stack([X.reshape(400, -1) @ w, -(X.reshape(400, -1) @ w)], 1).reshape(400, 2, 1)
    rr = fit_probe(X, Y, kind="ridge", alpha=0.1, seed=1)
    pred = rr.predict(X[rr.test_idx])
    assert pred.shape == (len(rr.test_idx), 2, 1)
    yt, ytr = Y[rr.test_idx].double(), Y[rr.train_idx].double()
    r2 = 1 - ((yt - pred) ** 2).sum() / ((yt - ytr.mean(0)) ** 2).sum()
    assert float(r2) == pytest.approx(rr.score, abs=1e-12) and rr.score > 0.999
    zr = ((Xn.reshape(7, -1).double() - rr.mean) / rr.std) @ rr.weight + rr.bias
    torch.testing.assert_close(rr.predict(Xn), zr.reshape(7, 2, 1))
    with pytest.raises(ValueError, match="logistic"):
        rr.predict_proba(Xn)
    with pytest.raises(ValueError, match="12 features"):
        r.predict(torch.zeros(5, 11))
    # control=None skips the control fit
    assert math.isnan(fit_probe(X, y, kind="logistic", control=None).control)


def test_fit_probe_rejects_bad_parameters():
    X, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    for kw, msg in [({"alpha": -1.0}, "alpha"), ({"test_frac": 1.5}, "test_frac"), ({"test_frac": 0.99}, "no training"),
                    ({"steps": 0}, "steps"), ({"seed": 0.5}, "seed"), ({"n_classes": 1}, "n_classes"),
                    ({"control": "random"}, "control"), ({"control": torch.zeros(5, 3)}, "control")]:
        with pytest.raises(ValueError, match=msg):
            fit_probe(X, y, kind="logistic", **kw)
    with pytest.raises(ValueError, match="same n"):
        fit_probe(X, y[:10])
    with pytest.raises(ValueError, match="class ind"):
        fit_probe(X, torch.full((20,), 0.5), kind="logistic")
    with pytest.raises(ValueError, match="goes up to|go up to"):
        fit_probe(X, torch.arange(20) % 4, kind="logistic", n_classes=3)


def test_logit_lens_transformer_and_custom_readout():
    m = planted_transformer()
    toks, ans = marker_task(128, seed=2)
    lens = logit_lens(m, toks)
    with torch.no_grad():
        torch.testing.assert_close(lens["blocks.1.hook_resid_post"], m(toks))
    acc = {h: float((v[:, -1].argmax(-1) == ans).float().mean()) for h, v in lens.items()}
    assert acc["blocks.1.hook_resid_post"] == 1.0 and acc["blocks.0.hook_resid_post"] < 0.5
    mlp = PlantedMLP()
    x = mlp.sample(16)
    out = logit_lens(mlp, x, ["mlp.1.hook_post"], readout=mlp.head)
    with torch.no_grad():
        torch.testing.assert_close(out["mlp.1.hook_post"], mlp(x))


def test_feature_visualisation_finds_and_inputs():
    m = PlantedMLP()
    j = m.c0[0]
    p, q = m.and_pairs[j]
    lo, hi = torch.zeros(m.d_in), torch.ones(m.d_in)
    lo[-1] = 1.0  # the constant input stays 1
    r = maximize_continuous(m, "mlp.0.hook_post", (m.d_in,), index=j, low=lo, high=hi, steps=100, restarts=8)
    assert r.values[0] == pytest.approx(1.0, abs=1e-4)
    assert r.inputs[0, p] == pytest.approx(1.0) and r.inputs[0, q] == pytest.approx(1.0)
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=m.d_in - 1)))
    cands = torch.cat([bits, torch.ones(len(bits), 1)], 1)
    best = maximize_discrete(m, "hook_out", index=0, candidates=cands)
    with torch.no_grad():
        assert best.values[0] == pytest.approx(float(m(cands).max()))

    def sampler(n, g):
        x = torch.randint(0, 2, (n, m.d_in), generator=g).float()
        x[:, -1] = 1
        return x

    def mutate(x, g):
        x = x.clone()
        i = torch.randint(0, m.d_in - 1, (len(x),), generator=g)
        x[torch.arange(len(x)), i] = 1 - x[torch.arange(len(x)), i]
        return x

    evo = maximize_discrete(m, "hook_out", index=0, sampler=sampler, mutate=mutate, generations=20)
    assert evo.values[0] == pytest.approx(float(best.values[0]))


def test_spatial_probe_direction_is_the_readout_in_activation_units():
    from rlinterp.interp import fit_spatial_probe

    g = torch.Generator().manual_seed(0)
    acts = torch.randn(60, 4, 4, 4, generator=g) * torch.tensor([1.0, 5.0, 0.2, 2.0])[None, :, None, None] + 3.0
    cells = torch.randint(0, 4, (60, 2), generator=g)
    res = fit_spatial_probe(acts, cells, (4, 4), control=None, steps=5)
    assert torch.allclose(res.direction, res.weight / res.std)
    # adding t * direction-normalised to one position raises that position's score by exactly t * |direction|
    x = acts[:1].double()
    base = res.cell_logits(x)
    bump = x.clone()
    bump[0, :, 1, 2] += res.direction / res.direction.norm()
    # a cell's logit is a logsumexp over one position here (4x4 map, 4x4 grid): it rises by |direction|·|w|/|w|
    diff = res.cell_logits(bump) - base
    assert diff[0, 1 * 4 + 2].item() == pytest.approx(float((res.weight * res.direction / res.std).sum()
                                                             / res.direction.norm() / 1.0), rel=1e-6)
    assert torch.allclose(diff[0, torch.arange(16) != 6], torch.zeros(15, dtype=diff.dtype), atol=1e-9)
