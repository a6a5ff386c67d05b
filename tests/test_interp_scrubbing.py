"""Causal scrubbing: the planted (true) hypothesis recovers the loss, a plausible wrong one clearly does not."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlinterp.models.planted import LinearReadout, HandMLP, PlantedMLP, marker_hypothesis, marker_task, planted_transformer
from rlinterp.interp.graph import transformer_graph
from rlinterp.interp.scrubbing import Hypothesis, causal_scrubbing



def _check(true, wrong):
    print(f"true {true.recovered:.3f} {true.ci}  wrong {wrong.recovered:.3f} {wrong.ci}")
    assert true.recovered >= 0.95 and true.ci[0] >= 0.9
    assert wrong.recovered <= 0.8 and wrong.ci[1] < true.ci[0]
    assert true.loss_random > true.loss_orig


def test_scrubbing_planted_mlp():
    m = PlantedMLP(seed=0)
    pool = m.sample(1024, seed=3)
    loss = lambda out, x: ((out - m.target(x)) ** 2).sum(-1)  # noqa: E731
    g = m.graph()
    true = causal_scrubbing(m, g, m.hypothesis(), pool, loss, n_ref=256, n_boot=200)
    wrong = causal_scrubbing(m, g, m.hypothesis(wrong=True), pool, loss, n_ref=256, n_boot=200)
    _check(true, wrong)


def test_scrubbing_planted_transformer():
    m = planted_transformer()
    toks, _ = marker_task(1024, seed=3)
    g = transformer_graph(m)
    mk = m.planted["marker"]

    def loss(out, t):
        mp = (t == mk).int().argmax(-1)
        return F.cross_entropy(out[:, -1], t[torch.arange(len(t)), mp + 1], reduction="none")

    true = causal_scrubbing(m, g, marker_hypothesis(m), toks, loss, n_ref=256, n_boot=200)
    wrong = causal_scrubbing(m, g, marker_hypothesis(m, wrong=True), toks, loss, n_ref=256, n_boot=200)
    _check(true, wrong)


def test_scrubbing_errors():
    m = PlantedMLP(seed=0)
    pool = m.sample(64)
    loss = lambda out, x: out.sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match="not in the graph"):
        causal_scrubbing(m, m.graph(), Hypothesis({}, {"in.0->nowhere"}), pool, loss)
    with pytest.raises(ValueError, match="needs a feature"):
        causal_scrubbing(m, m.graph(), Hypothesis({}, {"h1.0->out.0"}), pool, loss)


# ---- resampling and intervals on a hand-built readout ---------------------------------------------------------------


def _sq(out, x):
    return (out ** 2).sum(-1)


def test_scrubbing_resamples_every_free_edge_independently():
    # y = x0 − x1 with x0 = x1 on every pool input: one input shared by both edges gives y = 0 exactly; one fresh
    # input per edge (the documented treeified resampling) gives y = i − j for independent draws i, j
    m = LinearReadout([1.0, -1.0])
    pool = torch.arange(16, dtype=torch.float64)[:, None].repeat(1, 2)
    r = causal_scrubbing(m, m.graph(), Hypothesis({}), pool, _sq, n_boot=0)
    assert r.loss_orig == 0.0
    rand, scrub = r.per_example["random"], r.per_example["scrubbed"]
    assert (rand > 0).mean() > 0.75 and (scrub > 0).mean() > 0.75  # same pair drawn with probability 1/16
    assert set(np.sqrt(rand).round(9)) <= set(range(16))  # |i − j| for pool inputs i, j
    assert r.loss_random == pytest.approx(rand.mean()) and r.loss_scrubbed == pytest.approx(scrub.mean())
    assert not np.array_equal(rand, scrub)  # the empty hypothesis and the random baseline draw separately


def test_scrubbing_draws_from_the_whole_pool():
    # only the last pool input has x0 = 1: unconditional resampling and resampling within a feature class (a
    # constant feature: one class, the whole pool) must both be able to draw it
    m = LinearReadout([1.0, 0.0])
    pool = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    const = lambda x: torch.zeros(len(x))  # noqa: E731
    free, agree = [], []
    for seed in range(8):
        free.append(causal_scrubbing(m, m.graph(), Hypothesis({}), pool, _sq, n_boot=0, seed=seed)
                    .per_example["scrubbed"])
        agree.append(causal_scrubbing(m, m.graph(), Hypothesis({"in.0": const}), pool, _sq, n_boot=0, seed=seed)
                     .per_example["scrubbed"])
    # each reference input draws its own resample (not one draw shared by the batch)
    assert any(len(set(a)) > 1 for a in agree) and any(len(set(f)) > 1 for f in free)
    free, agree = np.concatenate(free), np.concatenate(agree)
    assert set(free) == {0.0, 1.0} and set(agree) == {0.0, 1.0}
    assert 0.15 < free.mean() < 0.55 and 0.15 < agree.mean() < 0.55  # 1 of 3 pool inputs (24 draws each)


def test_scrubbing_feature_classes_and_reference_inputs():
    m = LinearReadout([1.0, 2.0])
    g = torch.Generator().manual_seed(0)
    pool = torch.randn(40, 2, generator=g, dtype=torch.float64)
    target = m(pool).detach()[:, 0]
    loss = lambda out, x: (out[:, 0] - (x @ torch.tensor([1.0, 2.0], dtype=torch.float64))) ** 2  # noqa: E731
    ident = lambda x: x  # noqa: E731
    # every reference input once (no replacement): the original outputs are those of the whole pool
    r_sq = causal_scrubbing(m, m.graph(), Hypothesis({}), pool, _sq, n_boot=0)
    assert np.array_equal(np.sort(r_sq.per_example["orig"]), np.sort(_sq(m(pool), pool).detach().numpy()))
    r = causal_scrubbing(m, m.graph(), Hypothesis({"in.0": ident, "in.1": ident}), pool, loss, n_boot=0)
    assert len(r.per_example["orig"]) == 40 and torch.allclose(target, pool @ torch.tensor([1.0, 2.0], dtype=torch.float64))
    # identity features on distinct inputs: each edge is resampled within its own class {x}, so nothing changes
    assert r.loss_scrubbed == pytest.approx(r.loss_orig, abs=1e-12) and r.recovered == pytest.approx(1.0)
    assert r.loss_random > 0.5
    # the same through a path-specific feature (keyed by the edge name) and an explicit edge set
    r2 = causal_scrubbing(m, m.graph(), Hypothesis({"in.0->out.0": ident, "in.1->out.0": ident},
                                                   {"in.0->out.0", "in.1->out.0"}), pool, loss, n_boot=0)
    assert r2.loss_scrubbed == pytest.approx(0.0, abs=1e-12)
    # n_ref reference inputs, at most the pool
    assert len(causal_scrubbing(m, m.graph(), Hypothesis({}), pool, loss, n_ref=7, n_boot=0).per_example["orig"]) == 7
    assert len(causal_scrubbing(m, m.graph(), Hypothesis({}), pool, loss, n_ref=99, n_boot=0).per_example["orig"]) == 40
    # a feature only on in.1: in.0 is resampled freely, in.1 within its class -> only x0's part of the loss is lost
    r3 = causal_scrubbing(m, m.graph(), Hypothesis({"in.1": ident}), pool, loss, n_boot=0, seed=1)
    x0 = pool[:, 0].numpy()
    assert 0 < r3.loss_scrubbed < r3.loss_random and r3.loss_scrubbed == pytest.approx(
        np.mean(r3.per_example["scrubbed"]))
    assert set(np.round(r3.per_example["scrubbed"], 9)) <= {round((a - b) ** 2, 9) for a in x0 for b in x0}


def test_scrubbing_interval_is_the_central_95_percent_bootstrap():
    m = LinearReadout([1.0, 1.0])
    g = torch.Generator().manual_seed(1)
    pool = torch.randn(60, 2, generator=g, dtype=torch.float64)
    loss = lambda out, x: (out[:, 0] - x.sum(-1)) ** 2  # noqa: E731
    r = causal_scrubbing(m, m.graph(), Hypothesis({"in.0": lambda x: x}), pool, loss, n_ref=60, n_boot=4000, seed=3)
    lo, lr, ls = (r.per_example[k] for k in ("orig", "random", "scrubbed"))
    assert r.recovered == pytest.approx((lr.mean() - ls.mean()) / (lr.mean() - lo.mean()))
    assert r.loss_orig == pytest.approx(lo.mean()) and lo.max() < 1e-20
    # the same bootstrap, done independently with many resamples: ci[0] and ci[1] are its 2.5% and 97.5% quantiles
    rng = np.random.default_rng(123)
    i = rng.integers(0, 60, (100_000, 60))
    boot = (lr[i].mean(1) - ls[i].mean(1)) / (lr[i].mean(1) - lo[i].mean(1))
    assert abs((boot < r.ci[0]).mean() - 0.025) < 0.009 and abs((boot > r.ci[1]).mean() - 0.025) < 0.009
    assert r.ci[0] < r.recovered < r.ci[1]
    # deterministic under the seed, different for another seed
    again = causal_scrubbing(m, m.graph(), Hypothesis({"in.0": lambda x: x}), pool, loss, n_ref=60, n_boot=4000, seed=3)
    assert again.ci == r.ci and again.recovered == r.recovered
    other = causal_scrubbing(m, m.graph(), Hypothesis({"in.0": lambda x: x}), pool, loss, n_ref=60, n_boot=4000, seed=4)
    assert other.ci != r.ci
    none = causal_scrubbing(m, m.graph(), Hypothesis({"in.0": lambda x: x}), pool, loss, n_boot=0)
    assert np.isnan(none.ci[0]) and np.isnan(none.ci[1]) and np.isfinite(none.recovered)
    # defaults: seed 0, 1000 bootstrap resamples
    hyp = Hypothesis({"in.0": lambda x: x})
    default = causal_scrubbing(m, m.graph(), hyp, pool, loss, n_ref=60)
    assert default.ci == causal_scrubbing(m, m.graph(), hyp, pool, loss, n_ref=60, n_boot=1000, seed=0).ci
    # recovered = (L_random − L_scrubbed) / (L_random − L_orig) also when L_orig is not 0
    off = causal_scrubbing(m, m.graph(), hyp, pool, lambda out, x: loss(out, x) + 1.0, n_ref=60, n_boot=0, seed=3)
    assert off.loss_orig == pytest.approx(1.0)
    assert off.recovered == pytest.approx((off.loss_random - off.loss_scrubbed) / (off.loss_random - 1.0))
    assert off.recovered == pytest.approx(r.recovered)


def test_scrubbing_default_edges_through_hidden_layers():
    # y = relu(x0 + x1) + relu(x1) (two hidden layers); identity features on every component: the hypothesis (all
    # edges between components with features, and into the output) recomputes every activation on the same input
    m = HandMLP()
    W0, W1, Wh = torch.tensor([[1.0, 1.0], [0.0, 1.0]]), torch.eye(2), torch.tensor([[1.0, 1.0]])
    m._load(W0, torch.zeros(2), W1, torch.zeros(2), Wh, torch.zeros(1), "cpu")
    pool = torch.randint(0, 4, (64, 2), generator=torch.Generator().manual_seed(0)).float()
    loss = lambda out, x: (out[:, 0] - torch.relu(x.sum(-1)) - torch.relu(x[:, 1])) ** 2  # noqa: E731
    ident = lambda x: x  # noqa: E731
    feats = {c: ident for c in ("in.0", "in.1", "h0.0", "h0.1", "h1.0", "h1.1")}
    r = causal_scrubbing(m, m.graph(), Hypothesis(feats), pool, loss, n_boot=0, progress=True)
    assert r.loss_orig == 0.0 and r.loss_scrubbed == 0.0 and r.loss_random > 0.5 and r.recovered == 1.0
    # without the features of the first layer, its inputs are resampled: part of the loss comes back
    part = causal_scrubbing(m, m.graph(), Hypothesis({c: ident for c in ("h0.0", "h0.1", "h1.0", "h1.1")}), pool,
                            loss, n_boot=0)
    assert 0 < part.loss_scrubbed


def test_scrubbing_unknown_edges_message():
    m = LinearReadout([1.0, 1.0])
    bad = {f"in.{i}->nowhere" for i in range(7)}
    with pytest.raises(ValueError) as err:
        causal_scrubbing(m, m.graph(), Hypothesis({}, bad), torch.zeros(4, 2, dtype=torch.float64), _sq)
    assert str(err.value) == ("hypothesis names edges not in the graph: ['in.0->nowhere', 'in.1->nowhere', "
                              "'in.2->nowhere', 'in.3->nowhere', 'in.4->nowhere']; see Graph.names")


def test_scrubbing_recovered_is_nan_when_resampling_changes_nothing(capsys):
    m = LinearReadout([0.0, 0.0])  # the output ignores the input: L_random = L_orig
    pool = torch.randn(8, 2, dtype=torch.float64)
    r = causal_scrubbing(m, m.graph(), Hypothesis({}), pool, _sq, n_boot=0, progress=True)
    assert np.isnan(r.recovered) and r.loss_random == r.loss_orig == 0.0
    assert re.search(r"(^|\r)causal scrubbing \(forward passes\): ", capsys.readouterr().err)
    causal_scrubbing(m, m.graph(), Hypothesis({}), pool, _sq, n_boot=0)  # no progress bar by default
    assert "causal scrubbing" not in capsys.readouterr().err
