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
    assert prior.posterior_quantile(0, 0, 0.5) == pytest.approx(0.5, abs=1e-3)
    assert prior.posterior_quantile(0, 0, prior.atom / 2) == 0.0  # inside the atom at 0
    assert prior.posterior_quantile(0, 0, 1 - prior.atom / 2) == 1.0
    q = prior.posterior_quantile(0, 0, 0.3)
    assert q == pytest.approx(0.5 + 0.3 * norm.ppf(0.3), abs=1e-3)
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
