"""SAEs through SAELens (rlinterp.interp.sae): ground truth recovered on synthetic data, metrics by hand."""
import math

import pytest
import torch

from rlinterp.interp import sae as S


def _synthetic(n=20000, seed=0):
    from sae_lens.synthetic.activation_generator import ActivationGenerator
    from sae_lens.synthetic.feature_dictionary import FeatureDictionary

    torch.manual_seed(seed)
    fd = FeatureDictionary(16, 16, seed=seed)
    gen = ActivationGenerator(16, firing_probabilities=0.1)
    with torch.no_grad():
        return fd(gen(n)), fd.feature_vectors


def test_batchtopk_recovers_planted_features():
    x, true = _synthetic()
    sae = S.train_sae(x[:16000], S.SAEConfig(d_sae=32, architecture="batchtopk", k=2, training_samples=80_000,
                                             batch_size=256, lr=3e-3))
    m = S.sae_metrics(sae, x[16000:])
    assert S.mmcs(sae.W_dec, true) > 0.95
    assert m["explained_variance"] > 0.95
    assert 1.0 < m["l0"] < 3.5 and 0.0 <= m["dead_fraction"] < 0.5


def test_training_is_deterministic_with_a_seed():
    x, _ = _synthetic(3000)
    cfg = S.SAEConfig(d_sae=8, k=2, training_samples=2048, batch_size=256, seed=3)
    a, b = S.train_sae(x, cfg), S.train_sae(x, cfg)
    assert torch.equal(a.W_dec, b.W_dec)
    c = S.train_sae(x, S.SAEConfig(d_sae=8, k=2, training_samples=2048, batch_size=256, seed=4))
    assert not torch.equal(a.W_dec, c.W_dec)


class _Hand:
    """encode = ReLU(x - 0.5) on the first 3 dims plus a latent that never fires; decode = pad back."""

    def encode(self, x):
        z = torch.relu(x[:, :3] - 0.5)
        return torch.cat([z, torch.zeros(len(x), 1)], 1)

    def decode(self, z):
        return torch.cat([z[:, :3] + 0.5 * (z[:, :3] > 0), torch.zeros(len(z), 1)], 1)


def test_metrics_by_hand():
    x = torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.0, 2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    m = S.sae_metrics(_Hand(), x, batch_size=2)  # two batches: the dead mask is or-ed across batches
    xh = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    sq = float(((x - xh) ** 2).sum())
    tot = float(((x - x.mean(0)) ** 2).sum())
    assert m["explained_variance"] == pytest.approx(1 - sq / tot)
    assert m["l0"] == pytest.approx(3 / 3)  # latents > 0: row0 one, row1 two, row2 none
    assert m["dead_fraction"] == pytest.approx(1 / 4)
    assert m["mse"] == pytest.approx(sq / x.numel())


def test_mmcs_by_hand():
    dec = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -3.0]])
    true = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    # best |cos|: 1 (row 0), 1 (row 2, sign ignored), 1/sqrt2 (rows 1 or 2)
    assert S.mmcs(dec, true) == pytest.approx((1 + 1 + 1 / math.sqrt(2)) / 3)
    with pytest.raises(ValueError, match="share d"):
        S.mmcs(dec, torch.ones(2, 3))


def test_spatial_samples_layout():
    acts = torch.arange(2 * 3 * 2 * 4).reshape(2, 3, 2, 4).float()
    s = S.spatial_samples(acts)
    assert s.shape == (2 * 2 * 4, 3)
    i, y, x = 1, 1, 2
    assert torch.equal(s[(i * 2 + y) * 4 + x], acts[i, :, y, x])
    with pytest.raises(ValueError, match="n, c, h, w"):
        S.spatial_samples(acts[0])


def test_config_and_input_validation():
    for bad in (dict(d_sae=0), dict(architecture="relu"), dict(k=0), dict(k=9, d_sae=8), dict(lr=-1.0),
                dict(batch_size=True), dict(training_samples=1.5)):
        with pytest.raises((TypeError, ValueError)):
            S.SAEConfig(**bad)
    S.SAEConfig(architecture="standard", k=9, d_sae=8)  # k is unused by the L1 SAE
    with pytest.raises(ValueError, match="fewer than one batch"):
        S.train_sae(torch.randn(10, 4), S.SAEConfig(batch_size=16))
    with pytest.raises(ValueError, match="NaN"):
        S.train_sae(torch.full((32, 4), float("nan")), S.SAEConfig(d_sae=4, k=1, batch_size=16))
    with pytest.raises(ValueError, match="float"):
        S.train_sae(torch.ones(32, 4, dtype=torch.long), S.SAEConfig(d_sae=4, k=1, batch_size=16))


class _Linear:
    """A hand SAE: z = ReLU(x @ E), x̂ = z @ W_dec + b_dec (d = 3, d_sae = 4)."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.E = torch.randn(3, 4, generator=g)
        self.W_dec = torch.randn(4, 3, generator=g)
        self.b_dec = torch.randn(3, generator=g)

    def encode(self, x):
        return torch.relu(x @ self.E)

    def decode(self, z):
        return z @ self.W_dec + self.b_dec


@pytest.mark.parametrize("conv", [False, True])
def test_ablate_latents_removes_exactly_those_latents(conv):
    sae = _Linear()
    g = torch.Generator().manual_seed(1)
    act = torch.randn((2, 3, 4, 5) if conv else (6, 3), generator=g)
    x = S.spatial_samples(act) if conv else act
    z = sae.encode(x)
    [(name, fn)] = S.ablate_latents(sae, "blocks.0.hook_post", [1, 3], baseline=[0.2, -0.1])
    assert name == "blocks.0.hook_post"
    out = fn(act)
    got = S.spatial_samples(out) if conv else out
    want = x - (z[:, [1, 3]] - torch.tensor([0.2, -0.1])) @ sae.W_dec[[1, 3]]
    assert torch.allclose(got, want, atol=1e-6)
    # every latent at a zero baseline: what remains is the decoder bias plus the SAE's error
    [(_, fn_all)] = S.ablate_latents(sae, "h", range(4))
    rest = fn_all(act)
    rest = S.spatial_samples(rest) if conv else rest
    assert torch.allclose(rest, x - (sae.decode(z) - sae.b_dec), atol=1e-6)
    assert torch.equal(S.ablate_latents(sae, "h", [])[0][1](act), act)


def test_ablate_latents_validation():
    sae = _Linear()
    with pytest.raises(ValueError, match="indices"):
        S.ablate_latents(sae, "h", [4])
    with pytest.raises(ValueError, match="baseline"):
        S.ablate_latents(sae, "h", [0, 1], baseline=[0.0])
