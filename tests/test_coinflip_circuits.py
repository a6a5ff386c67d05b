"""Chapter 3 building blocks on the shipped coin-flip agent: the DQN's graph, IG completeness, probes, the Gittins
index and the agent's implicit index."""
import numpy as np
import pytest
import torch

from rlinterp.studies import coinflip_bayes as bayes
from rlinterp.envs.coinflip import CoinPrior
from rlinterp.interp import fit_probe, integrated_gradients
from rlinterp.interp.probes import cache_hook


@pytest.fixture(scope="module")
def agent():
    torch.manual_seed(0)
    from rlinterp import artifacts

    model = artifacts.load("coinflip/dqn")
    c = model.cfg
    sol = bayes.solve(c.n_coins, c.n_flips, c.sigma, progress=False)
    _, levels = bayes.evaluate_exact(model.policy_probs, c.n_coins, c.n_flips, c.sigma, return_levels=True)
    states = np.concatenate([ht for ht, _, _ in levels])
    left = np.concatenate([np.full(len(ht), c.n_flips - m) for m, (ht, _, _) in enumerate(levels)])
    reach = np.concatenate([r for _, r, _ in levels])
    return model, sol, states, left, reach


def test_graph_patch_nothing_and_everything(agent):
    model, _, states, left, _ = agent
    rng = np.random.default_rng(0)
    i, j = rng.choice(len(states), 32, replace=False), rng.choice(len(states), 32, replace=False)
    clean, corrupt = model.canonical_obs(states[i], left[i]), model.canonical_obs(states[j], left[j])
    with torch.no_grad():
        q_clean, q_corrupt = model(clean), model(corrupt)
    live = [g for g in range(8)]
    groups = {f"g{g}": np.arange(g, model.cfg.d_hidden, 8) for g in live}
    for graph in (model.graph(), model.graph(level="layer"), model.graph(groups=groups)):
        patch = graph.cache(model, corrupt)
        with torch.no_grad():
            nothing = graph.forward(model, clean, patch, graph.ones())
            everything = graph.forward(model, clean, patch, graph.ones(0.0))
        torch.testing.assert_close(nothing, q_clean)
        torch.testing.assert_close(everything, q_corrupt, atol=2e-4, rtol=1e-4)
    g = model.graph()
    assert len(g) == 11 * 128 + 128 * 128 + 128 * 5
    assert {n.name for n in g.input_nodes} == {f"in.{i}" for i in range(11)}
    with pytest.raises(ValueError, match="partition"):
        model.graph(groups={"a": [0, 1]})


def test_integrated_gradients_complete_on_agent(agent):
    model, _, states, left, reach = agent
    idx = np.random.default_rng(1).choice(len(states), 32, replace=False, p=reach / reach.sum())
    x = model.canonical_obs(states[idx], left[idx])
    attr, delta = integrated_gradients(model, x, fn=lambda q: q[:, 0] - q[:, 1], n_steps=1024, method="riemann_middle")
    assert attr.shape == x.shape
    assert float(delta.abs().max()) < 1e-3
    with torch.no_grad():
        q = model(x)
        gap = (q[:, 0] - q[:, 1]) - (model(torch.zeros_like(x))[:, 0] - model(torch.zeros_like(x))[:, 1])
    torch.testing.assert_close(attr.sum(1), gap, atol=1e-3, rtol=0)


def test_probes_recover_flips_left_above_controls(agent):
    model, sol, states, left, reach = agent
    idx = np.random.default_rng(2).choice(len(states), 1500, replace=False, p=reach / reach.sum())
    x = model.canonical_obs(states[idx], left[idx])
    y = torch.as_tensor(left[idx], dtype=torch.float64)
    for hook in ("mlp.0.hook_post", "mlp.1.hook_post"):
        r = fit_probe(cache_hook(model, x, hook), y, control="shuffle", seed=0)
        assert r.score > 0.95 and r.control < 0.1
    mean0 = torch.as_tensor(sol.prior.posterior_mean(states[idx, 0, 0], states[idx, 0, 1]))
    r = fit_probe(cache_hook(model, x, "mlp.0.hook_post"), mean0, control="shuffle", seed=0)
    assert r.score > 0.8 and r.control < 0.1


def test_gittins_index_properties():
    prior = CoinPrior(0.3, max_count=10)
    G = bayes.gittins_index(prior, 10, grid=2001)
    h, t = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    ok = h + t <= 9
    np.testing.assert_allclose(G[h[ok], t[ok], 1], prior.posterior_mean(h[ok], t[ok]), atol=1e-6)  # last flip: greedy
    assert np.all(np.diff(G[0, 0, 1:11]) > 0)  # an unflipped coin is worth more the more flips are left
    for l in range(1, 10):  # the index is at least the posterior mean and grows with heads
        sel = (h + t + l <= 10) & (h + t <= 9)
        v, m = G[:10, :10, l][sel], prior.posterior_mean(h[sel], t[sel])
        assert np.all(v >= m - 1e-6)
    assert G[3, 1, 4] > G[2, 1, 4] > G[2, 2, 4]
    assert np.isnan(G[5, 5, 1]) and np.isnan(G[0, 0, 0])
    n, k, s = 3, 8, 0.3
    prior8 = CoinPrior(s, max_count=k)
    v_g = bayes.evaluate_exact(bayes.gittins_probs(prior8, k), n, k, s)
    v_greedy = bayes.evaluate_exact(bayes.greedy_probs(prior8), n, k, s)
    v_opt = bayes.solve(n, k, s, progress=False).value
    assert v_greedy - 1e-9 <= v_g <= v_opt + 1e-9
    with pytest.raises(ValueError):
        bayes.gittins_index(CoinPrior(0.3, max_count=5), 8)


def test_agent_implicit_index_tracks_q_star_and_gittins(agent):
    model, sol, states, left, reach = agent
    with torch.no_grad():
        q = model(model.canonical_obs(states, left)).numpy()
    q_star = sol.q_values(states, left)
    feats = bayes.coin_features(sol.prior, states, left, bayes.gittins_index(sol.prior, model.cfg.n_flips, 1001))
    assert set(feats) == {"mean", "std", "flips", "unflipped", "gittins"} and feats["gittins"].shape == q.shape
    centre = lambda a: a - a.mean(1, keepdims=True)  # noqa: E731
    r = np.sum(reach[:, None] * centre(q) * centre(q_star)) / np.sqrt(
        np.sum(reach[:, None] * centre(q) ** 2) * np.sum(reach[:, None] * centre(q_star) ** 2))
    assert r > 0.9
    rows = np.arange(len(states))
    same = (states[rows, q.argmax(1)] == states[rows, (feats["gittins"] - 1e-9 * feats["flips"]).argmax(1)]).all(1)
    assert np.sum(reach * same) / reach.sum() > 0.9
