"""Causal scrubbing: the planted (true) hypothesis recovers the loss, a plausible wrong one clearly does not."""
import pytest
import torch
import torch.nn.functional as F

from rlinterp.models.planted import PlantedMLP, marker_hypothesis, marker_task, planted_transformer
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
