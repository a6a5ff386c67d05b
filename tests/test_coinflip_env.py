"""Tests of the coin-flip environment, its prior, the batched env and the canonical order."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.stats import norm

import rlinterp.envs  # noqa: F401  (registers rlinterp/CoinFlip-v0)
from rlinterp.envs.coinflip import BatchedCoinFlip, CoinFlipEnv, CoinPrior, canonicalize, encode_obs

# ---------------------------------------------------------------------------------------------------------- prior


def _moment_quad(sigma, h, t):
    cont = quad(lambda x: x**h * (1 - x) ** t * norm.pdf(x, 0.5, sigma), 0, 1, epsabs=0, epsrel=1e-12,
                limit=200, points=[0.5])[0]
    atom = norm.cdf(-0.5 / sigma)
    return cont + atom * (h == 0) + atom * (t == 0)


@pytest.mark.parametrize("sigma", [0.05, 0.2, 0.3, 1.0])
def test_moments_match_quad(sigma):
    prior = CoinPrior(sigma, max_count=30)
    assert prior.atom == pytest.approx(norm.cdf(-0.5 / sigma))
    for h, t in [(0, 0), (1, 0), (0, 1), (3, 2), (20, 0), (0, 20), (10, 15), (30, 0), (7, 23)]:
        assert prior.M[h, t] == pytest.approx(_moment_quad(sigma, h, t), rel=1e-9)
    assert prior.M[0, 0] == pytest.approx(1.0, abs=1e-12)


def test_posterior_summaries():
    prior = CoinPrior(0.3, max_count=20)
    h = np.array([0, 1, 5, 0, 3, 10])
    t = np.array([0, 0, 0, 4, 3, 2])
    mean = prior.posterior_mean(h, t)
    assert mean[0] == pytest.approx(0.5) and mean[4] == pytest.approx(0.5)
    np.testing.assert_allclose(prior.predictive(t, h), 1 - mean, atol=1e-12)  # symmetric prior
    # posterior sd from quadrature of the posterior
    for hh, tt in [(0, 0), (2, 1), (6, 0)]:
        m0 = _moment_quad(0.3, hh, tt)
        m1, m2 = _moment_quad(0.3, hh + 1, tt) / m0, _moment_quad(0.3, hh + 2, tt) / m0
        assert prior.posterior_std(hh, tt) == pytest.approx(np.sqrt(m2 - m1**2), rel=1e-8)
    # more heads -> larger mean; more tails -> smaller
    assert np.all(np.diff(prior.posterior_mean(np.arange(10), np.zeros(10, int))) > 0)
    assert np.all(np.diff(prior.posterior_mean(np.zeros(10, int), np.arange(10))) < 0)
    with pytest.raises(ValueError):
        prior.predictive(15, 10)  # h + t > max_count


def test_quantiles_and_sampling():
    prior = CoinPrior(0.3, max_count=10, grid_size=2048)
    # the quantiles are exact up to the CDF's linear interpolation inside a grid cell: far below the step 1/2048
    assert prior.posterior_quantile(0, 0, 0.5) == pytest.approx(0.5, abs=1e-9)
    assert prior.posterior_quantile(0, 0, prior.atom / 2) == 0.0  # inside the atom at 0
    assert prior.posterior_quantile(0, 0, 1 - prior.atom / 2) == 1.0
    q = prior.posterior_quantile(0, 0, 0.3)
    assert q == pytest.approx(0.5 + 0.3 * norm.ppf(0.3), abs=1e-5)
    rng = np.random.default_rng(0)
    draws = prior.sample_posterior(np.full(40_000, 3), np.full(40_000, 1), rng)
    assert draws.mean() == pytest.approx(prior.posterior_mean(3, 1), abs=0.005)
    assert draws.std() == pytest.approx(prior.posterior_std(3, 1), abs=0.005)
    # the prior sampler and E[max]
    p = prior.sample(rng, (50_000, 5))
    assert np.all((p >= 0) & (p <= 1))
    assert (p == 1).mean() == pytest.approx(prior.atom, abs=0.002)
    assert p.max(1).mean() == pytest.approx(prior.expected_max(5), abs=0.005)


def test_sigma_zero_and_validation():
    prior = CoinPrior(0.0, max_count=5)
    np.testing.assert_allclose(prior.predictive([0, 3, 1], [0, 1, 4]), 0.5)
    assert np.all(prior.sample(np.random.default_rng(0), 7) == 0.5)
    assert prior.expected_max(4) == 0.5
    for bad in [-0.1, float("nan"), float("inf"), "0.3", True]:
        with pytest.raises(ValueError, match="sigma"):
            CoinPrior(bad)


# ------------------------------------------------------------------------------------------------------------ env


def test_check_env_and_registration():
    check_env(gym.make("rlinterp/CoinFlip-v0", n_coins=3, n_flips=7, sigma=0.3).unwrapped)
    env = gym.make("rlinterp/CoinFlip-v0", n_coins=4, n_flips=6, render_mode="ansi")
    obs, info = env.reset(seed=0)
    assert obs.shape == (9,) and obs.dtype == np.float32 and obs[-1] == 1.0
    env.step(2)
    text = env.render()
    assert "flips left: 5" in text and text.count("\n") >= 6


@pytest.mark.parametrize(
    "kwargs", [dict(n_coins=0), dict(n_flips=0), dict(sigma=-1.0), dict(n_coins=2.5), dict(n_flips="3"),
               dict(n_coins=True), dict(render_mode="human")])
def test_invalid_config(kwargs):
    with pytest.raises(ValueError):
        CoinFlipEnv(**kwargs)


def test_invalid_actions_and_end_of_game():
    env = CoinFlipEnv(n_coins=3, n_flips=2)
    env.reset(seed=0)
    for bad in [-1, 3, 1.5, "a", None, True]:
        with pytest.raises(ValueError, match="coin index"):
            env.step(bad)
    env.step(np.int64(0))
    _, _, terminated, _, _ = env.step(np.array(1))
    assert terminated
    with pytest.raises(ValueError, match="reset"):
        env.step(0)
    with pytest.raises(ValueError):
        env.reset(options={"p": [0.5, 2.0, 0.1]})


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(1, 25), sigma=st.sampled_from([0.0, 0.1, 0.3, 1.0]),
       seed=st.integers(0, 2**31 - 1), data=st.data())
def test_env_properties(n, k, sigma, seed, data):
    env = CoinFlipEnv(n_coins=n, n_flips=k, sigma=sigma)
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs) and np.all(info["counts"] == 0)
    p = info["p"]
    assert p.shape == (n,) and np.all((p >= 0) & (p <= 1))
    actions = data.draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k))
    total = 0.0
    for step, a in enumerate(actions, start=1):
        obs, r, terminated, truncated, info = env.step(a)
        total += r
        assert env.observation_space.contains(obs)
        counts = info["counts"]
        assert counts.sum() == step and r in (0.0, 1.0)
        assert total == counts[:, 0].sum()  # reward = heads
        np.testing.assert_allclose(obs[:-1], counts.ravel() / k, rtol=1e-6)
        assert obs[-1] == pytest.approx((k - step) / k)
        assert terminated == (step == k) and not truncated
        if p.size and r == 1.0:
            assert p[a] > 0
    # common random numbers: same seed + same actions -> same outcomes
    env2 = CoinFlipEnv(n_coins=n, n_flips=k, sigma=sigma)
    env2.reset(seed=seed)
    for a in actions:
        env2.step(a)
    np.testing.assert_array_equal(env2.counts, env.counts)


def test_heads_iff_uniform_below_p():
    env = CoinFlipEnv(n_coins=2, n_flips=6)
    env.reset(seed=3, options={"p": [0.0, 1.0]})
    rewards = [env.step(a)[1] for a in [0, 1, 0, 1, 0, 1]]
    assert rewards == [0.0, 1.0] * 3
    env.reset(seed=3, options={"p": [0.3, 0.8]})
    u = env.u.copy()
    outcomes = [env.step(0)[1] for _ in range(6)]
    assert outcomes == [float(x < 0.3) for x in u[0]]


# ---------------------------------------------------------------------------------------------------- encoding etc.


def test_encode_obs():
    counts = np.array([[[1, 2], [0, 0]], [[3, 0], [1, 1]]])
    obs = encode_obs(counts, np.array([7, 5]), 10)
    assert obs.dtype == np.float32 and obs.shape == (2, 5)
    np.testing.assert_allclose(obs[0], [0.1, 0.2, 0.0, 0.0, 0.7])
    np.testing.assert_allclose(obs[1], [0.3, 0.0, 0.1, 0.1, 0.5])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.lists(
    st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=n, max_size=n), min_size=1, max_size=5)),
    st.randoms(use_true_random=False))
def test_canonicalize_properties(rows, rnd):
    counts = np.array(rows, dtype=np.int64)  # (B, n, 2)
    sorted_counts, perm = canonicalize(counts)
    B, n, _ = counts.shape
    for b in range(B):
        assert sorted(perm[b].tolist()) == list(range(n))
        np.testing.assert_array_equal(sorted_counts[b], counts[b, perm[b]])
        keys = [(-h, t) for h, t in sorted_counts[b]]
        assert keys == sorted(keys)  # heads descending, then tails ascending
    # states equal up to a permutation map to the same canonical state
    shuffled = counts.copy()
    for b in range(B):
        order = list(range(n))
        rnd.shuffle(order)
        shuffled[b] = counts[b, order]
    np.testing.assert_array_equal(canonicalize(shuffled)[0], sorted_counts)
    with pytest.raises(ValueError):
        canonicalize(counts[..., 0])


# ------------------------------------------------------------------------------------------------------- batched


def test_batched_matches_single_env():
    n, k, B = 4, 9, 6
    benv = BatchedCoinFlip(n, k, 0.3, num_games=B, seed=11)
    obs = benv.reset()
    assert obs.shape == (B, 2 * n + 1) and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    actions = rng.integers(0, n, size=(k, B))
    singles = []
    for b in range(B):
        env = CoinFlipEnv(n, k, 0.3)
        env.reset(seed=0, options={"p": benv.p[b]})
        env.u = benv.u[b].copy()  # same uniforms -> same outcomes
        singles.append(env)
    for step in range(k):
        obs, reward, done = benv.step(actions[step])
        for b, env in enumerate(singles):
            o, r, term, _, _ = env.step(int(actions[step, b]))
            np.testing.assert_array_equal(o, obs[b])
            assert r == reward[b] and term == done[b]
    assert done.all() and reward.dtype == np.float32
    counts, left = benv.state()
    assert np.all(left == 0) and np.all(counts.sum((1, 2)) == k)
    with pytest.raises(ValueError, match="reset"):
        benv.step(actions[0])


def test_batched_crn_and_errors():
    a = BatchedCoinFlip(3, 5, 0.3, num_games=4, seed=5)
    b = BatchedCoinFlip(3, 5, 0.3, num_games=4, seed=5)
    a.reset(), b.reset()
    np.testing.assert_array_equal(a.p, b.p)
    np.testing.assert_array_equal(a.u, b.u)
    a.reset(p=np.full((4, 3), 0.25))
    assert np.all(a.p == 0.25)
    with pytest.raises(ValueError):
        a.step(np.array([0, 1, 2]))  # wrong shape
    with pytest.raises(ValueError):
        a.step(np.array([0, 1, 2, 3]))  # coin 3 does not exist
    with pytest.raises(ValueError):
        BatchedCoinFlip(3, 5, 0.3, num_games=0)
    fresh = BatchedCoinFlip(2, 2, 0.3, num_games=2)
    with pytest.raises(ValueError):
        fresh.step(np.array([0, 0]))  # not reset yet


# ------------------------------------------------------------------------------------------------ prior: exact values
GRID_STEP = 1 / 2048
TOL = 1e-5  # well below the grid step: a quantile off by one grid cell fails


def _posterior_cdf_grid(sigma, h, t, n=1 << 18):
    """(x, P(p <= x | h, t)) on a fine grid, by the trapezoid rule (error ~1e-12), atoms included; independent of the
    moment table and of the quantile grid."""
    x = np.linspace(0, 1, n + 1)
    dens = x**h * (1 - x) ** t * norm.pdf(x, 0.5, sigma)
    cont = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2) / n])
    atom = norm.cdf(-0.5 / sigma)
    cdf = atom * (h == 0) + cont
    cdf[-1] += atom * (t == 0)
    return x, cdf / cdf[-1]


def test_prior_cdf_at_the_boundaries():
    sigma = 0.3
    prior = CoinPrior(sigma)
    atom = norm.cdf(-0.5 / sigma)
    assert prior.atom == pytest.approx(atom, rel=1e-14)
    x = np.array([-1.0, -1e-12, 0.0, 1e-12, 0.25, 0.5, 0.75, 1 - 1e-12, 1.0, 1.5])
    expected = [0, 0, atom, atom, norm.cdf(-0.25 / sigma), 0.5, norm.cdf(0.25 / sigma), 1 - atom, 1, 1]
    np.testing.assert_allclose(prior.cdf(x), expected, rtol=0, atol=1e-11)
    assert prior.cdf(0.0) == atom and prior.cdf(1.0) == 1.0 and prior.cdf(-1e-300) == 0.0  # the jumps are exact
    assert prior.cdf(np.zeros((2, 3))).shape == (2, 3)
    degenerate = CoinPrior(0.0)
    np.testing.assert_array_equal(degenerate.cdf([0.0, 0.5 - 1e-12, 0.5, 1.0]), [0, 0, 1, 1])
    assert degenerate.atom == 0.0


@pytest.mark.parametrize("h, t", [(0, 0), (3, 1), (0, 5), (5, 0), (2, 2), (0, 10), (7, 3), (10, 0), (9, 1)])
def test_posterior_quantiles_match_the_exact_posterior(h, t):
    sigma = 0.3
    prior = CoinPrior(sigma, max_count=10, grid_size=2048)
    levels = np.array([0.01, 0.05, 0.3, 0.5, 0.7, 0.95, 0.99])
    x, cdf = _posterior_cdf_grid(sigma, h, t)
    atom, Z = norm.cdf(-0.5 / sigma), _moment_quad(sigma, h, t)
    mass0, mass1 = atom * (h == 0) / Z, atom * (t == 0) / Z  # posterior mass of the atoms at 0 and at 1
    inner = slice(1, -1) if t == 0 else slice(1, None)
    expected = [0.0 if q <= mass0 else 1.0 if q > 1 - mass1 else float(np.interp(q, cdf[inner], x[inner]))
                for q in levels]
    got = prior.posterior_quantile(h, t, levels)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    # the atoms: a level inside the mass at 0 gives 0, above all continuous mass gives 1
    assert prior.posterior_quantile(h, t, 0.0) == 0.0
    if h == 0:
        assert prior.posterior_quantile(h, t, mass0) == 0.0 and 0 < prior.posterior_quantile(h, t, mass0 + 1e-6) < 0.01
    if t == 0:
        assert prior.posterior_quantile(h, t, 1.0) == 1.0 and prior.posterior_quantile(h, t, 1 - mass1 / 2) == 1.0
        assert prior.posterior_quantile(h, t, 1 - mass1 - 1e-6) < 1.0
    else:  # no mass at 1: q = 1 is where the CDF reaches 1 (to double precision), above every lower quantile
        assert expected[-1] - TOL <= prior.posterior_quantile(h, t, 1.0) <= 1.0


def test_posterior_quantile_vectorised_and_checked():
    prior = CoinPrior(0.3, max_count=6, grid_size=256)
    h = np.array([[0, 1, 2], [3, 0, 6]])
    t = np.array([[0, 5, 2], [1, 6, 0]])
    q = np.array([[0.1, 0.5, 0.9], [0.2, 0.99, 0.6]])
    one_by_one = np.array([[prior.posterior_quantile(h[i, j], t[i, j], q[i, j]) for j in range(3)] for i in range(2)])
    got = prior.posterior_quantile(h, t, q)
    assert got.shape == (2, 3)
    np.testing.assert_array_equal(got, one_by_one)
    assert prior.posterior_quantile([[1], [2]], 0, [0.1, 0.5, 0.9]).shape == (2, 3)  # broadcast
    for bad in [-1e-12, 1 + 1e-12]:
        with pytest.raises(ValueError, match="quantile levels q must lie in"):
            prior.posterior_quantile(0, 0, bad)
    with pytest.raises(ValueError, match="max_count=6"):
        prior.posterior_quantile(4, 3, 0.5)
    with pytest.raises(ValueError):
        prior.posterior_quantile(-1, 0, 0.5)
    with pytest.raises(ValueError):
        prior.posterior_mean(0, -1)
    assert prior.posterior_quantile(6, 0, 0.5) > prior.posterior_quantile(0, 6, 0.5)  # h + t = max_count is fine
    assert np.all(CoinPrior(0.0, max_count=4).posterior_quantile([0, 4], [4, 0], [0.1, 0.9]) == 0.5)


def test_sample_posterior_is_the_quantile_of_uniforms():
    prior = CoinPrior(0.3, max_count=10)
    h, t = np.array([0, 3, 7, 0]), np.array([0, 1, 3, 9])
    draws = prior.sample_posterior(h, t, np.random.default_rng(4))
    u = np.random.default_rng(4).random(4)
    np.testing.assert_array_equal(draws, prior.posterior_quantile(h, t, u))


def test_moment_table_and_posterior_at_max_count():
    prior = CoinPrior(0.2, max_count=8)
    assert prior.M.shape == (11, 11)
    for h, t in [(8, 0), (0, 8), (5, 3)]:  # the second moment at max_count needs the table's extra rows
        m0 = _moment_quad(0.2, h, t)
        mean = _moment_quad(0.2, h + 1, t) / m0
        assert prior.predictive(h, t) == pytest.approx(mean, rel=1e-9)
        assert prior.posterior_std(h, t) == pytest.approx(np.sqrt(_moment_quad(0.2, h + 2, t) / m0 - mean**2), rel=1e-7)
    flat = CoinPrior(0.0, max_count=3)
    np.testing.assert_array_equal(flat.M, 0.5 ** np.add.outer(np.arange(6), np.arange(6)))
    assert np.all(flat.posterior_std([0, 3], [3, 0]) == 0.0)


def test_prior_arguments_are_checked():
    assert CoinPrior(0.3, max_count=1, grid_size=16).M.shape == (4, 4)
    for kwargs in [dict(max_count=0), dict(grid_size=15), dict(max_count=2.0), dict(sigma=-1e-9)]:
        with pytest.raises(ValueError):
            CoinPrior(**{"sigma": 0.3, **kwargs})


@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
def test_expected_max_matches_an_independent_integral(sigma):
    prior = CoinPrior(sigma)
    assert prior.expected_max(1) == pytest.approx(0.5, abs=1e-12)  # a symmetric prior
    x = np.linspace(0, 1, 2_000_001)
    for n in [2, 5]:
        F = norm.cdf((x - 0.5) / sigma)  # P(p <= x) on [0, 1) (the jump at 1 has no width)
        assert prior.expected_max(n) == pytest.approx(np.trapezoid(1 - F**n, x), abs=1e-11)
    assert prior.expected_max(5) > prior.expected_max(2)
    for bad in [0, True, 2.0]:
        with pytest.raises(ValueError):
            prior.expected_max(bad)


def test_prior_sampler():
    rng = np.random.default_rng(0)
    one = CoinPrior(0.3).sample(rng)
    assert np.ndim(one) == 0 and 0 <= one <= 1
    np.testing.assert_array_equal(CoinPrior(0.0).sample(rng, (2, 3)), np.full((2, 3), 0.5))
    assert CoinPrior(0.0).sample(rng).shape == ()
    p = CoinPrior(2.0).sample(np.random.default_rng(1), 20_000)
    assert (p == 0).mean() == pytest.approx(norm.cdf(-0.25), abs=0.01) and (p == 1).mean() > 0.35


# ------------------------------------------------------------------------------------------------ env: exact behaviour
def test_registration_is_idempotent():
    """Importing rlinterp.envs again, or calling a register_envs() again, keeps the registered specs (no warning)."""
    import importlib
    import warnings

    from rlinterp.envs import darkroom, heist

    ids = ["rlinterp/CoinFlip-v0", "rlinterp/DarkRoom-v0", "rlinterp/Heist-v0"]
    specs = [gym.spec(i) for i in ids]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(rlinterp.envs)
        darkroom.register_envs()
        heist.register_envs()
    assert [gym.spec(i) for i in ids] == specs and all(gym.spec(i) is s for i, s in zip(ids, specs))
    assert gym.spec("rlinterp/CoinFlip-v0").entry_point == "rlinterp.envs.coinflip:CoinFlipEnv"
    assert isinstance(gym.make("rlinterp/CoinFlip-v0", n_coins=2).unwrapped, CoinFlipEnv)


def test_env_reset_options_and_info_are_copies():
    env = CoinFlipEnv(n_coins=3, n_flips=4)
    p = np.array([0.0, 1.0, 0.5])
    obs, info = env.reset(seed=1, options={"p": p})
    p[0] = 0.9
    assert env.p.tolist() == [0.0, 1.0, 0.5] and info["p"].tolist() == [0.0, 1.0, 0.5]
    info["p"][1] = 0.0
    info["counts"][0, 0] = 9
    assert env.p[1] == 1.0 and env.counts.sum() == 0
    np.testing.assert_array_equal(obs, np.r_[np.zeros(6), 1.0].astype(np.float32))
    for bad in [[0.5, 0.5], [0.5, 0.5, 1.0 + 1e-9], [-1e-9, 0.5, 0.5], [[0.5, 0.5, 0.5]]]:
        with pytest.raises(ValueError, match="options\\['p'\\] must be 3 weights in \\[0, 1\\]"):
            env.reset(options={"p": bad})
    _, info = env.reset(seed=2)  # without p: drawn from the prior, reproducibly
    assert info["p"].shape == (3,)
    np.testing.assert_array_equal(CoinFlipEnv(3, 4).reset(seed=2)[1]["p"], info["p"])


def test_env_step_flips_the_chosen_coin_with_its_own_uniforms():
    env = CoinFlipEnv(n_coins=2, n_flips=4)
    env.reset(seed=0, options={"p": [0.5, 0.5]})
    env.u = np.array([[0.5, 0.1, 0.9, 0.2], [0.49, 0.51, 0.0, 0.7]])  # u == p is a tail (head iff u < p)
    out = [env.step(a) for a in [0, 1, 0, 1]]
    assert [o[1] for o in out] == [0.0, 1.0, 1.0, 0.0]
    assert [o[2] for o in out] == [False, False, False, True] and not any(o[3] for o in out)
    np.testing.assert_array_equal(out[-1][4]["counts"], [[1, 1], [1, 1]])
    assert env.score == 2 and env.flips_left == 0
    np.testing.assert_allclose(out[1][0], [0, 0.25, 0.25, 0, 0.5])
    env.reset(seed=0)
    env.step(np.int64(1))
    env.step(np.array(1))
    assert env.counts[1].sum() == 2 and env.counts[0].sum() == 0 and env.flips_left == 2
    for bad in [2, -1, np.int64(2), True, np.array([1]), 1.0]:
        with pytest.raises(ValueError, match=r"coin index in 0..1"):
            env.step(bad)


def test_render_board():
    env = CoinFlipEnv(n_coins=2, n_flips=5, sigma=0.3, render_mode="ansi")
    env.reset(seed=0, options={"p": [1.0, 0.0]})
    assert "last flip" not in env.render()
    env.step(0)
    env.step(1)
    env.step(0)
    prior = env.prior
    m, s = prior.posterior_mean([2, 0], [0, 1]), prior.posterior_std([2, 0], [0, 1])
    assert env.render() == (
        "flips left: 2   heads so far: 2\n"
        "last flip: coin 0 -> HEAD\n"
        " coin | heads | tails | post. mean | post. sd\n"
        f"    0 |     2 |     0 | {m[0]:>10.3f} | {s[0]:>8.3f}\n"
        f"    1 |     0 |     1 | {m[1]:>10.3f} | {s[1]:>8.3f}\n")
    env.step(1)
    assert "last flip: coin 1 -> tail\n" in env.render()
    assert CoinFlipEnv(n_coins=2, n_flips=5).render() is None
    assert env.metadata["render_modes"] == ["ansi"]


# ------------------------------------------------------------------------------------------------ batched: CRN
def test_batched_reset_with_given_weights_keeps_the_random_stream():
    """Common random numbers: fixing p in one reset must not shift the uniforms of this or any later game."""
    B, n, k = 5, 3, 4
    fixed = BatchedCoinFlip(n, k, 0.3, num_games=B, seed=7)
    drawn = BatchedCoinFlip(n, k, 0.3, num_games=B, seed=7)
    p = np.linspace(0, 1, n)
    fixed.reset(p=p)
    drawn.reset()
    np.testing.assert_array_equal(fixed.u, drawn.u)
    np.testing.assert_array_equal(fixed.p, np.broadcast_to(p, (B, n)))
    for _ in range(2):
        fixed.reset()
        drawn.reset(p=np.full((B, n), 0.5)) if _ else drawn.reset()
        np.testing.assert_array_equal(fixed.u, drawn.u)


def test_batched_reset_weights_and_checks():
    env = BatchedCoinFlip(2, 3, 0.3, num_games=3, seed=0)
    p = np.array([0.0, 1.0])
    obs = env.reset(p=p)
    p[0] = 0.5
    assert np.all(env.p == [0.0, 1.0]) and env.p.shape == (3, 2) and env.p.flags.writeable
    np.testing.assert_array_equal(obs, np.tile([0, 0, 0, 0, 1.0], (3, 1)).astype(np.float32))
    env.reset(p=0.25)
    assert np.all(env.p == 0.25)
    for bad in [1.0 + 1e-12, -1e-12, [0.5, 2.0]]:
        with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
            env.reset(p=bad)
    a, b = BatchedCoinFlip(2, 3, num_games=2), BatchedCoinFlip(2, 3, num_games=2)  # default seed: reproducible
    a.reset(), b.reset()
    np.testing.assert_array_equal(a.u, b.u)
    for kwargs in [dict(n_coins=0), dict(n_flips=0), dict(sigma=-0.1), dict(num_games=0), dict(num_games=1.5)]:
        with pytest.raises(ValueError):
            BatchedCoinFlip(**kwargs)
    assert BatchedCoinFlip(1, 1, 0.0, num_games=1).reset().shape == (1, 3)


def test_batched_step_exact_outcomes_and_checks():
    env = BatchedCoinFlip(2, 3, 0.3, num_games=2, seed=0)
    env.reset(p=[[0.5, 0.5], [0.3, 0.8]])
    env.u = np.array([[[0.5, 0.1, 0.7], [0.2, 0.9, 0.0]], [[0.1, 0.4, 0.29], [0.8, 0.79, 0.0]]])
    obs, r, done = env.step(np.array([0, 1]))
    assert r.tolist() == [0.0, 0.0] and done.tolist() == [False, False]  # u == p is a tail
    obs, r, done = env.step(np.array([0, 1]))
    assert r.tolist() == [1.0, 1.0]  # each coin's second uniform
    counts, left = env.state()
    counts[0, 0, 0] = 99
    left[:] = 5
    assert env.counts[0, 0].tolist() == [1, 1] and env.flips_left.tolist() == [1, 1]  # state() gives copies
    np.testing.assert_allclose(obs[1], [0, 0, 1 / 3, 1 / 3, 1 / 3], rtol=1e-6)
    for bad in [np.array([0.0, 1.0]), np.array([[0, 1]]), np.array([0, 2]), np.array([-1, 0]), np.array([0])]:
        with pytest.raises(ValueError):
            env.step(bad)
    obs, r, done = env.step(np.array([1, 0]))
    assert done.tolist() == [True, True] and r.tolist() == [1.0, 1.0] and r.dtype == np.float32
    with pytest.raises(ValueError, match="call reset"):
        env.step(np.array([0, 0]))


@pytest.mark.parametrize("make", [
    lambda **kw: CoinPrior(**{"sigma": 0.3, **kw}), lambda **kw: CoinFlipEnv(**kw), lambda **kw: BatchedCoinFlip(**kw)])
def test_bad_arguments_are_named(make):
    """Each bad argument is refused with a message that starts with its own name; the smallest valid values work."""
    args = {"sigma": [-1e-9, float("nan"), float("inf"), "0.3", True]}
    if make(sigma=0.3).__class__ is CoinPrior:
        args |= {"max_count": [0, 1.0, True], "grid_size": [15, 16.0]}
        make(sigma=0.0, max_count=1, grid_size=16)
    else:
        args |= {"n_coins": [0, -1, 2.0, True, "3"], "n_flips": [0, 1.5, False]}
        if make(sigma=0.3).__class__ is BatchedCoinFlip:
            args |= {"num_games": [0, 2.0, True]}
            make(n_coins=1, n_flips=1, sigma=0.0, num_games=1)
        else:
            make(n_coins=1, n_flips=1, sigma=0.0)
    for name, values in args.items():
        for bad in values:
            with pytest.raises(ValueError, match=f"^{name} must be "):
                make(**{name: bad})
    with pytest.raises(ValueError, match="^n must be an integer"):
        CoinPrior(0.3).expected_max(0)


def test_env_spaces_and_state_before_play():
    env = CoinFlipEnv(n_coins=3, n_flips=4, sigma=0.2)
    assert env.action_space == gym.spaces.Discrete(3)
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, shape=(7,), dtype=np.float32)
    assert (env.n_coins, env.n_flips, env.sigma, env.prior.sigma, env.prior.max_count) == (3, 4, 0.2, 0.2, 4)
    assert env.render_mode is None and env.metadata["render_modes"] == ["ansi"]
    benv = BatchedCoinFlip(3, 4, 0.2, num_games=5)
    assert (benv.n_coins, benv.n_flips, benv.sigma, benv.num_games) == (3, 4, 0.2, 5)
    assert benv.prior.sigma == 0.2 and benv.prior.max_count == 4
    assert benv.obs().shape == (5, 7) and benv.state()[0].shape == (5, 3, 2) and benv.state()[0].dtype == np.int64


def test_counts_given_as_floats_work_like_integers():
    """Counts decoded from an observation (obs * n_flips) are floats; every posterior summary takes them."""
    prior = CoinPrior(0.3, max_count=8)
    h, t = np.array([0, 3, 5]), np.array([2, 1, 3])
    hf, tf = h.astype(float), t.astype(float)
    np.testing.assert_array_equal(prior.predictive(hf, tf), prior.predictive(h, t))
    np.testing.assert_array_equal(prior.posterior_std(hf, tf), prior.posterior_std(h, t))
    np.testing.assert_array_equal(prior.posterior_quantile(hf, tf, 0.3), prior.posterior_quantile(h, t, 0.3))
    rng = np.random.default_rng
    np.testing.assert_array_equal(prior.sample_posterior(hf, tf, rng(1)), prior.sample_posterior(h, t, rng(1)))


def test_documented_defaults_and_state_before_reset():
    env = CoinFlipEnv(render_mode="ansi")
    assert (env.n_coins, env.n_flips, env.sigma) == (5, 20, 0.3)
    assert env.render() == "flips left: 20   heads so far: 0\n coin | heads | tails | post. mean | post. sd\n" + "".join(
        f" {i:>4} |     0 |     0 | {0.5:>10.3f} | {env.prior.posterior_std(0, 0):>8.3f}\n" for i in range(5))
    prior = CoinPrior(0.3)
    assert (prior.max_count, prior.grid_size) == (64, 4096)
    benv = BatchedCoinFlip()
    assert (benv.n_coins, benv.n_flips, benv.sigma, benv.num_games) == (5, 20, 0.3, 1024)
    np.testing.assert_array_equal(benv.obs(), np.zeros((1024, 11), np.float32))  # not started: nothing flipped, 0 left
    assert benv.counts.dtype == np.int64 and benv.flips_left.dtype == np.int64
    benv.reset()
    seeded = BatchedCoinFlip(seed=0)
    seeded.reset()
    np.testing.assert_array_equal(benv.u, seeded.u)  # the default seed is 0
    assert benv.flips_left.dtype == np.int64 and np.all(benv.flips_left == 20)


def test_canonicalize_shapes():
    with pytest.raises(ValueError, match=r"counts must have shape \(B, n, 2\), got \(2, 3, 3\)"):
        canonicalize(np.zeros((2, 3, 3), int))
    sorted_counts, perm = canonicalize(np.zeros((0, 3, 2), int))  # an empty batch
    assert sorted_counts.shape == (0, 3, 2) and perm.shape == (0, 3)


def test_wide_prior_quantiles_and_samples():
    """sigma = 1 (a wide prior, large atoms) goes through the same quantile table and sampler as any sigma > 0."""
    prior = CoinPrior(1.0, max_count=2, grid_size=2048)
    q = np.array([0.35, 0.5, 0.6])
    np.testing.assert_allclose(prior.posterior_quantile(0, 0, q), 0.5 + norm.ppf(q), rtol=0, atol=TOL)
    p = prior.sample(np.random.default_rng(0), 10_000)
    assert (p == 0).mean() == pytest.approx(prior.atom, abs=0.015) and 0.45 < p.mean() < 0.55
