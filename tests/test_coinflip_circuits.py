"""Chapter 3 building blocks on the shipped coin-flip agent: the DQN's graph, IG completeness, probes, the Gittins
index and the agent's implicit index."""
import numpy as np
import pytest
import torch

from rlinterp.studies import coinflip as cf
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


def test_stick_switch_pairs_are_minimal_stick_switch_contrasts(agent):
    model, sol, states, left, _ = agent
    prior = sol.prior
    with torch.no_grad():
        q = model(model.canonical_obs(states, left)).numpy()
    pairs = cf.stick_switch_pairs(model, prior, states, left, q_values=q)
    assert len(pairs) > 10
    i = np.array([p[0] for p in pairs])
    assert np.all(np.diff(i) > 0)
    for i, cs, a, b in pairs:
        s = states[i]
        assert q[i].argmax() == a and s[a, 0] > 0 and (s.sum(-1) == 0).any()  # sticks with a flipped coin
        mean = prior.posterior_mean(s[:, 0], s[:, 1])
        assert mean[a] >= mean.max() - 1e-12  # ... that looks best
        expected = s.copy()
        expected[a] += (-1, 1)
        assert (cs[a] == expected[a]).all() and sorted(map(tuple, cs)) == sorted(map(tuple, expected))
        with torch.no_grad():
            assert int(model(model.canonical_obs(cs[None], left[i:i + 1])).argmax()) == b  # switches
        assert cs[b].sum() == 0 and s[b].sum() == 0 and prior.posterior_mean(cs[a, 0], cs[a, 1]) >= 0.5 - 1e-12
    first = cf.stick_switch_pairs(model, prior, states[:2000], left[:2000])  # Q-values computed when absent
    assert [(p[0], p[2], p[3]) for p in first] == [(p[0], p[2], p[3]) for p in pairs if p[0] < 2000]
    with pytest.raises(ValueError, match="states"):
        cf.stick_switch_pairs(model, prior, states[:, :3], left)
    with pytest.raises(ValueError, match="q_values"):
        cf.stick_switch_pairs(model, prior, states, left, q_values=q[:, :2])


def test_fit_per_left_recovers_coefficients_per_group():
    rng = np.random.default_rng(0)
    S = 60
    ls = np.repeat([1, 2, 3], S // 3)
    x1, x2, w = rng.normal(size=S), rng.normal(size=S), rng.uniform(0.1, 1, S)
    true = {1: (2.0, -1.0, 0.5), 2: (0.0, 3.0, -1.0), 3: (1.0, 1.0, 0.0)}
    y = np.array([true[l][0] * a + true[l][1] * b + true[l][2] for l, a, b in zip(ls, x1, x2)])
    r2, coefs = cf.fit_per_left(y, [x1, x2], w, ls)
    assert r2 == pytest.approx(1.0) and set(coefs) == {1, 2, 3}
    for l in true:
        np.testing.assert_allclose(coefs[l], true[l], atol=1e-10)
    # with noise: R² is the weighted one, against the weighted mean
    yn = y + rng.normal(size=S)
    r2n, cn = cf.fit_per_left(yn, [x1, x2], w, ls)
    fitted = np.array([cn[l] @ (a, b, 1.0) for l, a, b in zip(ls, x1, x2)])
    assert r2n == pytest.approx(1 - np.sum(w * (yn - fitted) ** 2) / np.sum(w * (yn - np.average(yn, weights=w)) ** 2))
    # 2-d y: no intercept, each state's weight shared by its coins, R² against 0
    Y, X = rng.normal(size=(S, 4)), rng.normal(size=(S, 4))
    Y2 = np.where(ls[:, None] == 1, 2.0, -0.5) * X
    r2_2, c2 = cf.fit_per_left(Y2, [X], w, ls)
    assert r2_2 == pytest.approx(1.0) and c2[1] == pytest.approx([2.0]) and c2[3] == pytest.approx([-0.5])
    assert cf.fit_per_left(Y, [X], w, ls)[0] < 0.5
    for args, msg in [((y, [x1[:5]], w, ls), "X"), ((y, [x1], w[:5], ls), "w and flips_left"),
                      ((y, [x1], -w, ls), "non-negative"), ((np.zeros((2, 2, 2)), [x1], w, ls), "y")]:
        with pytest.raises(ValueError, match=msg):
            cf.fit_per_left(*args)


def test_mean_plus_c_sd_probs():
    prior = CoinPrior(0.3, max_count=10)
    counts = np.array([[[3, 1], [0, 0], [1, 2]], [[2, 0], [1, 1], [0, 0]]])  # canonical (S=2, n=3, 2)
    left = np.array([5, 2])
    f = bayes.coin_features(prior, counts, left)
    for c_by_left in ({}, {5: 0.5, 2: 3.0}, {5: 10.0}):
        probs = bayes.mean_plus_c_sd_probs(prior, c_by_left)(counts, left)
        c = np.array([c_by_left.get(5, 0.0), c_by_left.get(2, 0.0)])[:, None]
        expected = np.eye(3)[(f["mean"] + c * f["std"]).argmax(1)]
        np.testing.assert_array_equal(probs, expected)
    assert bayes.mean_plus_c_sd_probs(prior, {5: 10.0})(counts, left)[0].argmax() == 1  # a large bonus explores
    with pytest.raises(ValueError, match="c_by_left"):
        bayes.mean_plus_c_sd_probs(prior, {5: float("nan")})
    with pytest.raises(ValueError, match="c_by_left"):
        bayes.mean_plus_c_sd_probs(prior, [0.5])


def test_ig_roles_sum_to_the_decision_change(agent):
    model, _, states, left, reach = agent
    idx = np.random.default_rng(3).choice(len(states), 24, replace=False, p=reach / reach.sum())
    x = model.canonical_obs(states[idx], left[idx])
    n = model.cfg.n_coins
    a = torch.as_tensor(np.random.default_rng(4).integers(0, n, 24))
    b = (a + 1) % n
    roles, delta = cf.ig_roles(model, x, a, b, n_steps=512, method="riemann_middle")
    assert list(roles) == ["incumbent heads", "incumbent tails", "other coins' heads", "other coins' tails",
                           "flips left"]
    assert all(r.shape == (24,) for r in roles.values()) and float(delta.abs().max()) < 1e-3
    with torch.no_grad():
        q, q0 = model(x), model(torch.zeros_like(x))
    ar = torch.arange(24)
    gap = (q[ar, a] - q[ar, b]) - (q0[ar, a] - q0[ar, b])
    np.testing.assert_allclose(sum(roles.values()), gap.numpy(), atol=1e-3)
    # the incumbent's inputs by hand for one row
    attr, _ = integrated_gradients(model, x[:1], fn=lambda qq: qq[:, int(a[0])] - qq[:, int(b[0])],
                                   baselines=torch.zeros_like(x[:1]), n_steps=512, method="riemann_middle")
    assert roles["incumbent heads"][0] == pytest.approx(float(attr[0, 2 * int(a[0])]), abs=1e-5)
    assert roles["flips left"][0] == pytest.approx(float(attr[0, -1]), abs=1e-5)
    with pytest.raises(ValueError, match="a_slots"):
        cf.ig_roles(model, x, a + n, b)
    with pytest.raises(ValueError, match="x must"):
        cf.ig_roles(model, x[:, :5], a, b)


def test_ig_roles_same_left_baseline_keeps_the_horizon_out(agent):
    model, _, states, left, reach = agent
    idx = np.random.default_rng(5).choice(len(states), 16, replace=False, p=reach / reach.sum())
    x = model.canonical_obs(states[idx], left[idx])
    n = model.cfg.n_coins
    a = torch.zeros(16, dtype=torch.long)
    b = torch.full((16,), n - 1)
    roles, delta = cf.ig_roles(model, x, a, b, n_steps=512, baseline="same_left")
    assert np.abs(roles["flips left"]).max() == 0.0 and float(delta.abs().max()) < 1e-3
    base = torch.zeros_like(x)
    base[:, -1] = x[:, -1]
    with torch.no_grad():
        q, q0 = model(x), model(base)
    gap = (q[:, 0] - q[:, n - 1]) - (q0[:, 0] - q0[:, n - 1])
    np.testing.assert_allclose(sum(roles.values()), gap.numpy(), atol=1e-3)  # completeness from that baseline
    zero, _ = cf.ig_roles(model, x, a, b, n_steps=512, baseline="zero")
    assert np.abs(zero["flips left"]).max() > 0  # the all-zero baseline credits the horizon
    with pytest.raises(ValueError, match="baseline"):
        cf.ig_roles(model, x, a, b, baseline="mean")


def test_unit_groups_cover_every_coin_the_layer_reads(agent):
    model, _, states, left, _ = agent
    x = model.canonical_obs(states, left)
    n, d = model.cfg.n_coins, model.cfg.d_hidden
    for how in ("argmax", "every_coin"):
        groups, share = cf.unit_groups(model, x, how=how)
        assert sorted(np.concatenate(list(groups.values())).tolist()) == list(range(d))  # a partition
        assert share.shape == (d, n + 1) and np.allclose(share[share.sum(1) > 0].sum(1), 1)
        live = np.setdiff1d(np.arange(d), groups.get("dead", []))
        if how == "argmax":
            for g, units in groups.items():
                if g.startswith("coin"):
                    assert (share[units].argmax(1) == int(g[4:])).all()
    groups, share = cf.unit_groups(model, x, how="every_coin")
    read = share[live].sum(0) > 0
    assert all(f"coin{j}" in groups for j in range(n) if read[j])  # every coin the layer reads has a group
    with pytest.raises(ValueError, match="how"):
        cf.unit_groups(model, x, how="kmeans")


def test_identical_draw_prob():
    f = np.array([0, 0, 0, 1, 1, 2])
    s = np.array([[5, 1], [5, 1], [6, 1], [7, 0], [8, 0], [9, 9]])
    np.testing.assert_allclose(cf.identical_draw_prob(f, s), [2 / 3, 2 / 3, 1 / 3, 1 / 2, 1 / 2, 1.0])
    with pytest.raises(ValueError, match="equally long"):
        cf.identical_draw_prob(f, s[:3])


def test_last_flip_errors_are_the_lower_posterior_mean_choices(agent):
    model, sol, _, _, _ = agent
    df = cf.last_flip_errors(model, sol)
    k = sol.n_flips
    assert len(df) == len(sol.keys[k - 1])
    assert (df.lost >= -1e-12).all() and ((df.lost > 1e-12) == df.wrong).all() and (df.gap >= 0).all()
    # against Q*: with one flip left Q*(s, a) is the posterior mean of a, so a wrong choice has positive regret
    ht = sol.coder.pairs[sol.codes[k - 1]]
    q_star = sol.q_values(ht, np.ones(len(ht), dtype=np.int64))
    mean = sol.prior.posterior_mean(ht[..., 0], ht[..., 1])
    np.testing.assert_allclose(q_star, mean, atol=1e-12)
    other = bayes.solve(3, 4, 0.3, progress=False)
    with pytest.raises(ValueError, match="plays"):
        cf.last_flip_errors(model, other)


def test_switch_threshold_finds_the_decision_boundary():
    gap = np.array([0.0, 0.02, 0.05, 0.08, 0.1, 0.2, 0.0, 0.3])
    switch = np.array([True, True, True, False, False, False, False, False])
    w = np.ones(8)
    left = np.array([3, 3, 3, 3, 3, 3, 1, 1])
    t = cf.switch_threshold(gap, switch, w, left)
    assert t.loc[3, "theta"] == pytest.approx(0.065) and t.loc[3, "misclassified"] == 0.0
    assert t.loc[1, "theta"] == 0.0  # never switches: no bonus
    # one stray switch far above the boundary is misclassified rather than moving the boundary
    t2 = cf.switch_threshold(np.append(gap, 0.5), np.append(switch, True), np.ones(9), np.append(left, 3))
    assert t2.loc[3, "theta"] == pytest.approx(0.065) and t2.loc[3, "misclassified"] == pytest.approx(1 / 7)
    with pytest.raises(ValueError, match="1-d arrays"):
        cf.switch_threshold(gap, switch[:3], w, left)


@pytest.mark.slow
def test_smoke_chapters_run_for_another_game(tmp_path):
    """`rli run coinflip/02_agent` and `03_circuits` with the smoke profile and another game train a tiny agent for
    that game (02), reuse it (03), never touch the shipped checkpoint, and write the game's numbers into the prose."""
    import json
    import os
    import subprocess
    import sys

    from rlinterp import DATA, ROOT

    shipped = DATA / "coinflip" / "dqn.pt"
    before = shipped.stat().st_mtime_ns
    env = {**os.environ, "RLINTERP_COINFLIP_RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "book"
    texts = {}
    for ch in ("02_agent", "03_circuits"):
        proc = subprocess.run([sys.executable, "-m", "rlinterp.cli", "run", f"coinflip/{ch}", "--profile", "smoke",
                               "-p", "n_coins=3", "-p", "n_flips=6", "-p", "sigma=0.5", "--out", str(out), "--quiet"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        nb = json.loads((out / "paper" / "coinflip" / f"{ch}.ipynb").read_text())
        texts[ch] = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nb["cells"]
                              for o in c.get("outputs", []))
    assert "The game: 3 coins, 6 flips, prior sd σ = 0.5. The agent: trained for this game in this run" in texts["02_agent"]
    assert "(3 coins, 6 flips, σ = 0.5)" in texts["02_agent"] and "shipped checkpoint" not in texts["02_agent"]
    assert "The game: 3 coins, 6 flips, σ = 0.5; the agent: trained for this game (400 steps of 64 games" in texts["03_circuits"]
    assert len(list((tmp_path / "runs").glob("dqn-n3-k6-sigma0.5-*.pt"))) == 1  # one agent, shared by both chapters
    assert shipped.stat().st_mtime_ns == before
